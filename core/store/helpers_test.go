package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

var shanghai = core.LoadLocation("Asia/Shanghai")

// t0 is Tuesday 2025-06-10 10:00 in Shanghai.
var t0 = time.Date(2025, 6, 10, 10, 0, 0, 0, shanghai)

const day0 = "2025-06-10"

// passwordHash is computed once: Argon2id is deliberately slow.
var passwordHash = sync.OnceValue(func() string { return core.HashPassword("pw") })

func testKEK() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(7*i + 1)
	}
	return k
}

// env is one initialised database file with the owner's actor and a fixed clock.
type env struct {
	t     testing.TB
	path  string
	db    *store.DB
	owner *store.Actor
	clock *core.FixedClock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	clock := &core.FixedClock{T: t0}
	db.Clock = clock
	a, err := db.Init(store.InitInput{Merchant: "测试商户", Store: "旗舰店", Device: "pos-1", Owner: "boss",
		PasswordHash: passwordHash(), KDF: "file", KEK: testKEK()})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	return &env{t: t, path: path, db: db, owner: a, clock: clock}
}

func (e *env) advance(d time.Duration) { e.clock.T = e.clock.T.Add(d) }

// reopen opens another handle (its own connection pools) on the same file.
func (e *env) reopen() *store.DB {
	e.t.Helper()
	db, err := store.Open(e.path)
	if err != nil {
		e.t.Fatalf("reopen: %v", err)
	}
	e.t.Cleanup(func() { db.Close() })
	db.Clock = e.clock
	return db
}

func (e *env) create(c *core.Campaign) *core.Campaign {
	e.t.Helper()
	if c.Format == (core.CodeFormat{}) {
		c.Format = core.DefaultCodeFormat()
	}
	if err := e.db.CreateCampaign(e.owner, c); err != nil {
		e.t.Fatalf("create campaign %q: %v", c.Name, err)
	}
	return c
}

func amountOff(name string, off core.Amount, rules core.Rules) *core.Campaign {
	return &core.Campaign{Name: name, Kind: core.KindAmountOff, AmountOff: off, Rules: rules}
}

func giftCard(name string, face core.Amount) *core.Campaign {
	return &core.Campaign{Name: name, Kind: core.KindGiftCard, FaceValue: face}
}

func cardKey(name string, face core.Amount) *core.Campaign {
	return &core.Campaign{Name: name, Kind: core.KindCardKey, FaceValue: face}
}

// codes generates n codes and returns them in order.
func (e *env) codes(campaignID string, n int64) []string {
	e.t.Helper()
	b, err := e.db.GenerateCodes(e.owner, campaignID, n, nil)
	if err != nil {
		e.t.Fatalf("generate: %v", err)
	}
	var out []string
	if err := e.db.EachCode(store.CodeFilter{Batch: b.ID}, false, func(k *core.Code) error {
		out = append(out, k.Code)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if int64(len(out)) != n {
		e.t.Fatalf("generated %d codes, listed %d", n, len(out))
	}
	return out
}

func (e *env) check(a *store.Actor, code string, o core.Order) core.Verdict {
	e.t.Helper()
	v, err := e.db.Check(a, code, o)
	if err != nil {
		e.t.Fatalf("check %s: %v", code, err)
	}
	return v
}

func (e *env) wantReason(a *store.Actor, code string, o core.Order, reason string) core.Verdict {
	e.t.Helper()
	v := e.check(a, code, o)
	if v.Reason != reason || v.OK != (reason == core.ReasonOK) {
		e.t.Fatalf("check %s: reason %q ok %v, want %q", code, v.Reason, v.OK, reason)
	}
	return v
}

func (e *env) redeem(a *store.Actor, code string, o core.Order, key string) *store.RedeemResult {
	e.t.Helper()
	r, err := e.db.Redeem(a, code, o, key)
	if err != nil {
		e.t.Fatalf("redeem %s: %v", code, err)
	}
	return r
}

// mustRedeem redeems and fails unless exactly one redemption was written.
func (e *env) mustRedeem(a *store.Actor, code string, o core.Order) *core.Redemption {
	e.t.Helper()
	r := e.redeem(a, code, o, "")
	if !r.Verdict.OK || r.Redemption == nil {
		e.t.Fatalf("redeem %s: %+v", code, r.Verdict)
	}
	return r.Redemption
}

func (e *env) counts() store.Counts {
	e.t.Helper()
	c, err := e.db.Counts()
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) campaign(id string) *core.Campaign {
	e.t.Helper()
	c, err := e.db.Campaign(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) code(code string) *core.Code {
	e.t.Helper()
	k, err := e.db.FindCode(code, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// total is the report's total over [from, to]; zero when nothing happened.
func (e *env) total(from, to string) store.ReportRow {
	e.t.Helper()
	rows, err := e.db.Report(store.ReportFilter{From: from, To: to, By: "total"})
	if err != nil {
		e.t.Fatal(err)
	}
	switch len(rows) {
	case 0:
		return store.ReportRow{}
	case 1:
		return rows[0]
	}
	e.t.Fatalf("total report has %d rows", len(rows))
	return store.ReportRow{}
}

// storeActor adds a store and returns the owner acting there.
func (e *env) storeActor(name, tz string) *store.Actor {
	e.t.Helper()
	s, err := e.db.AddStore(e.owner, name, tz)
	if err != nil {
		e.t.Fatal(err)
	}
	b := *e.owner
	b.Store = *s
	return &b
}

// operatorActor adds an operator working on the owner's device and store.
func (e *env) operatorActor(name string, role core.Role) *store.Actor {
	e.t.Helper()
	o, err := e.db.AddOperator(e.owner, name, role, e.owner.Store.ID, passwordHash())
	if err != nil {
		e.t.Fatal(err)
	}
	b := *e.owner
	b.Operator = *o
	return &b
}

func (e *env) auditActions() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	if err := e.db.EachAudit(func(a *core.AuditEntry) error {
		out[a.Action]++
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// asError returns err as *core.Error, failing the test if it is anything else.
func asError(t testing.TB, err error) *core.Error {
	t.Helper()
	var ce *core.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T %v is not *core.Error", err, err)
	}
	return ce
}

func wantErr(t testing.TB, err error, code, field string) *core.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s (%s)", code, field)
	}
	ce := asError(t, err)
	if ce.Code != code || (field != "" && ce.Field != field) {
		t.Fatalf("error %q: code %q field %q, want %q %q", ce.Error(), ce.Code, ce.Field, code, field)
	}
	return ce
}

// mistype replaces the last character (the check character) with the next one of
// the alphabet.
func mistype(code string) string {
	alpha := core.DefaultAlphabet
	last := code[len(code)-1]
	i := strings.IndexByte(alpha, last)
	return code[:len(code)-1] + string(alpha[(i+1)%len(alpha)])
}

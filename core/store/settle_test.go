package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func (e *env) setRule(scope, ref, parties, remainder string) *core.SplitRule {
	e.t.Helper()
	shares, err := core.ParseShares(parties)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := e.db.SetSplitRule(e.owner, core.SplitRule{Scope: scope, ScopeID: ref, Parties: shares, Remainder: remainder})
	if err != nil {
		e.t.Fatalf("set %s rule %q: %v", scope, parties, err)
	}
	return r
}

// statement reads and verifies a party's statement.
func (e *env) statement(party, from, to string) *store.Statement {
	e.t.Helper()
	s, err := e.db.Statement(party, from, to)
	if err != nil {
		e.t.Fatalf("statement %s %s..%s: %v", party, from, to, err)
	}
	if err := e.db.VerifyStatement(s); err != nil {
		e.t.Fatalf("verify %s: %v", party, err)
	}
	return s
}

func shareMap(shares []core.PartyAmount) map[string]core.Amount {
	if shares == nil {
		return nil
	}
	m := map[string]core.Amount{}
	for _, s := range shares {
		m[s.Party] = s.Amount
	}
	return m
}

func (e *env) storedSplit(id string) string {
	e.t.Helper()
	var s string
	if err := e.db.Raw().QueryRow(`SELECT split FROM redemption WHERE id = ?`, id).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func TestSplitRulePrecedenceCampaignStoreDefault(t *testing.T) {
	e := newEnv(t)
	west := e.storeActor("西店", "")
	x := e.create(amountOff("X", 1000, core.Rules{}))
	y := e.create(amountOff("Y", 1000, core.Rules{}))
	xs, ys := e.codes(x.ID, 4), e.codes(y.ID, 4)

	// No rule at all: no shares, nothing in the settlement rollup.
	r := e.redeem(e.owner, xs[0], core.Order{}, "")
	if r.Split != nil || e.storedSplit(r.Redemption.ID) != "" {
		t.Fatalf("no rule, yet split %v / %q", r.Split, e.storedSplit(r.Redemption.ID))
	}

	e.setRule(core.SplitDefault, "", "brand:60,store:35,platform:5", "")
	e.setRule(core.SplitStore, "西店", "brand:50,franchise:50", "brand")
	e.setRule(core.SplitCampaign, y.Name, "brand:70,partner:30", "")

	cases := []struct {
		a    *store.Actor
		code string
		want map[string]core.Amount
	}{
		{e.owner, xs[1], map[string]core.Amount{"brand": 600, "store": 350, "platform": 50}}, // default
		{west, xs[2], map[string]core.Amount{"brand": 500, "franchise": 500}},                // store beats default
		{e.owner, ys[0], map[string]core.Amount{"brand": 700, "partner": 300}},               // campaign beats default
		{west, ys[1], map[string]core.Amount{"brand": 700, "partner": 300}},                  // campaign beats store
	}
	for i, c := range cases {
		r := e.redeem(c.a, c.code, core.Order{}, "")
		got := shareMap(r.Split)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Fatalf("case %d: split %v, want %v", i, got, c.want)
		}
		var stored map[string]core.Amount
		if err := json.Unmarshal([]byte(e.storedSplit(r.Redemption.ID)), &stored); err != nil || fmt.Sprint(stored) != fmt.Sprint(c.want) {
			t.Fatalf("case %d: stored split %v (%v)", i, stored, err)
		}
	}

	// Removing the campaign rule sends Y back to the store's, then the default rule.
	if err := e.db.RemoveSplitRule(e.owner, core.SplitCampaign, y.ID); err != nil {
		t.Fatal(err)
	}
	if got := shareMap(e.redeem(west, ys[2], core.Order{}, "").Split); got["franchise"] != 500 {
		t.Fatalf("after removing the campaign rule, Y at 西店 split %v", got)
	}
	if got := shareMap(e.redeem(e.owner, ys[3], core.Order{}, "").Split); got["platform"] != 50 {
		t.Fatalf("after removing the campaign rule, Y at 旗舰店 split %v", got)
	}
	wantErr(t, e.db.RemoveSplitRule(e.owner, core.SplitCampaign, y.ID), core.ErrNotFound, "split_rule")

	// The statement of brand for the day: 600+500+700+700+500+600.
	s := e.statement("brand", day0, day0)
	if s.Totals.Gross != 3600 || s.Totals.Redeemed != 6 || !s.Verify.OK {
		t.Fatalf("brand statement %+v verify %+v", s.Totals, s.Verify)
	}
	// 6 redemptions with a rule of 10.00 each, 1 without.
	rec := s.Reconciliation
	if rec.AllParties.Gross != 6000 || rec.RedeemedValue != 7000 || rec.Unsplit != 1000 {
		t.Fatalf("reconciliation %+v", rec)
	}
	if _, err := e.db.Statement("nobody", day0, day0); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("statement of an unknown party: %v", err)
	}
}

func TestSplitRulesAreValidatedAuditedAndSynced(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("C", 1000, core.Rules{}))
	a0, o0 := e.counts().Audit, e.counts().Outbox

	bad := []struct {
		rule  core.SplitRule
		code  string
		field string
	}{
		{core.SplitRule{Scope: core.SplitDefault, Parties: []core.Share{{Party: "a", PercentBP: 6000}, {Party: "b", PercentBP: 3000}}}, core.ErrInvalid, "parties"},
		{core.SplitRule{Scope: core.SplitDefault, Parties: []core.Share{{Party: "a", PercentBP: 10000}}, Remainder: "b"}, core.ErrInvalid, "remainder"},
		{core.SplitRule{Scope: core.SplitCampaign, ScopeID: "nope", Parties: []core.Share{{Party: "a", PercentBP: 10000}}}, core.ErrNotFound, "campaign"},
		{core.SplitRule{Scope: core.SplitStore, ScopeID: "nope", Parties: []core.Share{{Party: "a", PercentBP: 10000}}}, core.ErrNotFound, "store"},
		{core.SplitRule{Scope: core.SplitDefault, Parties: []core.Share{{Party: `a"b`, PercentBP: 10000}}}, core.ErrInvalid, "parties"},
	}
	for i, b := range bad {
		if _, err := e.db.SetSplitRule(e.owner, b.rule); err == nil {
			t.Fatalf("bad rule %d accepted", i)
		} else {
			wantErr(t, err, b.code, b.field)
		}
	}
	if n := e.counts(); n.Audit != a0 || n.Outbox != o0 {
		t.Fatalf("refused rules wrote audit/outbox entries")
	}

	r1 := e.setRule(core.SplitCampaign, c.Name, "brand:60,store:40", "")
	if r1.ScopeID != c.ID || r1.ScopeName != "C" || r1.Remainder != core.RemainderLargest {
		t.Fatalf("rule %+v", r1)
	}
	r2 := e.setRule(core.SplitCampaign, c.ID, "brand:50,store:50", "store") // replaces the campaign's rule
	if r2.ID != r1.ID {
		t.Fatalf("replacing a scope's rule gave a new id %s (was %s)", r2.ID, r1.ID)
	}
	e.setRule(core.SplitDefault, "", "brand:100", "")
	rules, err := e.db.SplitRules()
	if err != nil || len(rules) != 2 || rules[0].Scope != core.SplitCampaign || rules[0].Parties[0].PercentBP != 5000 ||
		rules[0].Remainder != "store" || rules[1].Scope != core.SplitDefault {
		t.Fatalf("rules %+v %v", rules, err)
	}
	if err := e.db.RemoveSplitRule(e.owner, core.SplitDefault, ""); err != nil {
		t.Fatal(err)
	}
	acts := e.auditActions()
	if acts["settle.rules.set"] != 3 || acts["settle.rules.remove"] != 1 {
		t.Fatalf("audit actions %v", acts)
	}
	out, err := e.db.Outbox(1000)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, m := range out {
		names[m.Name]++
	}
	if names["settle.rules.set@1"] != 3 || names["settle.rules.remove@1"] != 1 {
		t.Fatalf("outbox %v", names)
	}
}

// A rule changed through another handle on the same file (another process) is seen by
// the next redemption: the revision read with the code decides, not a timer.
func TestSplitRuleChangeSeenByOtherHandles(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("C", 1000, core.Rules{}))
	codes := e.codes(c.ID, 3)
	e.setRule(core.SplitDefault, "", "a:50,b:50", "")
	if got := shareMap(e.redeem(e.owner, codes[0], core.Order{}, "").Split); got["a"] != 500 {
		t.Fatalf("split %v", got)
	}
	other := e.reopen()
	shares, _ := core.ParseShares("a:10,b:90")
	if _, err := other.SetSplitRule(e.owner, core.SplitRule{Scope: core.SplitDefault, Parties: shares}); err != nil {
		t.Fatal(err)
	}
	if got := shareMap(e.redeem(e.owner, codes[1], core.Order{}, "").Split); got["a"] != 100 || got["b"] != 900 {
		t.Fatalf("after another handle changed the rule: split %v", got)
	}
	if err := other.RemoveSplitRule(e.owner, core.SplitDefault, ""); err != nil {
		t.Fatal(err)
	}
	if r := e.redeem(e.owner, codes[2], core.Order{}, ""); r.Split != nil {
		t.Fatalf("after another handle removed the rule: split %v", r.Split)
	}
}

// A rollback takes back the shares stored with the redemption, even after the rule
// changed, on the day of the rollback at the redeeming store.
func TestRollbackReversesStoredShares(t *testing.T) {
	e := newEnv(t)
	west := e.storeActor("西店", "")
	c := e.create(amountOff("C", 1001, core.Rules{RollbackHours: 72}))
	codes := e.codes(c.ID, 1)
	e.setRule(core.SplitDefault, "", "a:33.33,b:33.33,c:33.34", "")
	r := e.redeem(west, codes[0], core.Order{}, "").Redemption
	e.setRule(core.SplitDefault, "", "a:100", "")
	e.advance(26 * time.Hour) // the next day
	if _, err := e.db.Rollback(e.owner, r.ID, "退货", false, 0); err != nil {
		t.Fatal(err)
	}
	day1 := t0.Add(26 * time.Hour).Format(time.DateOnly)
	for party, want := range map[string]core.Amount{"a": 333, "b": 333, "c": 335} {
		s := e.statement(party, day0, day1)
		if len(s.Lines) != 2 || s.Lines[0].Day != day0 || s.Lines[0].Gross != want || s.Lines[1].Day != day1 ||
			s.Lines[1].Reversed != want || s.Lines[1].RolledBack != 1 || s.Lines[1].StoreID != west.Store.ID || s.Totals.Net != 0 {
			t.Fatalf("party %s: lines %+v totals %+v", party, s.Lines, s.Totals)
		}
		if !s.Verify.OK {
			t.Fatalf("party %s: verify %+v", party, s.Verify)
		}
		// Day by day: the redemption's day holds the gross, the rollback's the reversal.
		d0 := e.statement(party, day0, day0)
		if d0.Totals.Net != want || d0.Reconciliation.AllParties.Net != 1001 || !d0.Verify.OK {
			t.Fatalf("party %s day 0: %+v %+v", party, d0.Totals, d0.Verify)
		}
		d1 := e.statement(party, day1, day1)
		if d1.Totals.Net != -want || d1.Reconciliation.AllParties.Net != -1001 || !d1.Verify.OK {
			t.Fatalf("party %s day 1: %+v %+v", party, d1.Totals, d1.Verify)
		}
	}
}

// ledgerEntry is the test's own account of one redemption: what the statements must say.
type ledgerEntry struct {
	store           *store.Actor
	value           core.Amount
	shares          map[string]core.Amount
	day, rolledDay  string
	id              string
	rolledBackLater bool
}

// Statements equal the redeemed value to the fen: three stores in two time zones, five
// campaigns with odd values (1 fen, 7 fen, 33.33 yuan, gift-card debits, card keys),
// 33.33/33.33/33.34 splits with both remainder modes, rollbacks on later days and in
// the next month, and redemptions before any rule.
func TestStatementsEqualRedeemedValueToTheFen(t *testing.T) {
	e := newEnv(t)
	west := e.storeActor("西店", "Asia/Shanghai")
	london := e.storeActor("London", "Europe/London")
	stores := []*store.Actor{e.owner, west, london}
	long := core.Rules{RollbackHours: 24 * 60}
	camps := []*core.Campaign{
		e.create(amountOff("一分", 1, long)),
		e.create(amountOff("七分", 7, long)),
		e.create(amountOff("三十三", 3333, long)),
		e.create(&core.Campaign{Name: "礼品卡", Kind: core.KindGiftCard, FaceValue: 1_000_00, Rules: long}),
		e.create(&core.Campaign{Name: "点卡", Kind: core.KindCardKey, FaceValue: 7, Rules: long}),
	}
	pool := map[string][]string{}
	for _, c := range camps {
		pool[c.ID] = e.codes(c.ID, 60)
	}
	next := func(c *core.Campaign) string {
		code := pool[c.ID][0]
		if c.Kind != core.KindGiftCard {
			pool[c.ID] = pool[c.ID][1:]
		} else if len(pool[c.ID]) > 1 {
			pool[c.ID] = append(pool[c.ID][1:], code) // rotate through the cards
		}
		return code
	}
	e.clock.T = time.Date(2025, 6, 1, 0, 30, 0, 0, shanghai)
	var book []*ledgerEntry
	redeem := func(i int) {
		a := stores[i%3]
		c := camps[(i/3+i)%len(camps)]
		o := core.Order{}
		if c.Kind == core.KindGiftCard {
			o.Debit = core.Amount(1 + (i*37)%997)
		}
		r := e.redeem(a, next(c), o, "")
		if !r.Verdict.OK {
			t.Fatalf("redeem %d: %s", i, r.Verdict.Reason)
		}
		red := r.Redemption
		ent := &ledgerEntry{store: a, value: red.Discount + red.Value, shares: shareMap(r.Split), id: red.ID,
			day: time.UnixMilli(red.Created).In(a.Store.Location()).Format(time.DateOnly)}
		var sum core.Amount
		for _, v := range ent.shares {
			sum += v
		}
		if r.Split != nil && sum != ent.value {
			t.Fatalf("redemption %d: shares %v add up to %d, value %d", i, ent.shares, sum, ent.value)
		}
		book = append(book, ent)
	}
	// Before any rule: never split.
	for i := range 9 {
		redeem(i)
		e.advance(3*time.Hour + 7*time.Minute)
	}
	e.setRule(core.SplitDefault, "", "a:33.33,b:33.33,c:33.34", "")
	e.setRule(core.SplitStore, "London", "a:33.33,b:33.33,c:33.34", "a")
	e.setRule(core.SplitCampaign, "点卡", "a:50,d:50", "d")
	// A month of redemptions every 5 h 11 min (across midnight in both zones), and on
	// the last evening of June in London, which is already July in Shanghai.
	rollback := func(b *ledgerEntry) {
		if _, err := e.db.Rollback(e.owner, b.id, "退货", false, 0); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		b.rolledDay = e.clock.T.In(b.store.Store.Location()).Format(time.DateOnly)
	}
	for i := 9; e.clock.T.Before(time.Date(2025, 6, 30, 20, 0, 0, 0, shanghai)); i++ {
		redeem(i)
		if i%7 == 3 { // a rollback in June, often on a later day than the redemption
			rollback(book[len(book)-3])
		}
		e.advance(5*time.Hour + 11*time.Minute)
	}
	e.clock.T = time.Date(2025, 6, 30, 23, 30, 0, 0, core.LoadLocation("Europe/London"))
	redeem(2) // London
	redeem(0) // 旗舰店, 2025-07-01 06:30 in Shanghai
	last := len(book)
	// Roll back every fourth redemption, some the next day, some in July.
	e.clock.T = time.Date(2025, 7, 2, 9, 0, 0, 0, shanghai)
	for i := 0; i < last; i += 4 {
		if book[i].rolledDay == "" {
			rollback(book[i])
		}
		e.advance(47 * time.Minute)
	}
	var laterDay, unsplit int
	for _, b := range book {
		if b.rolledDay != "" && b.rolledDay > b.day && b.rolledDay < "2025-07-01" {
			laterDay++
		}
		if b.shares == nil {
			unsplit++
		}
	}
	if len(book) < 120 || laterDay < 5 || unsplit != 9 {
		t.Fatalf("%d redemptions, %d rolled back on a later day in June, %d unsplit", len(book), laterDay, unsplit)
	}
	// The odd values split as promised: 1 fen goes whole to the largest share (c); 7
	// fen is 2/2/3.
	for _, b := range book {
		if b.shares == nil || b.store == london {
			continue
		}
		switch b.value {
		case 1:
			if b.shares["c"] != 1 || b.shares["a"] != 0 {
				t.Fatalf("1 fen split %v", b.shares)
			}
		case 7:
			if len(b.shares) == 3 && (b.shares["a"] != 2 || b.shares["b"] != 2 || b.shares["c"] != 3) {
				t.Fatalf("7 fen split %v", b.shares)
			}
		}
	}

	for _, period := range [][2]string{{"2025-06-01", "2025-06-30"}, {"2025-07-01", "2025-07-31"}, {"2025-06-01", "2025-07-31"}, {"2025-06-15", "2025-06-15"}} {
		from, to := period[0], period[1]
		in := func(d string) bool { return d != "" && d >= from && d <= to }
		wantAll, wantUnsplit := core.Amount(0), core.Amount(0)
		wantParty := map[string]core.Amount{}
		for _, b := range book {
			if in(b.day) {
				if b.shares == nil {
					wantUnsplit += b.value
				}
				if b.shares != nil {
					wantAll += b.value
				}
				for p, v := range b.shares {
					wantParty[p] += v
				}
			}
			if in(b.rolledDay) {
				if b.shares == nil {
					wantUnsplit -= b.value
				}
				if b.shares != nil {
					wantAll -= b.value
				}
				for p, v := range b.shares {
					wantParty[p] -= v
				}
			}
		}
		var sum core.Amount
		for _, party := range []string{"a", "b", "c", "d"} {
			s := e.statement(party, from, to)
			if s.Totals.Net != wantParty[party] {
				t.Fatalf("%s..%s party %s: net %d, want %d", from, to, party, s.Totals.Net, wantParty[party])
			}
			if !s.Verify.OK || len(s.Verify.Differences) != 0 {
				t.Fatalf("%s..%s party %s: verify %+v", from, to, party, s.Verify)
			}
			if s.Reconciliation.AllParties.Net != wantAll || s.Verify.Net != wantAll || s.Reconciliation.Unsplit != wantUnsplit {
				t.Fatalf("%s..%s: all parties %d (verify %d), unsplit %d; want %d, %d", from, to, s.Reconciliation.AllParties.Net,
					s.Verify.Net, s.Reconciliation.Unsplit, wantAll, wantUnsplit)
			}
			var lines core.Amount
			for _, l := range s.Lines {
				lines += l.Net
				if l.Day < from || l.Day > to {
					t.Fatalf("line outside the period: %+v", l)
				}
			}
			if lines != s.Totals.Net {
				t.Fatalf("lines add up to %d, total %d", lines, s.Totals.Net)
			}
			sum += s.Totals.Net
		}
		if sum != wantAll {
			t.Fatalf("%s..%s: parties add up to %d, redeemed value %d", from, to, sum, wantAll)
		}
	}
	// London's last redemption is on June's statement, the flagship's at the same
	// moment on July's.
	june := e.statement("a", "2025-06-30", "2025-06-30")
	july := e.statement("a", "2025-07-01", "2025-07-01")
	if !hasLine(june, london.Store.ID, "2025-06-30") || !hasLine(july, e.owner.Store.ID, "2025-07-01") {
		t.Fatalf("month edge: june %+v july %+v", june.Lines, july.Lines)
	}
}

func hasLine(s *store.Statement, storeID, day string) bool {
	for _, l := range s.Lines {
		if l.StoreID == storeID && l.Day == day {
			return true
		}
	}
	return false
}

// Verify finds a rollup that no longer matches the redemptions, to the fen and cell.
func TestVerifyStatementFindsDifferences(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("C", 700, core.Rules{}))
	codes := e.codes(c.ID, 3)
	e.setRule(core.SplitDefault, "", "a:33.33,b:33.33,c:33.34", "")
	for _, code := range codes {
		e.mustRedeem(e.owner, code, core.Order{})
	}
	if s := e.statement("a", day0, day0); !s.Verify.OK || s.Totals.Gross != 3*233 {
		t.Fatalf("before: %+v %+v", s.Totals, s.Verify)
	}
	if _, err := e.db.Raw().Exec(`UPDATE settle_rollup SET gross = gross + 1 WHERE party = 'b'`); err != nil {
		t.Fatal(err)
	}
	s := e.statement("a", day0, day0)
	if s.Verify.OK {
		t.Fatalf("a changed rollup verified: %+v", s.Verify)
	}
	want := []string{"all.gross", "unsplit"}
	if len(s.Verify.Differences) != len(want) {
		t.Fatalf("differences %+v", s.Verify.Differences)
	}
	for i, d := range s.Verify.Differences {
		if d.Figure != want[i] || d.Day != day0 || d.CampaignID != c.ID || d.StoreID != e.owner.Store.ID {
			t.Fatalf("difference %+v, want %s", d, want[i])
		}
	}
	if d := s.Verify.Differences[0]; d.Diff != -1 || d.Rollup != 2101 || d.Recomputed != 2100 {
		t.Fatalf("all.gross difference %+v", d)
	}
	sb := e.statement("b", day0, day0)
	found := false
	for _, d := range sb.Verify.Differences {
		if d.Figure == "party.gross" && d.Diff == -1 {
			found = true
		}
	}
	if !found || sb.Verify.OK {
		t.Fatalf("party b differences %+v", sb.Verify.Differences)
	}
	if !strings.Contains(fmt.Sprint(sb.Verify.Differences), "all.gross") {
		t.Fatalf("party b: all.gross difference missing")
	}
}

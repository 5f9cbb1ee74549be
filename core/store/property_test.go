package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"pgregory.net/rapid"
)

// The ledger properties: random sequences of top-ups, payments, refunds, earns,
// rewards, adjustments, expiry sweeps, reversals and merges over a few members, with a
// clock that jumps across months and years. After every step every balance equals its
// ledger and is not negative, and equals what a simple model of the rules says; a
// refused step changes nothing.

// modelLot is a points lot as the model sees it.
type modelLot struct {
	id, root string // the lot's entry, and the lot its points were first earned in
	left     int64
	expires  int64 // 0 never
	seq      int   // creation order, as the time-ordered ids go
}

type modelEarn struct {
	member   string // who earned it
	points   int64
	reversed bool
}

type modelPay struct {
	id       string
	amount   core.Amount
	refunded core.Amount
}

// ledgerModel is the expected state: balances per member record (what was merged away
// is zero), lots, earns and payments, and the totals of stored value.
type ledgerModel struct {
	into    map[string]string // merged record → the one it went into
	wallet  map[string]core.Amount
	lots    map[string][]*modelLot
	earns   map[string]*modelEarn
	pays    []*modelPay
	seq     int
	topups  core.Amount // top-ups + bonuses
	payouts core.Amount // payments − refunds
}

func (m *ledgerModel) resolve(id string) string {
	for m.into[id] != "" {
		id = m.into[id]
	}
	return id
}

func (m *ledgerModel) points(id string) int64 {
	var n int64
	for _, l := range m.lots[id] {
		n += l.left
	}
	return n
}

// live is what member can spend at now: lots past their time do not count (the store
// expires them first, and keeps that only if the change goes through).
func (m *ledgerModel) live(id string, now int64) int64 {
	var n int64
	for _, l := range m.lots[id] {
		if l.expires == 0 || l.expires > now {
			n += l.left
		}
	}
	return n
}

// spendOrder sorts lots as they are spent: first to expire first, never last.
func spendOrder(lots []*modelLot) {
	slices.SortStableFunc(lots, func(a, b *modelLot) int {
		ka, kb := a.expires, b.expires
		if ka == 0 {
			ka = 1 << 62
		}
		if kb == 0 {
			kb = 1 << 62
		}
		if ka != kb {
			if ka < kb {
				return -1
			}
			return 1
		}
		return a.seq - b.seq
	})
}

func (m *ledgerModel) addLot(member, id, root string, points, expires int64) {
	m.seq++
	m.lots[member] = append(m.lots[member], &modelLot{id: id, root: root, left: points, expires: expires, seq: m.seq})
}

// expire empties the lots of member (all members when "") due at now.
func (m *ledgerModel) expire(member string, now int64) {
	for id, lots := range m.lots {
		if member != "" && id != member {
			continue
		}
		m.lots[id] = slices.DeleteFunc(lots, func(l *modelLot) bool { return l.expires > 0 && l.expires <= now })
	}
}

// take consumes n points, the lots rooted at prefer first.
func (m *ledgerModel) take(member string, n int64, prefer string) {
	lots := m.lots[member]
	spendOrder(lots)
	slices.SortStableFunc(lots, func(a, b *modelLot) int {
		pa, pb := prefer != "" && a.root == prefer, prefer != "" && b.root == prefer
		switch {
		case pa && !pb:
			return -1
		case pb && !pa:
			return 1
		}
		return 0
	})
	for _, l := range lots {
		k := min(l.left, n)
		l.left -= k
		n -= k
	}
	m.lots[member] = slices.DeleteFunc(lots, func(l *modelLot) bool { return l.left == 0 })
}

// propertyEnv is one database file of one rapid run.
type propertyEnv struct {
	db      *store.DB
	a       *store.Actor
	clock   *core.FixedClock
	members []string
	phones  []string
	reward  *core.Campaign
	bonusC  *core.Campaign
	model   *ledgerModel
}

func newPropertyEnv(t *rapid.T, path string, members int) *propertyEnv {
	db, err := store.OpenWith(path, store.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	clock := &core.FixedClock{T: t0}
	db.Clock = clock
	a, err := db.Init(store.InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: passwordHash(), KDF: "file", KEK: testKEK()})
	if err != nil {
		t.Fatal(err)
	}
	p := &propertyEnv{db: db, a: a, clock: clock, model: &ledgerModel{into: map[string]string{},
		wallet: map[string]core.Amount{}, lots: map[string][]*modelLot{}, earns: map[string]*modelEarn{}}}
	for i := 0; i < members; i++ {
		phone := fmt.Sprintf("1380013%04d", i)
		id, err := addCustomer(db, a, phone)
		if err != nil {
			t.Fatal(err)
		}
		p.members, p.phones = append(p.members, id), append(p.phones, phone)
	}
	p.reward = &core.Campaign{Name: "兑换券", Kind: core.KindAmountOff, AmountOff: 500, Format: core.DefaultCodeFormat()}
	p.bonusC = &core.Campaign{Name: "加倍", Kind: core.KindAmountOff, AmountOff: 100, Format: core.DefaultCodeFormat()}
	for _, c := range []*core.Campaign{p.reward, p.bonusC} {
		if err := db.CreateCampaign(a, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.GenerateCodes(a, p.reward.ID, 50, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetLoyalty(a, func(l *core.Loyalty) error {
		l.Bonuses = []core.TopupBonus{{Min: 10000, Bonus: 2000}}
		l.Rewards[p.reward.ID] = 150
		l.CampaignBonus[p.bonusC.ID] = 25
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// refusedUnchanged checks that a failed step wrote nothing.
func (p *propertyEnv) refusedUnchanged(t *rapid.T, before string, err error, code string) {
	if err == nil {
		t.Fatalf("the step succeeded, want %s", code)
	}
	if c := core.ErrorCode(err); c != code {
		t.Fatalf("error %v: code %s, want %s", err, c, code)
	}
	after, serr := ledgerState(p.db.Raw())
	if serr != nil {
		t.Fatal(serr)
	}
	if after != before {
		t.Fatalf("a refused step (%v) wrote:\nbefore %s\nafter  %s", err, before, after)
	}
}

func (p *propertyEnv) state(t *rapid.T) string {
	s, err := ledgerState(p.db.Raw())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ref names a member by id or phone, as a cashier would; merged records included.
func (p *propertyEnv) ref(t *rapid.T, label string) (ref, id string) {
	i := rapid.IntRange(0, len(p.members)-1).Draw(t, label)
	if rapid.Bool().Draw(t, label+"-by-phone") {
		return p.phones[i], p.members[i]
	}
	return p.members[i], p.members[i]
}

func (p *propertyEnv) now() int64 { return p.clock.T.UnixMilli() }

func (p *propertyEnv) check(t *rapid.T) {
	probs, err := ledgerProblems(p.db.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) > 0 {
		t.Fatalf("ledgers unsound: %v", probs)
	}
	m := p.model
	for _, id := range p.members {
		var wallet core.Amount
		var points int64
		if err := p.db.Raw().QueryRow(`SELECT wallet, points FROM member WHERE id = ?`, id).Scan(&wallet, &points); err != nil {
			t.Fatal(err)
		}
		if wallet != m.wallet[id] || points != m.points(id) {
			t.Fatalf("member %s: wallet %s points %d, the model says %s and %d", id, wallet, points, m.wallet[id], m.points(id))
		}
	}
	var wallets, in, out core.Amount
	if err := p.db.Raw().QueryRow(`SELECT (SELECT COALESCE(sum(wallet), 0) FROM member),
		(SELECT COALESCE(sum(amount), 0) FROM wallet_entry WHERE kind IN ('topup', 'bonus')),
		(SELECT COALESCE(-sum(amount), 0) FROM wallet_entry WHERE kind IN ('pay', 'refund'))`).Scan(&wallets, &in, &out); err != nil {
		t.Fatal(err)
	}
	if wallets != in-out || in != m.topups || out != m.payouts {
		t.Fatalf("wallets %s, top-ups and bonuses %s, payments less refunds %s; the model says %s and %s", wallets, in, out, m.topups, m.payouts)
	}
}

func (p *propertyEnv) actions() map[string]func(*rapid.T) {
	m := p.model
	return map[string]func(*rapid.T){
		"": p.check,
		"topup": func(t *rapid.T) {
			ref, id := p.ref(t, "member")
			amount := core.Amount(rapid.Int64Range(1, 30000).Draw(t, "amount"))
			r, err := p.db.Topup(p.a, ref, amount, "", "")
			if err != nil {
				t.Fatal(err)
			}
			total := amount
			if amount >= 10000 {
				total += 2000
			}
			to := m.resolve(id)
			m.wallet[to] += total
			m.topups += total
			if r.Balance != m.wallet[to] {
				t.Fatalf("top-up balance %s, model %s", r.Balance, m.wallet[to])
			}
		},
		"pay": func(t *rapid.T) {
			ref, id := p.ref(t, "member")
			to := m.resolve(id)
			amount := core.Amount(rapid.Int64Range(1, int64(m.wallet[to])+2000).Draw(t, "amount"))
			before := p.state(t)
			r, err := p.db.Pay(p.a, ref, amount, "", "")
			if amount > m.wallet[to] {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m.wallet[to] -= amount
			m.payouts += amount
			m.pays = append(m.pays, &modelPay{id: r.Entry.ID, amount: amount})
		},
		"refund": func(t *rapid.T) {
			if len(m.pays) == 0 {
				t.Skip("no payment yet")
			}
			pay := rapid.SampledFrom(m.pays).Draw(t, "payment")
			left := pay.amount - pay.refunded
			amount := core.Amount(rapid.Int64Range(0, int64(left)+500).Draw(t, "amount"))
			before := p.state(t)
			r, err := p.db.Refund(p.a, pay.id, amount, "退款")
			if left == 0 || amount > left {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if amount == 0 {
				amount = left
			}
			pay.refunded += amount
			m.wallet[r.Entry.MemberID] += amount
			m.payouts -= amount
		},
		"earn": func(t *rapid.T) {
			ref, id := p.ref(t, "member")
			amount := core.Amount(rapid.Int64Range(1, 50000).Draw(t, "amount"))
			campaign := ""
			if rapid.Bool().Draw(t, "with-campaign") {
				campaign = p.bonusC.Name
			}
			r, err := p.db.Earn(p.a, ref, amount, campaign, "")
			if err != nil {
				t.Fatal(err)
			}
			l, err := p.db.Loyalty()
			if err != nil {
				t.Fatal(err)
			}
			want := int64(amount) / 100
			if campaign != "" {
				want += 25
			}
			if r.Entry.Points != want {
				t.Fatalf("earned %d for %s, want %d", r.Entry.Points, amount, want)
			}
			to := m.resolve(id)
			if want > 0 {
				if exp := l.ExpiresAt(p.clock.T, p.a.Store.Location()); r.Entry.Expires != exp {
					t.Fatalf("lot expires %d, want %d", r.Entry.Expires, exp)
				}
				m.addLot(to, r.Entry.ID, r.Entry.ID, want, r.Entry.Expires)
			}
			m.earns[r.Entry.ID] = &modelEarn{member: id, points: want}
		},
		"spend": func(t *rapid.T) {
			ref, id := p.ref(t, "member")
			to := m.resolve(id)
			before := p.state(t)
			r, err := p.db.Spend(p.a, ref, p.reward.ID)
			if m.live(to, p.now()) < 150 {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Code == "" || r.Entry.RelatedID != r.Code {
				t.Fatalf("reward without its code: %+v", r)
			}
			m.expire(to, p.now())
			m.take(to, 150, "")
		},
		"adjust": func(t *rapid.T) {
			ref, id := p.ref(t, "member")
			to := m.resolve(id)
			delta := rapid.Int64Range(-300, 300).Filter(func(n int64) bool { return n != 0 }).Draw(t, "delta")
			before := p.state(t)
			r, err := p.db.Adjust(p.a, ref, delta, "手动")
			if delta > 0 {
				if err != nil {
					t.Fatal(err)
				}
				m.addLot(to, r.Entry.ID, r.Entry.ID, delta, r.Entry.Expires)
				return
			}
			if m.live(to, p.now()) < -delta {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m.expire(to, p.now())
			m.take(to, -delta, "")
		},
		"expire": func(t *rapid.T) {
			if _, err := p.db.Expire(p.a, time.Time{}, nil); err != nil {
				t.Fatal(err)
			}
			m.expire("", p.now())
			var due int
			if err := p.db.Raw().QueryRow(`SELECT count(*) FROM points_entry WHERE remaining > 0 AND expires_ms > 0 AND expires_ms <= ?`, p.now()).Scan(&due); err != nil || due != 0 {
				t.Fatalf("%d lots past their time after a sweep (%v)", due, err)
			}
		},
		"reverse": func(t *rapid.T) {
			if len(m.earns) == 0 {
				t.Skip("no earn yet")
			}
			ids := make([]string, 0, len(m.earns))
			for id := range m.earns {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			id := rapid.SampledFrom(ids).Draw(t, "earn")
			e := m.earns[id]
			to := m.resolve(e.member)
			before := p.state(t)
			_, err := p.db.Reverse(p.a, id, "订单取消", false, 0)
			if e.reversed {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if m.live(to, p.now()) < e.points {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m.expire(to, p.now())
			m.take(to, e.points, id)
			e.reversed = true
		},
		"merge": func(t *rapid.T) {
			fromRef, from := p.ref(t, "from")
			intoRef, into := p.ref(t, "into")
			f, i := m.resolve(from), m.resolve(into)
			before := p.state(t)
			res, err := p.db.Merge(p.a, fromRef, intoRef)
			if f == i {
				p.refusedUnchanged(t, before, err, core.ErrConflict)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Wallet != m.wallet[f] || res.Points != m.points(f) {
				t.Fatalf("merge moved %s and %d points, the model has %s and %d", res.Wallet, res.Points, m.wallet[f], m.points(f))
			}
			m.wallet[i] += m.wallet[f]
			m.wallet[f] = 0
			moving := m.lots[f]
			spendOrder(moving)
			for _, l := range moving {
				m.addLot(i, "", l.root, l.left, l.expires)
			}
			m.lots[f] = nil
			m.into[f] = i
		},
		"advance": func(t *rapid.T) {
			hours := rapid.SampledFrom([]int{1, 20, 24 * 7, 24 * 31, 24 * 200, 24 * 400}).Draw(t, "hours")
			p.clock.T = p.clock.T.Add(time.Duration(hours) * time.Hour)
		},
		"rules": func(t *rapid.T) {
			rule := rapid.SampledFrom([]string{core.ExpireNextYearEnd, core.ExpireDays, core.ExpireNever}).Draw(t, "expiry")
			days := 0
			if rule == core.ExpireDays {
				days = rapid.IntRange(1, 400).Draw(t, "days")
			}
			if _, err := p.db.SetLoyalty(p.a, func(l *core.Loyalty) error { l.Expiry, l.ExpiryDays = rule, days; return nil }); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestLedgerProperties(t *testing.T) {
	dir := t.TempDir()
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		path := filepath.Join(dir, fmt.Sprintf("run%d.db", run))
		p := newPropertyEnv(rt, path, rapid.IntRange(2, 3).Draw(rt, "members"))
		defer func() {
			p.db.Close()
			for _, s := range []string{"", "-wal", "-shm"} {
				os.Remove(path + s)
			}
		}()
		rt.Repeat(p.actions())
		if cnt, brk, err := p.db.VerifyAudit(); err != nil || brk != nil {
			rt.Fatalf("audit chain after %d entries: %+v %v", cnt, brk, err)
		}
	})
}

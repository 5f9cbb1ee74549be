package store

// Automatic issuing and tiers. An internal test: purchases are recorded the way the
// points, wallet and redeem paths record them (t.visit, then t.afterPurchase), without
// depending on those paths.

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

type issueEnv struct {
	t     *testing.T
	db    *DB
	a     *Actor
	clock *core.FixedClock
}

// 2025-06-10 10:00 in Shanghai, a Tuesday.
var issueT0 = time.Date(2025, 6, 10, 10, 0, 0, 0, core.LoadLocation("Asia/Shanghai"))

func newIssueEnv(t *testing.T) *issueEnv {
	db, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := &core.FixedClock{T: issueT0}
	db.Clock = clock
	kek := make([]byte, 32)
	a, err := db.Init(InitInput{Merchant: "m", Store: "s", Device: "d", Owner: "o", PasswordHash: "x", KDF: "file", KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	return &issueEnv{t: t, db: db, a: a, clock: clock}
}

func (e *issueEnv) advance(d time.Duration) { e.clock.T = e.clock.T.Add(d) }

func (e *issueEnv) campaign(c *core.Campaign) *core.Campaign {
	e.t.Helper()
	c.Format = core.DefaultCodeFormat()
	if err := e.db.CreateCampaign(e.a, c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *issueEnv) rule(kind, campaign string, threshold int64) *core.IssueRule {
	e.t.Helper()
	r, err := e.db.AddIssueRule(e.a, core.IssueRule{Kind: kind, CampaignID: campaign, Threshold: threshold})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *issueEnv) member(phone string, consent bool, birthday string) *MemberAdded {
	e.t.Helper()
	m, err := e.db.AddMember(e.a, MemberInput{Phone: phone, Consent: consent, Birthday: birthday})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// purchase records a purchase (a negative amount: a refund) as the purchase paths do.
func (e *issueEnv) purchase(memberID string, amount core.Amount) {
	e.t.Helper()
	if err := e.db.write(e.a, func(t *tx) error {
		if err := t.visit(memberID, amount); err != nil {
			return err
		}
		return t.afterPurchase(memberID)
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *issueEnv) run() *IssueRun {
	e.t.Helper()
	r, err := e.db.RunIssueRules(e.a, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// held lists the codes handed to a member, oldest first.
func (e *issueEnv) held(memberID string) []string {
	e.t.Helper()
	out, err := e.db.strings(`SELECT code FROM code WHERE member_id = ? ORDER BY id`, memberID)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *issueEnv) tier(memberID string) string {
	e.t.Helper()
	d, err := e.db.Member(memberID, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Tier
}

func (e *issueEnv) rollupTotal(campaignID string) (generated, distributed int64) {
	e.t.Helper()
	if err := e.db.r.QueryRow(`SELECT COALESCE(sum(generated), 0), COALESCE(sum(distributed), 0) FROM rollup WHERE campaign_id = ?`, campaignID).
		Scan(&generated, &distributed); err != nil {
		e.t.Fatal(err)
	}
	return
}

func TestWelcomeRuleHandsOutLikeDistribute(t *testing.T) {
	e := newIssueEnv(t)
	c := e.campaign(&core.Campaign{Name: "新人券", Kind: core.KindAmountOff, AmountOff: 1000, Rules: core.Rules{ValidDays: 7}})
	if _, err := e.db.GenerateCodes(e.a, c.ID, 3, nil); err != nil {
		t.Fatal(err)
	}
	r := e.rule(core.IssueWelcome, c.Name, 0)
	m := e.member("13812345678", false, "") // welcome does not need marketing consent
	if len(m.Issued) != 1 || m.Issued[0].RuleID != r.ID || m.Issued[0].Kind != core.IssueWelcome {
		t.Fatalf("issued %+v", m.Issued)
	}
	code := m.Issued[0].Code
	k, err := e.db.FindCode(code, false)
	if err != nil {
		t.Fatal(err)
	}
	wantTo := issueT0.AddDate(0, 0, 7).UnixMilli()
	if k.Phone != "138****5678" || k.Distributed != issueT0.UnixMilli() || k.ValidFrom != issueT0.UnixMilli() || k.ValidTo != wantTo {
		t.Fatalf("handed-out code %+v", k)
	}
	if p, err := e.db.Reveal(e.a, code, "phone"); err != nil || p != "13812345678" {
		t.Fatalf("phone sealed on the code: %q %v", p, err)
	}
	if got, err := e.db.CodesByPhone("13812345678"); err != nil || len(got) != 1 || got[0] != code {
		t.Fatalf("codes by phone %v %v", got, err)
	}
	if gen, dist := e.rollupTotal(c.ID); gen != 3 || dist != 1 {
		t.Fatalf("rollup generated %d distributed %d", gen, dist)
	}
	// Existing codes are used first: nothing was generated.
	if e.db.mustCampaign(t, c.ID).Issued != 3 {
		t.Fatal("a code was generated although free ones were left")
	}
	if got := e.held(m.Member.ID); len(got) != 1 || got[0] != code {
		t.Fatalf("held %v", got)
	}
	// The run leaves welcome rules alone; a second member gets the next code.
	if run := e.run(); run.Issued != 0 {
		t.Fatalf("run issued %d", run.Issued)
	}
	m2 := e.member("13812345679", true, "")
	if len(m2.Issued) != 1 || m2.Issued[0].Code == code {
		t.Fatalf("second member %+v", m2.Issued)
	}
	var n int
	e.db.r.QueryRow(`SELECT count(*) FROM audit WHERE action = 'member.handout'`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d hand-out audit entries", n)
	}
	// An import gives welcome codes only when asked.
	if _, err := e.db.ImportMembers(e.a, []MemberInput{{Line: 2, Phone: "13700000001"}}, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ImportMembers(e.a, []MemberInput{{Line: 2, Phone: "13700000002"}, {Line: 3, Phone: "13700000003"}}, true, nil); err != nil {
		t.Fatal(err)
	}
	for phone, want := range map[string]int{"13700000001": 0, "13700000002": 1, "13700000003": 1} {
		ms, _ := e.db.FindMembers(MemberFilter{Phone: phone})
		if got := e.held(ms[0].ID); len(got) != want {
			t.Errorf("%s holds %v, want %d codes", phone, got, want)
		}
	}
	if gen, dist := e.rollupTotal(c.ID); gen != 4 || dist != 4 {
		t.Fatalf("rollup generated %d distributed %d: the fourth code is generated", gen, dist)
	}
}

func (db *DB) mustCampaign(t *testing.T, id string) *core.Campaign {
	t.Helper()
	c, err := db.Campaign(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandOutGeneratesWhenThePoolIsEmpty(t *testing.T) {
	e := newIssueEnv(t)
	c := e.campaign(&core.Campaign{Name: "复购券", Kind: core.KindPercentOff, PercentOff: 1000})
	e.rule(core.IssueWelcome, c.ID, 0)
	var got []string
	for i, phone := range []string{"13800000001", "13800000002", "13800000003"} {
		m := e.member(phone, false, "")
		if len(m.Issued) != 1 {
			t.Fatalf("member %d issued %+v", i, m.Issued)
		}
		got = append(got, m.Issued[0].Code)
		cc := e.db.mustCampaign(t, c.ID)
		if cc.Issued != int64(i+1) {
			t.Fatalf("after %d hand-outs the campaign issued %d", i+1, cc.Issued)
		}
		if err := cc.Format.Verify(m.Issued[0].Code); err != nil {
			t.Fatalf("generated code %s is not of the campaign's format: %v", m.Issued[0].Code, err)
		}
	}
	batches, err := e.db.Batches(c.ID)
	if err != nil || len(batches) != 3 {
		t.Fatalf("batches %+v %v", batches, err)
	}
	for _, b := range batches {
		if b.Source != "generate" || b.Count != 1 {
			t.Fatalf("batch %+v", b)
		}
	}
	if gen, dist := e.rollupTotal(c.ID); gen != 3 || dist != 3 {
		t.Fatalf("rollup generated %d distributed %d", gen, dist)
	}
	// A checked code is accepted at the counter.
	if v, err := e.db.Check(e.a, got[0], core.Order{Amount: 10000}); err != nil || !v.OK {
		t.Fatalf("check %s: %+v %v", got[0], v, err)
	}
	// Codes generated by hand are handed out before any new one is made.
	if _, err := e.db.GenerateCodes(e.a, c.ID, 2, nil); err != nil {
		t.Fatal(err)
	}
	e.member("13800000004", false, "")
	if cc := e.db.mustCampaign(t, c.ID); cc.Issued != 5 {
		t.Fatalf("issued %d, want 5: a free code was skipped", cc.Issued)
	}
}

func TestHandOutCardKeyWithAnEmptyPoolIsRefused(t *testing.T) {
	e := newIssueEnv(t)
	c := e.campaign(&core.Campaign{Name: "话费卡", Kind: core.KindCardKey, FaceValue: 1000})
	e.rule(core.IssueWelcome, c.ID, 0)
	_, err := e.db.AddMember(e.a, MemberInput{Phone: "13800000001"})
	ce := core.AsError(err)
	if ce.Code != core.ErrConflict || ce.Field != "campaign" || ce.Params["why"] != "pool_empty" {
		t.Fatalf("error %v (%+v)", err, ce)
	}
	if n, _ := e.db.CountMembers(); n[core.MemberActive] != 0 {
		t.Fatal("the member was added although the welcome code could not be given")
	}
	if cc := e.db.mustCampaign(t, c.ID); cc.Issued != 0 {
		t.Fatalf("a card key was generated: %d", cc.Issued)
	}
	if _, err := e.db.ImportCodes(e.a, c.ID, []ImportRow{{Line: 1, Code: "K1", Secret: "1234"}}, nil); err != nil {
		t.Fatal(err)
	}
	m := e.member("13800000001", false, "")
	if len(m.Issued) != 1 || m.Issued[0].Code != "K1" {
		t.Fatalf("issued %+v", m.Issued)
	}
}

func TestSpendRuleFiresOnceAtItsThreshold(t *testing.T) {
	e := newIssueEnv(t)
	c := e.campaign(&core.Campaign{Name: "满500送", Kind: core.KindAmountOff, AmountOff: 2000})
	r := e.rule(core.IssueSpend, c.ID, 50000)
	m := e.member("13800000001", false, "").Member
	e.purchase(m.ID, 49999)
	if got := e.held(m.ID); len(got) != 0 {
		t.Fatalf("issued below the threshold: %v", got)
	}
	e.purchase(m.ID, 1) // exactly 500.00
	got := e.held(m.ID)
	if len(got) != 1 {
		t.Fatalf("at the threshold: %v", got)
	}
	e.purchase(m.ID, 100000)
	if run := e.run(); run.Issued != 0 || len(run.Rules) != 1 || run.Rules[0].Checked != 1 {
		t.Fatalf("run %+v", run)
	}
	if again := e.held(m.ID); len(again) != 1 {
		t.Fatalf("the spend rule fired again: %v", again)
	}
	var period string
	e.db.r.QueryRow(`SELECT period FROM issued WHERE rule_id = ? AND member_id = ?`, r.ID, m.ID).Scan(&period)
	if period != "" {
		t.Fatalf("period %q", period)
	}
	// A member who reached the threshold before the rule existed gets it from the run, once.
	e2 := e.member("13800000002", false, "").Member
	e.db.write(e.a, func(t *tx) error { return t.visit(e2.ID, 60000) })
	if run := e.run(); run.Issued != 1 {
		t.Fatalf("catch-up run %+v", run)
	}
	if run := e.run(); run.Issued != 0 {
		t.Fatalf("second run %+v", run)
	}
}

func TestIdleAndBirthdayRulesRespectConsentAndFireOncePerPeriod(t *testing.T) {
	e := newIssueEnv(t)
	c := e.campaign(&core.Campaign{Name: "想你了", Kind: core.KindAmountOff, AmountOff: 1000})
	b := e.campaign(&core.Campaign{Name: "生日券", Kind: core.KindAmountOff, AmountOff: 3000})
	e.rule(core.IssueIdle, c.ID, 30)
	e.rule(core.IssueBirthday, b.ID, 0)
	yes := e.member("13800000001", true, "1990-06-20").Member
	no := e.member("13800000002", false, "--06-01").Member
	later := e.member("13800000003", true, "1990-07-01").Member
	for _, m := range []*core.Member{yes, no, later} {
		e.purchase(m.ID, 1000)
	}
	run := e.run()
	if run.Issued != 1 { // the birthday coupon of the consenting member born in June
		t.Fatalf("first run %+v", run)
	}
	// 2025-07-09, July: no one idle for 30 days yet; the July birthday.
	e.advance(29 * 24 * time.Hour)
	if run := e.run(); run.Issued != 1 {
		t.Fatalf("after 29 days: %+v", run)
	}
	// 31 days without a visit: idle for yes and later, who consented.
	e.advance(2 * 24 * time.Hour)
	if run := e.run(); run.Issued != 2 {
		t.Fatalf("after 31 days: %+v", run)
	}
	if run := e.run(); run.Issued != 0 {
		t.Fatalf("second run the same day: %+v", run)
	}
	if got := e.held(no.ID); len(got) != 0 {
		t.Fatalf("a member without consent got marketing coupons: %v", got)
	}
	if got := e.held(yes.ID); len(got) != 2 {
		t.Fatalf("consenting member holds %v", got)
	}
	// A new visit starts a new idle period: idle again, a new coupon; later's period
	// is still the one already served.
	e.purchase(yes.ID, 1000)
	e.advance(31 * 24 * time.Hour)
	if run := e.run(); run.Issued != 1 {
		t.Fatalf("new idle period: %+v", run)
	}
	if got := e.held(later.ID); len(got) != 2 {
		t.Fatalf("later holds %v", got)
	}
	// Withdrawn consent stops them; next June the birthday comes round again.
	off := false
	if _, err := e.db.EditMember(e.a, later.ID, MemberEdit{Consent: &off}); err != nil {
		t.Fatal(err)
	}
	e.clock.T = time.Date(2026, 6, 15, 10, 0, 0, 0, issueT0.Location())
	before := len(e.held(yes.ID))
	if run := e.run(); run.Issued != 1 {
		t.Fatalf("next June: %+v", run)
	}
	if got := e.held(yes.ID); len(got) != before+1 {
		t.Fatalf("next year: %d codes, had %d", len(got), before)
	}
	if got := e.held(later.ID); len(got) != 2 {
		t.Fatalf("consent withdrawn, still issued: %v", got)
	}
}

func TestIssuingStaysWithinThePerMemberLimit(t *testing.T) {
	e := newIssueEnv(t)
	c := e.campaign(&core.Campaign{Name: "限一张", Kind: core.KindAmountOff, AmountOff: 1000, Rules: core.Rules{PerMemberLimit: 1}})
	if _, err := e.db.GenerateCodes(e.a, c.ID, 2, nil); err != nil {
		t.Fatal(err)
	}
	var codes []string
	e.db.EachCode(CodeFilter{Campaign: c.ID}, false, func(k *core.Code) error { codes = append(codes, k.Code); return nil })
	// A code given to the phone before sign-up becomes the member's at sign-up, and
	// counts towards the limit: the welcome rule gives nothing more.
	if _, err := e.db.Distribute(e.a, codes[:1], "13800000001"); err != nil {
		t.Fatal(err)
	}
	e.rule(core.IssueWelcome, c.ID, 0)
	m := e.member("13800000001", false, "")
	if len(m.Issued) != 0 {
		t.Fatalf("issued %+v beyond the limit", m.Issued)
	}
	if got := e.held(m.Member.ID); len(got) != 1 || got[0] != codes[0] {
		t.Fatalf("held %v", got)
	}
	e.rule(core.IssueSpend, c.ID, 100)
	e.purchase(m.Member.ID, 100)
	if got := e.held(m.Member.ID); len(got) != 1 {
		t.Fatalf("held %v: the limit of one was passed", got)
	}
	var free int
	e.db.r.QueryRow(`SELECT count(*) FROM code WHERE campaign_id = ? AND distributed_ms = 0`, c.ID).Scan(&free)
	if free != 1 {
		t.Fatalf("%d free codes, want 1", free)
	}
}

func TestTierChangesExactlyAtThresholds(t *testing.T) {
	e := newIssueEnv(t)
	for _, tr := range []core.Tier{{Name: "银卡", MinSpend: 100000, MinPoints: 1000, MultiplierBP: 12000}, {Name: "金卡", MinSpend: 500000, MinPoints: 5000, MultiplierBP: 15000}} {
		if _, err := e.db.SetTier(e.a, tr); err != nil {
			t.Fatal(err)
		}
	}
	m := e.member("13800000001", false, "").Member
	steps := []struct {
		amount core.Amount
		want   string
	}{{99999, ""}, {1, "银卡"}, {399999, "银卡"}, {1, "金卡"}, {-1, "银卡"}, {-400000, ""}}
	for i, s := range steps {
		e.purchase(m.ID, s.amount)
		if got := e.tier(m.ID); got != s.want {
			t.Fatalf("step %d (%d): tier %q, want %q", i, s.amount, got, s.want)
		}
	}
	var changes int
	e.db.r.QueryRow(`SELECT count(*) FROM audit WHERE action = 'member.tier' AND entity_id = ?`, m.ID).Scan(&changes)
	if changes != 4 {
		t.Fatalf("%d tier changes audited, want 4", changes)
	}
	var sent int
	e.db.r.QueryRow(`SELECT count(*) FROM outbox WHERE name = 'member.tier@1'`).Scan(&sent)
	if sent != 4 {
		t.Fatalf("%d tier changes in the outbox", sent)
	}

	// A rolling 12-month window: the spend ages out and the retier moves them down.
	e.purchase(m.ID, 500000)
	if got := e.tier(m.ID); got != "金卡" {
		t.Fatalf("tier %q", got)
	}
	e.advance(366 * 24 * time.Hour)
	if got := e.tier(m.ID); got != "金卡" {
		t.Fatal("the tier moved without a purchase or a retier")
	}
	var seen [][2]int64
	res, err := e.db.RetierAll(e.a, func(done, total int64) { seen = append(seen, [2]int64{done, total}) })
	if err != nil || res.Members != 1 || res.Changed != 1 || len(seen) == 0 || seen[len(seen)-1] != [2]int64{1, 1} {
		t.Fatalf("retier %+v %v %v", res, err, seen)
	}
	if got := e.tier(m.ID); got != "" {
		t.Fatalf("after the window: tier %q", got)
	}

	// By points: the balance decides, exactly at the threshold.
	if _, err := e.db.SetLoyalty(e.a, func(l *core.Loyalty) error { l.TierBasis = core.TierByPoints; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		points int64
		want   string
	}{{999, ""}, {1000, "银卡"}, {5000, "金卡"}, {4999, "银卡"}} {
		e.db.w.Exec(`UPDATE member SET points = ? WHERE id = ?`, s.points, m.ID)
		e.purchase(m.ID, 0)
		if got := e.tier(m.ID); got != s.want {
			t.Fatalf("%d points: tier %q, want %q", s.points, got, s.want)
		}
	}
	// Removing a tier moves its members to what they qualify for now.
	moved, err := e.db.RemoveTier(e.a, "银卡")
	if err != nil || moved != 1 || e.tier(m.ID) != "" {
		t.Fatalf("remove: moved %d %v, tier %q", moved, err, e.tier(m.ID))
	}
}

func TestTierLimitedCampaignBlocksTierRemoval(t *testing.T) {
	e := newIssueEnv(t)
	tr, err := e.db.SetTier(e.a, core.Tier{Name: "金卡", MinSpend: 100})
	if err != nil {
		t.Fatal(err)
	}
	e.campaign(&core.Campaign{Name: "金卡专享", Kind: core.KindAmountOff, AmountOff: 1000, Rules: core.Rules{Tiers: []string{tr.ID}}})
	_, err = e.db.RemoveTier(e.a, "金卡")
	if ce := core.AsError(err); ce.Code != core.ErrConflict || ce.Params["campaign"] != "金卡专享" {
		t.Fatalf("remove: %v", err)
	}
	// Setting the same tier again changes nothing and writes nothing.
	var before int
	e.db.r.QueryRow(`SELECT count(*) FROM audit`).Scan(&before)
	if again, err := e.db.SetTier(e.a, core.Tier{Name: "金卡", MinSpend: 100}); err != nil || again.ID != tr.ID {
		t.Fatalf("set again: %+v %v", again, err)
	}
	var after int
	e.db.r.QueryRow(`SELECT count(*) FROM audit`).Scan(&after)
	if after != before {
		t.Fatal("an unchanged tier was journaled")
	}
	if _, err := e.db.SetTier(e.a, core.Tier{Name: " ", MinSpend: 1}); core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := e.db.SetTier(e.a, core.Tier{Name: "x", MultiplierBP: MaxMultiplierBP + 1}); core.ErrorCode(err) != core.ErrInvalid {
		t.Fatalf("multiplier: %v", err)
	}
}

package syncclient_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/syncclient"
)

// What people do at the devices. The online-first paths follow the app's
// (app/sync.go: redeemOnline, payOnlineFirst, RequestAllowance), whose client is
// built inside the app and cannot be given the simulated network.

var simCtx = context.Background()

// networkFailure reports whether err is the simulated network's doing.
func networkFailure(err error) bool {
	return errors.Is(err, errNoLine) || errors.Is(err, errDropped) || errors.Is(err, errDead)
}

// refused notes a refusal, or records a defect when err is not one a person could
// be shown.
func (d *simDev) refused(what string, err error) {
	if simExpected(err) || networkFailure(err) {
		d.s.note("%s: refused (%s)", what, simWhy(err))
		return
	}
	d.s.violate("%s: %v", what, err)
}

func (d *simDev) sync() {
	s := d.s
	rep, err := d.syncer.Once(simCtx)
	switch {
	case err == nil:
		s.note("%s sync: pushed %d (%d flagged, %d rejected), pulled %d log, %d codes", d.name, rep.Pushed, rep.Flagged, rep.Rejected, rep.PulledLog, rep.PulledCodes)
	case networkFailure(err):
		s.note("%s sync: failed (%s) after pushing %d, pulling %d", d.name, simWhy(err), rep.Pushed, rep.PulledLog+rep.PulledCodes)
	default:
		// Nothing in this world should make the server refuse a round or a page fail
		// to apply (a 5xx is recorded where it was answered).
		s.violate("%s sync: %v", d.name, err)
	}
}

// redeem checks a code from the pool and redeems it: online first (the server claims
// it under an idempotency key, then the device redeems with the same key), falling
// back to the campaign's offline rules when the server does not answer; or straight
// offline when the till already knows the line is down.
func (d *simDev) redeem() {
	s := d.s
	d.redeemCode(s.codes[s.rng.IntN(len(s.codes))], core.Order{Ref: fmt.Sprintf("o%d", s.step), Amount: 10000})
}

// spendGift pays part of an order with a gift card: the same path, taking
// min(order, balance) from the card; offline it must fit in this device's
// allowance for the card.
func (d *simDev) spendGift() {
	s := d.s
	d.redeemCode(s.gifts[s.rng.IntN(len(s.gifts))], core.Order{Ref: fmt.Sprintf("o%d", s.step), Amount: core.Amount(1000 + 100*s.rng.IntN(61))})
}

func (d *simDev) redeemCode(code string, ord core.Order) {
	s := d.s
	what := fmt.Sprintf("%s redeem %s", d.name, s.name(code))
	v, err := d.db.Check(d.actor, code, ord)
	if err != nil {
		d.refused(what, err)
		return
	}
	if !v.OK {
		s.note("%s: refused here (%s)", what, v.Reason)
		return
	}
	key := core.NewID()
	if s.rng.IntN(10) < 3 {
		d.redeemHere(what+" offline", code, ord, key, true)
		return
	}
	ans, err := d.client.Redeem(simCtx, wire.RedeemRequest{Code: code, IdemKey: key, StoreID: d.actor.Store.ID,
		OperatorID: d.actor.Operator.ID, OrderAmount: int64(ord.Amount), Amount: int64(v.Value)})
	switch {
	case d.dead:
		s.note("%s: the device died before its own commit", what)
	case err == nil && !ans.OK && ans.Reason == core.ReasonNotFound:
		d.redeemHere(what+" (not on the server yet)", code, ord, key, false)
	case err == nil && !ans.OK:
		s.note("%s: the server refused (%s)", what, ans.Reason)
	case err == nil:
		d.redeemHere(what+" online", code, ord, key, false)
	case !syncclient.Unreachable(err):
		s.violate("%s: the server refused a well-formed claim: %v", what, err)
	default:
		d.redeemHere(what+" offline after "+simWhy(err), code, ord, key, true)
	}
}

func (d *simDev) redeemHere(what, code string, ord core.Order, key string, offline bool) {
	s := d.s
	a := d.actor
	if offline {
		off := *a
		off.Offline = true
		a = &off
	}
	res, err := d.db.Redeem(a, code, ord, key)
	if err != nil {
		d.refused(what, err)
		return
	}
	if !res.Verdict.OK {
		s.note("%s: refused (%s)", what, res.Verdict.Reason)
		return
	}
	r := res.Redemption
	l := fmt.Sprintf("r%d", len(s.made))
	s.label[r.ID] = l
	s.made[r.ID] = fmt.Sprintf("%s of %s on %s at step %d", l, s.name(code), d.name, s.step)
	if r.Value > 0 {
		s.note("%s: %s took %s", what, l, r.Value.Yuan())
		return
	}
	s.note("%s: %s", what, l)
}

// rollback undoes one of the redemptions this device sees standing.
func (d *simDev) rollback() {
	s := d.s
	rs, err := d.db.Redemptions(store.RedemptionFilter{Limit: 1000})
	if err != nil {
		s.violate("%s redemptions: %v", d.name, err)
		return
	}
	var done []*core.Redemption
	for _, r := range rs {
		if r.Status == core.RedemptionDone {
			done = append(done, r)
		}
	}
	if len(done) == 0 {
		s.note("%s rollback: nothing standing", d.name)
		return
	}
	r := done[s.rng.IntN(len(done))]
	what := fmt.Sprintf("%s rollback %s (%s)", d.name, s.name(r.ID), s.name(r.Code))
	if _, err := d.db.Rollback(d.actor, r.ID, "顾客退单", false, 0); err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: done", what)
}

func (d *simDev) member() string { return d.s.members[d.s.rng.IntN(len(d.s.members))] }

func (d *simDev) topup() {
	s := d.s
	m := d.member()
	amt := core.Amount(1000 + 100*s.rng.IntN(41))
	what := fmt.Sprintf("%s topup %s %s", d.name, s.name(m), amt.Yuan())
	res, err := d.db.Topup(d.actor, m, amt, fmt.Sprintf("t%d", s.step), "")
	if err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: balance here %s", what, res.Balance.Yuan())
}

// pay takes money from a wallet: online when the server answers a probe (the local
// balance decides), else offline within this device's allowance.
func (d *simDev) pay() {
	s := d.s
	m := d.member()
	amt := core.Amount(1000 + 100*s.rng.IntN(61))
	offline := d.partitioned()
	if !offline {
		if _, err := d.client.Health(simCtx); err != nil {
			offline = true
		}
	}
	if d.dead {
		return
	}
	a := d.actor
	what := fmt.Sprintf("%s pay %s %s", d.name, s.name(m), amt.Yuan())
	if offline {
		off := *a
		off.Offline = true
		a = &off
		what += " offline"
	}
	res, err := d.db.Pay(a, m, amt, fmt.Sprintf("p%d", s.step), "")
	if err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: balance here %s", what, res.Balance.Yuan())
}

// allowance asks the server to reserve part of a wallet for this device's offline
// payments, then refreshes the local list, as kameng allowance request does.
func (d *simDev) allowance() {
	s := d.s
	kind, account := wire.AccountWallet, d.member()
	if s.rng.IntN(2) == 0 {
		kind, account = wire.AccountGiftCard, s.gifts[s.rng.IntN(len(s.gifts))]
	}
	amt := int64(2000 + 500*s.rng.IntN(17))
	what := fmt.Sprintf("%s allowance %s %s", d.name, s.name(account), core.Amount(amt).Yuan())
	al, err := d.client.GrantAllowance(simCtx, wire.AllowanceRequest{Kind: kind, AccountID: account, Amount: amt})
	if err != nil {
		d.refused(what, err)
		return
	}
	list, err := d.client.Allowances(simCtx)
	if err != nil {
		d.refused(what+" (list)", err)
		return
	}
	if err := d.db.SetAllowances(list.Allowances); err != nil {
		s.violate("%s: set allowances: %v", what, err)
		return
	}
	s.note("%s: granted %s", what, core.Amount(al.Granted).Yuan())
}

func (d *simDev) earn() {
	s := d.s
	m := d.member()
	amt := core.Amount(1000 + 100*s.rng.IntN(291))
	what := fmt.Sprintf("%s earn %s on %s", d.name, s.name(m), amt.Yuan())
	res, err := d.db.Earn(d.actor, m, amt, "", fmt.Sprintf("e%d", s.step))
	if err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: %d points here", what, res.Balance)
}

func (d *simDev) campaign() *core.Campaign {
	if d.s.rng.IntN(2) == 0 {
		return d.s.campOff
	}
	return d.s.campOn
}

// editCosmetic changes a campaign's description: last writer (by HLC) wins.
func (d *simDev) editCosmetic() {
	s := d.s
	c := d.campaign()
	desc := fmt.Sprintf("%s 第%d步", d.name, s.step)
	what := fmt.Sprintf("%s edit %s description", d.name, c.Name)
	if _, err := d.db.UpdateCampaign(d.actor, c.ID, func(c *core.Campaign) error {
		c.Description = desc
		return nil
	}); err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: done", what)
}

// editValue changes a campaign's budget: a value field, whose concurrent edits the
// server does not settle by the clock (CAMPAIGN_EDIT).
func (d *simDev) editValue() {
	s := d.s
	c := d.campaign()
	n := 1000 + s.rng.Int64N(100)
	what := fmt.Sprintf("%s edit %s budget %d", d.name, c.Name, n)
	if _, err := d.db.UpdateCampaign(d.actor, c.ID, func(c *core.Campaign) error {
		c.Rules.BudgetCount = n
		return nil
	}); err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: done", what)
}

// editRules changes another rule of a campaign (how long a redemption may be rolled
// back): a field the server merges by clock, next to the budget in the rules.
func (d *simDev) editRules() {
	s := d.s
	c := d.campaign()
	n := 48 + s.rng.IntN(48)
	what := fmt.Sprintf("%s edit %s rollback hours %d", d.name, c.Name, n)
	if _, err := d.db.UpdateCampaign(d.actor, c.ID, func(c *core.Campaign) error {
		c.Rules.RollbackHours = n
		return nil
	}); err != nil {
		d.refused(what, err)
		return
	}
	s.note("%s: done", what)
}

// caseActions are what a person would decide about each kind of case.
var caseActions = map[string][]string{
	wire.CaseDoubleRedemption: {wire.ActionAccept, wire.ActionReverse},
	wire.CaseOverdraft:        {wire.ActionAccept, wire.ActionCharge, wire.ActionWriteOff, wire.ActionFreeze},
}

// resolve settles one of the open cases this device sees: on the device (the
// decision travels as case.resolve@1) or directly on the server.
func (d *simDev) resolve() {
	s := d.s
	cs, err := d.db.Cases("open")
	if err != nil {
		s.violate("%s cases: %v", d.name, err)
		return
	}
	if len(cs) == 0 {
		s.note("%s resolve: no open case", d.name)
		return
	}
	c := cs[s.rng.IntN(len(cs))]
	actions := caseActions[c.Kind]
	if actions == nil {
		actions = []string{wire.ActionAccept}
	}
	action := actions[s.rng.IntN(len(actions))]
	subject := s.name(c.Subject)
	if c.Kind == wire.CaseClockSkew || c.Kind == wire.CaseCampaignEdit {
		subject = "-"
	}
	what := fmt.Sprintf("%s resolve %s %s: %s", d.name, c.Kind, subject, action)
	if s.rng.IntN(2) == 0 {
		if _, err := d.db.ResolveCase(d.actor, c.ID, action, "模拟"); err != nil {
			d.refused(what+" here", err)
			return
		}
		s.note("%s here: done", what)
		return
	}
	if _, err := d.client.Resolve(simCtx, c.ID, wire.ResolveRequest{Action: action, OperatorID: d.actor.Operator.ID, Note: "模拟"}); err != nil {
		switch ae := syncclient.AsAPIError(err); {
		case ae != nil && ae.Body.Code == wire.ErrConflict:
			s.note("%s on the server: refused (resolved already)", what)
		case ae != nil:
			s.violate("%s on the server: %v", what, err)
		default:
			d.refused(what+" on the server", err)
		}
		return
	}
	s.note("%s on the server: done", what)
}

// partition cuts the device off for a while, or ends its partition early.
func (d *simDev) partition() {
	s := d.s
	if d.partitioned() {
		d.offlineUntil = 0
		s.note("%s back online", d.name)
		return
	}
	d.offlineUntil = s.step + 5 + s.rng.IntN(36)
	s.note("%s offline until step %d", d.name, d.offlineUntil)
}

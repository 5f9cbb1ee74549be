package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// campaignEditor pushes campaign edits with chosen HLCs, as devices would.
type campaignEditor struct {
	t  *testing.T
	tn *tenant
}

func (e campaignEditor) create(d *Device, c *core.Campaign, hlc int64) {
	e.t.Helper()
	m := e.tn.mutation(d, "campaign.create@1", c, t0)
	m.HLC = hlc
	if r := e.tn.push(e.t, d, t0, m)[0]; r.Status != wire.Applied {
		e.t.Fatalf("create %s: %+v", c.ID, r)
	}
}

func (e campaignEditor) edit(d *Device, id string, hlc int64, changes map[string]any) wire.Result {
	e.t.Helper()
	m := e.tn.mutation(d, "campaign.edit@1", map[string]any{"id": id, "changes": changes}, t0)
	m.HLC = hlc
	return e.tn.push(e.t, d, t0, m)[0]
}

func (e campaignEditor) status(d *Device, id string, hlc int64, status core.CampaignStatus) wire.Result {
	e.t.Helper()
	m := e.tn.mutation(d, "campaign.status@1", map[string]any{"id": id, "status": status}, t0)
	m.HLC = hlc
	return e.tn.push(e.t, d, t0, m)[0]
}

func TestFieldClockOrder(t *testing.T) {
	for _, x := range []struct {
		a, b fieldClock
		want bool
	}{
		{fieldClock{2, "a"}, fieldClock{1, "z"}, true},
		{fieldClock{1, "z"}, fieldClock{2, "a"}, false},
		{fieldClock{5, "b"}, fieldClock{5, "a"}, true},
		{fieldClock{5, "a"}, fieldClock{5, "b"}, false},
		{fieldClock{5, "a"}, fieldClock{5, "a"}, false}, // the same change does not come after itself
		{fieldClock{1, ""}, fieldClock{}, true},         // no clock: older than any change
	} {
		if got := x.a.after(x.b); got != x.want {
			t.Errorf("%+v after %+v = %v", x.a, x.b, got)
		}
	}
}

// Edits with equal HLCs from two devices are ordered by device id, whichever
// reaches the server first: the devices order them the same way.
func TestCampaignEditTieByDevice(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1) // ids m1-a < m1-b
		e := campaignEditor{t, tn}
		e.create(a, coupon("c1"), 10)
		e.create(a, coupon("c2"), 10)

		// c1: the greater id first; c2: the greater id last.
		e.edit(b, "c1", 20, map[string]any{"description": "B"})
		e.edit(a, "c1", 20, map[string]any{"description": "A"})
		e.edit(a, "c2", 20, map[string]any{"description": "A"})
		e.edit(b, "c2", 20, map[string]any{"description": "B"})
		for _, id := range []string{"c1", "c2"} {
			if got := serverCampaign(t, s, "m1", id).Description; got != "B" {
				t.Errorf("%s: description %q after equal-clock edits, want B's", id, got)
			}
		}

		// Value rules: the tie is a conflict the greater id wins, either way round.
		r := e.edit(b, "c1", 30, map[string]any{"rules": map[string]any{"budget_count": 800}})
		if r.Status != wire.Applied {
			t.Fatalf("b's budget: %+v", r)
		}
		r = e.edit(a, "c1", 30, map[string]any{"rules": map[string]any{"budget_count": 700}})
		if r.Status != wire.Flagged || r.Reason != reasonCampaignEdit {
			t.Fatalf("a's budget at the same clock: %+v", r)
		}
		e.edit(a, "c2", 30, map[string]any{"rules": map[string]any{"budget_count": 700}})
		if r := e.edit(b, "c2", 30, map[string]any{"rules": map[string]any{"budget_count": 800}}); r.Status != wire.Applied {
			t.Fatalf("b's budget pushed last: %+v", r)
		}
		for _, id := range []string{"c1", "c2"} {
			if got := serverCampaign(t, s, "m1", id).Rules.BudgetCount; got != 800 {
				t.Errorf("%s: budget %d after equal-clock edits, want B's 800", id, got)
			}
		}

		// Status: a pause and a resume at the same clock.
		e.status(b, "c1", 40, core.StatusPaused)
		e.status(a, "c1", 40, core.StatusActive)
		if got := serverCampaign(t, s, "m1", "c1").Status; got != core.StatusPaused {
			t.Errorf("status %s after equal-clock changes, want B's pause", got)
		}
	})
}

// An edit that sets a field to the value it has still takes the field's clock, as
// on the devices: an edit ordered between the two must not change the field.
func TestCampaignEditSameValueTakesTheClock(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		e := campaignEditor{t, tn}
		e.create(a, coupon("c1"), 10)
		e.edit(b, "c1", 20, map[string]any{"description": "X", "rules": map[string]any{"rollback_hours": 24}})
		e.edit(a, "c1", 40, map[string]any{"description": "X", "rules": map[string]any{"rollback_hours": 24}})
		e.edit(b, "c1", 30, map[string]any{"description": "Y", "rules": map[string]any{"rollback_hours": 12}})
		got := serverCampaign(t, s, "m1", "c1")
		if got.Description != "X" || got.Rules.RollbackHours != 24 {
			t.Errorf("an edit older than the last one set description %q, rollback %dh", got.Description, got.Rules.RollbackHours)
		}
	})
}

// Devices send only the rules they changed: two devices changing different rules
// both stand, the rules nobody changed keep their values, and a concurrent older
// change of a value rule (uses per code) keeps the server's value with a case.
func TestCampaignEditRulesOneByOne(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		tn := newTenant(t, s, "m1", "a", "b")
		a, b := tn.dev(0), tn.dev(1)
		e := campaignEditor{t, tn}
		c := coupon("c1")
		c.Rules.Stores = []string{"s1"}
		c.Rules.BudgetCount = 100
		e.create(a, c, 10)
		if r := e.edit(b, "c1", 50, map[string]any{"rules": map[string]any{"rollback_hours": 24}}); r.Status != wire.Applied {
			t.Fatalf("b's rollback: %+v", r)
		}
		if r := e.edit(a, "c1", 45, map[string]any{"rules": map[string]any{"budget_count": 500}}); r.Status != wire.Applied {
			t.Fatalf("a's budget, older but alone on its rule: %+v", r)
		}
		got := serverCampaign(t, s, "m1", "c1")
		if got.Rules.RollbackHours != 24 || got.Rules.BudgetCount != 500 || len(got.Rules.Stores) != 1 || got.Rules.UsesPerCode != 1 {
			t.Fatalf("merged rules: %+v", got.Rules)
		}
		if cs := tn.cases(t, wire.CaseCampaignEdit); len(cs) != 0 {
			t.Fatalf("edits of different rules opened cases: %+v", cs)
		}

		e.edit(b, "c1", 70, map[string]any{"rules": map[string]any{"uses_per_code": 3}})
		r := e.edit(a, "c1", 60, map[string]any{"rules": map[string]any{"uses_per_code": 2}, "description": "a's words"})
		if r.Status != wire.Flagged || r.Reason != reasonCampaignEdit {
			t.Fatalf("a's older uses per code: %+v", r)
		}
		got = serverCampaign(t, s, "m1", "c1")
		if got.Rules.UsesPerCode != 3 || got.Description != "a's words" {
			t.Fatalf("uses per code %d, description %q", got.Rules.UsesPerCode, got.Description)
		}
		cs := tn.cases(t, wire.CaseCampaignEdit)
		if len(cs) != 1 || !strings.Contains(string(cs[0].Detail), `"field":"rules.uses_per_code"`) {
			t.Fatalf("cases: %+v", cs)
		}
		var detail struct {
			Fields []editConflict `json:"fields"`
		}
		if err := json.Unmarshal(cs[0].Detail, &detail); err != nil || len(detail.Fields) != 1 ||
			detail.Fields[0].KeptDevice != b.ID || detail.Fields[0].ProposedFrom != a.ID {
			t.Fatalf("case detail %s (%v)", cs[0].Detail, err)
		}

		// A status in an edit is ignored: it changes by campaign.status@1.
		e.edit(a, "c1", 80, map[string]any{"status": "paused"})
		if got := serverCampaign(t, s, "m1", "c1").Status; got != core.StatusActive {
			t.Fatalf("an edit changed the status to %s", got)
		}
	})
}

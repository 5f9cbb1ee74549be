package store_test

import (
	"encoding/json"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
)

// remoteEdit logs a campaign change another device made, with its HLC.
func (h *hub) remoteEdit(dev string, hlc int64, name string, args any) {
	h.t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		h.t.Fatal(err)
	}
	h.seq++
	h.log = append(h.log, wire.Change{Seq: h.seq, DeviceID: dev, Status: wire.Applied,
		Mutation: &wire.Mutation{MID: h.seq, UUID: core.NewID(), Name: name, Args: b, HLC: hlc, WallMS: h.now()}})
}

// lastMutation is the device's newest outbox entry.
func lastMutation(t *testing.T, db *store.DB) wire.Mutation {
	t.Helper()
	ms, err := db.PendingMutations(1000, 0)
	if err != nil || len(ms) == 0 {
		t.Fatalf("pending: %v %v", ms, err)
	}
	return ms[len(ms)-1]
}

// An edit carries the fields it changed, and of the rules only those it changed: a
// copy of the others would restore stale values where the edit is merged.
func TestCampaignEditSendsChangedRulesOnly(t *testing.T) {
	e := newEnv(t)
	c := e.create(amountOff("规则", 500, core.Rules{BudgetCount: 100, RollbackHours: 72, Tiers: []string{"gold"}}))
	if _, err := e.db.UpdateCampaign(e.owner, c.ID, func(c *core.Campaign) error {
		c.Description = "新说明"
		c.Rules.BudgetCount = 500
		c.Rules.Tiers = nil // gone from the encoding (omitempty): sent as null
		c.Status = core.StatusPaused
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := lastMutation(t, e.db)
	var a struct {
		ID      string                     `json:"id"`
		Changes map[string]json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil || m.Name != "campaign.edit@1" || a.ID != c.ID {
		t.Fatalf("%s %s (%v)", m.Name, m.Args, err)
	}
	if len(a.Changes) != 2 || string(a.Changes["description"]) != `"新说明"` {
		t.Fatalf("changes %s", m.Args)
	}
	var rules map[string]json.RawMessage
	if err := json.Unmarshal(a.Changes["rules"], &rules); err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || string(rules["budget_count"]) != "500" || string(rules["tiers"]) != "null" {
		t.Fatalf("rules in the edit: %s", a.Changes["rules"])
	}
	if got := e.campaign(c.ID); got.Status != core.StatusActive {
		t.Fatalf("an edit changed the status to %s", got.Status)
	}
}

// Remote edits merge field by field and rule by rule in the order of (HLC, device
// id), the server's order: equal HLCs are settled by the device id whichever
// arrives first, also against this device's own edit.
func TestRemoteCampaignEditsOrderedByHLCThenDevice(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	c1 := e.create(amountOff("一", 500, core.Rules{RollbackHours: 72}))
	c2 := e.create(amountOff("二", 500, core.Rules{RollbackHours: 72}))
	pushed := h.push(e.db)
	base := pushed[len(pushed)-1].HLC + 1000
	edit := func(dev string, hlc int64, id string, changes map[string]any) {
		h.remoteEdit(dev, hlc, "campaign.edit@1", map[string]any{"id": id, "changes": changes})
	}

	// Equal HLCs, both orders of arrival: dev-b's edit stands.
	edit("dev-b", base, c1.ID, map[string]any{"description": "B", "rules": map[string]any{"budget_count": 800}})
	edit("dev-a", base, c1.ID, map[string]any{"description": "A", "rules": map[string]any{"budget_count": 700}})
	edit("dev-a", base, c2.ID, map[string]any{"description": "A", "rules": map[string]any{"budget_count": 700}})
	edit("dev-b", base, c2.ID, map[string]any{"description": "B", "rules": map[string]any{"budget_count": 800}})
	// Different rules from two devices both stand, the older one too; an older
	// change of the same rule does not.
	edit("dev-a", base+20, c1.ID, map[string]any{"rules": map[string]any{"rollback_hours": 24}})
	edit("dev-b", base+10, c1.ID, map[string]any{"rules": map[string]any{"per_member_limit": 2}})
	edit("dev-c", base+15, c1.ID, map[string]any{"rules": map[string]any{"rollback_hours": 12}})
	// A status in an edit is not a status change.
	edit("dev-c", base+30, c1.ID, map[string]any{"status": "paused"})
	// A pause and a resume at the same clock: dev-b's pause stands.
	h.remoteEdit("dev-b", base+40, "campaign.status@1", map[string]any{"id": c2.ID, "status": "paused"})
	h.remoteEdit("dev-a", base+40, "campaign.status@1", map[string]any{"id": c2.ID, "status": "active"})
	h.pull(e.db, 3)

	for _, id := range []string{c1.ID, c2.ID} {
		got := e.campaign(id)
		if got.Description != "B" || got.Rules.BudgetCount != 800 {
			t.Errorf("%s: description %q, budget %d after equal-clock edits; want B's", got.Name, got.Description, got.Rules.BudgetCount)
		}
	}
	got := e.campaign(c1.ID)
	if got.Rules.RollbackHours != 24 || got.Rules.PerMemberLimit != 2 || got.Status != core.StatusActive {
		t.Errorf("merged rules %+v, status %s", got.Rules, got.Status)
	}
	if got := e.campaign(c2.ID); got.Status != core.StatusPaused {
		t.Errorf("status %s after equal-clock changes, want dev-b's pause", got.Status)
	}

	// This device's own edit against a remote one with the same HLC: the remote
	// device's id decides, as on the server.
	if _, err := e.db.UpdateCampaign(e.owner, c1.ID, func(c *core.Campaign) error { c.Description = "本机"; return nil }); err != nil {
		t.Fatal(err)
	}
	mine := lastMutation(t, e.db).HLC
	me := deviceOf(t, e.db)
	edit("0", mine, c1.ID, map[string]any{"description": "lesser id"}) // ids are UUIDv7: "0" sorts first
	h.pull(e.db, 3)
	if got := e.campaign(c1.ID); got.Description != "本机" {
		t.Fatalf("a lesser device id with the same clock overwrote this device's edit: %q", got.Description)
	}
	edit(me+"~", mine, c1.ID, map[string]any{"description": "greater id"})
	h.pull(e.db, 3)
	if got := e.campaign(c1.ID); got.Description != "greater id" {
		t.Fatalf("a greater device id with the same clock lost to this device's edit: %q", got.Description)
	}
}

// Archiving is final on the devices as on the server: it stands against a later
// resume made apart, and a change after it is not applied.
func TestRemoteArchiveIsFinal(t *testing.T) {
	e := newEnv(t)
	h := newHub(t)
	h.register(e.db, e.owner.Operator.MerchantID)
	c := e.create(amountOff("归档", 500, core.Rules{}))
	pushed := h.push(e.db)
	base := pushed[len(pushed)-1].HLC + 1000
	h.remoteEdit("dev-a", base+10, "campaign.status@1", map[string]any{"id": c.ID, "status": "paused"})
	h.remoteEdit("dev-b", base, "campaign.status@1", map[string]any{"id": c.ID, "status": "archived"})
	h.remoteEdit("dev-a", base+20, "campaign.status@1", map[string]any{"id": c.ID, "status": "active"})
	h.pull(e.db, 10)
	if got := e.campaign(c.ID); got.Status != core.StatusArchived {
		t.Fatalf("status %s, want archived", got.Status)
	}
}

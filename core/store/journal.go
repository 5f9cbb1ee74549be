package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/kameng/kameng/core"
)

// audit appends one entry to the hash chain.
func (t *tx) audit(action, entity, entityID string, detail map[string]any) error {
	var seq int64
	prev := core.GenesisHash
	err := t.QueryRow(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	e := core.AuditEntry{Seq: seq + 1, ID: core.NewID(), Time: t.now, Operator: t.actor.Operator.ID,
		Device: t.actor.Device.ID, Action: action, Entity: entity, EntityID: entityID,
		Detail: core.CanonicalDetail(detail), PrevHash: prev}
	e.Hash = e.ComputeHash(prev)
	_, err = t.Exec(`INSERT INTO audit(seq, id, ts_ms, operator_id, device_id, action, entity, entity_id, detail, prev_hash, hash)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`, e.Seq, e.ID, e.Time, e.Operator, e.Device, e.Action, e.Entity, e.EntityID,
		string(e.Detail), e.PrevHash, e.Hash)
	return err
}

// Mutation is one entry of the sync outbox (DESIGN §8): what a person did, to be
// replayed by the server.
type Mutation struct {
	MID      int64           `json:"mid"`
	UUID     string          `json:"uuid"`
	DeviceID string          `json:"device_id"`
	Name     string          `json:"name"` // name@version
	Args     json.RawMessage `json:"args"`
	HLC      int64           `json:"hlc"`
	Wall     int64           `json:"wall_ms"`
	Pushed   int64           `json:"pushed_ms,omitempty"`
}

const lastHLC = `SELECT max(COALESCE((SELECT value FROM meta WHERE key = 'hlc'), 0), COALESCE((SELECT hlc FROM outbox ORDER BY mid DESC LIMIT 1), 0))`

// outbox appends a mutation in the same transaction as the change it records.
func (t *tx) outbox(name string, args any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	if t.hlc == nil {
		// The clock's last reading is the newest outbox row's, or the one kept in meta
		// (what a pull observed, or the last row's before the outbox was pruned): read
		// here, never written on the hot path.
		var last int64
		if err := t.QueryRow(lastHLC).Scan(&last); err != nil {
			return err
		}
		t.hlc = core.NewHLC(last)
	}
	res, err := t.Exec(`INSERT INTO outbox(uuid, device_id, name, args, hlc, wall_ms) VALUES (?,?,?,?,?,?)`,
		core.NewID(), t.actor.Device.ID, name, string(b), t.hlc.Now(t.now), t.now)
	if err != nil {
		return err
	}
	t.lastMID, err = res.LastInsertId()
	return err
}

// Rollup is one day × store × campaign of counters.
type Rollup struct {
	Day         string      `json:"day"`
	StoreID     string      `json:"store_id"`
	CampaignID  string      `json:"campaign_id"`
	Generated   int64       `json:"generated"`
	Distributed int64       `json:"distributed"`
	Redeemed    int64       `json:"redeemed"`
	RolledBack  int64       `json:"rolled_back"`
	Discount    core.Amount `json:"discount"`
	OrderAmount core.Amount `json:"order_amount"`
	Value       core.Amount `json:"value"`
}

// rollup adds deltas to today's counters for the actor's store.
func (t *tx) rollup(campaignID string, d Rollup) error {
	return t.rollupAt(t.actor.Store.ID, campaignID, d)
}

// storeLocation is a store's time zone: the actor's own without a lookup.
func (t *tx) storeLocation(storeID string) *time.Location {
	if storeID == t.actor.Store.ID {
		return t.actor.Store.Location()
	}
	var tz string
	if err := t.QueryRow(`SELECT time_zone FROM store WHERE id = ?`, storeID).Scan(&tz); err != nil {
		return t.actor.Store.Location()
	}
	return core.LoadLocation(tz)
}

// rollupAt adds deltas to today's counters (in that store's zone) for a store.
func (t *tx) rollupAt(storeID, campaignID string, d Rollup) error {
	day := time.UnixMilli(t.now).In(t.storeLocation(storeID)).Format(time.DateOnly)
	return t.count(`UPDATE rollup SET generated = generated + ?4, distributed = distributed + ?5, redeemed = redeemed + ?6,
		  rolled_back = rolled_back + ?7, discount = discount + ?8, order_amount = order_amount + ?9, value = value + ?10
		WHERE day = ?1 AND store_id = ?2 AND campaign_id = ?3`,
		`INSERT INTO rollup(day, store_id, campaign_id, generated, distributed, redeemed, rolled_back, discount, order_amount, value)
		VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)`,
		day, storeID, campaignID, d.Generated, d.Distributed, d.Redeemed, d.RolledBack, d.Discount, d.OrderAmount, d.Value)
}

// count adds to a row of counters: update finds the row in the common case, with one
// search of the table where an upsert makes two; insert (taking the same arguments)
// writes the row when it is the first of its key.
func (t *tx) count(update, insert string, args ...any) error {
	res, err := t.Exec(update, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = t.Exec(insert, args...)
	return err
}

// journal writes the audit entry and the outbox mutation of one change.
func (t *tx) journal(action, entity, entityID string, detail map[string]any, mutation string, args any) error {
	if strings.HasPrefix(action, "campaign.") || action == "codes.generate" || action == "codes.import" {
		t.campaignsChanged = true
	}
	if err := t.audit(action, entity, entityID, detail); err != nil {
		return err
	}
	return t.outbox(mutation, args)
}

package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kameng/kameng/core"
)

const campaignCols = `id, merchant_id, name, description, kind, status, currency, amount_off, percent_off, max_discount,
	min_spend, face_value, rules, format, issued, redeemed, spent, created_ms, updated_ms`

type scanner interface{ Scan(...any) error }

func scanCampaign(row scanner) (*core.Campaign, error) {
	var c core.Campaign
	var rules, format string
	err := row.Scan(&c.ID, &c.MerchantID, &c.Name, &c.Description, &c.Kind, &c.Status, &c.Currency, &c.AmountOff,
		&c.PercentOff, &c.MaxDiscount, &c.MinSpend, &c.FaceValue, &rules, &format, &c.Issued, &c.Redeemed, &c.Spent,
		&c.Created, &c.Updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rules), &c.Rules); err != nil {
		return nil, fmt.Errorf("campaign %s rules: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(format), &c.Format); err != nil {
		return nil, fmt.Errorf("campaign %s format: %w", c.ID, err)
	}
	return &c, nil
}

// Campaign finds a campaign by id or name.
func (db *DB) Campaign(idOrName string) (*core.Campaign, error) {
	c, err := scanCampaign(db.r.QueryRow(`SELECT `+campaignCols+` FROM campaign WHERE id = ? OR name = ?`, idOrName, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("campaign", idOrName)
	}
	return c, err
}

func (t *tx) campaign(id string) (*core.Campaign, error) {
	c, err := scanCampaign(t.QueryRow(`SELECT `+campaignCols+` FROM campaign WHERE id = ? OR name = ?`, id, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("campaign", id)
	}
	return c, err
}

// CampaignFilter narrows a campaign list.
type CampaignFilter struct {
	Kind   core.Kind
	Status core.CampaignStatus
	Search string
}

// Campaigns lists campaigns, newest first.
func (db *DB) Campaigns(f CampaignFilter) ([]*core.Campaign, error) {
	q := `SELECT ` + campaignCols + ` FROM campaign WHERE 1=1`
	var args []any
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, f.Kind)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Search != "" {
		q += ` AND (name LIKE ? OR description LIKE ?)`
		like := "%" + strings.ReplaceAll(f.Search, "%", "") + "%"
		args = append(args, like, like)
	}
	rows, err := db.r.Query(q+` ORDER BY created_ms DESC, id DESC`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*core.Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// CreateCampaign saves a new campaign.
func (db *DB) CreateCampaign(a *Actor, c *core.Campaign) error {
	c.ID = core.NewID()
	c.MerchantID = a.Operator.MerchantID
	c.Status = core.StatusActive
	c.Created = db.Clock.Now().UnixMilli()
	c.Updated = c.Created
	if c.Rules.RollbackHours == 0 {
		c.Rules.RollbackHours = 72
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return db.write(a, func(t *tx) error {
		_, err := t.Exec(`INSERT INTO campaign(`+campaignCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			c.ID, c.MerchantID, c.Name, c.Description, c.Kind, c.Status, c.Currency, c.AmountOff, c.PercentOff,
			c.MaxDiscount, c.MinSpend, c.FaceValue, jsonString(c.Rules), jsonString(c.Format), 0, 0, 0, c.Created, c.Updated)
		if isUnique(err) {
			return core.Invalid("name", "a new campaign name", c.Name, "a campaign named %q exists", c.Name)
		}
		if err != nil {
			return err
		}
		return t.journal("campaign.create", "campaign", c.ID, map[string]any{"name": c.Name, "kind": c.Kind, "value": c.ValueSummary()},
			"campaign.create@1", c)
	})
}

// UpdateCampaign applies edit to a campaign. Value and kind are locked once the campaign
// has redemptions, the code format once it has codes.
func (db *DB) UpdateCampaign(a *Actor, idOrName string, edit func(c *core.Campaign) error) (*core.Campaign, error) {
	var out *core.Campaign
	err := db.write(a, func(t *tx) error {
		old, err := t.campaign(idOrName)
		if err != nil {
			return err
		}
		if old.Status == core.StatusArchived {
			return core.Errorf(core.ErrConflict, "campaign %q is archived and cannot be edited", old.Name)
		}
		c := *old
		c.Rules.Stores = append([]string(nil), old.Rules.Stores...)
		if err := edit(&c); err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return err
		}
		var redemptions int64
		if err := t.QueryRow(`SELECT count(*) FROM redemption WHERE campaign_id = ?`, c.ID).Scan(&redemptions); err != nil {
			return err
		}
		if bad := core.LockedChanges(old, &c, redemptions > 0, old.Issued > 0); len(bad) > 0 {
			e := core.Errorf(core.ErrConflict, "campaign %q already has codes or redemptions: %s cannot change", old.Name, strings.Join(bad, ", "))
			e.Field = bad[0]
			e.Params = map[string]string{"fields": strings.Join(bad, ", ")}
			return e
		}
		// Strictly increasing: cached rules are keyed by it, even within one millisecond.
		c.Updated = max(t.now, old.Updated+1)
		_, err = t.Exec(`UPDATE campaign SET name=?, description=?, kind=?, currency=?, amount_off=?, percent_off=?, max_discount=?,
			min_spend=?, face_value=?, rules=?, format=?, updated_ms=? WHERE id=?`,
			c.Name, c.Description, c.Kind, c.Currency, c.AmountOff, c.PercentOff, c.MaxDiscount, c.MinSpend, c.FaceValue,
			jsonString(c.Rules), jsonString(c.Format), c.Updated, c.ID)
		if isUnique(err) {
			return core.Invalid("name", "a new campaign name", c.Name, "a campaign named %q exists", c.Name)
		}
		if err != nil {
			return err
		}
		out = &c
		changes := campaignDiff(old, &c)
		if err := t.journal("campaign.edit", "campaign", c.ID, map[string]any{"changes": changes}, "campaign.edit@1",
			map[string]any{"id": c.ID, "changes": changes}); err != nil {
			return err
		}
		// The fields' clocks, so an older edit made elsewhere does not overwrite them.
		st, err := t.localStamp()
		if err != nil {
			return err
		}
		return t.stampCampaign(c.ID, st, changedFields(changes)...)
	})
	return out, err
}

// campaignDiff names the changed fields with their new values. Rules are one field
// each: "rules" holds only the rules that changed, so an edit of one rule never
// carries (and, merged elsewhere, restores) a stale copy of another. A field or rule
// that is gone from the new encoding (omitempty) is sent as null, its zero value.
// Status is not an edit: it changes by campaign.status@1 alone.
func campaignDiff(old, new *core.Campaign) map[string]any {
	out := jsonDiff(jsonString(old), jsonString(new))
	delete(out, "updated_ms")
	delete(out, "status")
	if _, ok := out["rules"]; ok {
		out["rules"] = jsonDiff(jsonString(old.Rules), jsonString(new.Rules))
	}
	return out
}

// jsonDiff is the top-level keys of two JSON objects whose values differ, with the
// new value (nil where the key is gone).
func jsonDiff(old, new string) map[string]any {
	a, b := jsonObject(old), jsonObject(new)
	out := map[string]any{}
	for k, v := range b {
		if jsonString(a[k]) != jsonString(v) {
			out[k] = v
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out[k] = nil
		}
	}
	return out
}

// jsonObject decodes an object keeping its numbers exact (json.Number).
func jsonObject(s string) map[string]any {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	d.Decode(&m)
	return m
}

// changedFields names the clocked fields of an edit: top-level fields, and
// "rules.<rule>" for each rule.
func changedFields(changes map[string]any) []string {
	var out []string
	for _, k := range mapKeys(changes) {
		if k != "rules" {
			out = append(out, k)
			continue
		}
		rules, _ := changes[k].(map[string]any)
		for _, r := range mapKeys(rules) {
			out = append(out, "rules."+r)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Campaign field clocks

// fieldStamp is the clock of a campaign field's value: the HLC of the change that
// set it and the device that made it (the id the server knows it by).
type fieldStamp struct {
	HLC    int64
	Device string
}

// after is the one order of campaign changes, the server's as well (fieldClock.after
// in server/store_campaign.go): the higher HLC, and between equal HLCs — devices
// that observed the same clock running ahead issue the same next one — the greater
// device id. A field takes a change that comes after the one it holds, so every
// copy ends with the value of the last change in this order, whatever order the
// changes arrived in.
func (a fieldStamp) after(b fieldStamp) bool {
	return a.HLC > b.HLC || a.HLC == b.HLC && a.Device > b.Device
}

// localStamp is the stamp of the mutation just journaled by this device.
func (t *tx) localStamp() (fieldStamp, error) {
	if t.hlc == nil {
		return fieldStamp{}, errors.New("campaign stamp: no mutation journaled")
	}
	dev, err := thisDeviceID(t)
	return fieldStamp{HLC: t.hlc.Last(), Device: dev}, err
}

// campaignStamp is the stamp of a campaign field's value (zero: unchanged since the
// campaign was created, older than any edit).
func (t *tx) campaignStamp(id, field string) (fieldStamp, error) {
	var st fieldStamp
	err := t.QueryRow(`SELECT hlc, device FROM field_clock WHERE entity = 'campaign' AND id = ? AND field = ?`, id, field).
		Scan(&st.HLC, &st.Device)
	if errors.Is(err, sql.ErrNoRows) {
		return fieldStamp{}, nil
	}
	return st, err
}

// stampCampaign records st as the stamp of fields whose value it set; the caller has
// decided by after that it does.
func (t *tx) stampCampaign(id string, st fieldStamp, fields ...string) error {
	for _, f := range fields {
		if _, err := t.Exec(`INSERT INTO field_clock(entity, id, field, hlc, device) VALUES ('campaign',?,?,?,?)
			ON CONFLICT(entity, id, field) DO UPDATE SET hlc = excluded.hlc, device = excluded.device`, id, f, st.HLC, st.Device); err != nil {
			return err
		}
	}
	return nil
}

// SetCampaignStatus pauses, resumes or archives a campaign.
func (db *DB) SetCampaignStatus(a *Actor, idOrName string, status core.CampaignStatus) (*core.Campaign, error) {
	var out *core.Campaign
	err := db.write(a, func(t *tx) error {
		c, err := t.campaign(idOrName)
		if err != nil {
			return err
		}
		if c.Status == core.StatusArchived {
			return core.Errorf(core.ErrConflict, "campaign %q is archived", c.Name)
		}
		if c.Status == status {
			return core.Errorf(core.ErrConflict, "campaign %q is already %s", c.Name, status)
		}
		old := c.Status
		c.Status, c.Updated = status, max(t.now, c.Updated+1)
		if _, err := t.Exec(`UPDATE campaign SET status = ?, updated_ms = ? WHERE id = ?`, status, c.Updated, c.ID); err != nil {
			return err
		}
		out = c
		if err := t.journal("campaign."+string(status), "campaign", c.ID, map[string]any{"from": old, "to": status},
			"campaign.status@1", map[string]any{"id": c.ID, "status": status}); err != nil {
			return err
		}
		st, err := t.localStamp()
		if err != nil {
			return err
		}
		return t.stampCampaign(c.ID, st, "status")
	})
	return out, err
}

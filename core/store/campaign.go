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
		return t.stamp("campaign", c.ID, mapKeys(changes)...)
	})
	return out, err
}

// campaignDiff names the changed fields with their new values.
func campaignDiff(old, new *core.Campaign) map[string]any {
	var a, b map[string]any
	json.Unmarshal([]byte(jsonString(old)), &a)
	json.Unmarshal([]byte(jsonString(new)), &b)
	out := map[string]any{}
	for k, v := range b {
		if k == "updated_ms" {
			continue
		}
		if jsonString(a[k]) != jsonString(v) {
			out[k] = v
		}
	}
	return out
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
		return t.stamp("campaign", c.ID, "status")
	})
	return out, err
}

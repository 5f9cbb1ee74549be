package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kameng/kameng/core"
)

// Member tiers (会员等级): the highest tier whose threshold a member meets, by spend in
// the tier window or by points balance (core.Loyalty.TierBasis). A member moves down
// as well as up.

// Bounds of a tier's points multiplier, in basis points (10000 = ×1).
const (
	MinMultiplierBP = 1
	MaxMultiplierBP = 100 * 10000
)

func validTier(tr *core.Tier) error {
	tr.Name = strings.Join(strings.Fields(tr.Name), " ")
	if tr.Name == "" || utf8.RuneCountInString(tr.Name) > 32 || strings.IndexFunc(tr.Name, unicode.IsControl) >= 0 {
		return core.Invalid("name", "1–32 characters", tr.Name, "the tier needs a name of 1–32 characters")
	}
	if tr.MinSpend < 0 {
		return core.Invalid("min_spend", "0 or more", tr.MinSpend.String(), "the tier's spend threshold cannot be negative")
	}
	if tr.MinPoints < 0 {
		return core.Invalid("min_points", "0 or more", fmt.Sprint(tr.MinPoints), "the tier's points threshold cannot be negative")
	}
	if tr.MultiplierBP == 0 {
		tr.MultiplierBP = 10000
	}
	if tr.MultiplierBP < MinMultiplierBP || tr.MultiplierBP > MaxMultiplierBP {
		return core.Invalid("multiplier", "0.0001 to 100, e.g. 1.5", fmt.Sprint(tr.MultiplierBP), "the points multiplier must be above 0 and at most 100")
	}
	return nil
}

const tierCols = `id, name, min_spend, min_points, multiplier_bp, created_ms`

func scanTiers(rows *sql.Rows, err error) ([]core.Tier, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []core.Tier{}
	for rows.Next() {
		var tr core.Tier
		if err := rows.Scan(&tr.ID, &tr.Name, &tr.MinSpend, &tr.MinPoints, &tr.MultiplierBP, &tr.Created); err != nil {
			return nil, err
		}
		out = append(out, tr)
	}
	return out, rows.Err()
}

const tiersSQL = `SELECT ` + tierCols + ` FROM tier ORDER BY min_spend, min_points, multiplier_bp, name`

// Tiers lists the tiers from the lowest threshold up.
func (db *DB) Tiers() ([]core.Tier, error) { return scanTiers(db.r.Query(tiersSQL)) }

// SetTier creates a tier, or changes the one with the same name. Members move to
// their new tier on their next purchase or with RetierAll.
func (db *DB) SetTier(a *Actor, tr core.Tier) (*core.Tier, error) {
	if err := validTier(&tr); err != nil {
		return nil, err
	}
	err := db.write(a, func(t *tx) error {
		var old core.Tier
		err := t.QueryRow(`SELECT `+tierCols+` FROM tier WHERE name = ?`, tr.Name).
			Scan(&old.ID, &old.Name, &old.MinSpend, &old.MinPoints, &old.MultiplierBP, &old.Created)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			tr.ID, tr.Created = core.NewID(), t.now
			_, err = t.Exec(`INSERT INTO tier(`+tierCols+`) VALUES (?,?,?,?,?,?)`, tr.ID, tr.Name, tr.MinSpend, tr.MinPoints, tr.MultiplierBP, tr.Created)
		case err == nil:
			tr.ID, tr.Created = old.ID, old.Created
			if tr == old {
				return nil
			}
			_, err = t.Exec(`UPDATE tier SET min_spend = ?, min_points = ?, multiplier_bp = ? WHERE id = ?`, tr.MinSpend, tr.MinPoints, tr.MultiplierBP, tr.ID)
		}
		if err != nil {
			return err
		}
		return t.journal("tier.set", "tier", tr.ID, map[string]any{"name": tr.Name, "min_spend": tr.MinSpend, "min_points": tr.MinPoints,
			"multiplier_bp": tr.MultiplierBP}, "tier.set@1", tr)
	})
	if err != nil {
		return nil, err
	}
	return &tr, nil
}

// RemoveTier deletes a tier. A campaign limited to it must be changed first; members
// in it move to the tier they qualify for now.
func (db *DB) RemoveTier(a *Actor, name string) (moved int64, err error) {
	err = db.write(a, func(t *tx) error {
		var id string
		err := t.QueryRow(`SELECT id FROM tier WHERE name = ? OR id = ?`, name, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFound("tier", name)
		}
		if err != nil {
			return err
		}
		var camp string
		err = t.QueryRow(`SELECT name FROM campaign WHERE status <> 'archived' AND EXISTS (SELECT 1 FROM json_each(rules, '$.tiers') WHERE value = ?) LIMIT 1`, id).Scan(&camp)
		if err == nil {
			e := core.Errorf(core.ErrConflict, "campaign %q is limited to tier %q: change it first", camp, name)
			e.Field, e.Params = "tier", map[string]string{"campaign": camp, "value": name, "why": "tier_in_use"}
			return e
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := t.Exec(`DELETE FROM tier WHERE id = ?`, id); err != nil {
			return err
		}
		if err := t.journal("tier.remove", "tier", id, map[string]any{"name": name}, "tier.remove@1", map[string]any{"id": id}); err != nil {
			return err
		}
		tc, err := t.tierContext()
		if err != nil {
			return err
		}
		members, err := t.tierMembers(`SELECT id, tier_id, spend, points FROM member WHERE tier_id = ? AND status = 'active'`, id)
		if err != nil {
			return err
		}
		for _, m := range members {
			changed, err := t.retierWith(tc, m)
			if err != nil {
				return err
			}
			if changed {
				moved++
			}
		}
		return nil
	})
	return moved, err
}

// tierContext is what evaluating tiers needs, read once per transaction or chunk.
type tierContext struct {
	loyalty core.Loyalty
	tiers   []core.Tier
	names   map[string]string // id → name
	cutoff  string            // spend basis with a window: visits after this day count
}

func (t *tx) tierContext() (*tierContext, error) {
	l, err := loyaltyFrom(t)
	if err != nil {
		return nil, err
	}
	tiers, err := scanTiers(t.Query(tiersSQL))
	if err != nil {
		return nil, err
	}
	tc := &tierContext{loyalty: l, tiers: tiers, names: map[string]string{}}
	for _, tr := range tiers {
		tc.names[tr.ID] = tr.Name
	}
	if l.TierBasis == core.TierBySpend && l.TierWindowMonths > 0 {
		tc.cutoff = time.UnixMilli(t.now).In(t.actor.Store.Location()).AddDate(0, -l.TierWindowMonths, 0).Format(time.DateOnly)
	}
	return tc, nil
}

// initialTier is the tier of a member with nothing spent and no points.
func (tc *tierContext) initialTier() string {
	if tr := core.TierFor(tc.tiers, tc.loyalty.TierBasis, 0, 0); tr != nil {
		return tr.ID
	}
	return ""
}

// tierMember is what a tier is decided from.
type tierMember struct {
	id, tier string
	spend    core.Amount // lifetime
	points   int64
}

func (t *tx) tierMembers(q string, args ...any) ([]tierMember, error) {
	rows, err := t.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tierMember
	for rows.Next() {
		var m tierMember
		if err := rows.Scan(&m.id, &m.tier, &m.spend, &m.points); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// retierWith moves a member to the tier they qualify for now; a change is audited and
// sent. It reports whether the tier changed.
func (t *tx) retierWith(tc *tierContext, m tierMember) (bool, error) {
	if len(tc.tiers) == 0 && m.tier == "" {
		return false, nil
	}
	value := m.spend
	if tc.cutoff != "" {
		if err := t.QueryRow(`SELECT COALESCE(sum(amount), 0) FROM member_visit WHERE member_id = ? AND day > ?`, m.id, tc.cutoff).Scan(&value); err != nil {
			return false, err
		}
	}
	best := core.TierFor(tc.tiers, tc.loyalty.TierBasis, value, m.points)
	to := ""
	if best != nil {
		to = best.ID
	}
	if to == m.tier {
		return false, nil
	}
	if _, err := t.Exec(`UPDATE member SET tier_id = ?, updated_ms = ? WHERE id = ?`, to, t.now, m.id); err != nil {
		return false, err
	}
	qualifying := any(value)
	if tc.loyalty.TierBasis == core.TierByPoints {
		qualifying = m.points
	}
	return true, t.journal("member.tier", "member", m.id, map[string]any{"from": tc.names[m.tier], "to": tc.names[to],
		"basis": tc.loyalty.TierBasis, "value": qualifying}, "member.tier@1", map[string]any{"member_id": m.id, "from": m.tier, "to": to})
}

// afterPurchase re-evaluates the member's tier and fires spend-triggered issuing rules
// once a purchase (points earn, wallet pay, redemption with a member) is recorded.
func (t *tx) afterPurchase(memberID string) error {
	tc, err := t.tierContext()
	if err != nil {
		return err
	}
	ms, err := t.tierMembers(`SELECT id, tier_id, spend, points FROM member WHERE id = ? AND status = 'active'`, memberID)
	if err != nil || len(ms) == 0 {
		return err
	}
	if _, err := t.retierWith(tc, ms[0]); err != nil {
		return err
	}
	_, err = t.fireSpend(memberID, ms[0].spend)
	return err
}

// RetierResult counts what RetierAll did.
type RetierResult struct {
	Members int64 `json:"members"`
	Changed int64 `json:"changed"`
}

// retierChunk is how many members one RetierAll transaction handles, so the counter
// is never kept waiting long.
const retierChunk = 2000

// RetierAll moves every active member to the tier they qualify for today: needed once
// spend leaves a rolling tier window, and after tiers or the tier basis change.
// progress, if set, is told how many members are done out of how many.
func (db *DB) RetierAll(a *Actor, progress func(done, total int64)) (*RetierResult, error) {
	res := &RetierResult{}
	var total int64
	if err := db.r.QueryRow(`SELECT count(*) FROM member WHERE status = 'active'`).Scan(&total); err != nil {
		return nil, err
	}
	after := ""
	for {
		var n int
		var changed int64
		var lastID string
		err := db.write(a, func(t *tx) error {
			tc, err := t.tierContext()
			if err != nil {
				return err
			}
			ms, err := t.tierMembers(`SELECT id, tier_id, spend, points FROM member WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?`, after, retierChunk)
			if err != nil {
				return err
			}
			changed = 0
			for _, m := range ms {
				ok, err := t.retierWith(tc, m)
				if err != nil {
					return err
				}
				if ok {
					changed++
				}
			}
			if n = len(ms); n > 0 {
				lastID = ms[n-1].id
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		after = lastID
		res.Members += int64(n)
		res.Changed += changed
		if progress != nil {
			progress(res.Members, max(total, res.Members))
		}
		if n < retierChunk {
			return res, nil
		}
	}
}

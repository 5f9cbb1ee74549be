package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/kameng/kameng/core"
)

// The pieces that members, stored value, points and settlement share.

// loyalty reads the merchant's loyalty settings (defaults until saved).
func loyaltyFrom(q queryer) (core.Loyalty, error) {
	l := core.DefaultLoyalty()
	var b []byte
	err := q.QueryRow(`SELECT value FROM meta WHERE key = 'loyalty'`).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, err
	}
	if l.CampaignBonus == nil {
		l.CampaignBonus = map[string]int64{}
	}
	if l.Rewards == nil {
		l.Rewards = map[string]int64{}
	}
	if l.Bonuses == nil {
		l.Bonuses = []core.TopupBonus{}
	}
	return l, nil
}

// Loyalty returns the merchant's points, tier and stored-value settings.
func (db *DB) Loyalty() (core.Loyalty, error) { return loyaltyFrom(reader{db}) }

// SetLoyalty changes the settings through edit, validated, in one transaction.
func (db *DB) SetLoyalty(a *Actor, edit func(l *core.Loyalty) error) (core.Loyalty, error) {
	var out core.Loyalty
	err := db.write(a, func(t *tx) error {
		l, err := loyaltyFrom(t)
		if err != nil {
			return err
		}
		old := jsonString(l)
		if err := edit(&l); err != nil {
			return err
		}
		if err := l.Validate(); err != nil {
			return err
		}
		now := jsonString(l)
		if now == old {
			out = l
			return nil
		}
		if _, err := t.Exec(`INSERT INTO meta(key, value) VALUES ('loyalty', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, []byte(now)); err != nil {
			return err
		}
		out = l
		if err := t.journal("loyalty.set", "loyalty", "loyalty", map[string]any{"before": json.RawMessage(old), "after": json.RawMessage(now)},
			"loyalty.set@1", l); err != nil {
			return err
		}
		return t.stamp("loyalty", "", "settings")
	})
	return out, err
}

// visit records a member's purchase of amount today at the actor's store: the visit
// rollup, the member's spend, visit days and last visit.
func (t *tx) visit(memberID string, amount core.Amount) error {
	day := time.UnixMilli(t.now).In(t.actor.Store.Location()).Format(time.DateOnly)
	_, err := t.Exec(`INSERT INTO member_visit(day, member_id, store_id, orders, amount) VALUES (?,?,?,1,?)
		ON CONFLICT(day, member_id, store_id) DO UPDATE SET orders = orders + 1, amount = amount + excluded.amount`,
		day, memberID, t.actor.Store.ID, amount)
	if err != nil {
		return err
	}
	var orders int64
	if err := t.QueryRow(`SELECT sum(orders) FROM member_visit WHERE member_id = ? AND day = ?`, memberID, day).Scan(&orders); err != nil {
		return err
	}
	newDay := 0
	if orders == 1 {
		newDay = 1
	}
	_, err = t.Exec(`UPDATE member SET spend = spend + ?, visits = visits + ?, last_visit_ms = max(last_visit_ms, ?), updated_ms = ? WHERE id = ?`,
		amount, newDay, t.now, t.now, memberID)
	return err
}

// memberRef resolves a member id or phone number to the id of the active member it
// names, following merged records to the one they were merged into.
func (db *DB) memberRef(q queryer, ref string) (string, error) {
	id := ""
	var status, into string
	err := q.QueryRow(`SELECT id, status, merged_into FROM member WHERE id = ?`, ref).Scan(&id, &status, &into)
	if errors.Is(err, sql.ErrNoRows) {
		phone, perr := core.NormalizePhone(ref)
		if perr != nil {
			return "", core.NotFound("member", ref)
		}
		sealer, serr := db.sealer()
		if serr != nil {
			return "", serr
		}
		err = q.QueryRow(`SELECT id, status, merged_into FROM member WHERE phone_ix = ?`, sealer.Index(phone)).Scan(&id, &status, &into)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.NotFound("member", ref)
	}
	if err != nil {
		return "", err
	}
	for hops := 0; status == core.MemberMerged && into != "" && hops < 16; hops++ {
		if err := q.QueryRow(`SELECT id, status, merged_into FROM member WHERE id = ?`, into).Scan(&id, &status, &into); err != nil {
			return "", err
		}
	}
	if status != core.MemberActive {
		e := core.Errorf(core.ErrConflict, "member %s is %s", id, status)
		e.Field = "member"
		return "", e
	}
	return id, nil
}

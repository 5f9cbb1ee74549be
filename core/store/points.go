package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kameng/kameng/core"
)

// Points (积分). A member's balance is the sum of their points_entry rows; member.points
// caches it. Positive entries are lots whose remaining points are spent first to
// expire first (never-expiring last, older before newer), so the sum of what the lots
// have left always equals the balance.

// maxPointsChange bounds one earn, adjustment or reward price.
const maxPointsChange = 1_000_000_000_000

// PointsResult is what an earn, spend, adjustment or reversal produced.
type PointsResult struct {
	Entry   *core.PointsEntry `json:"entry"`
	Balance int64             `json:"balance"`           // the member's points after it
	Code    string            `json:"code,omitempty"`    // spend: the reward's code
	Expired int64             `json:"expired,omitempty"` // points of lots found expired on the way
}

const pointsCols = `id, member_id, kind, points, remaining, expires_ms, order_amount, ref, related_id, campaign_id, reason,
	store_id, operator_id, device_id, created_ms`

func scanPointsEntry(row scanner) (*core.PointsEntry, error) {
	var e core.PointsEntry
	err := row.Scan(&e.ID, &e.MemberID, &e.Kind, &e.Points, &e.Remaining, &e.Expires, &e.OrderAmount, &e.Ref, &e.RelatedID,
		&e.CampaignID, &e.Reason, &e.StoreID, &e.OperatorID, &e.DeviceID, &e.Created)
	return &e, err
}

// addPoints inserts one entry (actor, time and a new id filled in) and moves the
// member's cached balance by its points; it returns the balance after.
func (t *tx) addPoints(e *core.PointsEntry) (int64, error) {
	e.ID, e.StoreID, e.OperatorID, e.DeviceID, e.Created = core.NewID(), t.actor.Store.ID, t.actor.Operator.ID, t.actor.Device.ID, t.now
	if _, err := t.Exec(`INSERT INTO points_entry(id, member_id, kind, points, remaining, expires_ms, order_amount, ref, related_id,
		campaign_id, reason, store_id, operator_id, device_id, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.ID, e.MemberID, e.Kind, e.Points, e.Remaining, e.Expires, e.OrderAmount, e.Ref, e.RelatedID, e.CampaignID, e.Reason,
		e.StoreID, e.OperatorID, e.DeviceID, e.Created); err != nil {
		return 0, err
	}
	var balance int64
	err := t.QueryRow(`UPDATE member SET points = points + ?, updated_ms = ? WHERE id = ? RETURNING points`, e.Points, t.now, e.MemberID).Scan(&balance)
	return balance, err
}

// dueLot is a lot with points left.
type dueLot struct {
	id, memberID string
	remaining    int64
}

func (t *tx) dueLots(query string, args ...any) ([]dueLot, error) {
	rows, err := t.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []dueLot
	for rows.Next() {
		var l dueLot
		if err := rows.Scan(&l.id, &l.memberID, &l.remaining); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// expireLots writes an 'expire' entry for each lot and empties it; it returns the
// points that expired.
func (t *tx) expireLots(lots []dueLot) (int64, error) {
	var total int64
	for _, l := range lots {
		if _, err := t.Exec(`UPDATE points_entry SET remaining = 0 WHERE id = ?`, l.id); err != nil {
			return 0, err
		}
		if _, err := t.addPoints(&core.PointsEntry{MemberID: l.memberID, Kind: core.PointsExpire, Points: -l.remaining, RelatedID: l.id}); err != nil {
			return 0, err
		}
		total += l.remaining
	}
	return total, nil
}

// expireDue expires the member's lots whose time has come, so that what is spent or
// taken back is never points that are already void, even before the next sweep.
func (t *tx) expireDue(memberID string) (int64, error) {
	lots, err := t.dueLots(`SELECT id, member_id, remaining FROM points_entry
		WHERE member_id = ? AND remaining > 0 AND expires_ms > 0 AND expires_ms <= ? ORDER BY expires_ms, id`, memberID, t.now)
	if err != nil || len(lots) == 0 {
		return 0, err
	}
	return t.expireLots(lots)
}

// pointsBalance is the member's cached points.
func (t *tx) pointsBalance(memberID string) (int64, error) {
	var p int64
	err := t.QueryRow(`SELECT points FROM member WHERE id = ?`, memberID).Scan(&p)
	return p, err
}

// take consumes n points from the member's lots: the lot that holds the points of
// entry prefer first (the entry itself, or the lot it became in a merge), then first
// to expire first, never-expiring last. The caller has checked the balance and writes
// the entry that records the points leaving.
func (t *tx) take(memberID string, n int64, prefer string) error {
	left, err := t.consume(memberID, n, prefer)
	if err == nil && left > 0 {
		err = fmt.Errorf("points lots of member %s hold %d fewer points than its balance", memberID, left)
	}
	return err
}

// consume takes up to n points from the member's lots in take's order and returns
// how many it could not find.
func (t *tx) consume(memberID string, n int64, prefer string) (left int64, err error) {
	if n <= 0 {
		return 0, nil
	}
	lots, err := t.dueLots(`SELECT id, member_id, remaining FROM points_entry WHERE member_id = ?1 AND remaining > 0
		ORDER BY (id = ?2 OR (kind = 'merge_in' AND ref = ?2)) DESC, expires_ms = 0, expires_ms, id`, memberID, prefer)
	if err != nil {
		return n, err
	}
	for _, l := range lots {
		k := min(l.remaining, n)
		if _, err := t.Exec(`UPDATE points_entry SET remaining = remaining - ? WHERE id = ?`, k, l.id); err != nil {
			return n, err
		}
		if n -= k; n == 0 {
			return 0, nil
		}
	}
	return n, nil
}

// spendable expires what is due, then makes sure the member has n points.
func (t *tx) spendable(memberID string, n int64) (expired int64, err error) {
	if expired, err = t.expireDue(memberID); err != nil {
		return 0, err
	}
	have, err := t.pointsBalance(memberID)
	if err != nil {
		return 0, err
	}
	if have < n {
		return 0, shortOf("points", "points_short", fmt.Sprint(n), fmt.Sprint(have))
	}
	return expired, nil
}

func (t *tx) lotExpiry(l *core.Loyalty) int64 {
	return l.ExpiresAt(time.UnixMilli(t.now), t.actor.Store.Location())
}

// Earn records a purchase of orderAmount by a member and gives them points: the
// loyalty rate × their tier's multiplier, plus the bonus of the campaign the purchase
// used, if any. The points form a lot that expires by the expiry rule in the store's
// zone. The purchase counts as a visit, and tiers and spend-triggered issuing follow.
func (db *DB) Earn(a *Actor, member string, orderAmount core.Amount, campaign, ref string) (*PointsResult, error) {
	if err := positiveAmount("amount", orderAmount); err != nil {
		return nil, err
	}
	res := &PointsResult{}
	err := db.write(a, func(t *tx) error {
		id, err := db.memberRef(t, member)
		if err != nil {
			return err
		}
		campaignID := ""
		if strings.TrimSpace(campaign) != "" {
			c, err := t.campaign(strings.TrimSpace(campaign))
			if err != nil {
				return err
			}
			campaignID = c.ID
		}
		if res.Entry, res.Balance, err = t.earn(id, orderAmount, campaignID, ref); err != nil {
			return err
		}
		return t.afterPurchase(id)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// earn gives a member the points of a purchase (with the bonus of the campaign it
// used, if any) and records the purchase as a visit. A redemption made with the
// member's phone calls it too, so a purchase is counted once.
func (t *tx) earn(id string, orderAmount core.Amount, campaignID, ref string) (*core.PointsEntry, int64, error) {
	l, err := loyaltyFrom(t)
	if err != nil {
		return nil, 0, err
	}
	var multiplier int64
	if err := t.QueryRow(`SELECT COALESCE((SELECT multiplier_bp FROM tier WHERE id = m.tier_id), 10000) FROM member m WHERE m.id = ?`, id).
		Scan(&multiplier); err != nil {
		return nil, 0, err
	}
	e := &core.PointsEntry{MemberID: id, Kind: core.PointsEarn, OrderAmount: orderAmount, Ref: strings.TrimSpace(ref), CampaignID: campaignID}
	e.Points = l.PointsFor(orderAmount, multiplier) + l.CampaignBonus[campaignID]
	if e.Points > maxPointsChange {
		return nil, 0, core.Invalid("amount", "a smaller order", orderAmount.String(), "this order would earn more than %d points", int64(maxPointsChange))
	}
	e.Remaining = e.Points
	if e.Points > 0 {
		e.Expires = t.lotExpiry(&l)
	}
	balance, err := t.addPoints(e)
	if err != nil {
		return nil, 0, err
	}
	if err := t.visit(id, orderAmount); err != nil {
		return nil, 0, err
	}
	return e, balance, t.journal("points.earn", "member", id, map[string]any{"entry": e.ID, "points": e.Points, "order": orderAmount, "ref": e.Ref},
		"points.earn@1", e)
}

// Spend exchanges points for one code of a reward campaign (its price is set with
// the loyalty settings' rewards) and returns the code.
func (db *DB) Spend(a *Actor, member, reward string) (*PointsResult, error) {
	if strings.TrimSpace(reward) == "" {
		return nil, core.Invalid("reward", "the reward campaign", "", "which reward? name its campaign")
	}
	res := &PointsResult{}
	err := db.write(a, func(t *tx) error {
		id, err := db.memberRef(t, member)
		if err != nil {
			return err
		}
		l, err := loyaltyFrom(t)
		if err != nil {
			return err
		}
		c, err := t.campaign(strings.TrimSpace(reward))
		if err != nil {
			return err
		}
		price, ok := l.Rewards[c.ID]
		if !ok {
			return core.Invalid("reward", "a campaign set up with `kameng points reward set`", c.Name, "campaign %q is not a points reward", c.Name)
		}
		if res.Expired, err = t.spendable(id, price); err != nil {
			return err
		}
		if err := t.take(id, price, ""); err != nil {
			return err
		}
		if res.Code, err = t.handOut(c, id, "points"); err != nil {
			return err
		}
		e := &core.PointsEntry{MemberID: id, Kind: core.PointsSpend, Points: -price, RelatedID: res.Code, CampaignID: c.ID}
		if res.Balance, err = t.addPoints(e); err != nil {
			return err
		}
		res.Entry = e
		return t.journal("points.spend", "member", id, map[string]any{"entry": e.ID, "points": price, "campaign_id": c.ID, "code": res.Code},
			"points.spend@1", e)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Adjust adds or takes points by hand, with a reason. Added points form a lot under
// the expiry rule; taken points come from the lots, and the balance cannot go below zero.
func (db *DB) Adjust(a *Actor, member string, delta int64, reason string) (*PointsResult, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, core.Invalid("reason", "why the points change", "", "a points adjustment needs a reason")
	}
	if delta == 0 || delta > maxPointsChange || delta < -maxPointsChange {
		return nil, core.Invalid("points", "+N or -N, not 0", fmt.Sprint(delta), "an adjustment changes the points by a whole number other than zero")
	}
	res := &PointsResult{}
	err := db.write(a, func(t *tx) error {
		id, err := db.memberRef(t, member)
		if err != nil {
			return err
		}
		e := &core.PointsEntry{MemberID: id, Kind: core.PointsAdjust, Points: delta, Reason: reason}
		if delta > 0 {
			l, err := loyaltyFrom(t)
			if err != nil {
				return err
			}
			e.Remaining, e.Expires = delta, t.lotExpiry(&l)
		} else {
			if res.Expired, err = t.spendable(id, -delta); err != nil {
				return err
			}
			if err := t.take(id, -delta, ""); err != nil {
				return err
			}
		}
		if res.Balance, err = t.addPoints(e); err != nil {
			return err
		}
		res.Entry = e
		return t.journal("points.adjust", "member", id, map[string]any{"entry": e.ID, "points": delta, "reason": reason},
			"points.adjust@1", e)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ExpireResult counts what a sweep expired.
type ExpireResult struct {
	Lots    int64 `json:"lots"`
	Points  int64 `json:"points"`
	Members int64 `json:"members"`
}

// expireBatch is how many lots one sweep transaction expires.
const expireBatch = 500

// Expire empties every lot whose expiry is at or before now (zero: the clock) with an
// 'expire' entry, in transactions of expireBatch lots; progress is told the lots done.
func (db *DB) Expire(a *Actor, now time.Time, progress func(done int64)) (*ExpireResult, error) {
	if now.IsZero() {
		now = db.Clock.Now()
	}
	until := now.UnixMilli()
	res := &ExpireResult{}
	members := map[string]bool{}
	for {
		var n int
		err := db.write(a, func(t *tx) error {
			lots, err := t.dueLots(`SELECT id, member_id, remaining FROM points_entry
				WHERE expires_ms > 0 AND expires_ms <= ? AND remaining > 0 ORDER BY expires_ms, id LIMIT ?`, until, expireBatch)
			if err != nil || len(lots) == 0 {
				return err
			}
			points, err := t.expireLots(lots)
			if err != nil {
				return err
			}
			n = len(lots)
			res.Lots += int64(n)
			res.Points += points
			args := make([]map[string]any, len(lots))
			for i, l := range lots {
				members[l.memberID] = true
				args[i] = map[string]any{"lot": l.id, "member_id": l.memberID, "points": l.remaining}
			}
			return t.journal("points.expire", "points", "", map[string]any{"lots": n, "points": points, "until_ms": until},
				"points.expire@1", map[string]any{"until_ms": until, "lots": args})
		})
		if err != nil {
			return res, err
		}
		if progress != nil {
			progress(res.Lots)
		}
		if n < expireBatch {
			break
		}
	}
	res.Members = int64(len(members))
	return res, nil
}

// mergeChain lists a member and the records it was merged into, in order; the last
// is where its points and money are now.
func mergeChain(q queryer, id string) ([]string, error) {
	chain := []string{id}
	for hops := 0; hops < 16; hops++ {
		var status, into string
		err := q.QueryRow(`SELECT status, merged_into FROM member WHERE id = ?`, id).Scan(&status, &into)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, core.NotFound("member", id)
		}
		if err != nil {
			return nil, err
		}
		if status != core.MemberMerged || into == "" {
			if status != core.MemberActive {
				e := core.Errorf(core.ErrConflict, "member %s is %s", id, status)
				e.Field = "member"
				return nil, e
			}
			return chain, nil
		}
		id = into
		chain = append(chain, id)
	}
	return nil, core.Errorf(core.ErrInternal, "member %s: merge chain too long", chain[0])
}

// Reverse undoes an earn whose order was cancelled: the points come back out (from
// that lot first, wherever a merge moved it, then the others), and the purchase
// leaves the member's spend and that day's visit amount; tiers follow. It is refused
// when the member no longer has the points. ownOnly and maxAge restrict cashiers as
// for redemption rollbacks.
func (db *DB) Reverse(a *Actor, earnEntryID, reason string, ownOnly bool, maxAge time.Duration) (*PointsResult, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, core.Invalid("reason", "why the purchase is reversed", "", "a reversal needs a reason")
	}
	res := &PointsResult{}
	err := db.write(a, func(t *tx) error {
		earn, err := scanPointsEntry(t.QueryRow(`SELECT `+pointsCols+` FROM points_entry WHERE id = ?`, strings.TrimSpace(earnEntryID)))
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFound("entry", earnEntryID)
		}
		if err != nil {
			return err
		}
		if earn.Kind != core.PointsEarn {
			return core.Invalid("entry", "the id of a points earn", earnEntryID, "entry %s is a %s, not an earn", earn.ID, earn.Kind)
		}
		if ownOnly && earn.OperatorID != a.Operator.ID {
			return core.Forbidden("reverse another operator's points", string(a.Operator.Role))
		}
		if age := time.Duration(t.now-earn.Created) * time.Millisecond; maxAge > 0 && age > maxAge {
			return core.Forbidden("reverse points earned more than "+maxAge.String()+" ago", string(a.Operator.Role))
		}
		// The points and the reversal (if any) sit on the earner or a record it was
		// merged into since.
		chain, err := mergeChain(t, earn.MemberID)
		if err != nil {
			return err
		}
		id := chain[len(chain)-1]
		var done int
		if err := t.QueryRow(`SELECT count(*) FROM points_entry WHERE member_id IN (SELECT value FROM json_each(?)) AND kind = 'reverse' AND related_id = ?`,
			jsonString(chain), earn.ID).Scan(&done); err != nil {
			return err
		}
		if done > 0 {
			e := core.Errorf(core.ErrConflict, "earn %s was reversed already", earn.ID)
			e.Field, e.Params = "entry", map[string]string{"why": "reversed", "id": earn.ID}
			return e
		}
		if res.Expired, err = t.spendable(id, earn.Points); err != nil {
			return err
		}
		if err := t.take(id, earn.Points, earn.ID); err != nil {
			return err
		}
		e := &core.PointsEntry{MemberID: id, Kind: core.PointsReverse, Points: -earn.Points, OrderAmount: earn.OrderAmount,
			Ref: earn.Ref, RelatedID: earn.ID, CampaignID: earn.CampaignID, Reason: reason}
		if res.Balance, err = t.addPoints(e); err != nil {
			return err
		}
		res.Entry = e
		loc := t.actor.Store.Location()
		if earn.StoreID != t.actor.Store.ID {
			var tz string
			if err := t.QueryRow(`SELECT time_zone FROM store WHERE id = ?`, earn.StoreID).Scan(&tz); err == nil {
				loc = core.LoadLocation(tz)
			}
		}
		day := time.UnixMilli(earn.Created).In(loc).Format(time.DateOnly)
		if _, err := t.Exec(`UPDATE member SET spend = max(spend - ?, 0), updated_ms = ? WHERE id = ?`, earn.OrderAmount, t.now, id); err != nil {
			return err
		}
		if _, err := t.Exec(`UPDATE member_visit SET amount = max(amount - ?, 0) WHERE day = ? AND member_id = ? AND store_id = ?`,
			earn.OrderAmount, day, id, earn.StoreID); err != nil {
			return err
		}
		if err := t.journal("points.reverse", "member", id, map[string]any{"entry": e.ID, "earn": earn.ID, "points": earn.Points,
			"order": earn.OrderAmount, "reason": reason}, "points.reverse@1", e); err != nil {
			return err
		}
		return t.afterPurchase(id)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// PointsView is a member's points: the cached balance, the ledger's sum and what the
// lots have left (the three agree), the lots in the order they are spent, and the
// newest entries.
type PointsView struct {
	MemberID string              `json:"member_id"`
	Balance  int64               `json:"balance"`
	Ledger   int64               `json:"ledger"`
	InLots   int64               `json:"in_lots"`
	Lots     []*core.PointsEntry `json:"lots"`
	Entries  []*core.PointsEntry `json:"entries"`
}

// PointsShow returns a member's points, lots and newest entries (limit, default 20).
func (db *DB) PointsShow(member string, limit int) (*PointsView, error) {
	id, err := db.memberRef(reader{db}, member)
	if err != nil {
		return nil, err
	}
	v := &PointsView{MemberID: id}
	if err := db.r.QueryRow(`SELECT points, (SELECT COALESCE(sum(points), 0) FROM points_entry WHERE member_id = ?1),
		(SELECT COALESCE(sum(remaining), 0) FROM points_entry WHERE member_id = ?1 AND remaining > 0) FROM member WHERE id = ?1`, id).
		Scan(&v.Balance, &v.Ledger, &v.InLots); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 20
	}
	if v.Lots, err = db.pointsEntries(`SELECT `+pointsCols+` FROM points_entry WHERE member_id = ? AND remaining > 0
		ORDER BY expires_ms = 0, expires_ms, id`, id); err != nil {
		return nil, err
	}
	v.Entries, err = db.pointsEntries(`SELECT `+pointsCols+` FROM points_entry WHERE member_id = ? ORDER BY created_ms DESC, id DESC LIMIT ?`, id, limit)
	return v, err
}

func (db *DB) pointsEntries(q string, args ...any) ([]*core.PointsEntry, error) {
	rows, err := db.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*core.PointsEntry{}
	for rows.Next() {
		e, err := scanPointsEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PointsEntry finds one points entry by id.
func (db *DB) PointsEntry(id string) (*core.PointsEntry, error) {
	e, err := scanPointsEntry(db.r.QueryRow(`SELECT `+pointsCols+` FROM points_entry WHERE id = ?`, strings.TrimSpace(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("entry", id)
	}
	return e, err
}

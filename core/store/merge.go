package store

import (
	"github.com/kameng/kameng/core"
)

// MergeResult says what moved when one member record was folded into another.
type MergeResult struct {
	From        string      `json:"from"`
	Into        string      `json:"into"`
	Wallet      core.Amount `json:"wallet"`      // stored value moved
	Points      int64       `json:"points"`      // points moved
	Lots        int         `json:"lots"`        // points lots moved, each with its expiry
	Codes       int64       `json:"codes"`       // codes received, now the survivor's
	Redemptions int64       `json:"redemptions"` // redemptions, now the survivor's
	VisitDays   int64       `json:"visit_days"`  // days of purchases folded in
	Issued      int64       `json:"issued"`      // automatic issues, now the survivor's
}

// Merge folds member from into member into (the same customer registered twice). The
// wallet and every points lot move with matching out/in entries, lots keeping their
// expiry; codes, redemptions, visits, spend and automatic issues become into's, so a
// once-per-member rule stays once. from is kept as 'merged' with its history and its
// phone index, so its phone still finds the surviving member.
func (db *DB) Merge(a *Actor, from, into string) (*MergeResult, error) {
	res := &MergeResult{}
	err := db.write(a, func(t *tx) error {
		f, err := db.memberRef(t, from)
		if err != nil {
			return err
		}
		i, err := db.memberRef(t, into)
		if err != nil {
			return err
		}
		if f == i {
			e := core.Errorf(core.ErrConflict, "%s and %s are the same member %s", from, into, f)
			e.Field, e.Params = "member", map[string]string{"why": "same_member", "id": f}
			return e
		}
		if err := t.mergeMembers(f, i, res); err != nil {
			return err
		}
		if err := t.journal("member.merge", "member", f, map[string]any{"into": i, "wallet": res.Wallet, "points": res.Points, "lots": res.Lots,
			"codes": res.Codes, "redemptions": res.Redemptions}, "member.merge@1", map[string]any{"from": f, "into": i}); err != nil {
			return err
		}
		return t.afterPurchase(i)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// mergeMembers moves everything of member f to member i (Merge without the checks and
// the journal; sync replays a merge made elsewhere with it).
func (t *tx) mergeMembers(f, i string, res *MergeResult) error {
	res.From, res.Into = f, i
	var spend core.Amount
	var visits, lastVisit int64
	if err := t.QueryRow(`SELECT wallet, spend, visits, last_visit_ms FROM member WHERE id = ?`, f).Scan(&res.Wallet, &spend, &visits, &lastVisit); err != nil {
		return err
	}
	if res.Wallet != 0 {
		out := &core.WalletEntry{MemberID: f, Kind: core.WalletMergeOut, Amount: -res.Wallet, RelatedID: i}
		in := &core.WalletEntry{MemberID: i, Kind: core.WalletMergeIn, Amount: res.Wallet, RelatedID: f}
		for _, e := range []*core.WalletEntry{out, in} {
			if err := t.addWallet(e); err != nil {
				return err
			}
			if _, err := t.Exec(`UPDATE member SET wallet = wallet + ?, updated_ms = ? WHERE id = ?`, e.Amount, t.now, e.MemberID); err != nil {
				return err
			}
		}
	}
	if err := t.moveLots(f, i, res); err != nil {
		return err
	}
	counts := []struct {
		n    *int64
		q    string
		args []any
	}{
		{&res.Codes, `UPDATE code SET member_id = ? WHERE member_id = ?`, []any{i, f}},
		{&res.Redemptions, `UPDATE redemption SET member_id = ? WHERE member_id = ?`, []any{i, f}},
		// Days on which both bought count once in the survivor's visits.
		{nil, `UPDATE member SET visits = visits + ? - (SELECT count(DISTINCT v.day) FROM member_visit v
			WHERE v.member_id = ? AND EXISTS (SELECT 1 FROM member_visit w WHERE w.member_id = ? AND w.day = v.day)),
			spend = spend + ?, last_visit_ms = max(last_visit_ms, ?), updated_ms = ? WHERE id = ?`,
			[]any{visits, f, i, spend, lastVisit, t.now, i}},
		{nil, `INSERT INTO member_visit(day, member_id, store_id, orders, amount)
			SELECT day, ?, store_id, orders, amount FROM member_visit WHERE member_id = ?
			ON CONFLICT(day, member_id, store_id) DO UPDATE SET orders = orders + excluded.orders, amount = amount + excluded.amount`,
			[]any{i, f}},
		{&res.VisitDays, `DELETE FROM member_visit WHERE member_id = ?`, []any{f}},
		// The survivor keeps its own issue where both had one: the rule fired once.
		{&res.Issued, `INSERT OR IGNORE INTO issued(rule_id, member_id, period, code, created_ms)
			SELECT rule_id, ?, period, code, created_ms FROM issued WHERE member_id = ?`, []any{i, f}},
		{nil, `DELETE FROM issued WHERE member_id = ?`, []any{f}},
		{nil, `UPDATE member SET status = 'merged', merged_into = ?, spend = 0, visits = 0, updated_ms = ? WHERE id = ?`, []any{i, t.now, f}},
	}
	for _, c := range counts {
		r, err := t.Exec(c.q, c.args...)
		if err != nil {
			return err
		}
		if c.n != nil {
			*c.n, _ = r.RowsAffected()
		}
	}
	return nil
}

// moveLots moves every points lot of from with points left to into: a 'merge_in' lot
// with the same expiry on into, a 'merge_out' entry on from. The new lot's ref names
// the lot the points were first earned in, so reversing that earn finds them.
func (t *tx) moveLots(from, into string, res *MergeResult) error {
	rows, err := t.Query(`SELECT id, kind, ref, remaining, expires_ms, campaign_id FROM points_entry
		WHERE member_id = ? AND remaining > 0 ORDER BY expires_ms = 0, expires_ms, id`, from)
	if err != nil {
		return err
	}
	type lot struct {
		id, kind, ref, campaign string
		remaining, expires      int64
	}
	var lots []lot
	for rows.Next() {
		var l lot
		if err := rows.Scan(&l.id, &l.kind, &l.ref, &l.remaining, &l.expires, &l.campaign); err != nil {
			rows.Close()
			return err
		}
		lots = append(lots, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range lots {
		root := l.id
		if l.kind == core.PointsMergeIn && l.ref != "" {
			root = l.ref
		}
		if _, err := t.Exec(`UPDATE points_entry SET remaining = 0 WHERE id = ?`, l.id); err != nil {
			return err
		}
		if _, err := t.addPoints(&core.PointsEntry{MemberID: from, Kind: core.PointsMergeOut, Points: -l.remaining, Ref: root,
			RelatedID: into, CampaignID: l.campaign}); err != nil {
			return err
		}
		if _, err := t.addPoints(&core.PointsEntry{MemberID: into, Kind: core.PointsMergeIn, Points: l.remaining, Remaining: l.remaining,
			Expires: l.expires, Ref: root, RelatedID: from, CampaignID: l.campaign}); err != nil {
			return err
		}
		res.Points += l.remaining
	}
	res.Lots = len(lots)
	return nil
}

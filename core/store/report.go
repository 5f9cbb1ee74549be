package store

import (
	"fmt"

	"github.com/kameng/kameng/core"
)

// ReportRow is one group of a KPI report.
type ReportRow struct {
	Key         string      `json:"key"`  // day, store id or campaign id
	Name        string      `json:"name"` // store or campaign name, or the day
	Generated   int64       `json:"generated"`
	Distributed int64       `json:"distributed"`
	Redeemed    int64       `json:"redeemed"`
	RolledBack  int64       `json:"rolled_back"`
	Net         int64       `json:"net_redeemed"`
	Discount    core.Amount `json:"discount"`
	OrderAmount core.Amount `json:"order_amount"`
	Value       core.Amount `json:"value"`
}

// ReportFilter chooses the days (inclusive, YYYY-MM-DD in the stores' zone) and grouping.
type ReportFilter struct {
	From, To string
	By       string // day | store | campaign | total
	Store    string
	Campaign string
}

// Report sums the rollups: it never scans redemptions, so it costs the same over ten
// thousand redemptions as over a million.
func (db *DB) Report(f ReportFilter) ([]ReportRow, error) {
	var key, name, join string
	switch f.By {
	case "day", "":
		key, name = "r.day", "r.day"
	case "store":
		key, name, join = "r.store_id", "COALESCE(s.name, r.store_id)", "LEFT JOIN store s ON s.id = r.store_id"
	case "campaign":
		key, name, join = "r.campaign_id", "COALESCE(c.name, r.campaign_id)", "LEFT JOIN campaign c ON c.id = r.campaign_id"
	case "total":
		key, name = "'total'", "'total'"
	default:
		return nil, core.Invalid("by", "day|store|campaign|total", f.By, "unknown grouping %q", f.By)
	}
	q := fmt.Sprintf(`SELECT %s, %s, sum(r.generated), sum(r.distributed), sum(r.redeemed), sum(r.rolled_back), sum(r.discount),
		sum(r.order_amount), sum(r.value) FROM rollup r %s WHERE r.day >= ? AND r.day <= ?`, key, name, join)
	args := []any{f.From, f.To}
	if f.Store != "" {
		q += ` AND r.store_id = ?`
		args = append(args, f.Store)
	}
	if f.Campaign != "" {
		q += ` AND r.campaign_id = ?`
		args = append(args, f.Campaign)
	}
	q += fmt.Sprintf(` GROUP BY %s ORDER BY %s`, key, key)
	rows, err := db.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReportRow
	for rows.Next() {
		var r ReportRow
		if err := rows.Scan(&r.Key, &r.Name, &r.Generated, &r.Distributed, &r.Redeemed, &r.RolledBack, &r.Discount, &r.OrderAmount, &r.Value); err != nil {
			return nil, err
		}
		r.Net = r.Redeemed - r.RolledBack
		out = append(out, r)
	}
	return out, rows.Err()
}

// EachAudit streams the audit chain in order.
func (db *DB) EachAudit(fn func(e *core.AuditEntry) error) error {
	rows, err := db.r.Query(`SELECT seq, id, ts_ms, operator_id, device_id, action, entity, entity_id, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e core.AuditEntry
		var detail string
		if err := rows.Scan(&e.Seq, &e.ID, &e.Time, &e.Operator, &e.Device, &e.Action, &e.Entity, &e.EntityID, &detail, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.Detail = []byte(detail)
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyAudit walks the chain and returns the first broken entry, if any.
func (db *DB) VerifyAudit() (int64, *core.AuditBreak, error) {
	v := core.NewAuditVerifier()
	var brk *core.AuditBreak
	errStop := fmt.Errorf("stop")
	err := db.EachAudit(func(e *core.AuditEntry) error {
		if b := v.Next(e); b != nil {
			brk = b
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return v.Count, nil, err
	}
	return v.Count, brk, nil
}

// Counts are the sizes of the main tables, for doctor.
type Counts struct {
	Campaigns, Codes, Redemptions, Audit, Outbox, Pending int64
}

// Counts reads table sizes.
func (db *DB) Counts() (Counts, error) {
	var c Counts
	err := db.r.QueryRow(`SELECT (SELECT count(*) FROM campaign), (SELECT count(*) FROM code), (SELECT count(*) FROM redemption),
		(SELECT count(*) FROM audit), (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox WHERE pushed_ms = 0)`).
		Scan(&c.Campaigns, &c.Codes, &c.Redemptions, &c.Audit, &c.Outbox, &c.Pending)
	return c, err
}

// LedgerMismatches lists gift cards whose cached balance differs from their ledger sum.
func (db *DB) LedgerMismatches() ([]string, error) {
	return db.strings(`SELECT k.code FROM code k JOIN campaign c ON c.id = k.campaign_id AND c.kind = 'gift_card'
		LEFT JOIN (SELECT code, sum(amount) s FROM ledger GROUP BY code) l ON l.code = k.code
		WHERE k.balance != COALESCE(l.s, 0) OR k.balance < 0 LIMIT 100`)
}

// strings runs a query of one text column.
func (db *DB) strings(q string, args ...any) ([]string, error) {
	rows, err := db.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Outbox lists pending mutations in order.
func (db *DB) Outbox(limit int) ([]Mutation, error) {
	rows, err := db.r.Query(`SELECT mid, uuid, device_id, name, args, hlc, wall_ms, pushed_ms FROM outbox ORDER BY mid LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Mutation
	for rows.Next() {
		var m Mutation
		var args string
		if err := rows.Scan(&m.MID, &m.UUID, &m.DeviceID, &m.Name, &args, &m.HLC, &m.Wall, &m.Pushed); err != nil {
			return nil, err
		}
		m.Args = []byte(args)
		out = append(out, m)
	}
	return out, rows.Err()
}

package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kameng/kameng/core"
)

// Settlement (分账): a redemption's value (discount + value) is split among parties by the
// most specific rule — the campaign's, else the redeeming store's, else the default —
// when it is redeemed. The shares are stored with the redemption (redemption.split) and
// added to settle_rollup, per party × day × store × campaign; a rollback takes back
// exactly the stored shares on the day it happens. Statements read only the rollup;
// VerifyStatement recomputes them from the redemptions.

// The split rules change rarely and are needed by every redemption, so they are kept in
// memory by revision: every change writes a new unique revision (a UUIDv7) to meta
// 'split_rules', which the redeem path reads in the statement that looks the code up,
// so a change made through any handle or process is seen by the next redemption. A
// revision seen before needs no query; none at all (no rule was ever set) costs nothing.
type splitSet struct {
	campaign, store map[string]*core.SplitRule
	def             *core.SplitRule
}

var splitSets struct {
	sync.Mutex
	byRev map[string]*splitSet
}

// splitRule returns the rule that applies to a redemption of campaignID at storeID
// under revision rev, or nil.
func (t *tx) splitRule(rev, campaignID, storeID string) (*core.SplitRule, error) {
	if rev == "" {
		return nil, nil
	}
	splitSets.Lock()
	set := splitSets.byRev[rev]
	splitSets.Unlock()
	if set == nil {
		rules, err := splitRulesFrom(t.Tx)
		if err != nil {
			return nil, err
		}
		set = &splitSet{campaign: map[string]*core.SplitRule{}, store: map[string]*core.SplitRule{}}
		for i := range rules {
			r := &rules[i]
			switch r.Scope {
			case core.SplitCampaign:
				set.campaign[r.ScopeID] = r
			case core.SplitStore:
				set.store[r.ScopeID] = r
			default:
				set.def = r
			}
		}
		splitSets.Lock()
		if splitSets.byRev == nil || len(splitSets.byRev) >= 16 {
			splitSets.byRev = map[string]*splitSet{} // old revisions are not asked for again
		}
		splitSets.byRev[rev] = set
		splitSets.Unlock()
	}
	if r := set.campaign[campaignID]; r != nil {
		return r, nil
	}
	if r := set.store[storeID]; r != nil {
		return r, nil
	}
	return set.def, nil
}

// encodeShares is the stored form of a split: {"party": fen, …}, parties in order.
func encodeShares(shares []core.PartyAmount) string {
	m := make(map[string]core.Amount, len(shares))
	for _, s := range shares {
		m[s.Party] = s.Amount
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// decodeShares reads a stored split; "" (no rule applied) is none.
func decodeShares(s string) ([]core.PartyAmount, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]core.Amount
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, core.Errorf(core.ErrInternal, "stored split %q: %v", s, err)
	}
	out := make([]core.PartyAmount, 0, len(m))
	for p, a := range m {
		out = append(out, core.PartyAmount{Party: p, Amount: a})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Party < out[j].Party })
	return out, nil
}

// redeemedAt records a redemption (sign 1) or its rollback (sign -1), both at the
// redeeming store in its zone loc: in the hour-of-week rollup at the day and hour the
// redemption was made, and in the settlement rollup — shares on the day of the
// redemption, reversals on the day of the rollback (the convention of rollupAt).
func (t *tx) redeemedAt(r *core.Redemption, loc *time.Location, sign int64, shares []core.PartyAmount) error {
	made := time.UnixMilli(r.Created).In(loc)
	day := made.Format(time.DateOnly)
	if err := t.count(`UPDATE rollup_hour SET redeemed = redeemed + ?4 WHERE day = ?1 AND hour = ?2 AND store_id = ?3`,
		`INSERT INTO rollup_hour(day, hour, store_id, redeemed) VALUES (?1,?2,?3,?4)`,
		day, made.Hour(), r.StoreID, sign); err != nil {
		return err
	}
	if len(shares) == 0 {
		return nil
	}
	if t.now != r.Created {
		day = time.UnixMilli(t.now).In(loc).Format(time.DateOnly)
	}
	for _, s := range shares {
		var redeemed, rolledBack int64
		var gross, reversed core.Amount
		if sign > 0 {
			redeemed, gross = 1, s.Amount
		} else {
			rolledBack, reversed = 1, s.Amount
		}
		if err := t.count(`UPDATE settle_rollup SET redeemed = redeemed + ?5, rolled_back = rolled_back + ?6, gross = gross + ?7,
			  reversed = reversed + ?8 WHERE party = ?1 AND day = ?2 AND store_id = ?3 AND campaign_id = ?4`,
			`INSERT INTO settle_rollup(party, day, store_id, campaign_id, redeemed, rolled_back, gross, reversed) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)`,
			s.Party, day, r.StoreID, r.CampaignID, redeemed, rolledBack, gross, reversed); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Rules

type rowsQueryer interface {
	Query(string, ...any) (*sql.Rows, error)
}

func splitRulesFrom(q rowsQueryer) ([]core.SplitRule, error) {
	rows, err := q.Query(`SELECT r.id, r.scope, r.scope_id, COALESCE(c.name, s.name, ''), r.parties, r.remainder, r.created_ms, r.updated_ms
		FROM split_rule r LEFT JOIN campaign c ON r.scope = 'campaign' AND c.id = r.scope_id
		LEFT JOIN store s ON r.scope = 'store' AND s.id = r.scope_id
		ORDER BY CASE r.scope WHEN 'campaign' THEN 0 WHEN 'store' THEN 1 ELSE 2 END, 4, r.scope_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.SplitRule
	for rows.Next() {
		var r core.SplitRule
		var parties string
		if err := rows.Scan(&r.ID, &r.Scope, &r.ScopeID, &r.ScopeName, &parties, &r.Remainder, &r.Created, &r.Updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(parties), &r.Parties); err != nil {
			return nil, core.Errorf(core.ErrInternal, "split rule %s: %v", r.ID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SplitRules lists the split rules, campaign rules first, then store rules, then the default.
func (db *DB) SplitRules() ([]core.SplitRule, error) { return splitRulesFrom(db.r) }

// splitScope resolves a rule's scope to the id it is stored under: a campaign or store
// given by id or name; the default has none.
func (t *tx) splitScope(scope, ref string) (id, name string, err error) {
	switch scope {
	case core.SplitCampaign:
		c, err := t.campaign(ref)
		if err != nil {
			return "", "", err
		}
		return c.ID, c.Name, nil
	case core.SplitStore:
		err := t.QueryRow(`SELECT id, name FROM store WHERE id = ? OR name = ?`, ref, ref).Scan(&id, &name)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", core.NotFound("store", ref)
		}
		return id, name, err
	case core.SplitDefault:
		return "", "", nil
	}
	return "", "", core.Invalid("scope", "campaign|store|default", scope, "unknown split scope %q", scope)
}

// bumpSplitRev gives the split rules a new revision, so every process reloads them.
func (t *tx) bumpSplitRev() error {
	_, err := t.Exec(`INSERT INTO meta(key, value) VALUES ('split_rules', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, core.NewID())
	return err
}

// SetSplitRule creates or replaces the rule of a scope (ScopeID: a campaign or store
// by id or name). Redemptions made before keep the shares they were split into.
func (db *DB) SetSplitRule(a *Actor, r core.SplitRule) (*core.SplitRule, error) {
	if r.Scope == core.SplitDefault {
		r.ScopeID = ""
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	for _, p := range r.Parties {
		// Statements address a party inside the stored JSON by a quoted path.
		if strings.ContainsAny(p.Party, "\"\\") || strings.TrimSpace(p.Party) != p.Party {
			return nil, core.Invalid("parties", "a name without quotes or backslashes", p.Party, "bad party name %q", p.Party)
		}
	}
	err := db.write(a, func(t *tx) error {
		id, name, err := t.splitScope(r.Scope, r.ScopeID)
		if err != nil {
			return err
		}
		r.ScopeID, r.ScopeName = id, name
		var before string
		err = t.QueryRow(`SELECT id, created_ms, parties || ' ' || remainder FROM split_rule WHERE scope = ? AND scope_id = ?`, r.Scope, r.ScopeID).
			Scan(&r.ID, &r.Created, &before)
		if errors.Is(err, sql.ErrNoRows) {
			r.ID, r.Created = core.NewID(), t.now
		} else if err != nil {
			return err
		}
		r.Updated = t.now
		parties, _ := json.Marshal(r.Parties)
		if _, err := t.Exec(`INSERT INTO split_rule(id, scope, scope_id, parties, remainder, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?)
			ON CONFLICT(scope, scope_id) DO UPDATE SET parties = excluded.parties, remainder = excluded.remainder, updated_ms = excluded.updated_ms`,
			r.ID, r.Scope, r.ScopeID, string(parties), r.Remainder, r.Created, r.Updated); err != nil {
			return err
		}
		if err := t.bumpSplitRev(); err != nil {
			return err
		}
		return t.journal("settle.rules.set", "split_rule", r.ID,
			map[string]any{"scope": r.Scope, "scope_id": r.ScopeID, "parties": json.RawMessage(parties), "remainder": r.Remainder, "before": before},
			"settle.rules.set@1", r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// RemoveSplitRule deletes the rule of a scope; redemptions from then on fall back to
// the next rule in order, or are not split.
func (db *DB) RemoveSplitRule(a *Actor, scope, ref string) error {
	return db.write(a, func(t *tx) error {
		id, _, err := t.splitScope(scope, ref)
		if err != nil {
			return err
		}
		var ruleID, parties, remainder string
		err = t.QueryRow(`SELECT id, parties, remainder FROM split_rule WHERE scope = ? AND scope_id = ?`, scope, id).Scan(&ruleID, &parties, &remainder)
		if errors.Is(err, sql.ErrNoRows) {
			what := scope
			if ref != "" {
				what += " " + ref
			}
			return core.NotFound("split_rule", what)
		}
		if err != nil {
			return err
		}
		if _, err := t.Exec(`DELETE FROM split_rule WHERE id = ?`, ruleID); err != nil {
			return err
		}
		if err := t.bumpSplitRev(); err != nil {
			return err
		}
		return t.journal("settle.rules.remove", "split_rule", ruleID,
			map[string]any{"scope": scope, "scope_id": id, "parties": json.RawMessage(parties), "remainder": remainder},
			"settle.rules.remove@1", map[string]any{"id": ruleID, "scope": scope, "scope_id": id})
	})
}

// ---------------------------------------------------------------------------
// Statements

// SettleTotals are the counts and amounts of a statement or of one of its lines.
type SettleTotals struct {
	Redeemed   int64       `json:"redeemed"`
	RolledBack int64       `json:"rolled_back"`
	Gross      core.Amount `json:"gross"`    // shares of redemptions made
	Reversed   core.Amount `json:"reversed"` // shares taken back by rollbacks made
	Net        core.Amount `json:"net"`      // gross − reversed
}

func (s *SettleTotals) add(o SettleTotals) {
	s.Redeemed += o.Redeemed
	s.RolledBack += o.RolledBack
	s.Gross += o.Gross
	s.Reversed += o.Reversed
	s.Net = s.Gross - s.Reversed
}

// StatementLine is one day × store × campaign of a party's statement.
type StatementLine struct {
	Day        string `json:"day"`
	StoreID    string `json:"store_id"`
	Store      string `json:"store"`
	CampaignID string `json:"campaign_id"`
	Campaign   string `json:"campaign"`
	SettleTotals
}

// PartyTotals is one party's totals over a statement's period.
type PartyTotals struct {
	Party string `json:"party"`
	SettleTotals
}

// Reconciliation ties a statement to the redeemed value: the shares of all parties
// add up to the value (discount + value) of the split redemptions made in the period
// minus that of their rollbacks made in the period. What no rule split is the rest of
// the KPI rollup's redeemed value.
type Reconciliation struct {
	Parties       []PartyTotals `json:"parties"`
	AllParties    SettleTotals  `json:"all_parties"`    // redeemed and rolled back count each redemption once per party
	RedeemedValue core.Amount   `json:"redeemed_value"` // every redemption's discount + value in the period, net of rollbacks in it
	Unsplit       core.Amount   `json:"unsplit"`        // of which no split rule applied: redeemed_value − all_parties.net
}

// Statement is a party's settlement over a period of days (in each store's zone).
type Statement struct {
	Party          string          `json:"party"`
	From           string          `json:"from"`
	To             string          `json:"to"`
	Lines          []StatementLine `json:"lines"`
	Totals         SettleTotals    `json:"totals"`
	Reconciliation Reconciliation  `json:"reconciliation"`
	Verify         *StatementCheck `json:"verify,omitempty"`
}

// Statement reads a party's settlement for the days from..to (YYYY-MM-DD, inclusive)
// from the settlement rollup; it never scans redemptions.
func (db *DB) Statement(party, from, to string) (*Statement, error) {
	if from > to {
		return nil, core.Invalid("from", "a day on or before the last day", from, "the period ends before it starts")
	}
	var known int
	if err := db.r.QueryRow(`SELECT EXISTS (SELECT 1 FROM settle_rollup WHERE party = ?) OR EXISTS (SELECT 1 FROM split_rule, json_each(split_rule.parties) p
		WHERE json_extract(p.value, '$.party') = ?)`, party, party).Scan(&known); err != nil {
		return nil, err
	}
	if known == 0 {
		return nil, core.NotFound("party", party)
	}
	s := &Statement{Party: party, From: from, To: to, Lines: []StatementLine{}}
	rows, err := db.r.Query(`SELECT r.day, r.store_id, COALESCE(s.name, r.store_id), r.campaign_id, COALESCE(c.name, r.campaign_id),
		r.redeemed, r.rolled_back, r.gross, r.reversed
		FROM settle_rollup r LEFT JOIN store s ON s.id = r.store_id LEFT JOIN campaign c ON c.id = r.campaign_id
		WHERE r.party = ? AND r.day >= ? AND r.day <= ? ORDER BY r.day, 3, 5`, party, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var l StatementLine
		if err := rows.Scan(&l.Day, &l.StoreID, &l.Store, &l.CampaignID, &l.Campaign, &l.Redeemed, &l.RolledBack, &l.Gross, &l.Reversed); err != nil {
			return nil, err
		}
		l.Net = l.Gross - l.Reversed
		s.Totals.add(l.SettleTotals)
		s.Lines = append(s.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rec := &s.Reconciliation
	rec.Parties = []PartyTotals{}
	// Party by party, each a range of the primary key: the cost follows the period, not
	// the history.
	parties, err := db.strings(`WITH RECURSIVE p(party) AS (SELECT min(party) FROM settle_rollup
		UNION ALL SELECT (SELECT min(party) FROM settle_rollup WHERE party > p.party) FROM p WHERE p.party IS NOT NULL)
		SELECT party FROM p WHERE party IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	for _, name := range parties {
		p := PartyTotals{Party: name}
		if err := db.r.QueryRow(`SELECT COALESCE(sum(redeemed), 0), COALESCE(sum(rolled_back), 0), COALESCE(sum(gross), 0),
			COALESCE(sum(reversed), 0) FROM settle_rollup WHERE party = ? AND day >= ? AND day <= ?`, name, from, to).
			Scan(&p.Redeemed, &p.RolledBack, &p.Gross, &p.Reversed); err != nil {
			return nil, err
		}
		if p.Redeemed == 0 && p.RolledBack == 0 {
			continue
		}
		p.Net = p.Gross - p.Reversed
		rec.AllParties.add(p.SettleTotals)
		rec.Parties = append(rec.Parties, p)
	}
	if err := db.r.QueryRow(`SELECT COALESCE(sum(discount + value), 0) FROM rollup WHERE day >= ? AND day <= ?`, from, to).Scan(&rec.RedeemedValue); err != nil {
		return nil, err
	}
	rec.Unsplit = rec.RedeemedValue - rec.AllParties.Net
	return s, nil
}

// StatementCheck is a statement recomputed from the redemption table: what the
// rollup says against what the redemptions and their stored shares say.
type StatementCheck struct {
	OK bool `json:"ok"`
	// Split redemptions made in the period and split rollbacks made in it, with their
	// discount + value: all parties' gross and reversed must equal these.
	Redeemed   int64       `json:"redeemed"`
	RolledBack int64       `json:"rolled_back"`
	Gross      core.Amount `json:"gross"`
	Reversed   core.Amount `json:"reversed"`
	Net        core.Amount `json:"net"`
	// The party's own stored shares of those.
	Party SettleTotals `json:"party"`
	// Redemptions no rule split, net of their rollbacks in the period.
	Unsplit     core.Amount     `json:"unsplit"`
	Differences []StatementDiff `json:"differences"`
}

// StatementDiff is one figure of one day × store × campaign on which the rollup and the
// redemptions disagree. Diff is recomputed − rollup, in fen (or a count).
type StatementDiff struct {
	Day        string `json:"day"`
	StoreID    string `json:"store_id"`
	CampaignID string `json:"campaign_id"`
	Figure     string `json:"figure"` // all.gross, all.reversed, party.redeemed, party.rolled_back, party.gross, party.reversed, unsplit
	Rollup     int64  `json:"rollup"`
	Recomputed int64  `json:"recomputed"`
	Diff       int64  `json:"diff"`
}

type cellKey struct{ day, store, campaign string }

// cellFigures are the figures compared per cell, in StatementDiff.Figure order.
type cellFigures [7]int64

var cellFigureNames = [7]string{"all.gross", "all.reversed", "party.redeemed", "party.rolled_back", "party.gross", "party.reversed", "unsplit"}

// VerifyStatement recomputes s (as made by Statement) from the redemption table —
// redemptions made and rolled back in the period, grouped by the day in their store's
// zone — and records any difference, to the fen, in s.Verify.
func (db *DB) VerifyStatement(s *Statement) error {
	from, err := time.Parse(time.DateOnly, s.From)
	if err != nil {
		return core.Invalid("from", "YYYY-MM-DD", s.From, "not a day")
	}
	to, err := time.Parse(time.DateOnly, s.To)
	if err != nil {
		return core.Invalid("to", "YYYY-MM-DD", s.To, "not a day")
	}
	stores, err := db.Stores()
	if err != nil {
		return err
	}
	locs := map[string]*time.Location{}
	var lo, hi int64
	for i, st := range stores {
		loc := st.Location()
		locs[st.ID] = loc
		a := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc).UnixMilli()
		b := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, loc).UnixMilli()
		if i == 0 || a < lo {
			lo = a
		}
		if i == 0 || b > hi {
			hi = b
		}
	}
	// Rollup side.
	rollup := map[cellKey]*cellFigures{}
	cell := func(m map[cellKey]*cellFigures, k cellKey) *cellFigures {
		f := m[k]
		if f == nil {
			f = &cellFigures{}
			m[k] = f
		}
		return f
	}
	rows, err := db.r.Query(`SELECT day, store_id, campaign_id, sum(gross), sum(reversed),
		sum(CASE WHEN party = ? THEN redeemed END), sum(CASE WHEN party = ? THEN rolled_back END),
		sum(CASE WHEN party = ? THEN gross END), sum(CASE WHEN party = ? THEN reversed END)
		FROM settle_rollup WHERE day >= ? AND day <= ? GROUP BY day, store_id, campaign_id`, s.Party, s.Party, s.Party, s.Party, s.From, s.To)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k cellKey
		var f cellFigures
		var pr, pb, pg, pv sql.NullInt64
		if err := rows.Scan(&k.day, &k.store, &k.campaign, &f[0], &f[1], &pr, &pb, &pg, &pv); err != nil {
			rows.Close()
			return err
		}
		f[2], f[3], f[4], f[5] = pr.Int64, pb.Int64, pg.Int64, pv.Int64
		*cell(rollup, k) = f
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The unsplit value of a cell is the KPI rollup's net value less all parties' net.
	value := map[cellKey]int64{}
	rows, err = db.r.Query(`SELECT day, store_id, campaign_id, sum(discount + value) FROM rollup WHERE day >= ? AND day <= ?
		GROUP BY day, store_id, campaign_id`, s.From, s.To)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k cellKey
		var v int64
		if err := rows.Scan(&k.day, &k.store, &k.campaign, &v); err != nil {
			rows.Close()
			return err
		}
		value[k] = v
		cell(rollup, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for k, f := range rollup {
		f[6] = value[k] - (f[0] - f[1])
	}
	// Redemption side, by quarter hour, each then placed on its day in the store's zone.
	path := `$."` + s.Party + `"`
	redone := map[cellKey]*cellFigures{}
	chk := &StatementCheck{Differences: []StatementDiff{}}
	scan := func(q string, rolledBack bool) error {
		rows, err := db.r.Query(q, path, quarterHour, lo, hi)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k cellKey
			var b, n, value, partyN, share, unsplit int64
			if err := rows.Scan(&k.store, &k.campaign, &b, &n, &value, &partyN, &share, &unsplit); err != nil {
				return err
			}
			loc := locs[k.store]
			if loc == nil {
				loc = core.LoadLocation("")
			}
			k.day = time.UnixMilli(b * quarterHour).In(loc).Format(time.DateOnly)
			if k.day < s.From || k.day > s.To {
				continue
			}
			f := cell(redone, k)
			if rolledBack {
				f[1] += value
				f[3] += partyN
				f[5] += share
				f[6] -= unsplit
				chk.Unsplit -= core.Amount(unsplit)
				chk.RolledBack += n
				chk.Reversed += core.Amount(value)
				chk.Party.RolledBack += partyN
				chk.Party.Reversed += core.Amount(share)
			} else {
				f[0] += value
				f[2] += partyN
				f[4] += share
				f[6] += unsplit
				chk.Unsplit += core.Amount(unsplit)
				chk.Redeemed += n
				chk.Gross += core.Amount(value)
				chk.Party.Redeemed += partyN
				chk.Party.Gross += core.Amount(share)
			}
		}
		return rows.Err()
	}
	// Only integers besides the two ids go into the sort: it is most of the cost.
	const cols = `SELECT store_id, campaign_id, b, sum(s), sum(s * v), count(x), COALESCE(sum(x), 0), sum((1 - s) * v)
		FROM (SELECT store_id, campaign_id, %s / ?2 AS b, split != '' AS s, discount + value AS v, json_extract(NULLIF(split, ''), ?1) AS x
		      FROM redemption WHERE %s)
		GROUP BY b, store_id, campaign_id`
	if err := scan(fmt.Sprintf(cols, "created_ms", "created_ms >= ?3 AND created_ms < ?4"), false); err != nil {
		return err
	}
	if err := scan(fmt.Sprintf(cols, "rolled_back_ms", "status = 'rolled_back' AND rolled_back_ms >= ?3 AND rolled_back_ms < ?4"), true); err != nil {
		return err
	}
	chk.Net = chk.Gross - chk.Reversed
	chk.Party.Net = chk.Party.Gross - chk.Party.Reversed
	for k := range redone {
		cell(rollup, k)
	}
	for k, a := range rollup {
		b := redone[k]
		if b == nil {
			b = &cellFigures{}
		}
		for i := range a {
			if a[i] != b[i] {
				chk.Differences = append(chk.Differences, StatementDiff{Day: k.day, StoreID: k.store, CampaignID: k.campaign,
					Figure: cellFigureNames[i], Rollup: a[i], Recomputed: b[i], Diff: b[i] - a[i]})
			}
		}
	}
	sort.Slice(chk.Differences, func(i, j int) bool {
		a, b := chk.Differences[i], chk.Differences[j]
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.StoreID != b.StoreID {
			return a.StoreID < b.StoreID
		}
		if a.CampaignID != b.CampaignID {
			return a.CampaignID < b.CampaignID
		}
		return a.Figure < b.Figure
	})
	all := s.Reconciliation.AllParties
	chk.OK = len(chk.Differences) == 0 && chk.Gross == all.Gross && chk.Reversed == all.Reversed &&
		chk.Party.Gross == s.Totals.Gross && chk.Party.Reversed == s.Totals.Reversed &&
		chk.Party.Redeemed == s.Totals.Redeemed && chk.Party.RolledBack == s.Totals.RolledBack &&
		chk.Unsplit == s.Reconciliation.Unsplit
	s.Verify = chk
	return nil
}

package store

import (
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/kameng/kameng/core"
)

// Automatic issuing (自动发券): rules hand a campaign's code to members on sign-up
// (welcome), once their spend reaches a threshold (spend), after some days without a
// visit (idle) and in their birthday month (birthday). The issued table's key (rule,
// member, period) is what makes each fire once: period is '' for welcome and spend,
// the last visit day for idle, the year for birthday. Idle and birthday coupons are
// marketing and go only to members who consented to it.

// Issued is one code a rule handed to a member.
type Issued struct {
	RuleID     string `json:"rule_id"`
	Kind       string `json:"kind"`
	MemberID   string `json:"member_id"`
	CampaignID string `json:"campaign_id"`
	Code       string `json:"code"`
	Period     string `json:"period,omitempty"`
}

const ruleCols = `r.id, r.kind, r.campaign_id, c.name, r.threshold, r.active, r.created_ms`

func scanRules(rows *sql.Rows, err error) ([]core.IssueRule, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []core.IssueRule{}
	for rows.Next() {
		var r core.IssueRule
		if err := rows.Scan(&r.ID, &r.Kind, &r.CampaignID, &r.Campaign, &r.Threshold, &r.Active, &r.Created); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddIssueRule saves a new rule for a campaign (id or name).
func (db *DB) AddIssueRule(a *Actor, r core.IssueRule) (*core.IssueRule, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	err := db.write(a, func(t *tx) error {
		c, err := t.campaign(r.CampaignID)
		if err != nil {
			return err
		}
		if c.Status == core.StatusArchived {
			return core.Errorf(core.ErrConflict, "campaign %q is archived", c.Name)
		}
		r.ID, r.CampaignID, r.Campaign, r.Active, r.Created = core.NewID(), c.ID, c.Name, true, t.now
		if _, err := t.Exec(`INSERT INTO issue_rule(id, kind, campaign_id, threshold, active, created_ms) VALUES (?,?,?,?,1,?)`,
			r.ID, r.Kind, r.CampaignID, r.Threshold, r.Created); err != nil {
			return err
		}
		return t.journal("issue_rule.add", "issue_rule", r.ID, map[string]any{"kind": r.Kind, "campaign_id": c.ID, "threshold": r.Threshold},
			"issue_rule.add@1", r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// IssueRules lists the active rules (all of them with all), oldest first.
func (db *DB) IssueRules(all bool) ([]core.IssueRule, error) {
	q := `SELECT ` + ruleCols + ` FROM issue_rule r JOIN campaign c ON c.id = r.campaign_id`
	if !all {
		q += ` WHERE r.active = 1`
	}
	return scanRules(db.r.Query(q + ` ORDER BY r.created_ms, r.id`))
}

// RemoveIssueRule stops a rule. It stays on record (deactivated) with what it issued.
func (db *DB) RemoveIssueRule(a *Actor, id string) error {
	return db.write(a, func(t *tx) error {
		r, err := t.Exec(`UPDATE issue_rule SET active = 0 WHERE id = ? AND active = 1`, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return core.NotFound("issue_rule", id)
		}
		return t.journal("issue_rule.remove", "issue_rule", id, map[string]any{}, "issue_rule.remove@1", map[string]any{"id": id})
	})
}

// ruleInTx is a rule with its campaign, loaded once per transaction.
type ruleInTx struct {
	core.IssueRule
	campaign *core.Campaign
}

func (t *tx) rulesOf(kind string) ([]*ruleInTx, error) {
	rules, err := scanRules(t.Query(`SELECT `+ruleCols+` FROM issue_rule r JOIN campaign c ON c.id = r.campaign_id
		WHERE r.kind = ? AND r.active = 1 ORDER BY r.created_ms, r.id`, kind))
	if err != nil {
		return nil, err
	}
	out := make([]*ruleInTx, 0, len(rules))
	for _, r := range rules {
		c, err := t.campaign(r.CampaignID)
		if err != nil {
			return nil, err
		}
		out = append(out, &ruleInTx{IssueRule: r, campaign: c})
	}
	return out, nil
}

// live reports whether a campaign can take part in automatic issuing now: active and
// not over.
func (t *tx) live(c *core.Campaign) bool {
	return c.Status == core.StatusActive && (c.Rules.ValidTo == 0 || c.Rules.ValidTo > t.now)
}

// fire hands the rule's code to the member for period unless it already did, the
// campaign is not live, or the member holds the campaign's per-member limit of codes.
// It returns nil when nothing was issued.
func (t *tx) fire(r *ruleInTx, memberID, period string) (*Issued, error) {
	var one int
	err := t.QueryRow(`SELECT 1 FROM issued WHERE rule_id = ? AND member_id = ? AND period = ?`, r.ID, memberID, period).Scan(&one)
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	c := r.campaign
	if !t.live(c) {
		return nil, nil
	}
	if c.Rules.PerMemberLimit > 0 {
		var held int
		if err := t.QueryRow(`SELECT count(*) FROM code WHERE member_id = ? AND campaign_id = ?`, memberID, c.ID).Scan(&held); err != nil {
			return nil, err
		}
		if held >= c.Rules.PerMemberLimit {
			return nil, nil
		}
	}
	code, err := t.handOut(c, memberID, r.Kind)
	if err != nil {
		return nil, err
	}
	if _, err := t.Exec(`INSERT INTO issued(rule_id, member_id, period, code, created_ms) VALUES (?,?,?,?,?)`,
		r.ID, memberID, period, code, t.now); err != nil {
		return nil, err
	}
	return &Issued{RuleID: r.ID, Kind: r.Kind, MemberID: memberID, CampaignID: c.ID, Code: code, Period: period}, nil
}

// fireAll fires every rule for one member and period, collecting what was issued.
func (t *tx) fireAll(rules []*ruleInTx, memberID, period string) ([]Issued, error) {
	out := []Issued{}
	for _, r := range rules {
		is, err := t.fire(r, memberID, period)
		if err != nil {
			return nil, err
		}
		if is != nil {
			out = append(out, *is)
		}
	}
	return out, nil
}

// fireWelcome gives a new member the welcome rules' codes.
func (t *tx) fireWelcome(memberID string) ([]Issued, error) {
	rules, err := t.rulesOf(core.IssueWelcome)
	if err != nil || len(rules) == 0 {
		return []Issued{}, err
	}
	return t.fireAll(rules, memberID, "")
}

// fireSpend fires the spend rules whose threshold the member's lifetime spend has reached.
func (t *tx) fireSpend(memberID string, spend core.Amount) ([]Issued, error) {
	var due int
	if err := t.QueryRow(`SELECT count(*) FROM issue_rule r WHERE r.kind = 'spend' AND r.active = 1 AND r.threshold <= ?
		AND NOT EXISTS (SELECT 1 FROM issued i WHERE i.rule_id = r.id AND i.member_id = ? AND i.period = '')`, spend, memberID).Scan(&due); err != nil || due == 0 {
		return []Issued{}, err
	}
	rules, err := t.rulesOf(core.IssueSpend)
	if err != nil {
		return nil, err
	}
	reached := rules[:0]
	for _, r := range rules {
		if core.Amount(r.Threshold) <= spend {
			reached = append(reached, r)
		}
	}
	return t.fireAll(reached, memberID, "")
}

// handOut gives one code of campaign c to the member (an unused code of the campaign,
// or a freshly generated one), records who received it, and returns the code.
//
// The code is the first of the campaign not yet handed out (never distributed, not
// linked to a member, unused and active); when there is none a single code is
// generated in the campaign's format, except for card keys, which only come from
// imports. The member's phone is sealed onto it and the validity window set exactly
// as Distribute does. meta 'handout:<campaign>' remembers the code row below which
// none is free any more (a handed-out code never becomes free again), so handing out
// stays one index step however many codes went before.
func (t *tx) handOut(c *core.Campaign, memberID, why string) (string, error) {
	if c.Status == core.StatusArchived {
		return "", core.Errorf(core.ErrConflict, "campaign %q is archived", c.Name)
	}
	var sealedPhone, ix []byte
	var status string
	err := t.QueryRow(`SELECT phone, phone_ix, status FROM member WHERE id = ?`, memberID).Scan(&sealedPhone, &ix, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.NotFound("member", memberID)
	}
	if err != nil {
		return "", err
	}
	if status != core.MemberActive || sealedPhone == nil {
		e := core.Errorf(core.ErrConflict, "member %s is %s", memberID, status)
		e.Field = "member"
		return "", e
	}
	sealer, err := t.db.sealer()
	if err != nil {
		return "", err
	}
	phone, err := sealer.Open(sealedPhone, memberID)
	if err != nil {
		return "", err
	}
	hintKey := "handout:" + c.ID
	var hint int64
	if err := t.QueryRow(`SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?`, hintKey).Scan(&hint); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	const free = `SELECT id, ` + codeCols + ` FROM code WHERE campaign_id = ? AND id > ? AND distributed_ms = 0
		AND member_id IS NULL AND uses = 0 AND status = 'active' ORDER BY id LIMIT 1`
	var row int64
	var k *core.Code
	scan := func() error {
		var err error
		r := t.QueryRow(free, c.ID, hint)
		k, _, err = scanCode(rowPrefix{r, &row})
		return err
	}
	var batch *core.Batch
	err = scan()
	if errors.Is(err, sql.ErrNoRows) {
		if c.Kind == core.KindCardKey {
			e := core.Errorf(core.ErrConflict, "campaign %q has no codes left to hand out: import more", c.Name)
			e.Field, e.Params = "campaign", map[string]string{"value": c.Name, "why": "pool_empty"}
			return "", e
		}
		if batch, err = t.generate(c, 1, nil); err != nil {
			return "", err
		}
		err = scan()
	}
	if err != nil {
		return "", err
	}
	if err := t.distributeOne(c, k, sealer, phone, ix, memberID); err != nil {
		return "", err
	}
	if _, err := t.Exec(`INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, hintKey, row); err != nil {
		return "", err
	}
	if err := t.rollup(c.ID, Rollup{Distributed: 1}); err != nil {
		return "", err
	}
	detail := map[string]any{"member_id": memberID, "campaign_id": c.ID, "why": why}
	args := map[string]any{"member_id": memberID, "code": k.Code, "campaign_id": c.ID, "why": why, "phone_ix": ix,
		"valid_from_ms": k.ValidFrom, "valid_to_ms": k.ValidTo}
	if batch != nil {
		detail["batch"], args["batch"] = batch.ID, batch
	}
	return k.Code, t.journal("member.handout", "code", k.Code, detail, "member.handout@1", args)
}

// rowPrefix scans a leading rowid before the columns scanCode reads.
type rowPrefix struct {
	row *sql.Row
	id  *int64
}

func (r rowPrefix) Scan(dest ...any) error { return r.row.Scan(append([]any{r.id}, dest...)...) }

// IssueRunRule is what one rule did in a run.
type IssueRunRule struct {
	RuleID   string `json:"rule_id"`
	Kind     string `json:"kind"`
	Campaign string `json:"campaign"`
	Checked  int64  `json:"checked"` // members it applied to
	Issued   int64  `json:"issued"`
}

// IssueRun is the outcome of running the rules.
type IssueRun struct {
	Rules  []IssueRunRule `json:"rules"`
	Issued int64          `json:"issued"`
}

// runChunk is how many members one transaction of a run handles.
const runChunk = 500

// RunIssueRules applies the idle, birthday and spend rules to every member they
// apply to today (welcome rules fire at sign-up). Each member's codes are handed out
// in a transaction with the issued record, in chunks; a run repeated the same day
// issues nothing new. progress, if set, is told how many candidates are done.
func (db *DB) RunIssueRules(a *Actor, progress func(done, total int64)) (*IssueRun, error) {
	loc := a.Store.Location()
	now := db.Clock.Now()
	local := now.In(loc)
	rules, err := db.IssueRules(false)
	if err != nil {
		return nil, err
	}
	type cand struct{ id, period string }
	type job struct {
		rule  core.IssueRule
		cands []cand
	}
	var jobs []job
	var total int64
	for _, r := range rules {
		var q string
		var arg any
		switch r.Kind {
		case core.IssueIdle:
			q = `SELECT id, last_visit_ms FROM member WHERE status = 'active' AND consent = 1 AND last_visit_ms > 0 AND last_visit_ms < ? ORDER BY id`
			arg = now.Add(-time.Duration(r.Threshold) * 24 * time.Hour).UnixMilli()
		case core.IssueBirthday:
			q = `SELECT id, 0 FROM member WHERE status = 'active' AND consent = 1 AND birth_month = ? ORDER BY id`
			arg = int(local.Month())
		case core.IssueSpend:
			q = `SELECT id, 0 FROM member WHERE status = 'active' AND spend >= ? ORDER BY id`
			arg = r.Threshold
		default:
			continue
		}
		rows, err := db.r.Query(q, arg)
		if err != nil {
			return nil, err
		}
		j := job{rule: r}
		for rows.Next() {
			var c cand
			var last int64
			if err := rows.Scan(&c.id, &last); err != nil {
				rows.Close()
				return nil, err
			}
			switch r.Kind {
			case core.IssueIdle:
				c.period = time.UnixMilli(last).In(loc).Format(time.DateOnly)
			case core.IssueBirthday:
				c.period = strconv.Itoa(local.Year())
			}
			j.cands = append(j.cands, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
		total += int64(len(j.cands))
	}
	run := &IssueRun{Rules: []IssueRunRule{}}
	var done int64
	for _, j := range jobs {
		rr := IssueRunRule{RuleID: j.rule.ID, Kind: j.rule.Kind, Campaign: j.rule.Campaign, Checked: int64(len(j.cands))}
		for start := 0; start < len(j.cands); start += runChunk {
			chunk := j.cands[start:min(start+runChunk, len(j.cands))]
			var issued int64
			err := db.write(a, func(t *tx) error {
				issued = 0
				c, err := t.campaign(j.rule.CampaignID)
				if err != nil {
					return err
				}
				r := &ruleInTx{IssueRule: j.rule, campaign: c}
				for _, m := range chunk {
					if ok, err := t.stillEligible(&j.rule, m.id); err != nil || !ok {
						if err != nil {
							return err
						}
						continue
					}
					is, err := t.fire(r, m.id, m.period)
					if err != nil {
						return err
					}
					if is != nil {
						issued++
					}
				}
				return nil
			})
			if err != nil {
				run.Rules = append(run.Rules, rr)
				return run, err
			}
			rr.Issued += issued
			run.Issued += issued
			done += int64(len(chunk))
			if progress != nil {
				progress(done, total)
			}
		}
		run.Rules = append(run.Rules, rr)
	}
	if progress != nil {
		progress(total, total)
	}
	return run, nil
}

// stillEligible re-checks in the write transaction what selected the member (consent
// may have been withdrawn, the member merged or anonymised since).
func (t *tx) stillEligible(r *core.IssueRule, memberID string) (bool, error) {
	var status string
	var consent bool
	var spend core.Amount
	err := t.QueryRow(`SELECT status, consent, spend FROM member WHERE id = ?`, memberID).Scan(&status, &consent, &spend)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch {
	case status != core.MemberActive:
		return false, nil
	case r.Kind == core.IssueIdle || r.Kind == core.IssueBirthday:
		return consent, nil
	case r.Kind == core.IssueSpend:
		return spend >= core.Amount(r.Threshold), nil
	}
	return true, nil
}

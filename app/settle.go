package app

import (
	"strconv"
	"strings"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// Settlement (结算/分账): split rules and statements.

func init() {
	// Field names other features may define too: added where missing.
	for k, v := range map[string][2]string{
		"field.parties":    {"分账方", "parties"},
		"field.remainder":  {"尾差归属", "remainder"},
		"field.scope":      {"适用范围", "scope"},
		"field.party":      {"结算方", "party"},
		"field.month":      {"月份", "month"},
		"field.split_rule": {"分账规则", "split rule"},
		"field.days":       {"天数", "days"},
		"field.export":     {"导出文件", "export file"},
	} {
		if !Has(k) {
			messages[k] = v
		}
	}
	addMessages(map[string][2]string{
		"settle.scope.campaign":   {"活动", "campaign"},
		"settle.scope.store":      {"门店", "store"},
		"settle.scope.default":    {"默认", "default"},
		"settle.col.scope":        {"范围", "Scope"},
		"settle.col.applies":      {"适用于", "Applies to"},
		"settle.col.parties":      {"分账比例", "Shares"},
		"settle.col.remainder":    {"尾差归", "Remainder to"},
		"settle.col.party":        {"结算方", "Party"},
		"settle.col.redeemed":     {"核销笔数", "Redeemed"},
		"settle.col.rolled":       {"撤销笔数", "Rolled back"},
		"settle.col.gross":        {"分账金额", "Gross"},
		"settle.col.reversed":     {"撤销冲回", "Reversed"},
		"settle.col.net":          {"应结金额", "Net"},
		"settle.col.figure":       {"项目", "Figure"},
		"settle.col.rollup":       {"汇总表", "Rollup"},
		"settle.col.recomputed":   {"重算", "Recomputed"},
		"settle.col.diff":         {"差额", "Difference"},
		"settle.largest":          {"占比最大者", "largest share"},
		"msg.settle_rule_saved":   {"已保存%s分账规则：%s（尾差归 %s）", "Saved the %s split rule: %s (remainder to %s)"},
		"msg.settle_rule_removed": {"已删除%s分账规则", "Removed the %s split rule"},
		"msg.settle_no_rules":     {"尚无分账规则：核销不分账", "No split rules: redemptions are not split"},
		"msg.settle_title":        {"结算单：%s，%s 至 %s", "Statement for %s, %s to %s"},
		"msg.settle_total":        {"合计", "Total"},
		"msg.settle_reconcile":    {"对账", "Reconciliation"},
		"msg.settle_all_parties":  {"全部结算方应结合计", "All parties, net"},
		"msg.settle_redeemed":     {"期间核销价值（含无规则，扣除撤销）", "Redeemed value in the period (all, net of rollbacks)"},
		"msg.settle_unsplit":      {"其中未分账（无规则）", "of which not split (no rule)"},
		"msg.settle_verify_ok":    {"复核通过：核销明细重算结果与汇总一致，分毫不差", "Verified: recomputed from the redemptions, every figure matches to the fen"},
		"msg.settle_verify_bad":   {"复核发现 %d 处差异", "Verification found %d differences"},
		"msg.settle_verify_sums":  {"核销明细：分账核销 %s，撤销 %s，净额 %s；本方 %s", "From the redemptions: split redemptions %s, rolled back %s, net %s; this party %s"},
	})
}

// SplitRules lists the split rules.
func (a *App) SplitRules() ([]core.SplitRule, error) {
	if err := a.require(ActSettleView); err != nil {
		return nil, err
	}
	rules, err := a.DB.SplitRules()
	if rules == nil {
		rules = []core.SplitRule{}
	}
	return rules, err
}

// SetSplitRule sets the rule of a scope (campaign or store by name or id, or the
// default) from "brand:60,store:35,platform:5" and a remainder party or "largest".
func (a *App) SetSplitRule(scope, ref, parties, remainder string) (*core.SplitRule, error) {
	if err := a.require(ActSettleRules); err != nil {
		return nil, err
	}
	shares, err := core.ParseShares(parties)
	if err != nil {
		return nil, err
	}
	return a.DB.SetSplitRule(a.Actor, core.SplitRule{Scope: scope, ScopeID: ref, Parties: shares, Remainder: strings.TrimSpace(remainder)})
}

// RemoveSplitRule deletes the rule of a scope.
func (a *App) RemoveSplitRule(scope, ref string) error {
	if err := a.require(ActSettleRules); err != nil {
		return err
	}
	return a.DB.RemoveSplitRule(a.Actor, scope, ref)
}

// ParseMonth reads "2026-11" (or 2026/11, 202611) into its first and last day.
func ParseMonth(s string) (from, to string, err error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01", "2006/01", "200601"} {
		if t, perr := time.Parse(layout, s); perr == nil {
			return t.Format(time.DateOnly), t.AddDate(0, 1, -1).Format(time.DateOnly), nil
		}
	}
	return "", "", core.Invalid("month", "2026-11", s, "not a month")
}

// Period is a range of days as typed: a month, or from and to.
type Period struct {
	Month, From, To string
}

// days turns a period into its first and last day; defFrom and defTo fill what is
// not given (e.g. "-30d", "today").
func (a *App) days(p Period, defFrom, defTo string) (string, string, error) {
	if p.Month != "" {
		if p.From != "" || p.To != "" {
			return "", "", core.Invalid("month", "--month or --from/--to", p.Month, "give a month or a range of days, not both")
		}
		return ParseMonth(p.Month)
	}
	now := a.Now().In(a.Location())
	if p.From == "" {
		p.From = defFrom
	}
	if p.To == "" {
		p.To = defTo
	}
	from, err := ParseDay("from", p.From, now)
	if err != nil {
		return "", "", err
	}
	to, err := ParseDay("to", p.To, now)
	if err != nil {
		return "", "", err
	}
	if from > to {
		return "", "", core.Invalid("from", "a day on or before --to", p.From, "the range ends before it starts")
	}
	return from, to, nil
}

// Statement is a party's settlement for a period (default: this month so far), and
// with verify the same recomputed from the redemptions.
func (a *App) Statement(party string, p Period, verify bool) (*store.Statement, error) {
	if err := a.require(ActSettleView); err != nil {
		return nil, err
	}
	party = strings.TrimSpace(party)
	if party == "" {
		return nil, core.Invalid("party", "--party brand", "", "which party's statement?")
	}
	now := a.Now().In(a.Location())
	from, to, err := a.days(p, now.Format("2006-01")+"-01", "today")
	if err != nil {
		return nil, err
	}
	s, err := a.DB.Statement(party, from, to)
	if err != nil {
		return nil, err
	}
	if verify {
		if err := a.DB.VerifyStatement(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SplitText shows a rule's shares: "brand 60% · store 35% · platform 5%".
func SplitText(r *core.SplitRule) string {
	parts := make([]string, len(r.Parties))
	for i, p := range r.Parties {
		parts[i] = p.Party + " " + core.FormatPercent(p.PercentBP)
	}
	return strings.Join(parts, " · ")
}

// ScopeText names a rule's scope: "默认", "门店「西店」", "store 西店".
func (l Lang) ScopeText(scope, name string) string {
	s := l.T("settle.scope." + scope)
	if name == "" {
		return s
	}
	if l == "zh" {
		return s + "「" + name + "」"
	}
	return s + " " + name
}

// RemainderText names who takes the rounding fen.
func (l Lang) RemainderText(r string) string {
	if r == core.RemainderLargest || r == "" {
		return l.T("settle.largest")
	}
	return r
}

// SplitRuleTable lays the rules out for a screen or a file.
func (l Lang) SplitRuleTable(rules []core.SplitRule) ([]string, [][]string) {
	rows := make([][]string, 0, len(rules))
	for i := range rules {
		r := &rules[i]
		rows = append(rows, []string{l.T("settle.scope." + r.Scope), r.ScopeName, SplitText(r), l.RemainderText(r.Remainder)})
	}
	return []string{l.T("settle.col.scope"), l.T("settle.col.applies"), l.T("settle.col.parties"), l.T("settle.col.remainder")}, rows
}

func settleCells(first []string, t store.SettleTotals) []string {
	return append(first, strconv.FormatInt(t.Redeemed, 10), strconv.FormatInt(t.RolledBack, 10), t.Gross.String(), t.Reversed.String(), t.Net.String())
}

// StatementTable lays a statement's lines out, with the total.
func (l Lang) StatementTable(s *store.Statement) ([]string, [][]string) {
	header := []string{l.T("col.day"), l.T("col.store"), l.T("col.campaign"), l.T("settle.col.redeemed"), l.T("settle.col.rolled"),
		l.T("settle.col.gross"), l.T("settle.col.reversed"), l.T("settle.col.net")}
	rows := make([][]string, 0, len(s.Lines)+1)
	for _, ln := range s.Lines {
		rows = append(rows, settleCells([]string{ln.Day, ln.Store, ln.Campaign}, ln.SettleTotals))
	}
	return header, append(rows, settleCells([]string{l.T("msg.settle_total"), "", ""}, s.Totals))
}

// ReconcileTable lays out every party's totals for the period and their sum.
func (l Lang) ReconcileTable(s *store.Statement) ([]string, [][]string) {
	rec := s.Reconciliation
	rows := make([][]string, 0, len(rec.Parties)+1)
	for _, p := range rec.Parties {
		rows = append(rows, settleCells([]string{p.Party}, p.SettleTotals))
	}
	rows = append(rows, settleCells([]string{l.T("msg.settle_all_parties")}, rec.AllParties))
	return []string{l.T("settle.col.party"), l.T("settle.col.redeemed"), l.T("settle.col.rolled"), l.T("settle.col.gross"),
		l.T("settle.col.reversed"), l.T("settle.col.net")}, rows
}

// ReconcileNotes are the reconciliation's remaining figures and the verification's
// outcome, as label and value.
func (l Lang) ReconcileNotes(s *store.Statement) [][2]string {
	rec := s.Reconciliation
	out := [][2]string{{l.T("msg.settle_redeemed"), rec.RedeemedValue.String()}, {l.T("msg.settle_unsplit"), rec.Unsplit.String()}}
	if v := s.Verify; v != nil {
		verdict := l.T("msg.settle_verify_ok")
		if !v.OK {
			verdict = l.T("msg.settle_verify_bad", len(v.Differences))
		}
		out = append(out, [2]string{verdict, l.T("msg.settle_verify_sums", v.Gross.String(), v.Reversed.String(), v.Net.String(), v.Party.Net.String())})
	}
	return out
}

// DiffTable lays out the differences a verification found.
func (l Lang) DiffTable(v *store.StatementCheck) ([]string, [][]string) {
	rows := make([][]string, 0, len(v.Differences))
	for _, d := range v.Differences {
		rows = append(rows, []string{d.Day, d.StoreID, d.CampaignID, d.Figure, strconv.FormatInt(d.Rollup, 10),
			strconv.FormatInt(d.Recomputed, 10), strconv.FormatInt(d.Diff, 10)})
	}
	return []string{l.T("col.day"), l.T("col.store"), l.T("col.campaign"), l.T("settle.col.figure"), l.T("settle.col.rollup"),
		l.T("settle.col.recomputed"), l.T("settle.col.diff")}, rows
}

// StatementFile lays the whole statement out as one sheet: the lines and total, then
// the reconciliation, then the verification when made.
func (l Lang) StatementFile(s *store.Statement) ([]string, [][]string) {
	header, rows := l.StatementTable(s)
	rh, rr := l.ReconcileTable(s)
	rows = append(rows, []string{}, []string{l.T("msg.settle_reconcile")}, rh)
	rows = append(rows, rr...)
	for _, kv := range l.ReconcileNotes(s) {
		rows = append(rows, []string{kv[0], kv[1]})
	}
	if s.Verify != nil && len(s.Verify.Differences) > 0 {
		dh, dr := l.DiffTable(s.Verify)
		rows = append(rows, dh)
		rows = append(rows, dr...)
	}
	return header, rows
}

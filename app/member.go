package app

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/imports"
	"github.com/kameng/kameng/core/store"
)

// Members (会员), tiers (会员等级) and automatic issuing (自动发券): the use cases the
// screens and the command line share.

func init() {
	// Field names and column headers other features may define too: added where missing.
	for k, v := range map[string][2]string{
		"field.member":      {"会员", "member"},
		"field.tags":        {"标签", "tags"},
		"field.birthday":    {"生日", "birthday"},
		"field.consent":     {"营销同意", "marketing consent"},
		"field.tier":        {"会员等级", "tier"},
		"field.threshold":   {"触发条件", "threshold"},
		"field.days":        {"天数", "days"},
		"field.min_points":  {"积分门槛", "points threshold"},
		"field.multiplier":  {"积分倍率", "points multiplier"},
		"field.tier_basis":  {"定级依据", "tier basis"},
		"field.tier_window": {"定级周期", "tier window"},
		"field.issue_rule":  {"发券规则", "issuing rule"},
		"col.member":        {"会员", "Member"},
		"col.points":        {"积分", "Points"},
		"col.amount":        {"金额", "Amount"},
	} {
		if !Has(k) {
			messages[k] = v
		}
	}
	explanations["phone_taken"] = []string{"value", "id"}
	explanations["pool_empty"] = []string{"value"}
	explanations["tier_in_use"] = []string{"campaign", "value"}
	addMessages(map[string][2]string{
		"member.col.tier":       {"等级", "Tier"},
		"member.col.tags":       {"标签", "Tags"},
		"member.col.birthday":   {"生日", "Birthday"},
		"member.col.consent":    {"营销同意", "Marketing consent"},
		"member.col.wallet":     {"储值余额", "Wallet"},
		"member.col.spend":      {"累计消费", "Spend"},
		"member.col.visits":     {"到店天数", "Visit days"},
		"member.col.last_visit": {"最近到店", "Last visit"},
		"member.col.home":       {"开卡门店", "Signed up at"},
		"member.col.joined":     {"入会时间", "Joined"},
		"member.col.what":       {"内容", "What"},
		"member.col.min_spend":  {"消费门槛", "Spend threshold"},
		"member.col.min_points": {"积分门槛", "Points threshold"},
		"member.col.multiplier": {"积分倍率", "Points ×"},
		"member.col.rule":       {"规则", "Rule"},
		"member.col.condition":  {"条件", "Condition"},
		"member.col.checked":    {"检查会员", "Checked"},
		"member.col.issued":     {"已发券", "Issued"},

		"member.status.active":     {"正常", "active"},
		"member.status.merged":     {"已合并", "merged"},
		"member.status.anonymised": {"已匿名化", "anonymised"},
		"member.yes":               {"是", "yes"},
		"member.no":                {"否", "no"},
		"member.none":              {"（无）", "(none)"},
		"member.rule_stopped":      {"已停用", "stopped"},

		"timeline.code":       {"收到券码", "Received code"},
		"timeline.redemption": {"核销", "Redemption"},
		"timeline.wallet":     {"储值", "Wallet"},
		"timeline.points":     {"积分", "Points"},
		"timeline.tier":       {"等级变更", "Tier change"},

		"issue.welcome":       {"新人券", "welcome"},
		"issue.spend":         {"消费满额券", "spend reached"},
		"issue.idle":          {"久未到店券", "idle"},
		"issue.birthday":      {"生日券", "birthday"},
		"issue.cond.spend":    {"累计消费满 %s", "lifetime spend ≥ %s"},
		"issue.cond.idle":     {"%d 天未到店（需营销同意）", "%d days without a visit (marketing consent)"},
		"issue.cond.birthday": {"生日当月，每年一次（需营销同意）", "birthday month, once a year (marketing consent)"},
		"issue.cond.welcome":  {"入会时", "on sign-up"},

		"tier.basis.spend":  {"近 %d 个月消费", "spend in the last %d months"},
		"tier.basis.life":   {"累计消费", "lifetime spend"},
		"tier.basis.points": {"积分余额", "points balance"},

		"why.phone_taken": {"%s 已是会员 %s", "%s is already member %s"},
		"why.pool_empty":  {"活动「%s」没有可发放的券码了：请先导入", "campaign %q has no codes left to hand out: import more"},
		"why.tier_in_use": {"活动「%s」仅限等级「%s」使用：请先修改活动", "campaign %q is limited to tier %q: change it first"},

		"msg.member_added":       {"已添加会员 %s（%s）", "Added member %s (%s)"},
		"msg.member_welcome":     {"新人券：%s（%s）", "Welcome code: %s (%s)"},
		"msg.member_saved":       {"已保存会员 %s（%s）", "Saved member %s (%s)"},
		"msg.member_found":       {"找到 %d 位会员", "%d members found"},
		"msg.member_imported":    {"已导入 %d 位会员", "Imported %d members"},
		"msg.member_revealed":    {"已查看会员手机号（已记入审计）", "Revealed the member's phone number (audited)"},
		"msg.member_erase_what":  {"匿名化会员 %s：删除手机号、姓名、生日和标签，不可恢复", "anonymise member %s: erase phone, name, birthday and tags, for good"},
		"msg.member_erased":      {"已匿名化会员 %s：%d 个券码、%d 笔核销、%d 条待同步记录中的个人信息已删除；储值与积分合计保留", "Anonymised member %s: personal data erased from %d codes, %d redemptions and %d unsent changes; wallet and points totals kept"},
		"msg.member_not_flushed": {"提示：数据库正被读取，预写日志未能清空；稍后再运行 kameng doctor", "Note: the database is being read and its write-ahead log could not be emptied yet; run kameng doctor later"},
		"msg.member_timeline":    {"最近记录", "Recent history"},
		"msg.retier_done":        {"已重新评定 %d 位会员的等级，%d 位有变化", "Re-evaluated the tiers of %d members; %d changed"},
		"msg.tier_saved":         {"已保存会员等级「%s」", "Saved tier %q"},
		"msg.tier_removed":       {"已删除会员等级「%s」，%d 位会员调整了等级", "Removed tier %q; %d members moved"},
		"msg.tier_hint":          {"会员在下次消费时按新规则定级；立即生效请运行 kameng member retier", "Members move on their next purchase; run kameng member retier to apply it now"},
		"msg.tier_basis":         {"定级依据：%s", "Tiers by %s"},
		"msg.rule_added":         {"已添加发券规则 %s：%s →「%s」", "Added issuing rule %s: %s → %q"},
		"msg.rule_removed":       {"已停用发券规则 %s", "Stopped issuing rule %s"},
		"msg.rule_run":           {"自动发券完成：发出 %d 张", "Automatic issuing done: %d codes handed out"},
	})
}

// MemberForm is a member as typed: every field a string, nil when not given (so an
// edit changes only what was given). The CLI, TUI and GUI all fill this.
type MemberForm struct {
	Phone, Name, Birthday, Tags, Consent *string
}

func (f MemberForm) edit() (store.MemberEdit, error) {
	e := store.MemberEdit{Phone: f.Phone, Name: f.Name, Birthday: f.Birthday, Tags: f.Tags}
	if f.Consent != nil {
		c, err := parseBool("consent", *f.Consent)
		if err != nil {
			return e, err
		}
		e.Consent = &c
	}
	return e, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// AddMember signs a customer up at the current store; the welcome rules fire.
func (a *App) AddMember(f MemberForm) (*store.MemberAdded, error) {
	if err := a.require(ActMemberEdit); err != nil {
		return nil, err
	}
	e, err := f.edit()
	if err != nil {
		return nil, err
	}
	in := store.MemberInput{Phone: deref(f.Phone), Name: deref(f.Name), Birthday: deref(f.Birthday), Tags: deref(f.Tags)}
	if e.Consent != nil {
		in.Consent = *e.Consent
	}
	res, err := a.DB.AddMember(a.Actor, in)
	return res, err
}

// FindMembers searches members: query is a phone number, else an exact name; the
// filter adds a tag or a limit. Phones are masked.
func (a *App) FindMembers(query string, f store.MemberFilter) ([]*core.Member, error) {
	if err := a.require(ActMemberView); err != nil {
		return nil, err
	}
	if q := strings.TrimSpace(query); q != "" {
		if _, err := core.NormalizePhone(q); err == nil {
			f.Phone = q
		} else {
			f.Name = q
		}
	}
	return a.DB.FindMembers(f)
}

// ShowMember returns a member (by phone or id) with the newest limit entries of their history.
func (a *App) ShowMember(ref string, limit int) (*store.MemberDetail, error) {
	if err := a.require(ActMemberView); err != nil {
		return nil, err
	}
	return a.DB.Member(strings.TrimSpace(ref), limit)
}

// EditMember changes the fields given.
func (a *App) EditMember(ref string, f MemberForm) (*core.Member, error) {
	if err := a.require(ActMemberEdit); err != nil {
		return nil, err
	}
	e, err := f.edit()
	if err != nil {
		return nil, err
	}
	m, err := a.DB.EditMember(a.Actor, strings.TrimSpace(ref), e)
	return m, err
}

// RevealMember shows a member's full phone number, audited.
func (a *App) RevealMember(ref string) (string, error) {
	if err := a.require(ActReveal); err != nil {
		return "", err
	}
	return a.DB.RevealMember(a.Actor, strings.TrimSpace(ref))
}

// AnonymiseMember erases a member's personal data for good; ledgers and totals stay.
func (a *App) AnonymiseMember(ref string) (*store.Anonymised, error) {
	if err := a.require(ActMemberErase); err != nil {
		return nil, err
	}
	return a.DB.AnonymiseMember(a.Actor, strings.TrimSpace(ref))
}

// MemberImportResult reports a member import: how many, or the lines that stopped it.
type MemberImportResult struct {
	Rows     int               `json:"rows"`
	Imported int               `json:"imported"`
	Problems []imports.Problem `json:"problems,omitempty"`
}

// ImportMembers reads a CSV of members (phone,name,birthday,tags,consent, with or
// without a header) and imports every row or none. With welcome the welcome rules
// fire for each new member.
func (a *App) ImportMembers(path string, welcome bool, progress func(int64)) (*MemberImportResult, error) {
	if err := a.require(ActMemberEdit); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, core.Invalid("file", "a readable file", path, "cannot open: %v", err)
	}
	defer f.Close()
	rows, problems, err := ParseMemberCSV(f)
	if err != nil {
		return nil, err
	}
	res := &MemberImportResult{Rows: len(rows) + len(problems), Problems: problems}
	toResult := func() error {
		return &ImportError{Result: &ImportResult{Format: "members", Rows: res.Rows, Problems: res.Problems}}
	}
	if len(problems) > 0 { // the store's own checks too, so every bad line is reported at once
		more, err := a.DB.CheckMembers(rows)
		if err != nil {
			return nil, err
		}
		res.Problems = append(res.Problems, more...)
		slices.SortStableFunc(res.Problems, func(x, y imports.Problem) int { return x.Line - y.Line })
		return nil, toResult()
	}
	n, err := a.DB.ImportMembers(a.Actor, rows, welcome, progress)
	var rej *store.ImportRejected
	if errors.As(err, &rej) {
		res.Problems = rej.Problems
		return nil, toResult()
	}
	if err != nil {
		return nil, err
	}
	res.Imported = n
	return res, nil
}

// Header names of a member CSV, case-insensitive.
var memberHeaders = map[string][]string{
	"phone":    {"phone", "mobile", "手机", "手机号", "手机号码", "电话"},
	"name":     {"name", "姓名", "名字", "会员姓名"},
	"birthday": {"birthday", "birth", "生日", "出生日期"},
	"tags":     {"tags", "tag", "标签"},
	"consent":  {"consent", "marketing", "营销同意", "同意营销"},
}

var memberColumns = []string{"phone", "name", "birthday", "tags", "consent"}

// tagSeparators turn the other separators people use between tags into commas.
var tagSeparators = strings.NewReplacer(";", ",", "；", ",", "|", ",")

// ParseMemberCSV reads members from CSV: with a header naming the columns (phone,
// name, birthday, tags, consent or their Chinese names), or without one in that
// order. Tags within a cell are separated by commas, semicolons or |. Problems of the
// file itself (encoding, a consent that is not yes or no) come back with their
// lines; the phones, names and birthdays are checked by the store.
func ParseMemberCSV(r io.Reader) ([]store.MemberInput, []imports.Problem, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, core.Invalid("file", "a readable file", "", "cannot read: %v", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	col := map[string]int{}
	for i, name := range memberColumns {
		col[name] = i
	}
	var rows []store.MemberInput
	var problems []imports.Problem
	cell := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				problems = append(problems, imports.Problem{Line: pe.StartLine, Field: "record", Reason: imports.ReasonBadFormat, Detail: pe.Err.Error()})
				continue
			}
			return nil, nil, core.Invalid("file", "CSV", "", "cannot read: %v", err)
		}
		if first {
			first = false
			if header := memberHeader(rec); header != nil {
				if _, ok := header["phone"]; !ok {
					return nil, nil, core.Invalid("file", "a phone column (phone / 手机号)", strings.Join(rec, ","), "the header has no phone column")
				}
				col = header
				continue
			}
		}
		blank := true
		for _, c := range rec {
			if strings.TrimSpace(c) != "" {
				blank = false
			}
		}
		if blank {
			continue
		}
		joined := strings.Join(rec, ",")
		if !utf8.ValidString(joined) {
			problems = append(problems, imports.Problem{Line: line, Field: "record", Reason: imports.ReasonBadEncoding,
				Detail: "not valid UTF-8 (GBK/GB18030 files must be saved as UTF-8 first)"})
			continue
		}
		m := store.MemberInput{Line: line, Phone: cell(rec, "phone"), Name: cell(rec, "name"), Birthday: cell(rec, "birthday"),
			Tags: tagSeparators.Replace(cell(rec, "tags"))}
		if c := cell(rec, "consent"); c != "" {
			ok, err := parseBool("consent", c)
			if err != nil {
				problems = append(problems, imports.Problem{Line: line, Field: "consent", Reason: imports.ReasonBadFormat, Detail: "consent is yes or no", Value: c})
				continue
			}
			m.Consent = ok
		}
		rows = append(rows, m)
	}
	if len(rows) == 0 && len(problems) == 0 {
		return nil, nil, core.Invalid("file", "phone,name,birthday,tags,consent", "", "the file has no members")
	}
	return rows, problems, nil
}

// memberHeader maps column names to indexes when rec is a header row, else nil.
func memberHeader(rec []string) map[string]int {
	out := map[string]int{}
	for i, c := range rec {
		c = strings.ToLower(strings.TrimSpace(c))
		for name, aliases := range memberHeaders {
			for _, alias := range aliases {
				if c == alias {
					if _, dup := out[name]; !dup {
						out[name] = i
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// RetierMembers moves every member to the tier they qualify for today.
func (a *App) RetierMembers(progress func(done, total int64)) (*store.RetierResult, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	return a.DB.RetierAll(a.Actor, progress)
}

// TierForm is a tier as typed; nil fields keep the tier's current value (or the default).
type TierForm struct {
	MinSpend, MinPoints, Multiplier *string
}

// SetTier creates or changes the tier with this name.
func (a *App) SetTier(name string, f TierForm) (*core.Tier, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	tiers, err := a.DB.Tiers()
	if err != nil {
		return nil, err
	}
	tr := core.Tier{Name: strings.TrimSpace(name), MultiplierBP: 10000}
	for _, old := range tiers {
		if old.Name == tr.Name {
			tr = old
		}
	}
	if f.MinSpend != nil {
		if tr.MinSpend = 0; strings.TrimSpace(*f.MinSpend) != "" {
			if tr.MinSpend, err = core.ParseAmount("min_spend", *f.MinSpend); err != nil {
				return nil, err
			}
		}
	}
	if f.MinPoints != nil {
		if tr.MinPoints, err = parseInt("min_points", *f.MinPoints, 0, 1_000_000_000); err != nil {
			return nil, err
		}
	}
	if f.Multiplier != nil {
		if tr.MultiplierBP, err = ParseMultiplier(*f.Multiplier); err != nil {
			return nil, err
		}
	}
	return a.DB.SetTier(a.Actor, tr)
}

// ParseMultiplier reads a points multiplier: "1.5", "×1.5", "1.5x", "1.5倍" or
// "150%", to 4 decimals, above 0 and at most 100. It returns basis points (10000 = ×1).
func ParseMultiplier(s string) (int64, error) {
	bad := core.Invalid("multiplier", "1.5 / ×1.5 / 150%", s, "not a multiplier")
	t := strings.TrimSpace(s)
	t = strings.TrimLeft(t, "×xX*")
	t = strings.TrimRight(t, "xX倍 ")
	scale := int64(10000)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = strings.TrimSpace(p), 100
	}
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" || len(frac) > 4 || len(whole) > 6 {
		return 0, bad
	}
	for _, part := range []string{whole, frac} {
		for _, r := range part {
			if r < '0' || r > '9' {
				return 0, bad
			}
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	var f int64
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 4-len(frac)), 10, 64)
	}
	bp := (w*10000 + f) * scale / 10000
	if (w*10000+f)*scale%10000 != 0 || bp < store.MinMultiplierBP || bp > store.MaxMultiplierBP {
		return 0, bad
	}
	return bp, nil
}

// FormatMultiplier shows basis points as "×1.5".
func FormatMultiplier(bp int64) string {
	s := strconv.FormatInt(bp/10000, 10)
	if f := bp % 10000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%04d", f), "0")
	}
	return "×" + s
}

// Tiers lists the tiers, lowest threshold first, with the loyalty settings that say
// what the thresholds are compared with.
func (a *App) Tiers() ([]core.Tier, core.Loyalty, error) {
	if err := a.require(ActMemberView); err != nil {
		return nil, core.Loyalty{}, err
	}
	tiers, err := a.DB.Tiers()
	if err != nil {
		return nil, core.Loyalty{}, err
	}
	l, err := a.DB.Loyalty()
	return tiers, l, err
}

// RemoveTier deletes a tier; its members move to the tier they qualify for.
func (a *App) RemoveTier(name string) (int64, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return 0, err
	}
	n, err := a.DB.RemoveTier(a.Actor, strings.TrimSpace(name))
	return n, err
}

// SetTierBasis says what tier thresholds are compared with: spend (within window
// months; 0 lifetime) or the points balance. window nil keeps the current one.
func (a *App) SetTierBasis(basis string, window *string) (core.Loyalty, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return core.Loyalty{}, err
	}
	return a.DB.SetLoyalty(a.Actor, func(l *core.Loyalty) error {
		l.TierBasis = strings.ToLower(strings.TrimSpace(basis))
		if window != nil {
			n, err := parseInt("tier_window", *window, 0, 120)
			if err != nil {
				return err
			}
			l.TierWindowMonths = int(n)
		}
		return nil
	})
}

// IssueRuleForm is an issuing rule as typed.
type IssueRuleForm struct {
	Kind, Campaign string
	Threshold      *string // spend: the amount that triggers it
	Days           *string // idle: days without a visit
}

// AddIssueRule saves an automatic issuing rule.
func (a *App) AddIssueRule(f IssueRuleForm) (*core.IssueRule, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	r := core.IssueRule{Kind: strings.ToLower(strings.TrimSpace(f.Kind)), CampaignID: strings.TrimSpace(f.Campaign)}
	if r.CampaignID == "" {
		return nil, core.Invalid("campaign", "--campaign NAME", "", "which campaign's codes to hand out?")
	}
	switch {
	case f.Threshold != nil && r.Kind != core.IssueSpend:
		return nil, core.Invalid("threshold", "--threshold only with --kind spend", *f.Threshold, "a %s rule takes no spend threshold", r.Kind)
	case f.Days != nil && r.Kind != core.IssueIdle:
		return nil, core.Invalid("days", "--days only with --kind idle", *f.Days, "a %s rule takes no days", r.Kind)
	case f.Threshold != nil:
		amt, err := core.ParseAmount("threshold", *f.Threshold)
		if err != nil {
			return nil, err
		}
		r.Threshold = int64(amt)
	case f.Days != nil:
		n, err := parseInt("days", *f.Days, 1, 3650)
		if err != nil {
			return nil, err
		}
		r.Threshold = n
	}
	return a.DB.AddIssueRule(a.Actor, r)
}

// IssueRules lists the issuing rules (stopped ones too with all).
func (a *App) IssueRules(all bool) ([]core.IssueRule, error) {
	if err := a.require(ActCampaignView); err != nil {
		return nil, err
	}
	return a.DB.IssueRules(all)
}

// RemoveIssueRule stops a rule.
func (a *App) RemoveIssueRule(id string) error {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return err
	}
	return a.DB.RemoveIssueRule(a.Actor, strings.TrimSpace(id))
}

// RunIssueRules hands out today's idle, birthday and spend coupons.
func (a *App) RunIssueRules(progress func(done, total int64)) (*store.IssueRun, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	run, err := a.DB.RunIssueRules(a.Actor, progress)
	return run, err
}

// IssueCondition says when a rule fires, in the operator's language.
func (l Lang) IssueCondition(r core.IssueRule) string {
	switch r.Kind {
	case core.IssueSpend:
		return l.T("issue.cond.spend", core.Amount(r.Threshold).Yuan())
	case core.IssueIdle:
		return l.T("issue.cond.idle", r.Threshold)
	}
	return l.T("issue.cond." + r.Kind)
}

// TierBasis says what tier thresholds are compared with.
func (l Lang) TierBasis(lo core.Loyalty) string {
	switch {
	case lo.TierBasis == core.TierByPoints:
		return l.T("tier.basis.points")
	case lo.TierWindowMonths == 0:
		return l.T("tier.basis.life")
	}
	return l.T("tier.basis.spend", lo.TierWindowMonths)
}

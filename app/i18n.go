package app

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kameng/kameng/core"
)

// Lang is a UI language: "zh" (default) or "en".
type Lang string

// DetectLang picks the language from the locale; Chinese unless it says English.
func DetectLang() Lang {
	for _, v := range []string{"KAMENG_LANG", "LC_ALL", "LC_MESSAGES", "LANG"} {
		if s := strings.ToLower(os.Getenv(v)); s != "" && s != "c" && s != "posix" && !strings.HasPrefix(s, "c.") {
			if strings.HasPrefix(s, "en") {
				return "en"
			}
			return "zh"
		}
	}
	return "zh"
}

// ParseLang accepts zh or en.
func ParseLang(s string) (Lang, error) {
	switch strings.ToLower(s) {
	case "zh", "zh-cn", "zh_cn", "cn":
		return "zh", nil
	case "en", "en-us", "en_us":
		return "en", nil
	}
	return "", core.Invalid("lang", "zh|en", s, "unknown language %q", s)
}

// messages holds every text the screens show, by key, in both languages.
var messages = map[string][2]string{ // zh, en
	// check reasons
	"reason.ok":                   {"可以核销", "OK to redeem"},
	"reason.not_found":            {"券码不存在", "No such code"},
	"reason.bad_check_char":       {"券码输错了（校验位不符）", "Mistyped code (check character does not match)"},
	"reason.not_started":          {"尚未生效", "Not valid yet"},
	"reason.expired":              {"已过期", "Expired"},
	"reason.already_redeemed":     {"已核销", "Already redeemed"},
	"reason.voided":               {"已作废", "Voided"},
	"reason.paused":               {"活动已暂停", "Campaign paused"},
	"reason.wrong_store":          {"本店不可用", "Not valid in this store"},
	"reason.below_min_spend":      {"未达到最低消费", "Below the minimum spend"},
	"reason.outside_hours":        {"不在可用时段", "Outside the allowed hours"},
	"reason.per_member_limit":     {"超出每人限用次数", "Per-member limit reached"},
	"reason.tier_only":            {"仅限指定会员等级", "Only for members of certain tiers"},
	"reason.budget_exhausted":     {"活动预算已用完", "Campaign budget used up"},
	"reason.insufficient_balance": {"余额不足", "Insufficient balance"},
	"reason.throttled":            {"失败次数过多，请稍后再试", "Too many failed checks; try again later"},
	// error codes
	"error.invalid":   {"输入有误", "Invalid input"},
	"error.not_found": {"找不到", "Not found"},
	"error.conflict":  {"无法执行", "Not possible now"},
	"error.forbidden": {"无权限", "Not allowed"},
	"error.auth":      {"登录失败", "Sign-in failed"},
	"error.internal":  {"内部错误", "Internal error"},
	"error.schema":    {"数据库版本不符", "Database version mismatch"},
	"error.key":       {"密钥不可用", "Key unavailable"},
	"error.accepted":  {"可接受的格式", "accepted"},
	"error.got":       {"收到", "got"},
	// fields
	"field.amount":       {"金额", "amount"},
	"field.amount_off":   {"减免金额", "amount off"},
	"field.percent_off":  {"折扣", "percent off"},
	"field.face_value":   {"面值", "face value"},
	"field.min_spend":    {"最低消费", "minimum spend"},
	"field.max_discount": {"最高优惠", "maximum discount"},
	"field.order":        {"订单金额", "order amount"},
	"field.code":         {"券码", "code"},
	"field.count":        {"数量", "count"},
	"field.name":         {"名称", "name"},
	"field.kind":         {"类型", "kind"},
	"field.from":         {"开始日期", "start date"},
	"field.to":           {"结束日期", "end date"},
	"field.valid_to":     {"结束日期", "end date"},
	"field.valid_days":   {"有效天数", "valid days"},
	"field.hours":        {"可用时段", "hours"},
	"field.weekdays":     {"可用星期", "weekdays"},
	"field.phone":        {"手机号", "phone"},
	"field.campaign":     {"活动", "campaign"},
	"field.redemption":   {"核销记录", "redemption"},
	"field.store":        {"门店", "store"},
	"field.operator":     {"操作员", "operator"},
	"field.role":         {"角色", "role"},
	"field.file":         {"文件", "file"},
	"field.format":       {"格式", "format"},
	"field.length":       {"码长", "code length"},
	"field.alphabet":     {"字符集", "alphabet"},
	"field.prefix":       {"前缀", "prefix"},
	"field.group":        {"分组", "grouping"},
	"field.reason":       {"原因", "reason"},
	"field.lang":         {"语言", "language"},
	"field.password":     {"密码", "password"},
	"field.data":         {"数据目录", "data directory"},
	"field.by":           {"分组方式", "group by"},
	"field.date":         {"日期", "date"},
	"field.uses":         {"每码可用次数", "uses per code"},
	"field.budget":       {"预算", "budget"},
	"field.out":          {"输出文件", "output file"},
	"field.stores":       {"适用门店", "stores"},
	"field.field":        {"字段", "field"},
	"field.status":       {"状态", "status"},
	"field.map":          {"列映射", "column mapping"},
	"field.secret":       {"卡密", "secret"},
	"field.confirm":      {"确认", "confirmation"},
	"field.rollback":     {"撤销时限", "rollback window"},
	"field.per_member":   {"每人限用", "per-member limit"},
	"field.tiers":        {"限会员等级", "member tiers only"},
	"field.offline":      {"离线核销", "offline redemption"},
	"field.key":          {"幂等键", "idempotency key"},
	"field.limit":        {"条数", "limit"},
	"field.debit":        {"扣款金额", "debit"},
	// kinds, statuses
	"kind.amount_off":    {"满减券", "Amount off"},
	"kind.percent_off":   {"折扣券", "Percent off"},
	"kind.gift_card":     {"礼品卡", "Gift card"},
	"kind.card_key":      {"卡密", "Card key"},
	"status.active":      {"进行中", "active"},
	"status.paused":      {"已暂停", "paused"},
	"status.archived":    {"已归档", "archived"},
	"status.voided":      {"已作废", "voided"},
	"status.done":        {"已核销", "redeemed"},
	"status.rolled_back": {"已撤销", "rolled back"},
	"role.owner":         {"店主", "owner"},
	"role.manager":       {"店长", "manager"},
	"role.cashier":       {"收银员", "cashier"},
	"role.technician":    {"技术员", "technician"},
	// column headers
	"col.id":           {"ID", "ID"},
	"col.name":         {"名称", "Name"},
	"col.kind":         {"类型", "Kind"},
	"col.value":        {"面值/优惠", "Value"},
	"col.status":       {"状态", "Status"},
	"col.issued":       {"已发行", "Issued"},
	"col.redeemed":     {"已核销", "Redeemed"},
	"col.code":         {"券码", "Code"},
	"col.uses":         {"已用次数", "Uses"},
	"col.balance":      {"余额", "Balance"},
	"col.phone":        {"手机号", "Phone"},
	"col.distributed":  {"发放时间", "Distributed"},
	"col.valid_to":     {"有效期至", "Valid to"},
	"col.secret":       {"卡密", "Secret"},
	"col.campaign":     {"活动", "Campaign"},
	"col.created":      {"创建时间", "Created"},
	"col.day":          {"日期", "Day"},
	"col.store":        {"门店", "Store"},
	"col.generated":    {"生成", "Generated"},
	"col.distrib":      {"发放", "Distributed"},
	"col.rolled_back":  {"撤销", "Rolled back"},
	"col.net":          {"净核销", "Net"},
	"col.discount":     {"优惠金额", "Discount"},
	"col.order_amount": {"订单金额", "Orders"},
	"col.value_redeem": {"卡值核销", "Value redeemed"},
	"col.rate":         {"核销率", "Rate"},
	"col.operator":     {"操作员", "Operator"},
	"col.role":         {"角色", "Role"},
	"col.time_zone":    {"时区", "Time zone"},
	"col.time":         {"时间", "Time"},
	"col.order":        {"订单", "Order"},
	"col.batch":        {"批次", "Batch"},
	"col.check":        {"检查项", "Check"},
	"col.result":       {"结果", "Result"},
	"col.detail":       {"说明", "Detail"},
	"col.line":         {"行", "Line"},
	"col.problem":      {"问题", "Problem"},
	"col.face":         {"面值", "Face value"},
	// messages
	"msg.init_done":         {"已创建商户「%s」、门店「%s」和店主 %s。数据目录：%s", "Created merchant %q, store %q and owner %s. Data directory: %s"},
	"msg.not_initialised":   {"尚未初始化：请先运行 kameng init 或 kameng demo", "Not initialised: run kameng init or kameng demo first"},
	"msg.generated":         {"已为「%[2]s」生成 %[1]d 个券码（批次 %[3]s）", "Generated %d codes for %q (batch %s)"},
	"msg.imported":          {"已导入 %d 个券码到「%s」（批次 %s）", "Imported %d codes into %q (batch %s)"},
	"msg.import_refused":    {"导入被拒绝：%d 行有问题，未写入任何数据", "Import refused: %d problem lines, nothing written"},
	"msg.odds":              {"猜中概率：1/%s", "Odds of guessing a code: 1 in %s"},
	"msg.exported":          {"已导出 %d 行到 %s", "Exported %d rows to %s"},
	"msg.distributed":       {"已发放 %d 个券码", "Distributed %d codes"},
	"msg.voided":            {"已作废 %s", "Voided %s"},
	"msg.redeemed":          {"核销成功 %s：优惠 %s，卡值 %s，应付 %s（核销号 %s）", "Redeemed %s: discount %s, value %s, to pay %s (redemption %s)"},
	"msg.replayed":          {"（重复请求，返回首次结果）", "(repeated request: the first result)"},
	"msg.rolled_back":       {"已撤销核销 %s", "Rolled back redemption %s"},
	"msg.audit_ok":          {"审计链完整：%d 条记录均已验证", "Audit chain intact: %d entries verified"},
	"msg.audit_broken":      {"审计链在第 %d 条（%s，%s）处断开：%s", "Audit chain broken at entry %d (%s, %s): %s"},
	"msg.audit_why_hash":    {"内容被修改", "its content was altered"},
	"msg.audit_why_link":    {"前后链接不符（条目被删除或插入）", "its link does not match (an entry was removed or inserted)"},
	"msg.confirm":           {"确认%s？输入 y 继续：", "Really %s? Type y to continue: "},
	"msg.need_yes":          {"此操作需要确认：请加 --yes", "This needs confirmation: add --yes"},
	"msg.cancelled":         {"已取消", "Cancelled"},
	"msg.demo_done":         {"演示数据已就绪：%d 个门店，%d 个活动，%d 个券码，%d 笔核销，%d 位会员", "Demo data ready: %d stores, %d campaigns, %d codes, %d redemptions, %d members"},
	"msg.demo_exists":       {"数据库已有数据，未写入演示数据：%s", "The database already has data; demo not loaded: %s"},
	"msg.campaign_saved":    {"已保存活动「%s」（%s）", "Saved campaign %q (%s)"},
	"msg.campaign_status":   {"活动「%s」现在%s", "Campaign %q is now %s"},
	"msg.doctor_ok":         {"一切正常", "All checks passed"},
	"msg.doctor_bad":        {"发现问题", "Problems found"},
	"msg.password_prompt":   {"设置店主密码：", "Owner password: "},
	"msg.password_again":    {"再输入一次：", "Again: "},
	"msg.password_mismatch": {"两次输入的密码不一致", "The passwords do not match"},
	"msg.password_short":    {"密码至少 8 个字符", "The password needs at least 8 characters"},
	"msg.no_rows":           {"（无）", "(none)"},
	"msg.total":             {"合计", "Total"},
	"msg.revealed":          {"已查看%s（已记入审计）", "Revealed %s (audited)"},
	"msg.schema_newer":      {"此数据库由更新版本的卡盟写入（版本 %s，本程序支持 %s）：请升级卡盟", "This database was written by a newer Kameng (schema %s; this program supports %s): upgrade Kameng"},
	"msg.odds_too_high":     {"随机猜中一个券码的概率为 %s，高于 1,000,000,000 分之一：请加长码长或减少数量", "a random guess would hit a code %s, more often than 1 in 1,000,000,000: use a longer code or fewer codes"},
	"msg.added":             {"已添加 %s", "Added %s"},
}

// addMessages registers a feature's texts; each feature keeps its own in its file.
func addMessages(m map[string][2]string) {
	for k, v := range m {
		if _, dup := messages[k]; dup {
			panic("i18n: message key defined twice: " + k)
		}
		messages[k] = v
	}
}

// T translates a message key; unknown keys come back as themselves.
func (l Lang) T(key string, args ...any) string {
	m, ok := messages[key]
	s := key
	if ok {
		s = m[0]
		if l == "en" {
			s = m[1]
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Has reports whether a message key exists.
func Has(key string) bool { _, ok := messages[key]; return ok }

// MessageKeys lists every key, for tests that both languages are filled.
func MessageKeys() []string {
	keys := make([]string, 0, len(messages))
	for k := range messages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ErrorText renders an error in the operator's language: what went wrong, in which
// field, what was received and what the field accepts.
func (l Lang) ErrorText(err error) string {
	e := core.AsError(err)
	var b strings.Builder
	b.WriteString(l.T("error." + e.Code))
	if e.Field != "" {
		field := e.Field
		if Has("field." + field) {
			field = l.T("field." + field)
		}
		b.WriteString(" [" + field + "]")
	}
	b.WriteString(": ")
	if e.Code == core.ErrSchema && e.Params["found"] != "" {
		b.WriteString(l.T("msg.schema_newer", e.Params["found"], e.Params["supported"]))
		return b.String()
	}
	// A refusal the store explains with a reason and its figures is said from those.
	if names, ok := explanations[e.Params["why"]]; ok && l == "zh" {
		args := make([]any, len(names))
		for i, n := range names {
			args[i] = e.Params[n]
		}
		b.WriteString(l.T("why."+e.Params["why"], args...))
		return b.String()
	}
	// In Chinese, bad input and unknown ids are said entirely from the field, the value
	// and the accepted form; the English sentence is only the fallback.
	if odds := e.Params["odds"]; odds != "" && e.Code == core.ErrInvalid {
		b.WriteString(l.T("msg.odds_too_high", odds))
		return b.String()
	}
	if l == "zh" && ((e.Code == core.ErrInvalid && e.Params["accepted"] != "") || (e.Code == core.ErrNotFound && e.Params["value"] != "")) {
		if v := e.Params["value"]; v != "" {
			b.WriteString(l.T("error.got") + " " + quote(v))
			if e.Params["accepted"] != "" {
				b.WriteString("；")
			}
		}
		if a := e.Params["accepted"]; a != "" {
			b.WriteString(l.T("error.accepted") + "：" + a)
		}
		return b.String()
	}
	b.WriteString(e.Message)
	if v := e.Params["value"]; v != "" {
		b.WriteString(" (" + l.T("error.got") + " " + quote(v) + ")")
	}
	if a := e.Params["accepted"]; a != "" {
		b.WriteString("; " + l.T("error.accepted") + ": " + a)
	}
	return b.String()
}

func quote(s string) string { return "\u201c" + s + "\u201d" }

// Reason translates a check reason.
func (l Lang) Reason(r string) string { return l.T("reason." + r) }

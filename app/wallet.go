package app

import (
	"slices"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// Stored value (储值) and member merges: the use cases the screens and the command
// line share.

func init() {
	// Field names and column headers other features may define too: added where missing.
	for k, v := range map[string][2]string{
		"field.member":          {"会员", "member"},
		"field.payment":         {"支付记录", "payment"},
		"field.entry":           {"流水", "entry"},
		"field.bonus":           {"赠送规则", "bonus"},
		"field.points":          {"积分", "points"},
		"field.reward":          {"兑换奖励", "reward"},
		"field.expiry":          {"积分有效期", "points expiry"},
		"field.expiry_days":     {"有效天数", "expiry days"},
		"field.points_per_yuan": {"每元积分", "points per yuan"},
		"field.campaign_bonus":  {"活动加送积分", "campaign bonus"},
		"col.member":            {"会员", "Member"},
		"col.entry":             {"流水号", "Entry"},
		"col.ref":               {"单号", "Ref"},
		"col.amount":            {"金额", "Amount"},
		"col.points":            {"积分", "Points"},
		"col.remaining":         {"剩余", "Left"},
		"col.expires":           {"到期", "Expires"},
		"col.related":           {"关联", "Related"},
		"col.reason":            {"原因", "Reason"},
		"col.ledger":            {"流水合计", "Ledger sum"},
		"col.pay_min":           {"充值满", "Top-up of"},
		"col.bonus":             {"赠送", "Bonus"},
	} {
		if !Has(k) {
			messages[k] = v
		}
	}
	addMessages(map[string][2]string{
		"wallet.topup":     {"充值", "top-up"},
		"wallet.bonus":     {"赠送", "bonus"},
		"wallet.pay":       {"支付", "payment"},
		"wallet.refund":    {"退款", "refund"},
		"wallet.merge_in":  {"合并转入", "merged in"},
		"wallet.merge_out": {"合并转出", "merged out"},

		"msg.wallet_topup":   {"会员 %s 充值 %s，赠送 %s，余额 %s（流水 %s）", "Member %s topped up %s, bonus %s, balance %s (entry %s)"},
		"msg.wallet_pay":     {"会员 %s 储值支付 %s，余额 %s（流水 %s）", "Member %s paid %s from the wallet, balance %s (entry %s)"},
		"msg.wallet_refund":  {"已退款 %s 到会员 %s 的储值，余额 %s（流水 %s）", "Refunded %s to member %s's wallet, balance %s (entry %s)"},
		"msg.wallet_balance": {"储值余额", "Wallet balance"},
		"msg.wallet_bonus":   {"充值满 %s 赠送 %s", "Top-ups of %s get %s extra"},
		"msg.wallet_unbonus": {"已删除充值满 %s 的赠送规则", "Removed the bonus for top-ups of %s"},
		"msg.merge_done":     {"已将会员 %s 合并到 %s：储值 %s，积分 %d（%d 批），券码 %d，核销 %d", "Merged member %s into %s: wallet %s, %d points (%d lots), %d codes, %d redemptions"},
		"msg.merge_what":     {"把会员 %s 合并到 %s（不可撤销）", "merge member %s into %s (cannot be undone)"},

		"why.balance_short":    {"余额不足：储值余额 %s，需要 %s", "the balance is %s, less than %s"},
		"why.refundable_short": {"可退金额只剩 %s，少于 %s", "only %s is left to refund, less than %s"},
		"why.refunded":         {"支付 %s 已全额退款", "payment %s was refunded in full already"},
		"why.same_member":      {"两者是同一个会员 %s", "both name the same member %s"},
	})
}

// explanations name, for each refusal the store explains with Params["why"], the
// params its "why.<reason>" sentence takes in order (ErrorText says it in the
// operator's language).
var explanations = map[string][]string{
	"balance_short":    {"have", "want"},
	"refundable_short": {"have", "want"},
	"points_short":     {"have", "want"},
	"refunded":         {"id"},
	"reversed":         {"id"},
	"same_member":      {"id"},
}

// memberFor checks that the operator may do action and that a member was named (by id
// or phone; the store resolves it).
func (a *App) memberFor(action, member string) (string, error) {
	if err := a.require(action); err != nil {
		return "", err
	}
	member = strings.TrimSpace(member)
	if member == "" {
		return "", core.Invalid("member", "a member's id or phone", "", "which member? give the id or phone")
	}
	return member, nil
}

// positiveAmountArg parses a positive amount of money.
func positiveAmountArg(field, s string) (core.Amount, error) {
	v, err := core.ParseAmount(field, s)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, core.Invalid(field, "more than 0", s, "the amount must be above zero")
	}
	return v, nil
}

// walletDo runs a top-up or payment after the checks both share.
func (a *App) walletDo(act func(*store.Actor, string, core.Amount, string, string) (*store.WalletResult, error),
	member, amount, ref, key string) (*store.WalletResult, error) {
	m, err := a.memberFor(ActWallet, member)
	if err != nil {
		return nil, err
	}
	amt, err := positiveAmountArg("amount", amount)
	if err != nil {
		return nil, err
	}
	res, err := act(a.Actor, m, amt, ref, key)
	return res, err
}

// Topup adds money to a member's wallet with the bonus of the top-up rules.
func (a *App) Topup(member, amount, ref, key string) (*store.WalletResult, error) {
	return a.walletDo(a.DB.Topup, member, amount, ref, key)
}

// Pay takes money from a member's wallet; never more than the balance. A
// registered device that cannot reach the server spends only its allowance.
func (a *App) Pay(member, amount, ref, key string) (*store.WalletResult, error) {
	return a.walletDo(a.payOnlineFirst, member, amount, ref, key)
}

// Refund gives (part of) a wallet payment back; amount "" refunds all that is left.
func (a *App) Refund(paymentID, amount, reason string) (*store.WalletResult, error) {
	if err := a.require(ActWalletRefund); err != nil {
		return nil, err
	}
	var amt core.Amount
	if strings.TrimSpace(amount) != "" {
		var err error
		if amt, err = positiveAmountArg("amount", amount); err != nil {
			return nil, err
		}
	}
	res, err := a.DB.Refund(a.Actor, strings.TrimSpace(paymentID), amt, reason)
	return res, err
}

// WalletShow returns a member's balance, ledger sum and newest entries.
func (a *App) WalletShow(member string, limit int) (*store.WalletView, error) {
	m, err := a.memberFor(ActMemberView, member)
	if err != nil {
		return nil, err
	}
	return a.DB.WalletShow(m, limit)
}

// TopupBonuses lists the top-up bonus rules by amount.
func (a *App) TopupBonuses() ([]core.TopupBonus, error) {
	if err := a.require(ActMemberView); err != nil {
		return nil, err
	}
	l, err := a.DB.Loyalty()
	return l.Bonuses, err
}

// SetTopupBonus sets the bonus for top-ups of at least min (replacing one for the
// same amount): 充100送20 is SetTopupBonus("100", "20").
func (a *App) SetTopupBonus(min, bonus string) ([]core.TopupBonus, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	m, err := positiveAmountArg("amount", min)
	if err != nil {
		return nil, err
	}
	b, err := positiveAmountArg("bonus", bonus)
	if err != nil {
		return nil, err
	}
	l, err := a.DB.SetLoyalty(a.Actor, func(l *core.Loyalty) error {
		l.Bonuses = slices.DeleteFunc(l.Bonuses, func(x core.TopupBonus) bool { return x.Min == m })
		l.Bonuses = append(l.Bonuses, core.TopupBonus{Min: m, Bonus: b})
		slices.SortFunc(l.Bonuses, func(x, y core.TopupBonus) int { return int(x.Min - y.Min) })
		return nil
	})
	return l.Bonuses, err
}

// RemoveTopupBonus deletes the bonus for top-ups of min.
func (a *App) RemoveTopupBonus(min string) ([]core.TopupBonus, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	m, err := positiveAmountArg("amount", min)
	if err != nil {
		return nil, err
	}
	l, err := a.DB.SetLoyalty(a.Actor, func(l *core.Loyalty) error {
		n := len(l.Bonuses)
		l.Bonuses = slices.DeleteFunc(l.Bonuses, func(x core.TopupBonus) bool { return x.Min == m })
		if len(l.Bonuses) == n {
			return core.NotFound("bonus", m.Yuan())
		}
		return nil
	})
	return l.Bonuses, err
}

// MergeMembers folds member from into member into; both keep their history.
func (a *App) MergeMembers(from, into string) (*store.MergeResult, error) {
	f, err := a.memberFor(ActMemberMerge, from)
	if err != nil {
		return nil, err
	}
	i, err := a.memberFor(ActMemberMerge, into)
	if err != nil {
		return nil, err
	}
	res, err := a.DB.Merge(a.Actor, f, i)
	return res, err
}

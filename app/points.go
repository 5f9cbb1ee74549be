package app

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// Points (积分): the use cases the screens and the command line share.

func init() {
	addMessages(map[string][2]string{
		"points.earn":      {"消费积分", "earned"},
		"points.spend":     {"兑换", "spent"},
		"points.expire":    {"过期", "expired"},
		"points.adjust":    {"调整", "adjusted"},
		"points.reverse":   {"撤销", "reversed"},
		"points.merge_in":  {"合并转入", "merged in"},
		"points.merge_out": {"合并转出", "merged out"},
		"points.never":     {"永久有效", "never"},

		"msg.points_earned":    {"会员 %s 消费 %s，获得 %d 积分，现有 %d 积分（流水 %s）", "Member %s spent %s and earned %d points, now %d (entry %s)"},
		"msg.points_spent":     {"会员 %s 用 %d 积分兑换了「%s」：券码 %s，剩余 %d 积分", "Member %s spent %d points on %q: code %s, %d points left"},
		"msg.points_adjusted":  {"会员 %s 积分调整 %+d，现有 %d 积分（流水 %s）", "Member %s's points changed by %+d, now %d (entry %s)"},
		"msg.points_reversed":  {"已撤销 %[2]s 的 %[1]d 积分，会员 %[3]s 现有 %[4]d 积分", "Reversed the %d points of %s; member %s now has %d"},
		"msg.points_expired":   {"已过期 %d 批积分，共 %d 分，涉及 %d 位会员", "Expired %d lots, %d points, of %d members"},
		"msg.points_balance":   {"积分余额", "Points"},
		"msg.points_in_lots":   {"各批剩余合计", "Left in lots"},
		"msg.points_lots":      {"积分批次（先到期先用）", "Lots (first to expire is spent first)"},
		"msg.points_recent":    {"最近流水", "Recent entries"},
		"msg.points_rate":      {"每消费 1 元得 %s 分", "%s points per yuan"},
		"msg.points_expiry":    {"有效期：%s", "Expiry: %s"},
		"msg.reward_saved":     {"「%s」兑换价 %d 积分", "%q costs %d points"},
		"msg.reward_removed":   {"「%s」不再可用积分兑换", "%q is no longer a points reward"},
		"msg.cbonus_saved":     {"使用「%s」的消费额外得 %d 积分", "Purchases with %q earn %d extra points"},
		"msg.cbonus_removed":   {"「%s」不再额外加积分", "%q no longer adds points"},
		"expiry.next_year_end": {"次年年底", "end of the following year"},
		"expiry.days":          {"%d 天", "%d days"},
		"expiry.never":         {"永不过期", "never"},

		"why.points_short": {"积分不足：现有 %s 分，需要 %s 分", "the member has %s points, less than %s"},
		"why.reversed":     {"积分流水 %s 已撤销过", "earn %s was reversed already"},
	})
}

// Earn records a purchase and gives the member its points.
func (a *App) Earn(member, amount, campaign, ref string) (*store.PointsResult, error) {
	m, err := a.memberFor(ActPoints, member)
	if err != nil {
		return nil, err
	}
	amt, err := positiveAmountArg("amount", amount)
	if err != nil {
		return nil, err
	}
	return a.DB.Earn(a.Actor, m, amt, campaign, ref)
}

// SpendPoints exchanges points for a code of a reward campaign.
func (a *App) SpendPoints(member, reward string) (*store.PointsResult, error) {
	m, err := a.memberFor(ActPoints, member)
	if err != nil {
		return nil, err
	}
	res, err := a.DB.Spend(a.Actor, m, reward)
	return res, err
}

// ParsePointsDelta reads "+100", "-50" or "−50" (a typographic minus).
func ParsePointsDelta(s string) (int64, error) {
	t := strings.Replace(strings.TrimSpace(s), "−", "-", 1)
	n, err := strconv.ParseInt(strings.TrimPrefix(t, "+"), 10, 64)
	if err != nil || n == 0 || strings.HasPrefix(t, "+-") {
		return 0, core.Invalid("points", "+100 or -50", s, "not a change of points")
	}
	return n, nil
}

// AdjustPoints adds or takes points by hand, with a reason.
func (a *App) AdjustPoints(member, delta, reason string) (*store.PointsResult, error) {
	m, err := a.memberFor(ActPointsAdjust, member)
	if err != nil {
		return nil, err
	}
	n, err := ParsePointsDelta(delta)
	if err != nil {
		return nil, err
	}
	res, err := a.DB.Adjust(a.Actor, m, n, reason)
	return res, err
}

// PointsShow returns a member's points, lots and newest entries.
func (a *App) PointsShow(member string, limit int) (*store.PointsView, error) {
	m, err := a.memberFor(ActMemberView, member)
	if err != nil {
		return nil, err
	}
	return a.DB.PointsShow(m, limit)
}

// ExpirePoints empties every lot that has expired by now.
func (a *App) ExpirePoints(progress func(int64)) (*store.ExpireResult, error) {
	if err := a.require(ActPointsAdjust); err != nil {
		return nil, err
	}
	return a.DB.Expire(a.Actor, a.Now(), progress)
}

// ReversePoints undoes an earn whose order was cancelled. Owners and managers may
// reverse any; cashiers only their own, within the rollback window of redemptions.
func (a *App) ReversePoints(entryID, reason string) (*store.PointsResult, error) {
	if err := a.require(ActPoints); err != nil {
		return nil, err
	}
	var res *store.PointsResult
	var err error
	if a.Can(ActPointsAdjust) {
		res, err = a.DB.Reverse(a.Actor, entryID, reason, false, 0)
	} else {
		res, err = a.DB.Reverse(a.Actor, entryID, reason, true, CashierRollbackWindow)
	}
	return res, err
}

// PointsRulesInput changes the earn and expiry rules; nil fields stay as they are.
type PointsRulesInput struct {
	PerYuan *string // points per yuan, e.g. "1" or "0.5"
	Expiry  *string // next_year_end | days | never
	Days    *int    // with days
}

// PointsRules returns the loyalty settings, changed first when in names a change.
func (a *App) PointsRules(in PointsRulesInput) (core.Loyalty, error) {
	if in.PerYuan == nil && in.Expiry == nil && in.Days == nil {
		if err := a.require(ActMemberView); err != nil {
			return core.Loyalty{}, err
		}
		return a.DB.Loyalty()
	}
	if err := a.require(ActLoyaltyConfig); err != nil {
		return core.Loyalty{}, err
	}
	var rate int64
	if in.PerYuan != nil {
		bp, err := parsePerYuan(*in.PerYuan)
		if err != nil {
			return core.Loyalty{}, err
		}
		rate = bp
	}
	return a.DB.SetLoyalty(a.Actor, func(l *core.Loyalty) error {
		if in.PerYuan != nil {
			l.PointsPerYuanBP = rate
		}
		if in.Expiry != nil {
			l.Expiry = strings.TrimSpace(*in.Expiry)
			if l.Expiry != core.ExpireDays {
				l.ExpiryDays = 0
			}
		}
		if in.Days != nil {
			if in.Expiry == nil {
				l.Expiry = core.ExpireDays
			}
			l.ExpiryDays = *in.Days
		}
		return nil
	})
}

// parsePerYuan reads a rate of points per yuan with up to 4 decimals into basis points.
func parsePerYuan(s string) (int64, error) {
	bad := core.Invalid("points_per_yuan", "0 to 100, e.g. 1 or 0.5", s, "not a number of points per yuan")
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" || len(frac) > 4 || strings.ContainsAny(whole+frac, "+- ") {
		return 0, bad
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 100 {
		return 0, bad
	}
	f := int64(0)
	if frac != "" {
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 4-len(frac)), 10, 64); err != nil {
			return 0, bad
		}
	}
	return w*10000 + f, nil
}

// FormatPerYuan shows basis points of a rate as a number, e.g. 15000 → "1.5".
func FormatPerYuan(bp int64) string {
	s := fmt.Sprintf("%d.%04d", bp/10000, bp%10000)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// CampaignPoints is a campaign with a points figure: a reward's price or a purchase bonus.
type CampaignPoints struct {
	CampaignID string `json:"campaign_id"`
	Name       string `json:"name"`
	Points     int64  `json:"points"`
}

func (a *App) campaignPoints(m map[string]int64) ([]CampaignPoints, error) {
	out := []CampaignPoints{}
	for id, p := range m {
		name := id
		if c, err := a.DB.Campaign(id); err == nil {
			name = c.Name
		}
		out = append(out, CampaignPoints{CampaignID: id, Name: name, Points: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PointsSetting is one of the per-campaign points settings: the rewards' prices or
// the purchase bonuses.
type PointsSetting struct {
	field string
	pick  func(l *core.Loyalty) map[string]int64
}

var (
	PointsRewards       = PointsSetting{"reward", func(l *core.Loyalty) map[string]int64 { return l.Rewards }}
	PointsCampaignBonus = PointsSetting{"campaign_bonus", func(l *core.Loyalty) map[string]int64 { return l.CampaignBonus }}
)

// CampaignPointsList lists the rewards (by price) or the campaign bonuses.
func (a *App) CampaignPointsList(which PointsSetting) ([]CampaignPoints, error) {
	if err := a.require(ActMemberView); err != nil {
		return nil, err
	}
	l, err := a.DB.Loyalty()
	if err != nil {
		return nil, err
	}
	return a.campaignPoints(which.pick(&l))
}

// SetCampaignPoints sets a campaign's reward price or purchase bonus; points "" removes it.
func (a *App) SetCampaignPoints(which PointsSetting, campaign, points string) (*CampaignPoints, error) {
	if err := a.require(ActLoyaltyConfig); err != nil {
		return nil, err
	}
	c, err := a.DB.Campaign(strings.TrimSpace(campaign))
	if err != nil {
		return nil, err
	}
	var p int64
	if points != "" {
		if p, err = strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(points), "+"), 10, 64); err != nil || p <= 0 || p > 1_000_000_000 {
			return nil, core.Invalid("points", "1 to 1000000000", points, "a whole number of points above zero")
		}
	}
	_, err = a.DB.SetLoyalty(a.Actor, func(l *core.Loyalty) error {
		m := which.pick(l)
		if points == "" {
			if _, ok := m[c.ID]; !ok {
				return core.NotFound(which.field, c.Name)
			}
			delete(m, c.ID)
			return nil
		}
		m[c.ID] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &CampaignPoints{CampaignID: c.ID, Name: c.Name, Points: p}, nil
}

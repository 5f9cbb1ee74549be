package app

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/spf13/cobra"
)

// memberLabel shows a member as typed: a phone masked, an id as it is.
func memberLabel(ref string) string {
	if p, err := core.NormalizePhone(ref); err == nil {
		return core.MaskPhone(p)
	}
	return ref
}

// walletCmd groups stored-value commands.
func (c *cli) walletCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "wallet", Short: "stored value / 储值"}
	var ref, key string
	move := func(use, short string, act func(a *App, member, amount, ref, key string) (*store.WalletResult, error)) *cobra.Command {
		m := &cobra.Command{Use: use + " MEMBER AMOUNT", Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				a, err := c.open()
				if err != nil {
					return err
				}
				res, err := act(a, args[0], args[1], ref, key)
				if err != nil {
					return err
				}
				c.print(res, func(l Lang) {
					e, who := res.Entry, memberLabel(args[0])
					if e.Kind == core.WalletTopup {
						bonus := core.Amount(0)
						if res.Bonus != nil {
							bonus = res.Bonus.Amount
						}
						fmt.Fprintln(c.out, l.T("msg.wallet_topup", who, e.Amount.Yuan(), bonus.Yuan(), res.Balance.Yuan(), e.ID))
					} else {
						fmt.Fprintln(c.out, l.T("msg.wallet_pay", who, (-e.Amount).Yuan(), res.Balance.Yuan(), e.ID))
					}
					if res.Replayed {
						fmt.Fprintln(c.out, l.T("msg.replayed"))
					}
				})
				return nil
			}}
		m.Flags().StringVar(&ref, "ref", "", "the till's order or payment number / 单号")
		m.Flags().StringVar(&key, "key", "", "idempotency key: repeating it returns the first result / 幂等键")
		return m
	}
	topup := move("topup", "add money to a member's wallet, with the top-up bonus / 充值", (*App).Topup)
	pay := move("pay", "pay from a member's wallet / 储值支付", (*App).Pay)

	var reason string
	refund := &cobra.Command{Use: "refund PAYMENT_ID [AMOUNT]", Short: "refund a wallet payment, all or part / 储值退款", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			amount := ""
			if len(args) == 2 {
				amount = args[1]
			}
			res, err := a.Refund(args[0], amount, reason)
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.wallet_refund", res.Entry.Amount.Yuan(), res.Entry.MemberID, res.Balance.Yuan(), res.Entry.ID))
			})
			return nil
		}}
	refund.Flags().StringVar(&reason, "reason", "", "why (required) / 原因（必填）")

	var limit int
	show := &cobra.Command{Use: "show MEMBER", Short: "a member's balance and recent entries / 储值余额与流水", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			v, err := a.WalletShow(args[0], limit)
			if err != nil {
				return err
			}
			c.print(v, func(l Lang) {
				kv(c.out, [][2]string{{l.T("col.member"), v.MemberID}, {l.T("msg.wallet_balance"), v.Balance.Yuan()}, {l.T("col.ledger"), v.Ledger.Yuan()}})
				fmt.Fprintln(c.out)
				var rows [][]string
				for _, e := range v.Entries {
					rows = append(rows, []string{a.FormatTime(e.Created), l.T("wallet." + e.Kind), e.Amount.String(), e.Ref, e.RelatedID, e.ID})
				}
				table(c.out, []string{l.T("col.time"), l.T("col.kind"), l.T("col.amount"), l.T("col.ref"), l.T("col.related"), l.T("col.entry")}, rows)
			})
			return nil
		}}
	show.Flags().IntVar(&limit, "limit", 20, "entries / 条数")

	cmd.AddCommand(topup, pay, refund, show, c.walletBonusCmd())
	return cmd
}

func (c *cli) bonusTable(bs []core.TopupBonus) {
	c.print(bs, func(l Lang) {
		var rows [][]string
		for _, b := range bs {
			rows = append(rows, []string{b.Min.Yuan(), b.Bonus.Yuan()})
		}
		table(c.out, []string{l.T("col.pay_min"), l.T("col.bonus")}, rows)
	})
}

// walletBonusCmd sets the top-up bonus rules (充100送20).
func (c *cli) walletBonusCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bonus", Short: "top-up bonus rules, e.g. pay 100 get 20 / 充值赠送规则"}
	set := &cobra.Command{Use: "set AMOUNT BONUS", Short: "top-ups of at least AMOUNT get BONUS extra / 充值满额赠送", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			bs, err := a.SetTopupBonus(args[0], args[1])
			if err != nil {
				return err
			}
			if !c.json {
				m, _ := core.ParseAmount("amount", args[0])
				b, _ := core.ParseAmount("bonus", args[1])
				fmt.Fprintln(c.out, c.language().T("msg.wallet_bonus", m.Yuan(), b.Yuan()))
			}
			c.bonusTable(bs)
			return nil
		}}
	list := &cobra.Command{Use: "list", Short: "the top-up bonus rules / 赠送规则列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			bs, err := a.TopupBonuses()
			if err != nil {
				return err
			}
			c.bonusTable(bs)
			return nil
		}}
	remove := &cobra.Command{Use: "remove AMOUNT", Short: "remove the bonus for top-ups of AMOUNT / 删除赠送规则", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			bs, err := a.RemoveTopupBonus(args[0])
			if err != nil {
				return err
			}
			if !c.json {
				m, _ := core.ParseAmount("amount", args[0])
				fmt.Fprintln(c.out, c.language().T("msg.wallet_unbonus", m.Yuan()))
			}
			c.bonusTable(bs)
			return nil
		}}
	cmd.AddCommand(set, list, remove)
	return cmd
}

// pointsCmd groups points commands.
func (c *cli) pointsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "points", Short: "member points / 积分"}

	var amount, campaign, ref string
	earn := &cobra.Command{Use: "earn MEMBER --amount 128", Short: "record a purchase and give its points / 消费积分", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			res, err := a.Earn(args[0], amount, campaign, ref)
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				e := res.Entry
				fmt.Fprintln(c.out, l.T("msg.points_earned", memberLabel(args[0]), e.OrderAmount.Yuan(), e.Points, res.Balance, e.ID))
			})
			return nil
		}}
	earn.Flags().StringVar(&amount, "amount", "", "the purchase amount, e.g. 128.00 (required) / 消费金额")
	earn.Flags().StringVar(&campaign, "campaign", "", "the campaign the purchase used, for its bonus points / 活动")
	earn.Flags().StringVar(&ref, "ref", "", "the till's order number / 订单号")

	var reward string
	spend := &cobra.Command{Use: "spend MEMBER --reward CAMPAIGN", Short: "exchange points for a reward's code / 积分兑换", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			res, err := a.SpendPoints(args[0], reward)
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				name := res.Entry.CampaignID
				if camp, err := a.DB.Campaign(name); err == nil {
					name = camp.Name
				}
				fmt.Fprintln(c.out, l.T("msg.points_spent", memberLabel(args[0]), -res.Entry.Points, name, res.Code, res.Balance))
			})
			return nil
		}}
	spend.Flags().StringVar(&reward, "reward", "", "the reward campaign (required) / 兑换的活动")

	var limit int
	show := &cobra.Command{Use: "show MEMBER", Short: "a member's points, lots and recent entries / 积分余额与流水", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			v, err := a.PointsShow(args[0], limit)
			if err != nil {
				return err
			}
			c.print(v, func(l Lang) { c.pointsView(a, v) })
			return nil
		}}
	show.Flags().IntVar(&limit, "limit", 20, "entries / 条数")

	expire := &cobra.Command{Use: "expire", Short: "expire every points lot whose time has come / 积分过期", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			p := c.progress("points", 0)
			res, err := a.ExpirePoints(p.Set)
			p.Done()
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.points_expired", res.Lots, res.Points, res.Members)) })
			return nil
		}}

	var reason string
	reverse := &cobra.Command{Use: "reverse ENTRY_ID --reason TEXT", Short: "undo an earn whose order was cancelled / 撤销消费积分", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			res, err := a.ReversePoints(args[0], reason)
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.points_reversed", -res.Entry.Points, res.Entry.RelatedID, res.Entry.MemberID, res.Balance))
			})
			return nil
		}}
	reverse.Flags().StringVar(&reason, "reason", "", "why (required) / 原因（必填）")

	cmd.AddCommand(earn, spend, c.pointsAdjustCmd(), show, expire, reverse, c.pointsRulesCmd(),
		c.campaignPointsCmd("reward", "points rewards: a campaign's code for N points / 积分兑换奖励", PointsRewards, "msg.reward_saved", "msg.reward_removed"),
		c.campaignPointsCmd("bonus", "extra points for purchases with a campaign / 活动加送积分", PointsCampaignBonus, "msg.cbonus_saved", "msg.cbonus_removed"))
	return cmd
}

func (c *cli) pointsView(a *App, v *store.PointsView) {
	l := a.Lang
	kv(c.out, [][2]string{{l.T("col.member"), v.MemberID}, {l.T("msg.points_balance"), strconv.FormatInt(v.Balance, 10)},
		{l.T("col.ledger"), strconv.FormatInt(v.Ledger, 10)}, {l.T("msg.points_in_lots"), strconv.FormatInt(v.InLots, 10)}})
	expires := func(ms int64) string {
		if ms == 0 {
			return l.T("points.never")
		}
		return a.FormatTime(ms)
	}
	fmt.Fprintln(c.out, "\n"+l.T("msg.points_lots"))
	var rows [][]string
	for _, e := range v.Lots {
		rows = append(rows, []string{a.FormatTime(e.Created), l.T("points." + e.Kind), strconv.FormatInt(e.Points, 10), strconv.FormatInt(e.Remaining, 10), expires(e.Expires), e.ID})
	}
	table(c.out, []string{l.T("col.time"), l.T("col.kind"), l.T("col.points"), l.T("col.remaining"), l.T("col.expires"), l.T("col.entry")}, rows)
	fmt.Fprintln(c.out, "\n"+l.T("msg.points_recent"))
	rows = nil
	for _, e := range v.Entries {
		note := e.Reason
		if note == "" {
			note = e.Ref
		}
		rows = append(rows, []string{a.FormatTime(e.Created), l.T("points." + e.Kind), fmt.Sprintf("%+d", e.Points), note, e.RelatedID, e.ID})
	}
	table(c.out, []string{l.T("col.time"), l.T("col.kind"), l.T("col.points"), l.T("col.reason"), l.T("col.related"), l.T("col.entry")}, rows)
}

// signedNumber is a points change as typed: -50, +50, −50.
var signedNumber = regexp.MustCompile(`^[-+−]\d+$`)

// pointsAdjustCmd is `points adjust MEMBER ±N --reason`. A negative number would be
// read as a flag, so this command parses its own flags after setting numbers aside.
func (c *cli) pointsAdjustCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{Use: "adjust MEMBER ±POINTS --reason TEXT", Short: "add or take points by hand, with a reason / 手动调整积分",
		Args: cobra.ArbitraryArgs, DisableFlagParsing: true}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required) / 原因（必填）")
	cmd.RunE = func(cmd *cobra.Command, raw []string) error {
		const mark = "\x00n"
		masked := make([]string, len(raw))
		for i, s := range raw {
			masked[i] = s
			if signedNumber.MatchString(s) {
				masked[i] = mark + s
			}
		}
		cmd.DisableFlagParsing = false
		err := cmd.ParseFlags(masked)
		cmd.DisableFlagParsing = true
		if err != nil {
			return err
		}
		if help, _ := cmd.Flags().GetBool("help"); help {
			return cmd.Help()
		}
		if c.lang != "" {
			if _, err := ParseLang(c.lang); err != nil {
				return err
			}
		}
		reason = strings.TrimPrefix(reason, mark)
		args := cmd.Flags().Args()
		for i := range args {
			args[i] = strings.TrimPrefix(args[i], mark)
		}
		if len(args) != 2 {
			return core.Invalid("points", "adjust MEMBER +100 --reason TEXT", strings.Join(args, " "), "give the member and the change of points")
		}
		a, err := c.open()
		if err != nil {
			return err
		}
		res, err := a.AdjustPoints(args[0], args[1], reason)
		if err != nil {
			return err
		}
		c.print(res, func(l Lang) {
			fmt.Fprintln(c.out, l.T("msg.points_adjusted", memberLabel(args[0]), res.Entry.Points, res.Balance, res.Entry.ID))
		})
		return nil
	}
	return cmd
}

// pointsRulesCmd shows or changes the earn and expiry rules.
func (c *cli) pointsRulesCmd() *cobra.Command {
	var perYuan, expiry string
	var days int
	cmd := &cobra.Command{Use: "rules", Short: "points per yuan and expiry / 积分规则", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&perYuan, "per-yuan", "", "points per yuan spent, e.g. 1 or 0.5 / 每元积分")
	cmd.Flags().StringVar(&expiry, "expiry", "", "next_year_end|days|never / 有效期规则")
	cmd.Flags().IntVar(&days, "days", 0, "with --expiry days: how many days / 有效天数")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := c.open()
		if err != nil {
			return err
		}
		var in PointsRulesInput
		if cmd.Flags().Changed("per-yuan") {
			in.PerYuan = &perYuan
		}
		if cmd.Flags().Changed("expiry") {
			in.Expiry = &expiry
		}
		if cmd.Flags().Changed("days") {
			in.Days = &days
		}
		l, err := a.PointsRules(in)
		if err != nil {
			return err
		}
		c.print(l, func(lang Lang) {
			fmt.Fprintln(c.out, lang.T("msg.points_rate", FormatPerYuan(l.PointsPerYuanBP)))
			exp := lang.T("expiry." + l.Expiry)
			if l.Expiry == core.ExpireDays {
				exp = lang.T("expiry.days", l.ExpiryDays)
			}
			fmt.Fprintln(c.out, lang.T("msg.points_expiry", exp))
		})
		return nil
	}
	return cmd
}

// campaignPointsCmd sets, lists and removes a per-campaign points setting.
func (c *cli) campaignPointsCmd(use, short string, which PointsSetting, saved, removed string) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short}
	list := func(a *App) error {
		rows, err := a.CampaignPointsList(which)
		if err != nil {
			return err
		}
		c.print(rows, func(l Lang) {
			var out [][]string
			for _, r := range rows {
				out = append(out, []string{r.Name, strconv.FormatInt(r.Points, 10), r.CampaignID})
			}
			table(c.out, []string{l.T("col.campaign"), l.T("col.points"), l.T("col.id")}, out)
		})
		return nil
	}
	set := &cobra.Command{Use: "set CAMPAIGN POINTS", Short: short, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			r, err := a.SetCampaignPoints(which, args[0], args[1])
			if err != nil {
				return err
			}
			c.print(r, func(l Lang) { fmt.Fprintln(c.out, l.T(saved, r.Name, r.Points)) })
			return nil
		}}
	ls := &cobra.Command{Use: "list", Short: "list / 列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			return list(a)
		}}
	rm := &cobra.Command{Use: "remove CAMPAIGN", Short: "remove / 删除", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			r, err := a.SetCampaignPoints(which, args[0], "")
			if err != nil {
				return err
			}
			c.print(r, func(l Lang) { fmt.Fprintln(c.out, l.T(removed, r.Name)) })
			return nil
		}}
	cmd.AddCommand(set, ls, rm)
	return cmd
}

// memberMergeCmd folds one member record into another.
func (c *cli) memberMergeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "merge FROM INTO", Short: "merge two member records / 合并会员", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.require(ActMemberMerge); err != nil {
				return err
			}
			if err := c.confirm(c.language().T("msg.merge_what", memberLabel(args[0]), memberLabel(args[1]))); err != nil {
				return err
			}
			res, err := a.MergeMembers(args[0], args[1])
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.merge_done", memberLabel(args[0]), memberLabel(args[1]), res.Wallet.Yuan(), res.Points, res.Lots, res.Codes, res.Redemptions))
			})
			return nil
		}}
	cmd.Flags().BoolVarP(&c.yes, "yes", "y", false, "do not ask / 不再确认")
	return cmd
}

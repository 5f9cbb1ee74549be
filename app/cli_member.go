package app

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kameng/kameng/core/store"
	"github.com/spf13/cobra"
)

// memberCmd groups member commands: add, find, show, edit, merge, anonymise, tiers, issuing rules.
// A MEMBER argument is a phone number or a member id.
func (c *cli) memberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Aliases: []string{"members", "m"}, Short: "members / 会员"}

	add := &cobra.Command{Use: "add PHONE", Short: "sign a customer up / 新增会员", Args: cobra.ExactArgs(1)}
	addForm := memberFlags(add, false)
	add.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := c.open()
		if err != nil {
			return err
		}
		f := addForm()
		f.Phone = &args[0]
		res, err := a.AddMember(f)
		if err != nil {
			return err
		}
		c.print(res, func(l Lang) {
			fmt.Fprintln(c.out, l.T("msg.member_added", res.Member.Phone, res.Member.ID))
			for _, is := range res.Issued {
				code, name := codeLabel(a, is.CampaignID, is.Code)
				fmt.Fprintln(c.out, l.T("msg.member_welcome", code, name))
			}
		})
		return nil
	}

	var ff store.MemberFilter
	find := &cobra.Command{Use: "find [PHONE|NAME]", Short: "find members by phone, exact name or tag / 查找会员", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			q := ""
			if len(args) == 1 {
				q = args[0]
			}
			ms, err := a.FindMembers(q, ff)
			if err != nil {
				return err
			}
			c.print(ms, func(l Lang) {
				var rows [][]string
				for _, m := range ms {
					rows = append(rows, []string{m.Phone, m.Name, m.Tier, strings.Join(m.Tags, ","), m.Wallet.String(),
						strconv.FormatInt(m.Points, 10), l.T("member.status." + m.Status), m.ID})
				}
				table(c.out, []string{l.T("col.phone"), l.T("col.name"), l.T("member.col.tier"), l.T("member.col.tags"),
					l.T("member.col.wallet"), l.T("col.points"), l.T("col.status"), l.T("col.id")}, rows)
				fmt.Fprintln(c.out, l.T("msg.member_found", len(ms)))
			})
			return nil
		}}
	find.Flags().StringVar(&ff.Phone, "phone", "", "exact phone number / 手机号")
	find.Flags().StringVar(&ff.Name, "name", "", "exact name / 姓名")
	find.Flags().StringVar(&ff.Tag, "tag", "", "members with this tag / 标签")
	find.Flags().BoolVar(&ff.All, "all", false, "merged and anonymised records too / 包括已合并、已匿名化")
	find.Flags().IntVar(&ff.Limit, "limit", 50, "at most this many / 条数")

	var showLimit int
	show := &cobra.Command{Use: "show MEMBER", Short: "a member, balances and recent history / 会员详情", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			d, err := a.ShowMember(args[0], showLimit)
			if err != nil {
				return err
			}
			c.print(d, func(l Lang) { c.showMember(a, d) })
			return nil
		}}
	show.Flags().IntVar(&showLimit, "limit", 20, "history entries / 记录条数")

	edit := &cobra.Command{Use: "edit MEMBER", Short: "change a member / 修改会员", Args: cobra.ExactArgs(1)}
	editForm := memberFlags(edit, true)
	edit.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := c.open()
		if err != nil {
			return err
		}
		m, err := a.EditMember(args[0], editForm())
		if err != nil {
			return err
		}
		c.print(m, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.member_saved", m.Phone, m.ID)) })
		return nil
	}

	anon := &cobra.Command{Use: "anonymise MEMBER", Aliases: []string{"anonymize", "erase"},
		Short: "erase a member's personal data on request (totals stay) / 匿名化（删除个人信息）", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.require(ActMemberErase); err != nil {
				return err
			}
			if err := c.confirm(c.language().T("msg.member_erase_what", memberLabel(args[0]))); err != nil {
				return err
			}
			res, err := a.AnonymiseMember(args[0])
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.member_erased", res.MemberID, res.Codes, res.Redemptions, res.Outbox))
				if !res.Flushed {
					fmt.Fprintln(c.err, l.T("msg.member_not_flushed"))
				}
			})
			return nil
		}}
	anon.Flags().BoolVarP(&c.yes, "yes", "y", false, "do not ask / 不再确认")

	var welcome bool
	imp := &cobra.Command{Use: "import FILE", Short: "import members from CSV: phone,name,birthday,tags,consent (all or none) / 导入会员", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			p := c.progress(args[0], 0)
			res, err := a.ImportMembers(args[0], welcome, p.Set)
			p.Done()
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.member_imported", res.Imported)) })
			return nil
		}}
	imp.Flags().BoolVar(&welcome, "welcome", false, "give each new member the welcome coupons / 发放新人券")

	retier := &cobra.Command{Use: "retier", Short: "move every member to the tier they qualify for today / 重新定级", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			var p *Progress
			res, err := a.RetierMembers(func(done, total int64) {
				if p == nil {
					p = c.progress("retier", total)
				}
				p.Set(done)
			})
			p.Done()
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.retier_done", res.Members, res.Changed)) })
			return nil
		}}

	reveal := &cobra.Command{Use: "reveal MEMBER", Short: "show a member's full phone number (audited) / 查看完整手机号", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			p, err := a.RevealMember(args[0])
			if err != nil {
				return err
			}
			c.print(map[string]any{"member": args[0], "phone": p}, func(l Lang) {
				fmt.Fprintln(c.out, p)
				fmt.Fprintln(c.err, l.T("msg.member_revealed"))
			})
			return nil
		}}

	cmd.AddCommand(add, find, show, edit, anon, imp, retier, reveal, c.memberTierCmd(), c.memberAutoCmd())
	cmd.AddCommand(c.memberMergeCmd())
	return cmd
}

// memberFlags binds the member form to flags; only flags given are applied. The
// phone is a flag only when editing (adding takes it as the argument).
func memberFlags(cmd *cobra.Command, withPhone bool) func() MemberForm {
	type bind struct {
		name, usage string
		field       func(*MemberForm) **string
	}
	binds := []bind{
		{"name", "name / 姓名", func(m *MemberForm) **string { return &m.Name }},
		{"birthday", "birthday, 1990-03-15 or 03-15 / 生日", func(m *MemberForm) **string { return &m.Birthday }},
		{"tags", "tags, comma-separated (replaces them all) / 标签", func(m *MemberForm) **string { return &m.Tags }},
		{"consent", "marketing messages allowed: yes|no / 营销同意", func(m *MemberForm) **string { return &m.Consent }},
	}
	if withPhone {
		binds = append(binds, bind{"phone", "new mobile number / 新手机号", func(m *MemberForm) **string { return &m.Phone }})
	}
	f := cmd.Flags()
	vals := make([]string, len(binds))
	for i, b := range binds {
		f.StringVar(&vals[i], b.name, "", b.usage)
	}
	return func() MemberForm {
		var out MemberForm
		for i, b := range binds {
			if f.Changed(b.name) {
				*b.field(&out) = &vals[i]
			}
		}
		return out
	}
}

// codeLabel is a code as printed on the coupon (its campaign's grouping) and the
// campaign's name; campaign is an id or a name.
func codeLabel(a *App, campaign, code string) (string, string) {
	camp, err := a.DB.Campaign(campaign)
	if err != nil {
		return code, campaign
	}
	return camp.Format.Display(code), camp.Name
}

func (c *cli) showMember(a *App, d *store.MemberDetail) {
	l := a.Lang
	yesNo := func(b bool) string {
		if b {
			return l.T("member.yes")
		}
		return l.T("member.no")
	}
	home := d.StoreID
	if s, err := a.DB.FindStore(d.StoreID); err == nil {
		home = s.Name
	}
	consent := yesNo(d.Consent)
	if d.ConsentAt > 0 {
		consent += " (" + a.FormatTime(d.ConsentAt) + ")"
	}
	tier := d.Tier
	if tier == "" {
		tier = l.T("member.none")
	}
	kv(c.out, [][2]string{
		{l.T("col.phone"), d.Phone}, {l.T("col.name"), d.Name}, {l.T("col.id"), d.ID},
		{l.T("col.status"), l.T("member.status." + d.Status)}, {l.T("member.col.tier"), tier},
		{l.T("member.col.wallet"), d.Wallet.Yuan()}, {l.T("col.points"), strconv.FormatInt(d.Points, 10)},
		{l.T("member.col.spend"), d.Spend.Yuan()}, {l.T("member.col.visits"), strconv.FormatInt(d.Visits, 10)},
		{l.T("member.col.last_visit"), a.FormatTime(d.LastVisit)}, {l.T("member.col.birthday"), d.Birthday},
		{l.T("member.col.tags"), strings.Join(d.Tags, ",")}, {l.T("member.col.consent"), consent},
		{l.T("member.col.home"), home}, {l.T("member.col.joined"), a.FormatTime(d.Created)},
	})
	if len(d.Timeline) == 0 {
		return
	}
	fmt.Fprintln(c.out)
	fmt.Fprintln(c.out, l.T("msg.member_timeline"))
	var rows [][]string
	for _, e := range d.Timeline {
		what, amount := e.What, ""
		switch e.Kind {
		case store.TimelineCode:
			what = e.Campaign
		case store.TimelineRedemption:
			what = e.Campaign + " " + l.T("status."+e.What)
			amount = e.Amount.String()
		case store.TimelineWallet:
			what, amount = l.T("wallet."+e.What), e.Amount.String()
		case store.TimelinePoints:
			what, amount = l.T("points."+e.What), fmt.Sprintf("%+d", e.Points)
		case store.TimelineTier:
			from, to, _ := strings.Cut(e.What, " → ")
			if from == "" {
				from = l.T("member.none")
			}
			if to == "" {
				to = l.T("member.none")
			}
			what = from + " → " + to
		}
		code := e.Code
		if code != "" {
			code, _ = codeLabel(a, e.Campaign, code)
		}
		rows = append(rows, []string{a.FormatTime(e.Time), l.T("timeline." + e.Kind), what, code, amount})
	}
	table(c.out, []string{l.T("col.time"), l.T("col.kind"), l.T("member.col.what"), l.T("col.code"), l.T("col.amount")}, rows)
}

// memberTierCmd: member tier set|list|remove|basis.
func (c *cli) memberTierCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tier", Aliases: []string{"tiers"}, Short: "member tiers / 会员等级"}

	var minSpend, minPoints, multiplier string
	set := &cobra.Command{Use: "set NAME", Short: "create or change a tier / 设置等级", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			var f TierForm
			fl := cmd.Flags()
			if fl.Changed("min-spend") {
				f.MinSpend = &minSpend
			}
			if fl.Changed("min-points") {
				f.MinPoints = &minPoints
			}
			if fl.Changed("multiplier") {
				f.Multiplier = &multiplier
			}
			tr, err := a.SetTier(args[0], f)
			if err != nil {
				return err
			}
			c.print(tr, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.tier_saved", tr.Name))
				fmt.Fprintln(c.err, l.T("msg.tier_hint"))
			})
			return nil
		}}
	set.Flags().StringVar(&minSpend, "min-spend", "", "spend that qualifies, e.g. 1000 / 消费门槛")
	set.Flags().StringVar(&minPoints, "min-points", "", "points balance that qualifies / 积分门槛")
	set.Flags().StringVar(&multiplier, "multiplier", "", "points multiplier, e.g. 1.5 / 积分倍率")

	list := &cobra.Command{Use: "list", Short: "list tiers / 等级列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			tiers, lo, err := a.Tiers()
			if err != nil {
				return err
			}
			c.print(map[string]any{"basis": lo.TierBasis, "window_months": lo.TierWindowMonths, "tiers": tiers}, func(l Lang) {
				var rows [][]string
				for _, tr := range tiers {
					rows = append(rows, []string{tr.Name, tr.MinSpend.Yuan(), strconv.FormatInt(tr.MinPoints, 10), FormatMultiplier(tr.MultiplierBP), tr.ID})
				}
				table(c.out, []string{l.T("col.name"), l.T("member.col.min_spend"), l.T("member.col.min_points"), l.T("member.col.multiplier"), l.T("col.id")}, rows)
				fmt.Fprintln(c.out, l.T("msg.tier_basis", l.TierBasis(lo)))
			})
			return nil
		}}

	remove := &cobra.Command{Use: "remove NAME", Short: "delete a tier / 删除等级", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			moved, err := a.RemoveTier(args[0])
			if err != nil {
				return err
			}
			c.print(map[string]any{"removed": args[0], "moved": moved}, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.tier_removed", args[0], moved)) })
			return nil
		}}

	var window string
	basis := &cobra.Command{Use: "basis spend|points", Short: "what tiers are decided by: spend within --window months (0: lifetime) or points / 定级依据", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			var w *string
			if cmd.Flags().Changed("window") {
				w = &window
			}
			lo, err := a.SetTierBasis(args[0], w)
			if err != nil {
				return err
			}
			c.print(map[string]any{"basis": lo.TierBasis, "window_months": lo.TierWindowMonths}, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.tier_basis", l.TierBasis(lo)))
				fmt.Fprintln(c.err, l.T("msg.tier_hint"))
			})
			return nil
		}}
	basis.Flags().StringVar(&window, "window", "", "months of spend that count (0: lifetime) / 统计月数")

	cmd.AddCommand(set, list, remove, basis)
	return cmd
}

// memberAutoCmd: member auto add|list|remove|run.
func (c *cli) memberAutoCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "auto", Short: "automatic issuing: welcome, spend, idle, birthday coupons / 自动发券"}

	var f IssueRuleForm
	var threshold, days string
	add := &cobra.Command{Use: "add", Short: "add an issuing rule / 添加规则", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("threshold") {
				f.Threshold = &threshold
			}
			if cmd.Flags().Changed("days") {
				f.Days = &days
			}
			r, err := a.AddIssueRule(f)
			if err != nil {
				return err
			}
			c.print(r, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.rule_added", r.ID, l.IssueCondition(*r), r.Campaign)) })
			return nil
		}}
	add.Flags().StringVar(&f.Kind, "kind", "", "welcome|spend|idle|birthday / 类型")
	add.Flags().StringVar(&f.Campaign, "campaign", "", "the campaign whose codes are handed out / 活动")
	add.Flags().StringVar(&threshold, "threshold", "", "spend: lifetime spend that triggers it, e.g. 500 / 消费满额")
	add.Flags().StringVar(&days, "days", "", "idle: days without a visit / 未到店天数")

	var all bool
	list := &cobra.Command{Use: "list", Short: "list issuing rules / 规则列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			rules, err := a.IssueRules(all)
			if err != nil {
				return err
			}
			c.print(rules, func(l Lang) {
				var rows [][]string
				for _, r := range rules {
					status := l.T("status.active")
					if !r.Active {
						status = l.T("member.rule_stopped")
					}
					rows = append(rows, []string{l.T("issue." + r.Kind), l.IssueCondition(r), r.Campaign, status, r.ID})
				}
				table(c.out, []string{l.T("member.col.rule"), l.T("member.col.condition"), l.T("col.campaign"), l.T("col.status"), l.T("col.id")}, rows)
			})
			return nil
		}}
	list.Flags().BoolVar(&all, "all", false, "stopped rules too / 包括已停用")

	remove := &cobra.Command{Use: "remove ID", Short: "stop an issuing rule / 停用规则", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.RemoveIssueRule(args[0]); err != nil {
				return err
			}
			c.print(map[string]any{"removed": args[0]}, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.rule_removed", args[0])) })
			return nil
		}}

	run := &cobra.Command{Use: "run", Short: "hand out today's idle, birthday and spend coupons (each once) / 执行自动发券", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			var p *Progress
			res, err := a.RunIssueRules(func(done, total int64) {
				if p == nil {
					p = c.progress("auto", total)
				}
				p.Set(done)
			})
			p.Done()
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				var rows [][]string
				for _, r := range res.Rules {
					rows = append(rows, []string{l.T("issue." + r.Kind), r.Campaign, strconv.FormatInt(r.Checked, 10), strconv.FormatInt(r.Issued, 10), r.RuleID})
				}
				if len(rows) > 0 {
					table(c.out, []string{l.T("member.col.rule"), l.T("col.campaign"), l.T("member.col.checked"), l.T("member.col.issued"), l.T("col.id")}, rows)
				}
				fmt.Fprintln(c.out, l.T("msg.rule_run", res.Issued))
			})
			return nil
		}}

	cmd.AddCommand(add, list, remove, run)
	return cmd
}

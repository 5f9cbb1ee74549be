package app

import (
	"fmt"
	"strconv"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/spf13/cobra"
)

func orderFlags(cmd *cobra.Command, o *OrderInput) {
	cmd.Flags().StringVar(&o.Amount, "order", "", "order amount, e.g. 128.00 / 订单金额")
	cmd.Flags().StringVar(&o.Debit, "amount", "", "gift card: amount to take (default: the order, up to the balance) / 扣款金额")
	cmd.Flags().StringVar(&o.Member, "member", "", "member's phone, for per-member limits / 会员手机号")
	cmd.Flags().StringVar(&o.Ref, "ref", "", "the till's order number / 订单号")
}

func (c *cli) verdictText(v core.Verdict) {
	l := c.language()
	if v.OK {
		fmt.Fprintf(c.out, "✔ %s  %s\n", l.Reason(v.Reason), v.Name)
	} else {
		fmt.Fprintf(c.out, "✘ %s (%s)\n", l.Reason(v.Reason), v.Reason)
	}
	if v.OK {
		kv(c.out, [][2]string{{l.T("col.code"), v.Code}, {l.T("col.kind"), l.T("kind." + string(v.Kind))},
			{l.T("col.discount"), v.Discount.Yuan()}, {l.T("col.value_redeem"), v.Value.Yuan()}, {l.T("col.balance"), v.Balance.Yuan()},
			{"payable / 应付", v.Payable.Yuan()}})
	}
}

func (c *cli) checkCmd() *cobra.Command {
	var o OrderInput
	cmd := &cobra.Command{Use: "check CODE", Short: "can this code be redeemed now? / 验券", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			v, err := a.Check(args[0], o)
			if err != nil {
				return err
			}
			c.print(v, func(l Lang) { c.verdictText(v) })
			if !v.OK {
				c.code = ExitRejected
			}
			return nil
		}}
	orderFlags(cmd, &o)
	return cmd
}

func (c *cli) redeemCmd() *cobra.Command {
	var o OrderInput
	var key string
	cmd := &cobra.Command{Use: "redeem CODE", Short: "redeem a code, exactly once / 核销", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			res, err := a.Redeem(args[0], o, key)
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				if !res.Verdict.OK {
					c.verdictText(res.Verdict)
					return
				}
				r := res.Redemption
				fmt.Fprintln(c.out, l.T("msg.redeemed", r.Code, r.Discount.Yuan(), r.Value.Yuan(), res.Verdict.Payable.Yuan(), r.ID))
				if res.Replayed {
					fmt.Fprintln(c.out, l.T("msg.replayed"))
				}
			})
			if !res.Verdict.OK {
				c.code = ExitRejected
			}
			return nil
		}}
	orderFlags(cmd, &o)
	cmd.Flags().StringVar(&key, "key", "", "idempotency key: repeating it returns the first result / 幂等键")
	return cmd
}

func (c *cli) rollbackCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{Use: "rollback REDEMPTION_ID", Short: "undo a redemption / 撤销核销", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			r, err := a.Rollback(args[0], reason)
			if err != nil {
				return err
			}
			c.print(r, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.rolled_back", r.ID)) })
			return nil
		}}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required) / 原因（必填）")
	return cmd
}

func (c *cli) redemptionsCmd() *cobra.Command {
	var f store.RedemptionFilter
	var code, campaign string
	cmd := &cobra.Command{Use: "redemptions", Short: "recent redemptions / 核销记录", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if campaign != "" {
				camp, err := a.Campaign(campaign)
				if err != nil {
					return err
				}
				f.Campaign = camp.ID
			}
			if code != "" {
				k, err := a.DB.FindCode(code, false)
				if err != nil {
					return err
				}
				f.Code = k.Code
			}
			rs, err := a.Redemptions(f)
			if err != nil {
				return err
			}
			if rs == nil {
				rs = []*core.Redemption{}
			}
			c.print(rs, func(l Lang) { c.redemptionTable(a, rs) })
			return nil
		}}
	cmd.Flags().StringVar(&code, "code", "", "only this code")
	cmd.Flags().StringVar(&campaign, "campaign", "", "only this campaign")
	cmd.Flags().IntVar(&f.Limit, "limit", 50, "rows")
	return cmd
}

func (c *cli) reportCmd() *cobra.Command {
	var from, to, by, st, camp, file string
	cmd := &cobra.Command{Use: "report", Short: "KPIs for a date range / 报表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			rows, err := a.Report(from, to, by, st, camp)
			if err != nil {
				return err
			}
			if rows == nil {
				rows = []store.ReportRow{}
			}
			h, out := reportTable(c.language(), rows, by)
			if file != "" {
				if err := a.ExportTable(file, "report", h, out); err != nil {
					return err
				}
			}
			c.print(rows, func(l Lang) {
				table(c.out, h, out)
				if file != "" {
					fmt.Fprintln(c.out, l.T("msg.exported_to", file))
				}
			})
			return nil
		}}
	cmd.Flags().StringVar(&from, "from", "-30d", "first day: 2026-11-01, today or -30d / 开始日期")
	cmd.Flags().StringVar(&to, "to", "today", "last day (inclusive) / 结束日期")
	cmd.Flags().StringVar(&by, "by", "day", "day|store|campaign|total / 分组")
	cmd.Flags().StringVar(&st, "only-store", "", "only this store / 仅此门店")
	cmd.Flags().StringVar(&camp, "campaign", "", "only this campaign / 仅此活动")
	cmd.Flags().StringVar(&file, "export", "", "also write FILE.csv or FILE.xlsx / 导出")
	cmd.AddCommand(c.analyticsCmds()...)
	return cmd
}

// reportTable lays the KPI rows out with their total.
func reportTable(l Lang, rows []store.ReportRow, by string) ([]string, [][]string) {
	var out [][]string
	var tot store.ReportRow
	for _, r := range rows {
		if by == "total" {
			r.Name = l.T("msg.total")
		}
		out = append(out, reportCells(r))
		tot.Generated += r.Generated
		tot.Distributed += r.Distributed
		tot.Redeemed += r.Redeemed
		tot.RolledBack += r.RolledBack
		tot.Net += r.Net
		tot.Discount += r.Discount
		tot.OrderAmount += r.OrderAmount
		tot.Value += r.Value
	}
	if len(rows) > 1 {
		tot.Name = l.T("msg.total")
		out = append(out, reportCells(tot))
	}
	first := l.T("col.day")
	switch by {
	case "store":
		first = l.T("col.store")
	case "campaign":
		first = l.T("col.campaign")
	case "total":
		first = ""
	}
	return []string{first, l.T("col.generated"), l.T("col.distrib"), l.T("col.redeemed"), l.T("col.rolled_back"),
		l.T("col.net"), l.T("col.rate"), l.T("col.discount"), l.T("col.order_amount"), l.T("col.value_redeem")}, out
}

// analyticsView is what an analytics subcommand shows: data for --json, a table for
// the terminal and --export, and a closing line.
type analyticsView struct {
	data   any
	header []string
	rows   [][]string
	note   string
}

// analyticsCmds are the report subcommands: funnel, cost, repeat, liability, forecast,
// heatmap. Each takes --from/--to and --campaign where they apply, the global --store
// as the store to look at, and --export FILE.csv|.xlsx.
func (c *cli) analyticsCmds() []*cobra.Command {
	type spec struct {
		use, short     string
		days, campaign bool
		run            func(a *App, l Lang, r Range, by string) (*analyticsView, error)
	}
	specs := []spec{
		{"funnel", "generated → distributed → redeemed per campaign / 转化漏斗", true, true,
			func(a *App, l Lang, r Range, _ string) (*analyticsView, error) {
				f, err := a.Funnel(r)
				if err != nil {
					return nil, err
				}
				h, rows := l.FunnelTable(f)
				return &analyticsView{data: f, header: h, rows: rows}, nil
			}},
		{"cost", "discount cost against order amount (--by campaign|store|day) / 优惠成本", true, true,
			func(a *App, l Lang, r Range, by string) (*analyticsView, error) {
				v, err := a.Cost(r, by)
				if err != nil {
					return nil, err
				}
				h, rows := l.CostTable(v)
				return &analyticsView{data: v, header: h, rows: rows}, nil
			}},
		{"repeat", "members' repeat-purchase rate / 会员复购率", true, false,
			func(a *App, l Lang, r Range, _ string) (*analyticsView, error) {
				v, err := a.Repeat(r)
				if err != nil {
					return nil, err
				}
				h, rows := l.RepeatTable(v)
				return &analyticsView{data: v, header: h, rows: rows}, nil
			}},
		{"liability", "what is owed: gift cards, wallets, points, checked against the ledgers / 未兑付负债", false, false,
			func(a *App, l Lang, r Range, _ string) (*analyticsView, error) {
				v, err := a.Liability()
				if err != nil {
					return nil, err
				}
				h, rows := l.LiabilityTable(v)
				note := l.T("an.liability_ok")
				if !v.OK {
					note = l.T("an.liability_bad")
				}
				return &analyticsView{data: v, header: h, rows: rows, note: note}, nil
			}},
		{"forecast", "what expires, by month (default: a year from today) / 到期预测", true, true,
			func(a *App, l Lang, r Range, _ string) (*analyticsView, error) {
				v, err := a.Forecast(r)
				if err != nil {
					return nil, err
				}
				h, rows := l.ForecastTable(v)
				return &analyticsView{data: v, header: h, rows: rows}, nil
			}},
		{"heatmap", "redemptions by weekday and hour / 核销时段热力图", true, false,
			func(a *App, l Lang, r Range, _ string) (*analyticsView, error) {
				v, err := a.Heatmap(r)
				if err != nil {
					return nil, err
				}
				h, rows := l.HeatmapTable(v)
				return &analyticsView{data: v, header: h, rows: rows, note: l.T("an.heatmap_total", v.Total, v.Max)}, nil
			}},
	}
	var cmds []*cobra.Command
	for _, s := range specs {
		var r Range
		var by, file string
		cmd := &cobra.Command{Use: s.use, Short: s.short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				a, err := c.open()
				if err != nil {
					return err
				}
				r.Store = c.storeArg
				l := c.language()
				v, err := s.run(a, l, r, by)
				if err != nil {
					return err
				}
				if file != "" {
					if err := a.ExportTable(file, s.use, v.header, v.rows); err != nil {
						return err
					}
				}
				c.print(v.data, func(l Lang) {
					table(c.out, v.header, v.rows)
					if v.note != "" {
						fmt.Fprintln(c.out, v.note)
					}
					if file != "" {
						fmt.Fprintln(c.out, l.T("msg.exported_to", file))
					}
				})
				return nil
			}}
		f := cmd.Flags()
		if s.days {
			f.StringVar(&r.From, "from", "", "first day: 2026-11-01, today or -30d / 开始日期")
			f.StringVar(&r.To, "to", "", "last day, inclusive / 结束日期")
		}
		if s.campaign {
			f.StringVar(&r.Campaign, "campaign", "", "only this campaign / 仅此活动")
		}
		if s.use == "cost" {
			f.StringVar(&by, "by", "campaign", "campaign|store|day / 分组")
		}
		f.StringVar(&file, "export", "", "also write FILE.csv or FILE.xlsx / 导出")
		cmds = append(cmds, cmd)
	}
	return cmds
}

func reportCells(r store.ReportRow) []string {
	rate := ""
	if base := max(r.Distributed, r.Generated); base > 0 {
		rate = strconv.FormatFloat(100*float64(r.Net)/float64(base), 'f', 1, 64) + "%"
	}
	return []string{r.Name, strconv.FormatInt(r.Generated, 10), strconv.FormatInt(r.Distributed, 10), strconv.FormatInt(r.Redeemed, 10),
		strconv.FormatInt(r.RolledBack, 10), strconv.FormatInt(r.Net, 10), rate, r.Discount.String(), r.OrderAmount.String(), r.Value.String()}
}

func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "the audit hash chain / 审计"}
	verify := &cobra.Command{Use: "verify", Short: "check every link of the chain / 校验审计链", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			res, err := a.VerifyAudit()
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) {
				if res.OK {
					fmt.Fprintln(c.out, l.T("msg.audit_ok", res.Entries))
					return
				}
				b := res.Break
				fmt.Fprintln(c.out, l.T("msg.audit_broken", b.Seq, b.Action, b.ID, l.T("msg.audit_why_"+b.Why)))
			})
			if !res.OK {
				c.code = ExitAudit
			}
			return nil
		}}
	exp := &cobra.Command{Use: "export", Short: "write the chain as JSON lines for third-party verification / 导出审计链", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.require(ActAudit); err != nil {
				return err
			}
			return a.DB.EachAudit(func(e *core.AuditEntry) error {
				line := struct {
					*core.AuditEntry
					Body string `json:"body"`
				}{e, string(e.Body())}
				b, err := jsonLine(line)
				if err != nil {
					return err
				}
				_, err = c.out.Write(b)
				return err
			})
		}}
	cmd.AddCommand(verify, exp)
	return cmd
}

package app

import (
	"fmt"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/spf13/cobra"
)

// table prints a header and rows as a table function lays them out.
func (c *cli) table(header []string, rows [][]string) { table(c.out, header, rows) }

// splitScope reads which rule a settle rules command means: --campaign C, the global
// --store S, or --default; exactly one.
func (c *cli) splitScope(campaign string, def bool) (scope, ref string, err error) {
	n := 0
	if campaign != "" {
		scope, ref, n = core.SplitCampaign, campaign, n+1
	}
	if c.storeArg != "" {
		scope, ref, n = core.SplitStore, c.storeArg, n+1
	}
	if def {
		scope, ref, n = core.SplitDefault, "", n+1
	}
	if n != 1 {
		return "", "", core.Invalid("scope", "--campaign C | --store S | --default", "", "name exactly one of --campaign, --store or --default")
	}
	return scope, ref, nil
}

// settleCmd groups settlement commands: split rules and statements.
func (c *cli) settleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "settle", Short: "settlement split and statements / 结算分账"}
	var campaign, parties, remainder string
	var def bool
	scopeFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&campaign, "campaign", "", "the campaign's rule / 活动规则")
		cmd.Flags().BoolVar(&def, "default", false, "the default rule / 默认规则")
	}
	rules := &cobra.Command{Use: "rules", Short: "list split rules (set, remove: --campaign C | --store S | --default) / 分账规则", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			rs, err := a.SplitRules()
			if err != nil {
				return err
			}
			c.print(rs, func(l Lang) {
				if len(rs) == 0 {
					fmt.Fprintln(c.out, l.T("msg.settle_no_rules"))
					return
				}
				c.table(l.SplitRuleTable(rs))
			})
			return nil
		}}
	set := &cobra.Command{Use: "set", Short: "set a rule: --campaign C | --store S | --default --parties \"brand:60,store:35,platform:5\" / 设置分账规则",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, ref, err := c.splitScope(campaign, def)
			if err != nil {
				return err
			}
			a, err := c.open()
			if err != nil {
				return err
			}
			r, err := a.SetSplitRule(scope, ref, parties, remainder)
			if err != nil {
				return err
			}
			c.print(r, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.settle_rule_saved", l.ScopeText(r.Scope, r.ScopeName), SplitText(r), l.RemainderText(r.Remainder)))
			})
			return nil
		}}
	scopeFlags(set)
	set.Flags().StringVar(&parties, "parties", "", "party:percent,… adding up to 100 / 分账方及比例")
	set.Flags().StringVar(&remainder, "remainder", core.RemainderLargest, "who takes the fen left by rounding: a party or largest / 尾差归属")
	remove := &cobra.Command{Use: "remove", Short: "remove a rule: --campaign C | --store S | --default / 删除分账规则", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			scope, ref, err := c.splitScope(campaign, def)
			if err != nil {
				return err
			}
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.RemoveSplitRule(scope, ref); err != nil {
				return err
			}
			c.print(map[string]any{"removed": true, "scope": scope, "scope_ref": ref}, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.settle_rule_removed", l.ScopeText(scope, ref)))
			})
			return nil
		}}
	scopeFlags(remove)
	rules.AddCommand(set, remove)

	var party, file string
	var p Period
	var verify bool
	statement := &cobra.Command{Use: "statement", Short: "a party's statement for a month or days / 结算单", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			s, err := a.Statement(party, p, verify)
			if err != nil {
				return err
			}
			if file != "" {
				h, rows := c.language().StatementFile(s)
				if err := a.ExportTable(file, s.Party+" "+s.From, h, rows); err != nil {
					return err
				}
			}
			c.print(s, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.settle_title", s.Party, s.From, s.To))
				c.table(l.StatementTable(s))
				fmt.Fprintln(c.out, "\n"+l.T("msg.settle_reconcile"))
				c.table(l.ReconcileTable(s))
				kv(c.out, l.ReconcileNotes(s))
				if s.Verify != nil && len(s.Verify.Differences) > 0 {
					c.table(l.DiffTable(s.Verify))
				}
				if file != "" {
					fmt.Fprintln(c.out, l.T("msg.exported_to", file))
				}
			})
			if s.Verify != nil && !s.Verify.OK {
				c.code = ExitUnhealthy
			}
			return nil
		}}
	f := statement.Flags()
	f.StringVar(&party, "party", "", "the party, e.g. brand / 结算方")
	f.StringVar(&p.Month, "month", "", "a month, e.g. 2026-11 / 月份")
	f.StringVar(&p.From, "from", "", "first day (default: the 1st of this month) / 开始日期")
	f.StringVar(&p.To, "to", "", "last day, inclusive (default: today) / 结束日期")
	f.StringVar(&file, "export", "", "also write FILE.csv or FILE.xlsx / 导出")
	f.BoolVar(&verify, "verify", false, "recompute from the redemptions and report any difference / 按核销明细复核")
	cmd.AddCommand(rules, statement)
	return cmd
}

// remindCmd lists codes and points about to expire.
func (c *cli) remindCmd() *cobra.Command {
	var in RemindInput
	cmd := &cobra.Command{Use: "remind", Short: "codes and points expiring soon / 到期提醒", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			r, err := a.Remind(in)
			if err != nil {
				return err
			}
			msgs := a.Messages(r)
			if in.File != "" {
				if err := a.ExportMessages(msgs, in.File); err != nil {
					return err
				}
			}
			out := struct {
				Days int `json:"days"`
				*store.Reminders
				Messages []SMS `json:"messages"`
			}{in.Days, r, msgs}
			if out.Messages == nil {
				out.Messages = []SMS{}
			}
			c.print(out, func(l Lang) {
				if len(r.Items) == 0 {
					fmt.Fprintln(c.out, l.T("remind.none", in.Days))
				} else {
					c.table(a.RemindTable(r))
				}
				if r.NoConsent > 0 {
					fmt.Fprintln(c.out, l.T("remind.no_consent", r.NoConsent))
				}
				if in.File != "" {
					fmt.Fprintln(c.out, l.T("remind.exported", len(msgs), in.File))
				}
			})
			return nil
		}}
	f := cmd.Flags()
	f.IntVar(&in.Days, "days", 7, "what expires within this many days / 天数")
	f.StringVar(&in.File, "export", "", "write the messages for an SMS tool to FILE.csv (phone, name, text) / 导出短信")
	f.BoolVar(&in.Reveal, "reveal", false, "full phone numbers (audited) / 显示完整手机号（记入审计）")
	f.BoolVar(&in.All, "all", false, "also members without marketing consent / 包括未同意营销信息的会员")
	return cmd
}

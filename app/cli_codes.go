package app

import (
	"fmt"
	"strconv"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/spf13/cobra"
)

func (c *cli) codesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "codes", Aliases: []string{"code"}, Short: "generate, import, list, export, distribute codes / 券码管理"}

	var count int64
	gen := &cobra.Command{Use: "generate CAMPAIGN", Short: "generate a batch of codes (all or none) / 生成券码", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			camp, err := a.Campaign(args[0])
			if err != nil {
				return err
			}
			p := c.progress(camp.Name, count)
			b, err := a.GenerateCodes(camp.ID, count, p.Set)
			p.Done()
			if err != nil {
				return err
			}
			odds := camp.Format.GuessOdds(camp.Issued + count)
			c.print(map[string]any{"batch": b, "odds_of_guessing": odds}, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.generated", count, camp.Name, b.ID))
				fmt.Fprintln(c.out, l.T("msg.odds", oneIn(odds)))
			})
			return nil
		}}
	gen.Flags().Int64VarP(&count, "count", "n", 100, "how many codes / 数量")

	var format, mapping string
	imp := &cobra.Command{Use: "import CAMPAIGN FILE", Short: "import card keys or gift cards from a file (all or none) / 导入", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			p := c.progress(args[1], 0)
			res, err := a.ImportCodes(args[0], args[1], format, mapping, p.Set)
			p.Done()
			if err != nil {
				return err
			}
			c.print(res, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.imported", res.Rows, args[0], res.Batch.ID)) })
			return nil
		}}
	imp.Flags().StringVar(&format, "format", "", "lines|csv|shop (default: detect) / 格式")
	imp.Flags().StringVar(&mapping, "map", "", "CSV columns, e.g. code=卡号,secret=密码,face=面值 / 列映射")

	var f store.CodeFilter
	list := &cobra.Command{Use: "list CAMPAIGN", Short: "list a campaign's codes / 券码列表", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			rows, total, err := a.ListCodes(args[0], f)
			if err != nil {
				return err
			}
			if rows == nil {
				rows = []CodeRow{}
			}
			c.print(map[string]any{"total": total, "codes": rows}, func(l Lang) {
				var out [][]string
				for _, r := range rows {
					out = append(out, []string{r.Display, l.T("status." + r.Status), strconv.Itoa(r.Uses), r.Balance.String(), r.Phone,
						a.FormatTime(r.Distributed), a.FormatTime(r.ValidTo)})
				}
				table(c.out, []string{l.T("col.code"), l.T("col.status"), l.T("col.uses"), l.T("col.balance"), l.T("col.phone"), l.T("col.distributed"), l.T("col.valid_to")}, out)
				fmt.Fprintf(c.out, "%d / %d\n", len(rows), total)
			})
			return nil
		}}
	list.Flags().StringVar(&f.Status, "status", "", "active|voided|redeemed|unused|distributed")
	list.Flags().StringVar(&f.Batch, "batch", "", "only this batch")
	list.Flags().IntVar(&f.Limit, "limit", 50, "rows per page / 每页条数")
	list.Flags().IntVar(&f.Offset, "offset", 0, "skip rows / 跳过")

	var out string
	var reveal bool
	var ef store.CodeFilter
	exp := &cobra.Command{Use: "export CAMPAIGN", Short: "export codes to CSV (UTF-8 BOM) or XLSX / 导出", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if out == "" {
				return core.Invalid("out", "FILE.csv | FILE.xlsx", "", "say where to write with --out")
			}
			camp, err := a.Campaign(args[0])
			if err != nil {
				return err
			}
			total, _ := a.DB.CountCodes(store.CodeFilter{Campaign: camp.ID, Status: ef.Status, Batch: ef.Batch})
			p := c.progress(out, total)
			n, err := a.ExportCodes(camp.ID, out, ef, reveal, p.Set)
			p.Done()
			if err != nil {
				return err
			}
			c.print(map[string]any{"rows": n, "file": out}, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.exported", n, out)) })
			return nil
		}}
	exp.Flags().StringVarP(&out, "out", "o", "", "FILE.csv or FILE.xlsx / 输出文件")
	exp.Flags().BoolVar(&reveal, "reveal", false, "include full phone numbers (audited; owner/manager) / 显示完整手机号")
	exp.Flags().StringVar(&ef.Status, "status", "", "active|voided|redeemed|unused|distributed")
	exp.Flags().StringVar(&ef.Batch, "batch", "", "only this batch")

	var phone string
	var handOut int
	dist := &cobra.Command{Use: "distribute [CODE...]", Short: "give codes to a phone number, or mark them handed out / 发放",
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if handOut > 0 {
				if len(args) != 1 {
					return core.Invalid("campaign", "codes distribute CAMPAIGN --count N", "", "with --count give one campaign")
				}
				codes, err := a.DistributeBatch(args[0], handOut)
				if err != nil {
					return err
				}
				c.print(map[string]any{"distributed": len(codes), "codes": codes}, func(l Lang) {
					for _, k := range codes {
						fmt.Fprintln(c.out, k)
					}
					fmt.Fprintln(c.out, l.T("msg.distributed", len(codes)))
				})
				return nil
			}
			if len(args) == 0 {
				return core.Invalid("code", "codes distribute CODE... [--phone P]", "", "no codes given")
			}
			n, err := a.Distribute(args, phone)
			if err != nil {
				return err
			}
			c.print(map[string]any{"distributed": n}, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.distributed", n)) })
			return nil
		}}
	dist.Flags().StringVar(&phone, "phone", "", "the customer's mobile number / 手机号")
	dist.Flags().IntVar(&handOut, "count", 0, "hand out N unused codes of CAMPAIGN (printing, partners) / 批量发放")

	var reason string
	void := &cobra.Command{Use: "void CODE", Short: "void a code / 作废", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := c.confirm("void " + args[0]); err != nil {
				return err
			}
			code, err := a.Void(args[0], reason)
			if err != nil {
				return err
			}
			c.print(map[string]any{"voided": code}, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.voided", code)) })
			return nil
		}}
	void.Flags().StringVar(&reason, "reason", "", "why / 原因")
	void.Flags().BoolVarP(&c.yes, "yes", "y", false, "do not ask / 不再确认")

	var what string
	rev := &cobra.Command{Use: "reveal CODE", Short: "show a card key's secret or a code's phone (audited) / 查看卡密", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			v, err := a.Reveal(args[0], what)
			if err != nil {
				return err
			}
			c.print(map[string]any{"code": args[0], what: v}, func(l Lang) {
				fmt.Fprintln(c.out, v)
				fmt.Fprintln(c.err, l.T("msg.revealed", l.T("field."+what)))
			})
			return nil
		}}
	rev.Flags().StringVar(&what, "field", "secret", "secret|phone")

	show := &cobra.Command{Use: "show CODE", Short: "one code and its redemptions / 券码详情", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			k, rs, err := a.ShowCode(args[0])
			if err != nil {
				return err
			}
			if rs == nil {
				rs = []*core.Redemption{}
			}
			c.print(map[string]any{"code": k, "redemptions": rs}, func(l Lang) {
				secret := ""
				if k.HasSecret {
					secret = core.MaskSecret("")
				}
				kv(c.out, [][2]string{{l.T("col.code"), k.Display}, {l.T("col.campaign"), k.Campaign}, {l.T("col.status"), l.T("status." + k.Status)},
					{l.T("col.uses"), strconv.Itoa(k.Uses)}, {l.T("col.balance"), k.Balance.Yuan()}, {l.T("col.secret"), secret},
					{l.T("col.phone"), k.Phone}, {l.T("col.distributed"), a.FormatTime(k.Distributed)}, {l.T("col.valid_to"), a.FormatTime(k.ValidTo)}})
				if len(rs) > 0 {
					fmt.Fprintln(c.out)
					c.redemptionTable(a, rs)
				}
			})
			return nil
		}}
	cmd.AddCommand(gen, imp, list, exp, dist, void, rev, show)
	return cmd
}

func oneIn(odds float64) string {
	if odds <= 0 {
		return "∞"
	}
	return strconv.FormatFloat(1/odds, 'g', 4, 64)
}

func (c *cli) redemptionTable(a *App, rs []*core.Redemption) {
	l := a.Lang
	var rows [][]string
	for _, r := range rs {
		rows = append(rows, []string{a.FormatTime(r.Created), r.Code, l.T("status." + r.Status), r.OrderAmount.String(), r.Discount.String(), r.Value.String(), r.ID})
	}
	table(c.out, []string{l.T("col.time"), l.T("col.code"), l.T("col.status"), l.T("col.order_amount"), l.T("col.discount"), l.T("col.value_redeem"), l.T("col.id")}, rows)
}

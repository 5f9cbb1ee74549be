package app

import (
	"fmt"
	"os"

	"github.com/kameng/kameng/core"
	"github.com/spf13/cobra"
)

func (c *cli) demoCmd() *cobra.Command {
	var ifEmpty bool
	var seed uint64
	cmd := &cobra.Command{Use: "demo", Short: "create a realistic demo merchant / 生成演示数据", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l := c.language()
			if Exists(c.data) {
				if ifEmpty {
					c.print(map[string]any{"created": false, "data": c.data}, func(l Lang) { fmt.Fprintln(c.err, l.T("msg.demo_exists", c.data)) })
					return nil
				}
				return &core.Error{Code: core.ErrConflict, Field: "data", Message: l.T("msg.demo_exists", c.data), Params: map[string]string{"value": c.data}}
			}
			p := c.progress("demo", 28)
			a, sum, err := Demo(c.data, seed, p.Set)
			p.Done()
			if a != nil {
				c.setup(a)
			}
			if err != nil {
				return err
			}
			c.print(map[string]any{"created": true, "data": c.data, "summary": sum}, func(l Lang) {
				fmt.Fprintln(c.out, l.T("msg.demo_done", sum.Stores, sum.Campaigns, sum.Codes, sum.Redemptions, sum.Members))
				fmt.Fprintf(c.out, "owner / manager / cashier / tech — password: %s\n", sum.Password)
			})
			return nil
		}}
	cmd.Flags().BoolVar(&ifEmpty, "if-empty", false, "only when there is no database yet / 仅在没有数据时")
	cmd.Flags().Uint64Var(&seed, "seed", 20261123, "random seed for reproducible demo data")
	return cmd
}

// Check is one line of the doctor's report.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Doctor checks the database, its key and the data directory.
func (a *App) Doctor() ([]Check, error) {
	if err := a.require(ActDoctor); err != nil {
		return nil, err
	}
	var out []Check
	add := func(name string, ok bool, detail string, args ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	v, err := a.DB.Version()
	add("schema", err == nil && v == storeSchema(), "version %d (this program: %d)", v, storeSchema())
	ic, err := a.DB.IntegrityCheck()
	add("integrity", err == nil && ic == "ok", "%s", ic)
	kdf, _, _ := a.DB.KeyInfo()
	add("key", a.DB.Unlocked(), "data key %s (%s)", map[bool]string{true: "unlocked", false: "LOCKED"}[a.DB.Unlocked()], kdf)
	if st, err := os.Stat(a.DataDir); err == nil {
		perm := st.Mode().Perm()
		add("data_dir", perm&0o077 == 0, "%s %v", a.DataDir, perm)
	}
	if kdf == "file" {
		if st, err := os.Stat(KeyPath(a.DataDir)); err == nil {
			add("key_file", st.Mode().Perm()&0o077 == 0, "%s %v", KeyPath(a.DataDir), st.Mode().Perm())
		} else {
			add("key_file", false, "%v", err)
		}
	}
	n, brk, err := a.DB.VerifyAudit()
	switch {
	case err != nil:
		add("audit", false, "%v", err)
	case brk != nil:
		add("audit", false, "broken at entry %d (%s)", brk.Seq, brk.Why)
	default:
		add("audit", true, "%d entries", n)
	}
	bad, err := a.DB.LedgerMismatches()
	add("ledger", err == nil && len(bad) == 0, "%d gift cards whose balance differs from the ledger", len(bad))
	cnt, err := a.DB.Counts()
	add("outbox", err == nil, "%d mutations, %d waiting to sync", cnt.Outbox, cnt.Pending)
	return out, nil
}

func (c *cli) doctorCmd() *cobra.Command {
	return &cobra.Command{Use: "doctor", Short: "check the database, key and data directory / 诊断", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			checks, err := a.Doctor()
			if err != nil {
				return err
			}
			healthy := true
			for _, ch := range checks {
				healthy = healthy && ch.OK
			}
			c.print(map[string]any{"ok": healthy, "checks": checks}, func(l Lang) {
				var rows [][]string
				for _, ch := range checks {
					mark := "✔"
					if !ch.OK {
						mark = "✘"
					}
					rows = append(rows, []string{ch.Name, mark, ch.Detail})
				}
				table(c.out, []string{l.T("col.check"), l.T("col.result"), l.T("col.detail")}, rows)
				if healthy {
					fmt.Fprintln(c.out, l.T("msg.doctor_ok"))
				} else {
					fmt.Fprintln(c.out, l.T("msg.doctor_bad"))
				}
			})
			if !healthy {
				c.code = ExitUnhealthy
			}
			return nil
		}}
}

func (c *cli) storeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Aliases: []string{"stores"}, Short: "stores of the merchant / 门店"}
	var tz string
	add := &cobra.Command{Use: "add NAME", Short: "add a store / 新增门店", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.require(ActStaff); err != nil {
				return err
			}
			s, err := a.DB.AddStore(a.Actor, args[0], tz)
			if err != nil {
				return err
			}
			c.print(s, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.added", s.Name)) })
			return nil
		}}
	add.Flags().StringVar(&tz, "tz", core.DefaultTimeZone, "time zone")
	list := &cobra.Command{Use: "list", Short: "list stores / 门店列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			ss, err := a.DB.Stores()
			if err != nil {
				return err
			}
			c.print(ss, func(l Lang) {
				var rows [][]string
				for _, s := range ss {
					rows = append(rows, []string{s.Name, s.TimeZone, s.ID})
				}
				table(c.out, []string{l.T("col.store"), l.T("col.time_zone"), l.T("col.id")}, rows)
			})
			return nil
		}}
	cmd.AddCommand(add, list)
	return cmd
}

func (c *cli) operatorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "operator", Aliases: []string{"operators"}, Short: "staff logins / 操作员"}
	var role, storeName, pwFile string
	add := &cobra.Command{Use: "add NAME", Short: "add an operator / 新增操作员", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.require(ActStaff); err != nil {
				return err
			}
			r, err := core.ParseRole(role)
			if err != nil {
				return err
			}
			storeID := ""
			if storeName != "" {
				s, err := a.DB.FindStore(storeName)
				if err != nil {
					return err
				}
				storeID = s.ID
			}
			pw, err := c.readSecret(pwFile, c.language().T("field.password")+": ", true)
			if err != nil {
				return err
			}
			if len(pw) < 8 {
				return core.Invalid("password", "8 or more characters", "", "the password needs at least 8 characters")
			}
			o, err := a.DB.AddOperator(a.Actor, args[0], r, storeID, core.HashPassword(pw))
			if err != nil {
				return err
			}
			c.print(o, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.added", o.Name)) })
			return nil
		}}
	add.Flags().StringVar(&role, "role", "cashier", "owner|manager|cashier|technician")
	add.Flags().StringVar(&storeName, "only-store", "", "limit to one store")
	add.Flags().StringVar(&pwFile, "password-file", "", "read the password from this file")
	list := &cobra.Command{Use: "list", Short: "list operators / 操作员列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			ops, err := a.DB.Operators()
			if err != nil {
				return err
			}
			c.print(ops, func(l Lang) {
				var rows [][]string
				for _, o := range ops {
					rows = append(rows, []string{o.Name, l.T("role." + string(o.Role)), o.ID})
				}
				table(c.out, []string{l.T("col.operator"), l.T("col.role"), l.T("col.id")}, rows)
			})
			return nil
		}}
	cmd.AddCommand(add, list)
	return cmd
}

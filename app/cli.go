package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// cli holds the global flags and the app a command opens.
type cli struct {
	fe       Frontends
	data     string
	storeArg string
	operator string
	lang     string
	json     bool
	yes      bool
	app      *App
	out, err io.Writer
	in       io.Reader
	code     int // exit code set by a command that succeeded but must not exit 0
}

// Main runs the command line and returns the process exit code.
func Main(args []string, fe Frontends) int {
	return Run(args, os.Stdin, os.Stdout, os.Stderr, fe)
}

// Run is Main with explicit streams, for tests.
func Run(args []string, in io.Reader, out, errw io.Writer, fe Frontends) int {
	c := &cli{fe: fe, out: out, err: errw, in: in}
	root := c.root()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errw)
	err := root.Execute()
	if c.app != nil {
		c.app.Close()
	}
	if err != nil {
		return c.fail(err)
	}
	return c.code
}

func (c *cli) language() Lang {
	if c.lang != "" {
		if l, err := ParseLang(c.lang); err == nil {
			return l
		}
	}
	return DetectLang()
}

func (c *cli) fail(err error) int {
	l := c.language()
	if errors.Is(err, errCancelled) {
		fmt.Fprintln(c.err, l.T("msg.cancelled"))
		return ExitCancelled
	}
	var ie *ImportError
	if errors.As(err, &ie) {
		if c.json {
			var je JSONError
			je.Error.Code, je.Error.Message = "import_refused", ie.Error()
			je.Error.Text = l.T("msg.import_refused", len(ie.Result.Problems))
			je.Problems = ie.Result.Problems
			emitJSON(c.out, je)
		} else {
			fmt.Fprintln(c.err, l.T("msg.import_refused", len(ie.Result.Problems)))
			var rows [][]string
			for _, p := range ie.Result.Problems {
				rows = append(rows, []string{strconv.Itoa(p.Line), p.Field, p.Reason, p.Detail, p.Value})
			}
			table(c.err, []string{l.T("col.line"), l.T("field.field"), l.T("col.problem"), l.T("col.detail"), "value"}, rows)
		}
		return ExitInvalid
	}
	var ce *core.Error
	if !errors.As(err, &ce) && !isCobraUsage(err) {
		ce = core.AsError(err)
	}
	if ce == nil { // flag and argument errors from cobra
		ce = &core.Error{Code: core.ErrInvalid, Message: err.Error()}
	}
	if c.json {
		var je JSONError
		je.Error.Code, je.Error.Field, je.Error.Message, je.Error.Params = ce.Code, ce.Field, ce.Message, ce.Params
		je.Error.Text = l.ErrorText(ce)
		emitJSON(c.out, je)
	} else {
		fmt.Fprintln(c.err, "kameng: "+l.ErrorText(ce))
	}
	return ExitCode(ce)
}

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unknown flag") || strings.Contains(s, "unknown command") || strings.Contains(s, "accepts") ||
		strings.Contains(s, "requires at least") || strings.Contains(s, "invalid argument") || strings.Contains(s, "flag needs")
}

// open opens the data directory as the chosen operator; every command but init and
// demo needs it.
func (c *cli) open() (*App, error) {
	if !Exists(c.data) {
		return nil, &core.Error{Code: core.ErrNotFound, Field: "data", Message: c.language().T("msg.not_initialised") + " (" + c.data + ")"}
	}
	a, err := Open(c.data, c.operator, c.storeArg)
	if err != nil {
		return nil, err
	}
	c.setup(a)
	return a, nil
}

func (c *cli) setup(a *App) {
	a.Lang, a.Out, a.Err, a.In, a.JSON = c.language(), c.out, c.err, c.in, c.json
	c.app = a
}

// progress returns a bar on a terminal, nothing under --json or in a pipe.
func (c *cli) progress(label string, total int64) *Progress {
	f, ok := c.err.(*os.File)
	return NewProgress(c.err, label, total, !c.json && ok && IsTerminal(f))
}

// confirm asks before a destructive action: --yes, or y typed on a terminal.
func (c *cli) confirm(what string) error {
	if c.yes {
		return nil
	}
	l := c.language()
	f, ok := c.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || c.json {
		return &core.Error{Code: core.ErrInvalid, Field: "confirm", Message: l.T("msg.need_yes")}
	}
	fmt.Fprint(c.err, l.T("msg.confirm", what))
	line, _ := bufio.NewReader(c.in).ReadString('\n')
	if s := strings.ToLower(strings.TrimSpace(line)); s == "y" || s == "yes" || s == "是" {
		return nil
	}
	return errCancelled
}

// print writes JSON under --json, else calls human.
func (c *cli) print(v any, human func(l Lang)) {
	if c.json {
		emitJSON(c.out, v)
		return
	}
	human(c.language())
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "kameng",
		Short: "卡盟 Kameng — coupons, gift cards and card keys for merchants / 券码、礼品卡与卡密管理",
		Long: "Kameng (卡盟) issues, checks and redeems coupons, gift cards and card keys, offline on a local database.\n" +
			"卡盟：券码、礼品卡、卡密的发行、验券、核销与报表，离线可用。",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.fe.TUI != nil || c.fe.GUI != nil {
				a, err := c.open()
				if err != nil {
					return err
				}
				if c.fe.GUI != nil && os.Getenv("DISPLAY")+os.Getenv("WAYLAND_DISPLAY") != "" {
					return c.fe.GUI(a)
				}
				if c.fe.TUI != nil {
					return c.fe.TUI(a)
				}
			}
			return cmd.Help()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&c.data, "data", DefaultDataDir(), "data directory / 数据目录")
	pf.StringVar(&c.storeArg, "store", "", "store name or id (default: this device's store) / 门店")
	pf.StringVar(&c.operator, "operator", "", "act as this operator (default: the owner) / 操作员")
	pf.StringVar(&c.lang, "lang", "", "zh|en (default from the locale) / 语言")
	pf.BoolVar(&c.json, "json", false, "machine-readable JSON output / 输出 JSON")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if c.lang != "" {
			if _, err := ParseLang(c.lang); err != nil {
				return err
			}
		}
		return nil
	}
	root.AddCommand(c.initCmd(), c.campaignCmd(), c.codesCmd(), c.checkCmd(), c.redeemCmd(), c.rollbackCmd(),
		c.redemptionsCmd(), c.reportCmd(), c.auditCmd(), c.demoCmd(), c.doctorCmd(), c.storeCmd(), c.operatorCmd(),
		c.memberCmd(), c.walletCmd(), c.pointsCmd(), c.settleCmd(), c.remindCmd())
	root.AddCommand(c.syncCmds()...)
	root.AddCommand(c.serveCmd(), c.serverCmd())
	return root
}

func (c *cli) initCmd() *cobra.Command {
	var o InitOptions
	var pwFile, ppFile string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "create the database, merchant, store, this device and the owner / 初始化",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l := c.language()
			pw, err := c.readSecret(pwFile, l.T("msg.password_prompt"), true)
			if err != nil {
				return err
			}
			o.Password = pw
			if ppFile != "" {
				b, err := os.ReadFile(ppFile)
				if err != nil {
					return core.Invalid("file", "a readable file", ppFile, "cannot read the passphrase file: %v", err)
				}
				o.Passphrase = trimNewline(string(b))
			}
			if o.Device == "" {
				o.Device, _ = os.Hostname()
			}
			a, err := Init(c.data, o, nil)
			if err != nil {
				return err
			}
			c.setup(a)
			c.print(map[string]any{"merchant": o.Merchant, "store": a.Actor.Store, "device": a.Actor.Device, "owner": a.Actor.Operator, "data": c.data},
				func(l Lang) { fmt.Fprintln(c.out, l.T("msg.init_done", o.Merchant, o.Store, o.Owner, c.data)) })
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Merchant, "merchant", "我的小店", "merchant name / 商户名称")
	f.StringVar(&o.Store, "store-name", "总店", "first store's name / 门店名称")
	f.StringVar(&o.TimeZone, "tz", core.DefaultTimeZone, "the store's time zone / 时区")
	f.StringVar(&o.Device, "device", "", "this device's name (default: host name) / 终端名称")
	f.StringVar(&o.Owner, "owner", "owner", "the owner's login / 店主登录名")
	f.StringVar(&pwFile, "password-file", "", "read the owner's password from this file (for scripts) / 从文件读取密码")
	f.StringVar(&ppFile, "passphrase-file", "", "protect the data key with this passphrase instead of a key file / 用口令保护数据密钥")
	return cmd
}

// readSecret reads a password from a file, or prompts twice on a terminal.
func (c *cli) readSecret(file, prompt string, twice bool) (string, error) {
	l := c.language()
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", core.Invalid("password", "--password-file FILE", file, "cannot read the password file: %v", err)
		}
		return trimNewline(string(b)), nil
	}
	f, ok := c.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", core.Invalid("password", "--password-file FILE", "", "no terminal to ask for the password")
	}
	fmt.Fprint(c.err, prompt)
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.err)
	if err != nil {
		return "", err
	}
	if len(p1) < 8 {
		return "", core.Invalid("password", "8 or more characters", "", "%s", l.T("msg.password_short"))
	}
	if twice {
		fmt.Fprint(c.err, l.T("msg.password_again"))
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.err)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", core.Invalid("password", "the same password twice", "", "%s", l.T("msg.password_mismatch"))
		}
	}
	return string(p1), nil
}

// campaignFlags binds the campaign form to flags; only flags given are applied.
func campaignFlags(cmd *cobra.Command) func() CampaignInput {
	f := cmd.Flags()
	type bind struct {
		name, usage string
		dst         **string
	}
	var in CampaignInput
	vals := map[string]*string{}
	binds := []bind{
		{"name", "campaign name / 名称", &in.Name},
		{"description", "description / 说明", &in.Description},
		{"kind", "amount_off|percent_off|gift_card|card_key / 类型", &in.Kind},
		{"amount-off", "amount off, e.g. 20 or ¥20.00 / 减免金额", &in.AmountOff},
		{"percent", "percent off, e.g. 15% or 8.5折 / 折扣", &in.Percent},
		{"max-discount", "cap on a percent-off discount / 最高优惠", &in.MaxDiscount},
		{"min-spend", "minimum order amount / 最低消费", &in.MinSpend},
		{"face-value", "gift card balance or card key face value / 面值", &in.Face},
		{"from", "valid from, 2026-12-01 [10:00] / 开始", &in.From},
		{"to", "valid through, 2026-12-31 [18:00] / 结束", &in.To},
		{"valid-days", "valid N days from distribution / 领取后有效天数", &in.ValidDays},
		{"stores", "only in these stores (names, comma-separated) / 适用门店", &in.Stores},
		{"weekdays", "only on these weekdays, e.g. 1-5 or 六,日 / 可用星期", &in.Weekdays},
		{"hours", "only in these hours, e.g. 09:00-21:00 / 可用时段", &in.Hours},
		{"uses", "redemptions per code (coupons) / 每码可用次数", &in.Uses},
		{"per-member", "redemptions per member / 每人限用", &in.PerMember},
		{"tiers", "only members of these tiers, e.g. 银卡,金卡 (empty: everyone) / 限会员等级", &in.Tiers},
		{"budget-count", "total redemptions allowed / 总次数预算", &in.BudgetCount},
		{"budget-amount", "total discount or value allowed / 总金额预算", &in.BudgetAmount},
		{"rollback-hours", "how long a redemption may be rolled back / 可撤销小时数", &in.RollbackHours},
		{"offline", "allow offline redemption: yes|no / 允许离线核销", &in.Offline},
		{"offline-max-value", "offline: face value cap / 离线面值上限", &in.OfflineMaxValue},
		{"offline-max-count", "offline: redemptions per device between syncs / 离线次数上限", &in.OfflineMaxCount},
		{"offline-max-age", "offline: minutes since last sync / 离线时长上限（分钟）", &in.OfflineMaxAge},
		{"alphabet", "code alphabet / 字符集", &in.Alphabet},
		{"length", "random characters per code / 码长", &in.Length},
		{"prefix", "code prefix / 前缀", &in.Prefix},
		{"group", "group size for printing (0: none) / 分组", &in.Group},
		{"check", "append a check character: yes|no / 校验位", &in.Check},
	}
	for _, b := range binds {
		v := new(string)
		vals[b.name] = v
		f.StringVar(v, b.name, "", b.usage)
	}
	return func() CampaignInput {
		for _, b := range binds {
			if f.Changed(b.name) {
				*b.dst = vals[b.name]
			}
		}
		return in
	}
}

func (c *cli) campaignCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "campaign", Aliases: []string{"campaigns", "c"}, Short: "design campaigns / 活动管理"}
	create := &cobra.Command{Use: "create", Short: "create a campaign / 新建活动", Args: cobra.NoArgs}
	createIn := campaignFlags(create)
	create.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := c.open()
		if err != nil {
			return err
		}
		camp, err := a.CreateCampaign(createIn())
		if err != nil {
			return err
		}
		c.print(camp, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.campaign_saved", camp.Name, camp.ID)) })
		return nil
	}
	edit := &cobra.Command{Use: "edit CAMPAIGN", Short: "change a campaign / 修改活动", Args: cobra.ExactArgs(1)}
	editIn := campaignFlags(edit)
	edit.RunE = func(cmd *cobra.Command, args []string) error {
		a, err := c.open()
		if err != nil {
			return err
		}
		camp, err := a.EditCampaign(args[0], editIn())
		if err != nil {
			return err
		}
		c.print(camp, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.campaign_saved", camp.Name, camp.ID)) })
		return nil
	}
	var filter store.CampaignFilter
	var kind, status string
	list := &cobra.Command{Use: "list", Short: "list campaigns / 活动列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			filter.Kind, filter.Status = core.Kind(kind), core.CampaignStatus(status)
			cs, err := a.Campaigns(filter)
			if err != nil {
				return err
			}
			if cs == nil {
				cs = []*core.Campaign{}
			}
			c.print(cs, func(l Lang) {
				var rows [][]string
				for _, x := range cs {
					rows = append(rows, []string{x.Name, l.T("kind." + string(x.Kind)), x.ValueSummary(), l.T("status." + string(x.Status)),
						strconv.FormatInt(x.Issued, 10), strconv.FormatInt(x.Redeemed, 10), x.ID})
				}
				table(c.out, []string{l.T("col.name"), l.T("col.kind"), l.T("col.value"), l.T("col.status"), l.T("col.issued"), l.T("col.redeemed"), l.T("col.id")}, rows)
			})
			return nil
		}}
	list.Flags().StringVar(&kind, "kind", "", "only this kind")
	list.Flags().StringVar(&status, "status", "", "active|paused|archived")
	list.Flags().StringVar(&filter.Search, "search", "", "name contains")
	show := &cobra.Command{Use: "show CAMPAIGN", Short: "show a campaign / 活动详情", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			x, err := a.Campaign(args[0])
			if err != nil {
				return err
			}
			c.print(x, func(l Lang) { c.showCampaign(a, x) })
			return nil
		}}
	status_ := func(use, short string, s core.CampaignStatus, confirm bool) *cobra.Command {
		cmd := &cobra.Command{Use: use + " CAMPAIGN", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				a, err := c.open()
				if err != nil {
					return err
				}
				if confirm {
					if err := c.confirm(use + " " + args[0]); err != nil {
						return err
					}
				}
				x, err := a.SetCampaignStatus(args[0], s)
				if err != nil {
					return err
				}
				c.print(x, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.campaign_status", x.Name, l.T("status."+string(s)))) })
				return nil
			}}
		if confirm {
			cmd.Flags().BoolVarP(&c.yes, "yes", "y", false, "do not ask / 不再确认")
		}
		return cmd
	}
	cmd.AddCommand(create, list, show, edit,
		status_("pause", "pause a campaign / 暂停", core.StatusPaused, false),
		status_("resume", "resume a campaign / 恢复", core.StatusActive, false),
		status_("archive", "archive a campaign for good / 归档（不可恢复）", core.StatusArchived, true))
	return cmd
}

func (c *cli) showCampaign(a *App, x *core.Campaign) {
	l := a.Lang
	r := x.Rules
	var stores []string
	for _, id := range r.Stores {
		if s, err := a.DB.FindStore(id); err == nil {
			stores = append(stores, s.Name)
		}
	}
	opt := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	money := func(m core.Amount) string {
		if m == 0 {
			return ""
		}
		return m.Yuan()
	}
	kv(c.out, [][2]string{
		{l.T("col.name"), x.Name}, {l.T("col.id"), x.ID}, {l.T("col.kind"), l.T("kind." + string(x.Kind))},
		{l.T("col.value"), x.ValueSummary()}, {l.T("col.status"), l.T("status." + string(x.Status))},
		{l.T("field.from"), a.FormatTime(r.ValidFrom)}, {l.T("field.to"), a.FormatTime(r.ValidTo)},
		{l.T("field.valid_days"), opt(int64(r.ValidDays))}, {l.T("field.stores"), strings.Join(stores, ", ")},
		{l.T("field.weekdays"), FormatWeekdays(r.Weekdays)}, {l.T("field.hours"), FormatHours(r.HoursFrom, r.HoursTo)},
		{l.T("field.uses"), opt(int64(r.UsesPerCode))}, {l.T("field.per_member"), opt(int64(r.PerMemberLimit))},
		{l.T("field.tiers"), a.tierNames(r.Tiers)},
		{l.T("field.budget"), strings.TrimSpace(opt(r.BudgetCount) + " " + money(r.BudgetAmount))},
		{l.T("field.rollback"), opt(int64(r.RollbackHours))},
		{l.T("field.format"), fmt.Sprintf("%s ×%d %s", x.Format.Alphabet, x.Format.Length, x.Format.Prefix)},
		{l.T("col.issued"), strconv.FormatInt(x.Issued, 10)}, {l.T("col.redeemed"), strconv.FormatInt(x.Redeemed, 10)},
		{l.T("col.created"), a.FormatTime(x.Created)},
	})
}

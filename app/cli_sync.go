package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/syncclient"
	"github.com/spf13/cobra"
)

// syncCmds are the sync commands added to the root.
func (c *cli) syncCmds() []*cobra.Command {
	return []*cobra.Command{c.deviceCmd(), c.syncCmd(), c.casesCmd(), c.allowanceCmd()}
}

// interruptible is a context that Ctrl-C (or SIGTERM) cancels.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// stageBars draws one progress bar per sync stage.
type stageBars struct {
	c     *cli
	stage string
	p     *Progress
}

func (b *stageBars) update(stage string, done, total int64) {
	if stage != b.stage || b.p == nil {
		b.p.Done()
		b.stage = stage
		b.p = b.c.progress(b.c.language().T("sync.stage."+stage), total)
	}
	b.p.Set(done)
}

func (b *stageBars) done() {
	b.p.Done()
	b.p = nil
}

func (c *cli) deviceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "this device and the sync server / 终端注册"}
	var server, token, device, ppFile string
	reg := &cobra.Command{Use: "register", Short: "register this device with a sync server (an empty data directory joins the merchant) / 注册到同步服务器",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			joining := !Exists(c.data)
			if !joining {
				db, err := OpenDB(c.data)
				if err != nil {
					return err
				}
				joining = joinUnfinished(db)
				db.Close()
			}
			if !joining {
				a, err := c.open()
				if err != nil {
					return err
				}
				r, err := a.RegisterDevice(server, token, c.storeArg)
				if err != nil {
					return err
				}
				c.print(r, func(l Lang) { fmt.Fprintln(c.out, l.T("sync.registered", r.Server, r.MerchantID, r.LastMID)) })
				return nil
			}
			o := JoinOptions{Server: server, Token: token, Store: c.storeArg, Device: device}
			if ppFile != "" {
				b, err := os.ReadFile(ppFile)
				if err != nil {
					return core.Invalid("file", "a readable file", ppFile, "cannot read the passphrase file: %v", err)
				}
				o.Passphrase = trimNewline(string(b))
			}
			ctx, stop := interruptible()
			defer stop()
			bars := &stageBars{c: c}
			o.Progress = bars.update
			a, r, err := Join(ctx, c.data, o, nil)
			bars.done()
			if err != nil {
				return err
			}
			c.setup(a)
			c.print(r, func(l Lang) {
				fmt.Fprintln(c.out, l.T("sync.joined", r.MerchantID, r.Store, r.Report.PulledLog, r.Report.PulledCodes))
			})
			return nil
		}}
	f := reg.Flags()
	f.StringVar(&server, "server", "", "the sync server, e.g. https://sync.example.com / 同步服务器地址")
	f.StringVar(&token, "token", "", "enrolment token from kameng server token create / 注册令牌")
	f.StringVar(&device, "device", "", "joining: this device's name (default: host name) / 终端名称")
	f.StringVar(&ppFile, "passphrase-file", "", "joining: protect the data key with this passphrase instead of a key file / 用口令保护数据密钥")
	reg.MarkFlagRequired("server")
	cmd.AddCommand(reg)
	return cmd
}

func (c *cli) syncCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sync", Short: "sync with the server now: push, then pull / 立即同步", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			ctx, stop := interruptible()
			defer stop()
			bars := &stageBars{c: c}
			rep, err := a.Sync(ctx, bars.update)
			bars.done()
			if err != nil {
				return err
			}
			c.print(rep, func(l Lang) { c.syncReport(rep) })
			return nil
		}}
	status := &cobra.Command{Use: "status", Short: "sync state: server, pending changes, last sync, open cases / 同步状态", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			s, err := a.SyncStatus()
			if err != nil {
				return err
			}
			c.print(s, func(l Lang) { c.syncStatus(a, s) })
			return nil
		}}
	var interval time.Duration
	var rounds int
	loop := &cobra.Command{Use: "loop", Short: "keep syncing in the foreground; Ctrl-C stops / 持续同步", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			ctx, stop := interruptible()
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if err := a.require(ActSync); err != nil {
				return err
			}
			if _, err := a.syncer(); err != nil {
				return err
			}
			lang := c.language()
			if !c.json {
				fmt.Fprintln(c.err, lang.T("sync.loop_start", interval))
			}
			var mu sync.Mutex
			n := 0
			_, err = a.SyncLoop(ctx, interval, func(rep *syncclient.Report, err error) {
				c.loopLine(a, rep, err)
				mu.Lock()
				defer mu.Unlock()
				if n++; rounds > 0 && n >= rounds {
					cancel()
				}
			})
			if err != nil {
				return err
			}
			<-ctx.Done()
			a.StopSyncLoop()
			if !c.json {
				fmt.Fprintln(c.err, lang.T("sync.loop_stopped"))
			}
			return nil
		}}
	loop.Flags().DurationVar(&interval, "interval", syncclient.DefaultInterval, "time between rounds / 同步间隔")
	loop.Flags().IntVar(&rounds, "rounds", 0, "stop after this many rounds (0: until Ctrl-C) / 轮数")
	cmd.AddCommand(status, loop)
	return cmd
}

// loopLine logs one round of the foreground loop: a line of text, or a JSON line.
func (c *cli) loopLine(a *App, rep *syncclient.Report, err error) {
	now := a.Now()
	if c.json {
		line := map[string]any{"time_ms": now.UnixMilli(), "report": rep}
		if err != nil {
			ce := core.AsError(err)
			line["error"] = map[string]string{"code": ce.Code, "message": ce.Message, "text": c.language().ErrorText(ce)}
		}
		b, _ := json.Marshal(line)
		fmt.Fprintln(c.out, string(b))
		return
	}
	l2 := c.language()
	stamp := now.In(a.Location()).Format("15:04:05")
	if err != nil {
		wait := "?"
		if s, serr := a.SyncStatus(); serr == nil && !s.BackoffUntil.IsZero() {
			wait = s.BackoffUntil.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintln(c.out, l2.T("sync.round_failed", stamp, l2.ErrorText(syncErr(a.syncServer(), err)), wait))
		return
	}
	fmt.Fprintln(c.out, l2.T("sync.round_ok", stamp, rep.Pushed, rep.PulledLog+rep.PulledCodes, rep.TookMS))
}

// syncServer is the registered server's address ("" when none).
func (a *App) syncServer() string {
	if st, err := a.DB.SyncState(); err == nil {
		return st.Server
	}
	return ""
}

func (c *cli) syncReport(rep *syncclient.Report) {
	l := c.language()
	fmt.Fprintln(c.out, l.T("sync.done", rep.Pushed, rep.PulledLog, rep.PulledCodes))
	if rep.Flagged+rep.Rejected > 0 {
		fmt.Fprintln(c.out, l.T("sync.flagged", rep.Flagged, rep.Rejected))
	}
	if rep.Resets > 0 {
		fmt.Fprintln(c.out, l.T("sync.reset"))
	}
}

func (c *cli) syncStatus(a *App, s *syncclient.Status) {
	l := c.language()
	st := s.State
	if st == nil || st.Server == "" {
		fmt.Fprintln(c.out, l.T("sync.not_registered"))
		return
	}
	last := l.T("sync.never")
	if st.LastSyncMS > 0 {
		last = a.FormatTime(st.LastSyncMS)
	}
	lastErr := st.LastError
	if lastErr != "" && st.LastErrorMS > 0 {
		lastErr = a.FormatTime(st.LastErrorMS) + " " + lastErr
	}
	rows := [][2]string{
		{l.T("sync.k.server"), st.Server}, {l.T("sync.k.merchant"), st.MerchantID}, {l.T("sync.k.device"), st.DeviceID},
		{l.T("sync.k.epoch"), strconv.FormatInt(st.Epoch, 10)}, {l.T("sync.k.pending"), strconv.FormatInt(st.Pending, 10)},
		{l.T("sync.k.acked"), strconv.FormatInt(st.AckedMID, 10)}, {l.T("sync.k.last_sync"), last},
		{l.T("sync.k.last_error"), lastErr}, {l.T("sync.k.skew"), (time.Duration(st.SkewMS) * time.Millisecond).String()},
		{l.T("sync.k.open_cases"), strconv.FormatInt(st.OpenCases, 10)}, {l.T("sync.k.rejected"), strconv.FormatInt(st.Rejected, 10)},
	}
	if st.Skipped > 0 {
		rows = append(rows, [2]string{l.T("sync.k.skipped"), strconv.FormatInt(st.Skipped, 10)})
	}
	streams := make([]string, 0, len(st.Cursors))
	for k := range st.Cursors {
		streams = append(streams, k)
	}
	sort.Strings(streams)
	for _, k := range streams {
		rows = append(rows, [2]string{l.T("sync.k.cursor", k), strconv.FormatInt(st.Cursors[k], 10)})
	}
	if s.Looping {
		state := l.T("sync.loop.idle", a.FormatTime(s.NextRun.UnixMilli()))
		switch {
		case s.Running:
			state = l.T("sync.loop.running")
		case s.BackingOff:
			state = l.T("sync.loop.backoff", a.FormatTime(s.BackoffUntil.UnixMilli()))
		}
		rows = append(rows, [2]string{l.T("sync.k.loop"), state})
	}
	kv(c.out, rows)
	if skew := time.Duration(st.SkewMS) * time.Millisecond; skew > 5*time.Minute || skew < -5*time.Minute {
		fmt.Fprintln(c.out, l.T("sync.skew_warning", skew.Round(time.Second)))
	}
}

func (c *cli) casesCmd() *cobra.Command {
	var status string
	cmd := &cobra.Command{Use: "cases", Aliases: []string{"case"}, Short: "exceptions found between devices: double redemptions, overdrafts… / 异常处理",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			cs, err := a.Cases(status)
			if err != nil {
				return err
			}
			c.print(cs, func(l Lang) {
				if len(cs) == 0 {
					fmt.Fprintln(c.out, l.T("msg.no_rows"))
					return
				}
				var rows [][]string
				for _, x := range cs {
					rows = append(rows, []string{x.ID, l.T("case." + x.Kind), l.T("case.status." + x.Status), x.Subject,
						a.FormatTime(x.CreatedMS), actionText(l, x.Action)})
				}
				table(c.out, []string{l.T("col.id"), l.T("col.kind"), l.T("col.status"), l.T("col.subject"), l.T("col.created"), l.T("col.action")}, rows)
			})
			return nil
		}}
	cmd.Flags().StringVar(&status, "status", "open", "open|resolved|all / 状态")
	show := &cobra.Command{Use: "show ID", Short: "one case with its detail / 异常详情", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			x, err := a.Case(args[0])
			if err != nil {
				return err
			}
			c.print(x, func(l Lang) { c.showCase(a, x) })
			return nil
		}}
	var action, note string
	resolve := &cobra.Command{Use: "resolve ID", Short: "settle a case: accept|reverse|freeze|charge|write_off / 处理异常", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			if err := a.require(ActCasesResolve); err != nil {
				return err
			}
			if _, err := a.Case(args[0]); err != nil {
				return err
			}
			l := c.language()
			if err := c.confirm(l.T("msg.case_confirm", args[0], actionText(l, action))); err != nil {
				return err
			}
			x, err := a.ResolveCase(args[0], action, note)
			if err != nil {
				return err
			}
			c.print(x, func(l Lang) { fmt.Fprintln(c.out, l.T("msg.case_resolved", x.ID, actionText(l, x.Action))) })
			return nil
		}}
	resolve.Flags().StringVar(&action, "action", "", "accept|reverse|freeze|charge|write_off / 处理方式")
	resolve.Flags().StringVar(&note, "note", "", "why / 备注")
	resolve.Flags().BoolVarP(&c.yes, "yes", "y", false, "do not ask / 不再确认")
	resolve.MarkFlagRequired("action")
	cmd.AddCommand(show, resolve)
	return cmd
}

func actionText(l Lang, action string) string {
	if action == "" {
		return ""
	}
	return l.T("action." + action)
}

func (c *cli) showCase(a *App, x *wire.Case) {
	l := c.language()
	rows := [][2]string{
		{l.T("col.id"), x.ID}, {l.T("col.kind"), l.T("case." + x.Kind)}, {l.T("col.status"), l.T("case.status." + x.Status)},
		{l.T("col.subject"), x.Subject}, {l.T("col.created"), a.FormatTime(x.CreatedMS)},
	}
	if x.Status == "resolved" {
		rows = append(rows, [2]string{l.T("col.action"), actionText(l, x.Action)}, [2]string{l.T("col.operator"), x.ResolvedBy},
			[2]string{l.T("col.time"), a.FormatTime(x.ResolvedMS)}, [2]string{l.T("col.note"), x.Note})
	}
	kv(c.out, rows)
	if parties, err := a.CaseParties(x); err == nil {
		for _, p := range parties {
			fmt.Fprintf(c.out, "%s: %s\n", l.T("case.party."+p.Role), l.T("case.party", p.Time, p.Store, p.Device, p.Operator,
				p.OrderAmount.Yuan(), p.RedemptionID))
		}
	}
	if len(x.Detail) > 0 && string(x.Detail) != "null" {
		var v any
		if json.Unmarshal(x.Detail, &v) == nil {
			fmt.Fprintln(c.out, l.T("msg.case_detail")+":")
			emitJSON(c.out, v)
		}
	}
}

func (c *cli) allowanceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "allowance", Aliases: []string{"allowances"}, Short: "offline allowances (escrow) from the server / 离线额度"}
	var wallet, card, amount string
	req := &cobra.Command{Use: "request", Short: "reserve part of a wallet or gift card for this device to spend offline / 申请离线额度", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, account := wire.AccountWallet, wallet
			switch {
			case wallet != "" && card != "":
				return core.Invalid("account", "--wallet MEMBER or --card CODE", wallet+" "+card, "give one account, not both")
			case card != "":
				kind, account = wire.AccountGiftCard, card
			case wallet == "":
				return core.Invalid("account", "--wallet MEMBER or --card CODE", "", "which wallet or gift card?")
			}
			a, err := c.open()
			if err != nil {
				return err
			}
			al, err := a.RequestAllowance(kind, account, amount)
			if err != nil {
				return err
			}
			c.print(al, func(l Lang) {
				if al.Granted <= 0 {
					fmt.Fprintln(c.out, l.T("msg.allowance_none"))
					return
				}
				label := account
				if kind == wire.AccountWallet {
					label = memberLabel(account)
				}
				fmt.Fprintln(c.out, l.T("msg.allowance_granted", label, core.Amount(al.Granted).Yuan(), core.Amount(al.Spent).Yuan(), a.FormatTime(al.ExpiresMS)))
			})
			return nil
		}}
	req.Flags().StringVar(&wallet, "wallet", "", "the member (id or phone) whose wallet / 会员储值")
	req.Flags().StringVar(&card, "card", "", "the gift card's code / 礼品卡")
	req.Flags().StringVar(&amount, "amount", "", "how much, e.g. 100 / 金额")
	req.MarkFlagRequired("amount")
	list := &cobra.Command{Use: "list", Short: "what this device may spend offline / 离线额度列表", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.open()
			if err != nil {
				return err
			}
			als, err := a.Allowances()
			if err != nil {
				return err
			}
			c.print(als, func(l Lang) {
				if len(als) == 0 {
					fmt.Fprintln(c.out, l.T("msg.no_rows"))
					return
				}
				var rows [][]string
				for _, x := range als {
					rows = append(rows, []string{x.Kind, x.AccountID, core.Amount(x.Granted).Yuan(), core.Amount(x.Spent).Yuan(), a.FormatTime(x.ExpiresMS)})
				}
				table(c.out, []string{l.T("col.kind"), l.T("col.account"), l.T("col.granted"), l.T("col.spent"), l.T("col.expires")}, rows)
			})
			return nil
		}}
	cmd.AddCommand(req, list)
	return cmd
}

package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/server"
	"github.com/spf13/cobra"
)

// ServerDBPath is the server's own database in a data directory, next to the shop's.
func ServerDBPath(dir string) string { return filepath.Join(dir, "server.db") }

// serverDSN is the --db value, or server.db in the data directory.
func (c *cli) serverDSN(db string) string {
	if db == "" {
		return ServerDBPath(c.data)
	}
	return db
}

func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// showDSN is the database for messages: a URL without its password.
func showDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// openServerStore opens the server's database, creating the directory of a SQLite file.
func (c *cli) openServerStore(db string) (server.Store, error) {
	dsn := c.serverDSN(db)
	if !isPostgresURL(dsn) {
		path := strings.TrimPrefix(dsn, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, core.Invalid("srv_db", "a writable file path or postgres://…", dsn, "cannot create the directory: %v", err)
		}
	}
	s, err := server.Open(dsn)
	if err != nil {
		e := serverError(err)
		if e.Field == "" {
			e.Field = "srv_db"
			if e.Params == nil {
				e.Params = map[string]string{"value": showDSN(dsn)}
			}
		}
		return nil, e
	}
	return s, nil
}

// serverError says a server refusal in the CLI's terms, so the exit code and the
// translated text follow the same rules as every other command.
func serverError(err error) *core.Error {
	var ce *core.Error
	if errors.As(err, &ce) {
		return ce
	}
	var se *server.Error
	if !errors.As(err, &se) {
		return core.AsError(err)
	}
	code := core.ErrInternal
	switch se.Code {
	case wire.ErrBadRequest, wire.ErrTooLarge:
		code = core.ErrInvalid
	case wire.ErrNotFound:
		code = core.ErrNotFound
	case wire.ErrConflict, wire.ErrMIDGap, wire.ErrEpoch:
		code = core.ErrConflict
	case wire.ErrForbidden:
		code = core.ErrForbidden
	case wire.ErrUnauthorized:
		code = core.ErrAuth
	}
	return &core.Error{Code: code, Message: se.Message}
}

// merchantError names the --merchant flag when the server does not know the merchant.
func merchantError(err error, merchant string) *core.Error {
	e := serverError(err)
	if e.Code == core.ErrNotFound && merchant != "" {
		e.Field, e.Params = "srv_merchant", map[string]string{"value": merchant}
	}
	return e
}

// version is the build's module version, for /v1/health.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// serveCmd is kameng serve: the hosted sync API on this machine.
func (c *cli) serveCmd() *cobra.Command {
	var o server.ServeOptions
	var db string
	cmd := &cobra.Command{Use: "serve", Short: "run the sync server for the shop's devices / 启动同步服务", Args: cobra.NoArgs,
		Long: "Runs the hosted sync API (/v1): devices register with a token from `kameng server token create`,\n" +
			"push what they did and pull what the others did. Logs are JSON lines on stderr.\n" +
			"运行同步服务（/v1）：终端用 kameng server token create 生成的令牌注册，上传本机记录并拉取其他终端的记录。",
		RunE: func(cmd *cobra.Command, args []string) error {
			l := c.language()
			if (o.TLSCert == "") != (o.TLSKey == "") {
				return core.Invalid("srv_tls", "--tls-cert FILE --tls-key FILE", "", "%s", l.T("srv.tls_pair"))
			}
			for _, f := range []string{o.TLSCert, o.TLSKey} {
				if f == "" {
					continue
				}
				if _, err := os.Stat(f); err != nil {
					return core.Invalid("srv_tls", "a readable PEM file", f, "cannot read %s: %v", f, err)
				}
			}
			if _, _, err := net.SplitHostPort(o.Listen); err != nil {
				return core.Invalid("srv_listen", "host:port, e.g. 127.0.0.1:8080 or :8443", o.Listen, "%s: %v", l.T("srv.bad_listen"), err)
			}
			if o.RateLimit < 0 {
				return core.Invalid("srv_rate", "requests per second, 0 for no limit", fmt.Sprint(o.RateLimit), "the rate limit cannot be negative")
			}
			if o.RateLimit == 0 {
				o.RateLimit = -1 // --rate 0 turns the limit off; Options reads 0 as the default
			}
			s, err := c.openServerStore(db)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Logger = slog.New(slog.NewJSONHandler(c.err, nil))
			o.Version = version()
			o.Ready = func(addr string, tls bool) {
				scheme := "http"
				if tls {
					scheme = "https"
				}
				c.print(map[string]any{"listen": addr, "url": scheme + "://" + addr, "tls": tls, "store": s.Kind(), "db": showDSN(c.serverDSN(db))},
					func(l Lang) {
						fmt.Fprintln(c.out, l.T("srv.listening", scheme+"://"+addr, strings.ToUpper(scheme), s.Kind()))
						if !tls && !isLoopback(addr) {
							fmt.Fprintln(c.err, l.T("srv.plain_http_warn"))
						}
					})
			}
			if err := server.Serve(ctx, s, o); err != nil {
				e := serverError(err)
				if e.Code == core.ErrInvalid && e.Field == "" {
					e.Field = "srv_listen"
				}
				return e
			}
			if !c.json {
				fmt.Fprintln(c.err, l.T("srv.stopped"))
			}
			return nil
		}}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "host:port to listen on (:0 picks a free port) / 监听地址")
	f.StringVar(&db, "db", "", "server database: a file path or postgres://… (default: server.db in the data directory) / 服务器数据库")
	f.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate (PEM) / TLS 证书")
	f.StringVar(&o.TLSKey, "tls-key", "", "TLS private key (PEM) / TLS 私钥")
	f.Float64Var(&o.RateLimit, "rate", 50, "requests per second per device, 0 for no limit / 每台终端每秒请求数")
	f.IntVar(&o.Burst, "burst", 0, "requests a device may send at once (default: twice --rate) / 突发请求数")
	return cmd
}

// serverCmd groups the server's administration: enrolment tokens and the epoch.
func (c *cli) serverCmd() *cobra.Command {
	var db string
	cmd := &cobra.Command{Use: "server", Short: "administer the sync server: enrolment tokens, epoch / 同步服务器管理"}
	cmd.PersistentFlags().StringVar(&db, "db", "", "server database: a file path or postgres://… (default: server.db in the data directory) / 服务器数据库")

	var merchant, label string
	var ttl time.Duration
	token := &cobra.Command{Use: "token", Short: "enrolment tokens for devices / 终端注册令牌"}
	create := &cobra.Command{Use: "create", Short: "issue an enrolment token (printed once) / 生成注册令牌", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return core.Invalid("srv_ttl", "a duration such as 30m, 24h or 168h", ttl.String(), "the token must be valid for some time")
			}
			s, err := c.openServerStore(db)
			if err != nil {
				return err
			}
			defer s.Close()
			now := time.Now()
			t, err := s.CreateToken(merchant, label, ttl, now)
			if err != nil {
				return merchantError(err, merchant)
			}
			expires := now.Add(ttl)
			c.print(map[string]any{"token": t, "merchant_id": merchant, "label": label, "expires_ms": expires.UnixMilli()}, func(l Lang) {
				// The token alone on stdout, so TOKEN=$(kameng server token create) works.
				fmt.Fprintln(c.err, l.T("srv.token_created", expires.Local().Format("2006-01-02 15:04")))
				fmt.Fprintln(c.out, t)
				if merchant != "" {
					fmt.Fprintln(c.err, l.T("srv.token_joins", merchant))
				} else {
					fmt.Fprintln(c.err, l.T("srv.token_founds"))
				}
			})
			return nil
		}}
	create.Flags().StringVar(&merchant, "merchant", "", "join this merchant (default: the first device founds its own) / 加入的商户 ID")
	create.Flags().StringVar(&label, "label", "", "a note on what the token is for / 备注")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid / 有效期")
	token.AddCommand(create)

	var bumpMerchant string
	epoch := &cobra.Command{Use: "epoch", Short: "the merchant's sync epoch / 同步纪元"}
	bump := &cobra.Command{Use: "bump", Short: "after restoring a backup: devices pull everything again / 恢复备份后让终端重新同步", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l := c.language()
			if bumpMerchant == "" {
				return core.Invalid("srv_merchant", "--merchant ID", "", "name the merchant whose epoch to bump")
			}
			s, err := c.openServerStore(db)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := c.confirm(l.T("srv.epoch_confirm", bumpMerchant)); err != nil {
				return err
			}
			n, err := s.BumpEpoch(bumpMerchant)
			if err != nil {
				return merchantError(err, bumpMerchant)
			}
			c.print(map[string]any{"merchant_id": bumpMerchant, "epoch": n}, func(l Lang) {
				fmt.Fprintln(c.out, l.T("srv.epoch_bumped", bumpMerchant, n))
			})
			return nil
		}}
	bump.Flags().StringVar(&bumpMerchant, "merchant", "", "the merchant's id / 商户 ID")
	bump.Flags().BoolVarP(&c.yes, "yes", "y", false, "do not ask / 不再确认")
	epoch.AddCommand(bump)

	cmd.AddCommand(token, epoch)
	return cmd
}

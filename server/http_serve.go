package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/kameng/kameng/core/wire"
)

// ServeOptions configure Serve: where to listen, the TLS pair, and the API's Options.
type ServeOptions struct {
	Listen  string // host:port; default 127.0.0.1:8080 (port 0 picks a free one)
	TLSCert string // PEM files; both or neither
	TLSKey  string
	Options
	// Ready, when set, is told the address actually listened on (useful with port 0)
	// and whether it is TLS, before the first request is served.
	Ready func(addr string, tls bool)
	// ShutdownTimeout bounds the wait for requests in flight after ctx ends (default
	// 5 s). Cutting a request off is safe: each write is one transaction and devices
	// retry what was not acknowledged.
	ShutdownTimeout time.Duration
}

// Timeouts of the HTTP server: a push of 4 MiB over a slow shop connection must fit in
// ReadTimeout, a pull page of 5000 changes in WriteTimeout; idle keep-alive
// connections are closed after IdleTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 120 * time.Second
	IdleTimeout       = 120 * time.Second
)

// Serve runs the API until ctx ends, then stops accepting, lets requests in flight
// finish and returns nil. It returns an error when it cannot start.
func Serve(ctx context.Context, s Store, o ServeOptions) error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errorf(wire.ErrBadRequest, "TLS needs both a certificate and a key file")
	}
	o.Options = o.Options.withDefaults()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	var cfg *tls.Config
	if o.TLSCert != "" {
		// Loaded before listening, so a bad pair is an error at start, not at the first
		// handshake.
		pair, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return errorf(wire.ErrBadRequest, "TLS certificate and key: "+err.Error())
		}
		cfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return errorf(wire.ErrBadRequest, "cannot listen on "+o.Listen+": "+err.Error())
	}
	srv := &http.Server{
		Handler:           NewHandler(s, o.Options),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         cfg,
		// Handshake failures and the like, which happen outside any handler.
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context {
			return context.WithoutCancel(ctx)
		},
	}
	addr := ln.Addr().String()
	o.Logger.Info("listening", "addr", addr, "tls", cfg != nil, "store", s.Kind(), "version", o.Version)
	if o.Ready != nil {
		o.Ready(addr, cfg != nil)
	}

	done := make(chan error, 1)
	go func() {
		if cfg != nil {
			done <- srv.ServeTLS(ln, "", "")
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return err // the listener failed: Serve never returns nil on its own
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		srv.Close() // requests still running after the grace period are cut off
	}
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	o.Logger.Info("stopped", "addr", addr)
	return err
}

package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kameng/kameng/core/wire"
)

// ---- helpers shared by the HTTP tests ----

// syncBuffer is a log sink the handler and the test may touch at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// apiServer serves h on a real loopback port for the test's lifetime.
func apiServer(t *testing.T, s Store, o Options) *httptest.Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	ts := httptest.NewServer(NewHandler(s, o))
	t.Cleanup(ts.Close)
	return ts
}

// call sends one request; body is raw bytes, a string, or a value sent as JSON.
func call(t *testing.T, base, method, path, token string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp, out
}

// wantError asserts an error answer: status, JSON content type and wire code.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) wire.Error {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q, want application/json", ct)
	}
	var e wire.Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not a wire.Error: %v: %s", err, body)
	}
	if e.Code != code || e.Message == "" {
		t.Fatalf("error %+v, want code %s with a message", e, code)
	}
	return e
}

// enrol founds a new merchant through the API and returns the device token and the
// merchant id.
func enrol(t *testing.T, s Store, base string) (token, merchant string) {
	t.Helper()
	merchant = "m-" + uuid.NewString()
	return join(t, s, base, "", merchant), merchant
}

// join registers a device: with merchant "" on a token that founds found, or on a
// token bound to merchant.
func join(t *testing.T, s Store, base, merchant, found string) string {
	t.Helper()
	enrolment, err := s.CreateToken(merchant, "test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req := wire.RegisterRequest{Token: enrolment, DeviceID: "d-" + uuid.NewString(), DeviceName: "till"}
	if found != "" {
		req.MerchantID, req.MerchantName = found, "测试商户"
	}
	resp, body := call(t, base, "POST", "/v1/devices", "", req)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	var rr wire.RegisterResponse
	if err := json.Unmarshal(body, &rr); err != nil || rr.DeviceToken == "" {
		t.Fatalf("register answer %s: %v", body, err)
	}
	return rr.DeviceToken
}

// ---- tests ----

func TestHTTPAuthentication(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		ts := apiServer(t, s, Options{})
		token, _ := enrol(t, s, ts.URL)

		// Health and the description need no token.
		resp, body := call(t, ts.URL, "GET", "/v1/health", "", nil)
		var h wire.Health
		if resp.StatusCode != 200 || json.Unmarshal(body, &h) != nil || h.Status != "ok" || h.Store != s.Kind() || h.ServerMS == 0 {
			t.Fatalf("health: %d %s", resp.StatusCode, body)
		}
		resp, body = call(t, ts.URL, "GET", "/v1/openapi.yaml", "", nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, OpenAPI()) {
			t.Fatalf("openapi.yaml: %d, %d bytes", resp.StatusCode, len(body))
		}

		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/allowances"}, {"GET", "/v1/cases"}, {"POST", "/v1/sync/push"}, {"POST", "/v1/sync/pull"},
			{"POST", "/v1/codes/upload"}, {"POST", "/v1/codes/check"}, {"POST", "/v1/codes/redeem"},
			{"POST", "/v1/allowances"}, {"POST", "/v1/cases/x/resolve"},
		} {
			for j, header := range []string{"", "Bearer ", "Bearer km_not-a-token", "Basic " + token, token} {
				req, _ := http.NewRequest(r.method, ts.URL+r.path, strings.NewReader(`{}`))
				if header != "" {
					req.Header.Set("Authorization", header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Run(fmt.Sprintf("%s %s header %d", r.method, r.path, j), func(t *testing.T) { wantError(t, resp, body, 401, wire.ErrUnauthorized) })
			}
		}

		// The same routes with the device's token get past the door.
		resp, body = call(t, ts.URL, "GET", "/v1/allowances", token, nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"allowances":[]}` {
			t.Fatalf("allowances with a token: %d %s", resp.StatusCode, body)
		}
		resp, body = call(t, ts.URL, "GET", "/v1/cases", token, nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"cases":[]}` {
			t.Fatalf("cases with a token: %d %s", resp.StatusCode, body)
		}
		// The scheme name is case-insensitive (RFC 7235).
		resp, body = call(t, ts.URL, "GET", "/v1/cases?status=all", "", nil)
		wantError(t, resp, body, 401, wire.ErrUnauthorized)
		req, _ := http.NewRequest("GET", ts.URL+"/v1/cases?status=all", nil)
		req.Header.Set("Authorization", "bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("lower-case bearer: %v %v", resp, err)
		}
	})
}

func TestHTTPBodies(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		ts := apiServer(t, s, Options{MaxBody: 2048})
		token, _ := enrol(t, s, ts.URL)

		big := `{"epoch":1,"client_ms":1,"mutations":[` + strings.Repeat(" ", 4096) + `]}`
		resp, body := call(t, ts.URL, "POST", "/v1/sync/pull", token, big)
		wantError(t, resp, body, 413, wire.ErrTooLarge)

		// Without a Content-Length (chunked) the limit holds while reading.
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(`{"epoch":0,"cursors":[` + strings.Repeat(" ", 4096) + `]}`))
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", ts.URL+"/v1/sync/pull", pr)
		req.Header.Set("Authorization", "Bearer "+token)
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := io.ReadAll(r2.Body)
		r2.Body.Close()
		if r2.Request.ContentLength > 0 {
			t.Fatalf("the request was not chunked")
		}
		wantError(t, r2, b2, 413, wire.ErrTooLarge)

		for name, b := range map[string]string{
			"unknown field":   `{"epoch":0,"cursors":[],"colour":"red"}`,
			"nested unknown":  `{"epoch":0,"cursors":[{"stream":"log","seq":0,"x":1}]}`,
			"not JSON":        `epoch=0`,
			"wrong type":      `{"epoch":"one","cursors":[]}`,
			"two values":      `{"epoch":0,"cursors":[]}{"epoch":0}`,
			"empty":           ``,
			"truncated":       `{"epoch":0,"cursors":[`,
			"unknown stream":  `{"epoch":0,"cursors":[{"stream":"members","seq":0}]}`,
			"limit too large": `{"epoch":0,"cursors":[],"limit":999999}`,
		} {
			t.Run(name, func(t *testing.T) {
				resp, body := call(t, ts.URL, "POST", "/v1/sync/pull", token, b)
				wantError(t, resp, body, 400, wire.ErrBadRequest)
			})
		}
		// A well-formed body of the same route is answered.
		resp, body = call(t, ts.URL, "POST", "/v1/sync/pull", token, `{"epoch":0,"cursors":[{"stream":"log","seq":0}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("pull: %d %s", resp.StatusCode, body)
		}

		// Lists over the wire limits are refused before the store sees them.
		muts := make([]wire.Mutation, wire.MaxPushMutations+1)
		for i := range muts {
			muts[i] = wire.Mutation{MID: int64(i + 1), UUID: "u", Name: "x.y@1", Args: json.RawMessage(`{}`)}
		}
		ts2 := apiServer(t, s, Options{})
		resp, body = call(t, ts2.URL, "POST", "/v1/sync/push", token, wire.PushRequest{Epoch: 1, Mutations: muts})
		wantError(t, resp, body, 413, wire.ErrTooLarge)

		// Redeeming online needs the idempotency key the device will push with.
		resp, body = call(t, ts2.URL, "POST", "/v1/codes/redeem", token, wire.RedeemRequest{Code: "ABC"})
		wantError(t, resp, body, 400, wire.ErrBadRequest)
		resp, body = call(t, ts2.URL, "GET", "/v1/cases?status=closed", token, nil)
		wantError(t, resp, body, 400, wire.ErrBadRequest)
	})
}

func TestHTTPRoutesAnswerJSON(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		ts := apiServer(t, s, Options{})
		resp, body := call(t, ts.URL, "GET", "/v1/nothing", "", nil)
		wantError(t, resp, body, 404, wire.ErrNotFound)
		resp, body = call(t, ts.URL, "GET", "/", "", nil)
		wantError(t, resp, body, 404, wire.ErrNotFound)
		resp, body = call(t, ts.URL, "GET", "/v1/sync/push", "", nil)
		wantError(t, resp, body, 405, wire.ErrBadRequest)
		if resp.Header.Get("Allow") != "POST" {
			t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
		}
		resp, body = call(t, ts.URL, "DELETE", "/v1/allowances", "", nil)
		wantError(t, resp, body, 405, wire.ErrBadRequest)
		if resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("Allow %q, want GET, POST", resp.Header.Get("Allow"))
		}
	})
}

func TestHTTPRateLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

		ts := apiServer(t, s, Options{RateLimit: 1, Burst: 3, Now: clock})
		a, _ := enrol(t, s, ts.URL)
		b, _ := enrol(t, s, ts.URL)
		for i := 0; i < 3; i++ {
			if resp, body := call(t, ts.URL, "GET", "/v1/allowances", a, nil); resp.StatusCode != 200 {
				t.Fatalf("request %d within the burst: %d %s", i+1, resp.StatusCode, body)
			}
		}
		resp, body := call(t, ts.URL, "GET", "/v1/allowances", a, nil)
		e := wantError(t, resp, body, 429, wire.ErrRateLimited)
		if resp.Header.Get("Retry-After") != "1" || e.RetryAfter < 900 || e.RetryAfter > 1000 {
			t.Fatalf("Retry-After %q, retry_after_ms %d; want 1 s", resp.Header.Get("Retry-After"), e.RetryAfter)
		}
		// Another device has its own budget.
		if resp, body := call(t, ts.URL, "GET", "/v1/allowances", b, nil); resp.StatusCode != 200 {
			t.Fatalf("the other device: %d %s", resp.StatusCode, body)
		}
		// A second later one request is allowed again, and only one.
		advance(time.Second)
		if resp, body := call(t, ts.URL, "GET", "/v1/allowances", a, nil); resp.StatusCode != 200 {
			t.Fatalf("after waiting: %d %s", resp.StatusCode, body)
		}
		resp, body = call(t, ts.URL, "GET", "/v1/allowances", a, nil)
		wantError(t, resp, body, 429, wire.ErrRateLimited)

		// Callers without a valid token are limited by address: guessing tokens is slow.
		ts2 := apiServer(t, s, Options{RateLimit: 1, Burst: 3, Now: clock})
		for i := 0; i < 3; i++ {
			resp, body := call(t, ts2.URL, "GET", "/v1/cases", "km_guess", nil)
			wantError(t, resp, body, 401, wire.ErrUnauthorized)
		}
		resp, body = call(t, ts2.URL, "GET", "/v1/cases", "km_guess", nil)
		wantError(t, resp, body, 429, wire.ErrRateLimited)
		// …which does not hold up a device with a good token from the same address.
		if resp, body := call(t, ts2.URL, "GET", "/v1/cases", a, nil); resp.StatusCode != 200 {
			t.Fatalf("a good token after the guesses: %d %s", resp.StatusCode, body)
		}
	})
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(10, 5)
	t0 := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		if w := l.take("d", t0); w != 0 {
			t.Fatalf("take %d: wait %v", i, w)
		}
	}
	if w := l.take("d", t0); w != 100*time.Millisecond {
		t.Fatalf("empty bucket: wait %v, want 100ms", w)
	}
	// Refills at the rate, never above the burst.
	if w := l.take("d", t0.Add(100*time.Millisecond)); w != 0 {
		t.Fatalf("after 100ms: wait %v", w)
	}
	t1 := t0.Add(time.Hour)
	for i := 0; i < 5; i++ {
		if w := l.take("d", t1); w != 0 {
			t.Fatalf("after an hour, take %d: wait %v", i, w)
		}
	}
	if w := l.take("d", t1); w == 0 {
		t.Fatal("the burst grew beyond 5")
	}
	// Idle full buckets are forgotten.
	l.take("e", t1)
	l.take("x", t1.Add(2*time.Hour))
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets kept after a sweep, want 1", n)
	}
}

func TestHTTPRequestLog(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		var logs syncBuffer
		ts := httptest.NewServer(NewHandler(s, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}))
		enrolment, err := s.CreateToken("", "log test", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		merchant := "m-" + uuid.NewString()
		device := "d-" + uuid.NewString()
		resp, body := call(t, ts.URL, "POST", "/v1/devices", "", wire.RegisterRequest{Token: enrolment, DeviceID: device, DeviceName: "till", MerchantID: merchant, MerchantName: "SECRET-NAME-IN-BODY"})
		if resp.StatusCode != 201 {
			t.Fatalf("register: %d %s", resp.StatusCode, body)
		}
		var rr wire.RegisterResponse
		json.Unmarshal(body, &rr)
		call(t, ts.URL, "POST", "/v1/sync/pull", rr.DeviceToken, wire.PullRequest{Cursors: []wire.Cursor{{Stream: wire.StreamLog}}})
		call(t, ts.URL, "GET", "/v1/cases", "km_wrong-token-in-header", nil)
		ts.Close() // waits for the handlers, so every line is written

		out := logs.String()
		for _, secret := range []string{enrolment, rr.DeviceToken, "km_wrong-token-in-header", "SECRET-NAME-IN-BODY", "cursors"} {
			if strings.Contains(out, secret) {
				t.Errorf("the log contains %q:\n%s", secret, out)
			}
		}
		lines := map[string]map[string]any{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			if m["msg"] == "request" {
				lines[m["path"].(string)] = m
			}
		}
		pull := lines["/v1/sync/pull"]
		if pull == nil {
			t.Fatalf("no line for the pull:\n%s", out)
		}
		for _, k := range []string{"time", "level", "method", "path", "status", "duration_ms", "device", "merchant", "bytes"} {
			if _, ok := pull[k]; !ok {
				t.Errorf("the line has no %s: %v", k, pull)
			}
		}
		if pull["method"] != "POST" || pull["status"] != float64(200) || pull["device"] != device || pull["merchant"] != merchant ||
			pull["bytes"].(float64) <= 0 || pull["duration_ms"].(float64) < 0 {
			t.Errorf("pull line: %v", pull)
		}
		reg := lines["/v1/devices"]
		if reg == nil || reg["status"] != float64(201) || reg["device"] != device || reg["merchant"] != merchant {
			t.Errorf("register line: %v", reg)
		}
		bad := lines["/v1/cases"]
		if bad == nil || bad["status"] != float64(401) || bad["code"] != wire.ErrUnauthorized || bad["device"] != "" {
			t.Errorf("refused line: %v", bad)
		}
	})
}

// failingStore is a real store whose case list breaks, as a lost database would.
type failingStore struct{ Store }

func (failingStore) Cases(*Device, string) ([]wire.Case, error) {
	return nil, errors.New("disk I/O error in /srv/kameng/server.db")
}

func TestHTTPInternalErrorsSayLittle(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		var logs syncBuffer
		ts := httptest.NewServer(NewHandler(failingStore{s}, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}))
		defer ts.Close()
		token, _ := enrol(t, s, ts.URL)
		resp, body := call(t, ts.URL, "GET", "/v1/cases", token, nil)
		wantError(t, resp, body, 500, wire.ErrInternal)
		if strings.TrimSpace(string(body)) != `{"code":"internal","message":"internal"}` {
			t.Errorf("body %s says more than internal", body)
		}
		ts.Close()
		if !strings.Contains(logs.String(), "disk I/O error") {
			t.Errorf("the cause is not logged:\n%s", logs.String())
		}
	})
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns the pool
// that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "kameng test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startServe runs Serve on a free loopback port and returns its address and a
// function that stops it and returns Serve's result.
func startServe(t *testing.T, s Store, o ServeOptions) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	o.Listen = "127.0.0.1:0"
	o.Ready = func(a string, _ bool) { ready <- a }
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, o) }()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("Serve did not start")
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("Serve did not stop")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func TestServeTLS(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		certFile, keyFile, pool := selfSigned(t)
		addr, stop := startServe(t, s, ServeOptions{TLSCert: certFile, TLSKey: keyFile})

		trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := trusting.Get("https://" + addr + "/v1/health")
		if err != nil {
			t.Fatalf("https: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var h wire.Health
		if resp.StatusCode != 200 || json.Unmarshal(body, &h) != nil || h.Status != "ok" || resp.TLS == nil {
			t.Fatalf("https health: %d %s", resp.StatusCode, body)
		}

		// A whole round over TLS: register, then an authenticated call.
		enrolment, _ := s.CreateToken("", "tls", time.Hour, time.Now())
		j, _ := json.Marshal(wire.RegisterRequest{Token: enrolment, DeviceID: "d-" + uuid.NewString(), DeviceName: "till", MerchantID: "m-" + uuid.NewString()})
		resp, err = trusting.Post("https://"+addr+"/v1/devices", "application/json", bytes.NewReader(j))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("register over TLS: %v %v", resp, err)
		}
		resp.Body.Close()

		// Plain HTTP to the TLS port gets no answer from the API.
		plain := &http.Client{Timeout: 10 * time.Second}
		if resp, err := plain.Get("http://" + addr + "/v1/health"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 || bytes.Contains(b, []byte(`"status"`)) {
				t.Fatalf("plain HTTP was served: %d %s", resp.StatusCode, b)
			}
		}
		// A client that does not trust the certificate refuses it.
		if _, err := (&http.Client{Timeout: 10 * time.Second}).Get("https://" + addr + "/v1/health"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("an untrusted certificate was accepted: %v", err)
		}

		if err := stop(); err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatal("still listening after shutdown")
		}
	})
}

func TestServeRefusesBadSetups(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		certFile, keyFile, _ := selfSigned(t)
		ctx := context.Background()
		for name, o := range map[string]ServeOptions{
			"cert without key": {Listen: "127.0.0.1:0", TLSCert: certFile},
			"key without cert": {Listen: "127.0.0.1:0", TLSKey: keyFile},
			"swapped pair":     {Listen: "127.0.0.1:0", TLSCert: keyFile, TLSKey: certFile},
			"bad address":      {Listen: "127.0.0.1:99999"},
		} {
			o.Logger = quietLogger()
			err := Serve(ctx, s, o)
			var e *Error
			if !errors.As(err, &e) || e.Code != wire.ErrBadRequest {
				t.Errorf("%s: %v, want a bad_request refusal", name, err)
			}
		}
	})
}

func TestServeFinishesRequestsInFlight(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		slow := &slowStore{Store: s, entered: make(chan struct{}), release: make(chan struct{})}
		addr, stop := startServe(t, slow, ServeOptions{})
		slow.armed.Store(true)
		got := make(chan int, 1)
		go func() {
			resp, err := http.Get("http://" + addr + "/v1/health")
			if err != nil {
				got <- 0
				return
			}
			resp.Body.Close()
			got <- resp.StatusCode
		}()
		<-slow.entered
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		time.Sleep(100 * time.Millisecond) // shutdown has begun and is waiting
		select {
		case err := <-stopped:
			t.Fatalf("Serve returned (%v) with a request in flight", err)
		default:
		}
		close(slow.release)
		if code := <-got; code != 200 {
			t.Fatalf("the request in flight got %d", code)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})
}

// slowStore holds the first health request, once armed, until released.
type slowStore struct {
	Store
	armed            atomic.Bool
	once             sync.Once
	entered, release chan struct{}
}

func (s *slowStore) Kind() string {
	if s.armed.Load() {
		s.once.Do(func() { close(s.entered); <-s.release })
	}
	return s.Store.Kind()
}

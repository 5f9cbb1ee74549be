package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kameng/kameng/core/wire"
)

// Options tune the HTTP API. The zero value is usable.
type Options struct {
	Logger    *slog.Logger     // default: JSON lines on stderr
	RateLimit float64          // requests per second per device (default 50; negative: no limit)
	Burst     int              // requests a device may send at once (default 2 × RateLimit)
	MaxBody   int64            // largest request body in bytes (default wire.MaxBodyBytes)
	Now       func() time.Time // default time.Now
	Version   string           // reported by /v1/health
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.RateLimit == 0 {
		o.RateLimit = 50
	}
	if o.Burst <= 0 {
		o.Burst = int(2 * o.RateLimit)
		if o.Burst < 1 {
			o.Burst = 1
		}
	}
	if o.MaxBody <= 0 {
		o.MaxBody = wire.MaxBodyBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return o
}

// api serves the /v1 routes over one Store.
type api struct {
	s     Store
	o     Options
	limit *limiter
}

// NewHandler returns the /v1 API: JSON in and out, bearer-token authentication,
// body limits, per-device rate limits and one structured log line per request.
func NewHandler(s Store, o Options) http.Handler {
	o = o.withDefaults()
	a := &api{s: s, o: o}
	if o.RateLimit > 0 {
		a.limit = newLimiter(o.RateLimit, o.Burst)
	}
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
	}
	route("GET", "/v1/health", a.health)
	route("GET", "/v1/openapi.yaml", a.openapi)
	route("POST", "/v1/devices", a.open(a.register))
	route("POST", "/v1/sync/push", a.auth(a.push))
	route("POST", "/v1/sync/pull", a.auth(a.pull))
	route("POST", "/v1/codes/upload", a.auth(a.upload))
	route("POST", "/v1/codes/check", a.auth(a.check))
	route("POST", "/v1/codes/redeem", a.auth(a.redeem))
	route("POST", "/v1/allowances", a.auth(a.grant))
	route("GET", "/v1/allowances", a.auth(a.allowances))
	route("GET", "/v1/cases", a.auth(a.cases))
	route("POST", "/v1/cases/{id}/resolve", a.auth(a.resolve))

	// The mux's own 404 and 405 answers are plain text; every answer of this API is
	// JSON, so the misses are caught here. A pattern without a method loses to one
	// with a method, which makes these the "wrong method" answers.
	allow := map[string]string{
		"/v1/health": "GET, HEAD", "/v1/openapi.yaml": "GET, HEAD", "/v1/devices": "POST",
		"/v1/sync/push": "POST", "/v1/sync/pull": "POST", "/v1/codes/upload": "POST",
		"/v1/codes/check": "POST", "/v1/codes/redeem": "POST", "/v1/allowances": "GET, POST",
		"/v1/cases": "GET", "/v1/cases/{id}/resolve": "POST",
	}
	for path, methods := range allow {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			a.fail(w, r, &Error{Code: wire.ErrBadRequest, Message: r.Method + " is not allowed here; use " + methods}, http.StatusMethodNotAllowed)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, errorf(wire.ErrNotFound, "no such route: "+r.URL.Path), 0)
	})
	return a.logged(mux)
}

// ---- handlers ----

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	a.write(w, r, http.StatusOK, wire.Health{Status: "ok", Store: a.s.Kind(), ServerMS: a.o.Now().UnixMilli(), Version: a.o.Version})
}

func (a *api) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	w.Write(OpenAPI())
}

func (a *api) register(w http.ResponseWriter, r *http.Request) {
	var req wire.RegisterRequest
	if !a.decode(w, r, &req) {
		return
	}
	resp, err := a.s.Register(req, a.o.Now())
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	info(r).merchant = resp.MerchantID
	if info(r).device == "" {
		info(r).device = req.DeviceID
	}
	a.write(w, r, http.StatusCreated, resp)
}

func (a *api) push(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.PushRequest
	if !a.decode(w, r, &req) {
		return
	}
	if len(req.Mutations) > wire.MaxPushMutations {
		a.fail(w, r, errorf(wire.ErrTooLarge, fmt.Sprintf("%d mutations in one push; at most %d", len(req.Mutations), wire.MaxPushMutations)), 0)
		return
	}
	resp, err := a.s.Push(d, req, a.o.Now())
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	if resp.Results == nil {
		resp.Results = []wire.Result{}
	}
	a.write(w, r, http.StatusOK, resp)
}

func (a *api) pull(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.PullRequest
	if !a.decode(w, r, &req) {
		return
	}
	if req.Limit < 0 || req.Limit > wire.MaxPullLimit {
		a.fail(w, r, errorf(wire.ErrBadRequest, fmt.Sprintf("limit %d: between 0 and %d", req.Limit, wire.MaxPullLimit)), 0)
		return
	}
	for _, c := range req.Cursors {
		if c.Stream != wire.StreamLog && c.Stream != wire.StreamCodes {
			a.fail(w, r, errorf(wire.ErrBadRequest, fmt.Sprintf("unknown stream %q: log or codes", c.Stream)), 0)
			return
		}
	}
	resp, err := a.s.Pull(d, req, a.o.Now())
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	if resp.Pages == nil {
		resp.Pages = []wire.Page{}
	}
	for i := range resp.Pages {
		if resp.Pages[i].Changes == nil {
			resp.Pages[i].Changes = []wire.Change{}
		}
	}
	a.write(w, r, http.StatusOK, resp)
}

func (a *api) upload(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.CodesUpload
	if !a.decode(w, r, &req) {
		return
	}
	if len(req.Codes) > wire.MaxCodesUpload {
		a.fail(w, r, errorf(wire.ErrTooLarge, fmt.Sprintf("%d codes in one upload; at most %d", len(req.Codes), wire.MaxCodesUpload)), 0)
		return
	}
	resp, err := a.s.UploadCodes(d, req, a.o.Now())
	a.answer(w, r, resp, err)
}

func (a *api) check(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.RedeemRequest
	if !a.decode(w, r, &req) {
		return
	}
	resp, err := a.s.Check(d, req, a.o.Now())
	a.answer(w, r, resp, err)
}

func (a *api) redeem(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.RedeemRequest
	if !a.decode(w, r, &req) {
		return
	}
	if req.IdemKey == "" {
		// Without the key the device could not match its own redemption to this claim.
		a.fail(w, r, errorf(wire.ErrBadRequest, "idempotency_key is required"), 0)
		return
	}
	resp, err := a.s.Redeem(d, req, a.o.Now())
	a.answer(w, r, resp, err)
}

func (a *api) grant(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.AllowanceRequest
	if !a.decode(w, r, &req) {
		return
	}
	resp, err := a.s.GrantAllowance(d, req, a.o.Now())
	a.answer(w, r, resp, err)
}

func (a *api) allowances(w http.ResponseWriter, r *http.Request, d *Device) {
	list, err := a.s.Allowances(d, a.o.Now())
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	if list == nil {
		list = []wire.Allowance{}
	}
	a.write(w, r, http.StatusOK, wire.Allowances{Allowances: list})
}

func (a *api) cases(w http.ResponseWriter, r *http.Request, d *Device) {
	status := r.URL.Query().Get("status")
	switch status {
	case "":
		status = "open"
	case "open", "resolved", "all":
	default:
		a.fail(w, r, errorf(wire.ErrBadRequest, fmt.Sprintf("status %q: open, resolved or all", status)), 0)
		return
	}
	list, err := a.s.Cases(d, status)
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	if list == nil {
		list = []wire.Case{}
	}
	for i := range list {
		list[i] = tidyCase(list[i])
	}
	a.write(w, r, http.StatusOK, wire.Cases{Cases: list})
}

func (a *api) resolve(w http.ResponseWriter, r *http.Request, d *Device) {
	var req wire.ResolveRequest
	if !a.decode(w, r, &req) {
		return
	}
	c, err := a.s.Resolve(d, r.PathValue("id"), req, a.o.Now())
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	t := tidyCase(*c)
	a.write(w, r, http.StatusOK, &t)
}

// tidyCase gives a case without detail an empty object, so clients always find one.
func tidyCase(c wire.Case) wire.Case {
	if len(c.Detail) == 0 || string(c.Detail) == "null" {
		c.Detail = json.RawMessage("{}")
	}
	return c
}

// ---- plumbing ----

// open wraps a route that needs no token; callers are limited by address instead.
func (a *api) open(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.throttle(w, r, "ip:"+remoteHost(r)) {
			return
		}
		h(w, r)
	}
}

// auth resolves the bearer token to a device, then applies the device's rate limit.
func (a *api) auth(h func(http.ResponseWriter, *http.Request, *Device)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			// Failed attempts spend the caller's address budget, so guessing is slow.
			if !a.throttle(w, r, "ip:"+remoteHost(r)) {
				a.fail(w, r, errorf(wire.ErrUnauthorized, "an Authorization: Bearer <device token> header is required"), 0)
			}
			return
		}
		d, err := a.s.Authenticate(token, a.o.Now())
		if err != nil || d == nil {
			if err != nil && Status(err) == http.StatusInternalServerError {
				// The store failed, not the caller: say so instead of blaming the token.
				a.fail(w, r, err, 0)
				return
			}
			if !a.throttle(w, r, "ip:"+remoteHost(r)) {
				a.fail(w, r, errorf(wire.ErrUnauthorized, "unknown or revoked device token"), 0)
			}
			return
		}
		ri := info(r)
		ri.device, ri.merchant = d.ID, d.MerchantID
		if a.throttle(w, r, "dev:"+d.ID) {
			return
		}
		h(w, r, d)
	}
}

// throttle answers 429 and reports true when key has used up its budget.
func (a *api) throttle(w http.ResponseWriter, r *http.Request, key string) bool {
	if a.limit == nil {
		return false
	}
	wait := a.limit.take(key, a.o.Now())
	if wait <= 0 {
		return false
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	ms := wait.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	a.write(w, r, http.StatusTooManyRequests, wire.Error{Code: wire.ErrRateLimited, Message: "too many requests; retry later", RetryAfter: ms})
	return true
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// decode reads one JSON value of at most MaxBody bytes, refusing unknown fields and
// trailing data. On failure the error answer has been written.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength > a.o.MaxBody {
		a.fail(w, r, errorf(wire.ErrTooLarge, fmt.Sprintf("body of %d bytes; at most %d", r.ContentLength, a.o.MaxBody)), 0)
		return false
	}
	body := http.MaxBytesReader(w, r.Body, a.o.MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One value per body: anything after it is a malformed request.
		if _, next := dec.Token(); next != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		a.fail(w, r, errorf(wire.ErrTooLarge, fmt.Sprintf("body over %d bytes", a.o.MaxBody)), 0)
		return false
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("empty body")
	}
	a.fail(w, r, errorf(wire.ErrBadRequest, "bad JSON body: "+err.Error()), 0)
	return false
}

// answer writes v with 200, or the error.
func (a *api) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		a.fail(w, r, err, 0)
		return
	}
	a.write(w, r, http.StatusOK, v)
}

// fail writes err as a wire.Error. Refusals carry their message; anything else is
// logged in full and answered only with "internal", so no detail of the database
// leaks to a caller. status 0 means the one Status(err) gives.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error, status int) {
	if status == 0 {
		status = Status(err)
	}
	var e *Error
	if !errors.As(err, &e) || status == http.StatusInternalServerError {
		a.o.Logger.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err.Error())
		a.write(w, r, http.StatusInternalServerError, wire.Error{Code: wire.ErrInternal, Message: "internal"})
		return
	}
	info(r).code = e.Code
	a.write(w, r, status, wire.Error{Code: e.Code, Message: e.Message, ExpectedMID: e.ExpectedMID})
}

// write sends v as the JSON answer with status.
func (a *api) write(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.o.Logger.Error("encoding a response", "path", r.URL.Path, "err", err.Error())
		status, b = http.StatusInternalServerError, []byte(`{"code":"internal","message":"internal"}`)
	}
	if e, ok := v.(wire.Error); ok {
		info(r).code = e.Code
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

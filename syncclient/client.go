package syncclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/kameng/kameng/core/wire"
)

// Options tune a Client.
type Options struct {
	// Timeout bounds one attempt of one call (default 10 s). A caller that needs a
	// shorter answer (online redeem at the till) passes a context with a deadline.
	Timeout time.Duration
	// HTTPClient carries the transport (tests and the simulation inject one); the
	// client copies it and never changes the caller's.
	HTTPClient *http.Client
	UserAgent  string
	// Retries is how many times an idempotent call is repeated after a network
	// error, a 5xx or a 429 (default 4; negative: never).
	Retries int
	// RetryWait is the first backoff (default 200 ms); it doubles with jitter.
	RetryWait time.Duration
	// RetryMaxWait caps one wait, and is the longest Retry-After honoured before
	// giving the answer back to the caller (default 10 s).
	RetryMaxWait time.Duration
}

// DefaultTimeout bounds one attempt when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Client speaks the /v1 API for one device. Its methods are safe for concurrent use.
type Client struct {
	BaseURL string
	r       *resty.Client
	maxWait time.Duration

	mu    sync.RWMutex
	token string
}

// APIError is a refusal the server answered with (any non-2xx status).
type APIError struct {
	Status int
	Body   wire.Error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Body.Code, e.Body.Message)
}

// Code is the wire error code (wire.Err*).
func (e *APIError) Code() string { return e.Body.Code }

// AsAPIError returns the server's refusal inside err, or nil.
func AsAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// IsCode reports whether err is the server's refusal with this wire code.
func IsCode(err error, code string) bool {
	ae := AsAPIError(err)
	return ae != nil && ae.Body.Code == code
}

// Unreachable reports whether err means no decision came from the server: the
// network failed, the call timed out, or the server could not answer (5xx, 429).
// A device then falls back to its offline rules; a 4xx is a decision and is not.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if ae := AsAPIError(err); ae != nil {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return true
}

// errWaitTooLong stops retrying when the server asks for a longer pause than the
// client is willing to block for; the caller (the sync loop) backs off instead.
var errWaitTooLong = errors.New("server asked to retry later")

// New builds a client for the server at baseURL ("http://127.0.0.1:8080"),
// authenticating with deviceToken ("" before registration).
func New(baseURL, deviceToken string, o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries == 0 {
		o.Retries = 4
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryWait <= 0 {
		o.RetryWait = 200 * time.Millisecond
	}
	if o.RetryMaxWait <= 0 {
		o.RetryMaxWait = 10 * time.Second
	}
	hc := &http.Client{}
	if o.HTTPClient != nil {
		cp := *o.HTTPClient
		hc = &cp
	}
	r := resty.NewWithClient(hc).
		SetTimeout(o.Timeout).
		SetRetryCount(o.Retries).
		SetRetryWaitTime(o.RetryWait).
		SetRetryMaxWaitTime(o.RetryMaxWait).
		SetRetryAfter(retryAfter(o.RetryMaxWait)).
		SetDisableWarn(true).
		SetLogger(quietLogger{}).
		SetHeader("Accept", "application/json")
	if o.UserAgent != "" {
		r.SetHeader("User-Agent", o.UserAgent)
	}
	base := strings.TrimRight(baseURL, "/")
	r.SetBaseURL(base)
	return &Client{BaseURL: base, r: r, maxWait: o.RetryMaxWait, token: deviceToken}
}

// SetToken replaces the device token (after registration).
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// Token is the device token in use.
func (c *Client) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// retryable is the one retry condition: an idempotent call is repeated after a
// network failure (no answer, connection dropped, attempt timed out), a 5xx or a
// 429. Everything else is an answer and goes back to the caller as it is.
func retryable(idempotent bool) resty.RetryConditionFunc {
	return func(resp *resty.Response, err error) bool {
		if !idempotent {
			return false
		}
		if resp == nil {
			return false // the request could not even be built: repeating will not help
		}
		if err != nil {
			// Nobody listening: the server is down, not busy. Repeating within this call
			// only keeps a cashier waiting; the sync loop's backoff tries again later.
			return !errors.Is(err, errWaitTooLong) && !errors.Is(err, syscall.ECONNREFUSED)
		}
		s := resp.StatusCode()
		return s >= 500 || s == http.StatusTooManyRequests
	}
}

// retryAfter honours the server's Retry-After (header in seconds or an HTTP date,
// or retry_after_ms in the body) on 429 and 503; otherwise resty's exponential
// backoff with jitter applies.
func retryAfter(limit time.Duration) resty.RetryAfterFunc {
	return func(_ *resty.Client, resp *resty.Response) (time.Duration, error) {
		if resp == nil || resp.RawResponse == nil {
			return 0, nil
		}
		s := resp.StatusCode()
		if s != http.StatusTooManyRequests && s != http.StatusServiceUnavailable {
			return 0, nil
		}
		d := parseRetryAfter(resp.Header().Get("Retry-After"), time.Now())
		if d == 0 {
			var we wire.Error
			if json.Unmarshal(resp.Body(), &we) == nil && we.RetryAfter > 0 {
				d = time.Duration(we.RetryAfter) * time.Millisecond
			}
		}
		if d > limit {
			return 0, errWaitTooLong
		}
		return d, nil
	}
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// call sends one request and decodes the answer into out (nil: no body wanted).
func (c *Client) call(ctx context.Context, method, path string, body, out any, idempotent, auth bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	req := c.r.R().SetContext(ctx).AddRetryCondition(retryable(idempotent))
	if body != nil {
		req.SetHeader("Content-Type", "application/json").SetBody(body)
	}
	if auth {
		if tok := c.Token(); tok != "" {
			req.SetAuthToken(tok)
		}
	}
	resp, err := req.Execute(method, path)
	if resp != nil && resp.RawResponse != nil && resp.StatusCode() >= 300 {
		// An answer, even when retries stopped on it: the caller sees the refusal.
		return decodeError(resp)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp == nil || resp.RawResponse == nil {
		return fmt.Errorf("%s %s: no answer", method, path)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Body(), out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *resty.Response) error {
	e := &APIError{Status: resp.StatusCode()}
	if err := json.Unmarshal(resp.Body(), &e.Body); err != nil || e.Body.Code == "" {
		e.Body = wire.Error{Code: codeForStatus(e.Status), Message: strings.TrimSpace(string(firstBytes(resp.Body(), 200)))}
	}
	if e.Body.RetryAfter == 0 {
		if d := parseRetryAfter(resp.Header().Get("Retry-After"), time.Now()); d > 0 {
			e.Body.RetryAfter = d.Milliseconds()
		}
	}
	return e
}

func firstBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// codeForStatus names an answer that came without a wire.Error body (a proxy's
// error page, say).
func codeForStatus(s int) string {
	switch {
	case s == http.StatusUnauthorized:
		return wire.ErrUnauthorized
	case s == http.StatusForbidden:
		return wire.ErrForbidden
	case s == http.StatusNotFound:
		return wire.ErrNotFound
	case s == http.StatusConflict:
		return wire.ErrConflict
	case s == http.StatusRequestEntityTooLarge:
		return wire.ErrTooLarge
	case s == http.StatusTooManyRequests:
		return wire.ErrRateLimited
	case s >= 500:
		return wire.ErrInternal
	}
	return wire.ErrBadRequest
}

// Health asks whether the server is up (no token needed).
func (c *Client) Health(ctx context.Context) (*wire.Health, error) {
	var out wire.Health
	return &out, c.call(ctx, http.MethodGet, "/v1/health", nil, &out, true, false)
}

// Register enrols this device with an enrolment token. It is never retried: a
// second attempt would issue a second device token.
func (c *Client) Register(ctx context.Context, req wire.RegisterRequest) (*wire.RegisterResponse, error) {
	var out wire.RegisterResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/devices", req, &out, false, false)
}

// Push sends mutations in mid order; safe to repeat (the server keys them by device
// and mid).
func (c *Client) Push(ctx context.Context, req wire.PushRequest) (*wire.PushResponse, error) {
	var out wire.PushResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/sync/push", req, &out, true, true)
}

// Pull fetches changes after the cursors; safe to repeat.
func (c *Client) Pull(ctx context.Context, req wire.PullRequest) (*wire.PullResponse, error) {
	var out wire.PullResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/sync/pull", req, &out, true, true)
}

// UploadCodes sends a batch's code rows; repeated rows are ignored by the server.
func (c *Client) UploadCodes(ctx context.Context, up wire.CodesUpload) (*wire.CodesUploaded, error) {
	var out wire.CodesUploaded
	return &out, c.call(ctx, http.MethodPost, "/v1/codes/upload", up, &out, true, true)
}

// Check asks the server whether a code could be redeemed now.
func (c *Client) Check(ctx context.Context, req wire.RedeemRequest) (*wire.RedeemResponse, error) {
	var out wire.RedeemResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/codes/check", req, &out, true, true)
}

// Redeem claims a code on the server under the request's idempotency key; it is
// retried only when that key is set (the same key returns the first answer).
func (c *Client) Redeem(ctx context.Context, req wire.RedeemRequest) (*wire.RedeemResponse, error) {
	var out wire.RedeemResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/codes/redeem", req, &out, req.IdemKey != "", true)
}

// GrantAllowance asks for part of a balance to spend offline. Not retried: a
// repeated grant would reserve twice.
func (c *Client) GrantAllowance(ctx context.Context, req wire.AllowanceRequest) (*wire.Allowance, error) {
	var out wire.Allowance
	return &out, c.call(ctx, http.MethodPost, "/v1/allowances", req, &out, false, true)
}

// Allowances lists what this device may spend offline.
func (c *Client) Allowances(ctx context.Context) (*wire.Allowances, error) {
	var out wire.Allowances
	return &out, c.call(ctx, http.MethodGet, "/v1/allowances", nil, &out, true, true)
}

// Cases lists the merchant's exception cases: open, resolved or all.
func (c *Client) Cases(ctx context.Context, status string) (*wire.Cases, error) {
	var out wire.Cases
	path := "/v1/cases"
	if status != "" {
		path += "?status=" + url.QueryEscape(status)
	}
	return &out, c.call(ctx, http.MethodGet, path, nil, &out, true, true)
}

// Resolve settles a case. Not retried: the second attempt would find it resolved.
func (c *Client) Resolve(ctx context.Context, id string, req wire.ResolveRequest) (*wire.Case, error) {
	var out wire.Case
	return &out, c.call(ctx, http.MethodPost, "/v1/cases/"+url.PathEscape(id)+"/resolve", req, &out, false, true)
}

// quietLogger keeps resty from writing to stderr: failures come back as errors.
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

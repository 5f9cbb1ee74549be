package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/kameng/kameng/core/wire"
)

// Device is an authenticated caller: every store method is scoped by its merchant.
type Device struct {
	ID         string
	MerchantID string
	Name       string
}

// Store is the server's persistence and authority: SQLite (default) or PostgreSQL.
// Correctness between several server processes rests on the database alone
// (conditional updates, unique keys, a per-merchant sequence row), never on a lock
// held in this process.
type Store interface {
	Kind() string // sqlite | postgres
	Close() error

	// CreateToken issues an enrolment token valid for ttl. merchantID "" admits a new
	// merchant (the first device that registers founds it); otherwise the token joins
	// that merchant. The plain token is returned once; only its hash is kept.
	CreateToken(merchantID, label string, ttl time.Duration, now time.Time) (string, error)
	Register(req wire.RegisterRequest, now time.Time) (*wire.RegisterResponse, error)
	// Authenticate maps a bearer token to its device (tokens are stored hashed).
	Authenticate(bearer string, now time.Time) (*Device, error)

	Push(d *Device, req wire.PushRequest, now time.Time) (*wire.PushResponse, error)
	Pull(d *Device, req wire.PullRequest, now time.Time) (*wire.PullResponse, error)
	UploadCodes(d *Device, up wire.CodesUpload, now time.Time) (*wire.CodesUploaded, error)

	Check(d *Device, req wire.RedeemRequest, now time.Time) (*wire.RedeemResponse, error)
	Redeem(d *Device, req wire.RedeemRequest, now time.Time) (*wire.RedeemResponse, error)

	GrantAllowance(d *Device, req wire.AllowanceRequest, now time.Time) (*wire.Allowance, error)
	Allowances(d *Device, now time.Time) ([]wire.Allowance, error)

	Cases(d *Device, status string) ([]wire.Case, error)
	Resolve(d *Device, id string, req wire.ResolveRequest, now time.Time) (*wire.Case, error)

	// BumpEpoch marks a restore: devices drop their cursors and pull again.
	BumpEpoch(merchantID string) (int64, error)
}

// Error is a refusal with a wire code; the HTTP layer maps it to a status.
type Error struct {
	Code        string
	Message     string
	ExpectedMID int64
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an Error.
func errorf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Status is the HTTP status for an error code.
func Status(err error) int {
	var e *Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError
	}
	switch e.Code {
	case wire.ErrBadRequest:
		return http.StatusBadRequest
	case wire.ErrUnauthorized:
		return http.StatusUnauthorized
	case wire.ErrForbidden:
		return http.StatusForbidden
	case wire.ErrNotFound:
		return http.StatusNotFound
	case wire.ErrConflict, wire.ErrMIDGap, wire.ErrEpoch:
		return http.StatusConflict
	case wire.ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case wire.ErrRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

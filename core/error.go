package core

import (
	"errors"
	"fmt"
)

// Error codes: a screen translates these, never the English Message.
const (
	ErrInvalid   = "invalid"
	ErrNotFound  = "not_found"
	ErrConflict  = "conflict"
	ErrForbidden = "forbidden"
	ErrAuth      = "auth"
	ErrInternal  = "internal"
	ErrSchema    = "schema"
	ErrKey       = "key"
)

// Error is a failure the user can act on. Code is machine-readable, Field names the
// input at fault, Params fill in the translated message, Message is the English fallback.
type Error struct {
	Code    string
	Field   string
	Message string
	Params  map[string]string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf builds an Error with a code and an English message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports bad input in one field with the form the field accepts.
func Invalid(field, accepted, value string, format string, args ...any) *Error {
	return &Error{Code: ErrInvalid, Field: field, Message: fmt.Sprintf(format, args...),
		Params: map[string]string{"accepted": accepted, "value": value}}
}

// NotFound reports an unknown id or code.
func NotFound(field, value string) *Error {
	return &Error{Code: ErrNotFound, Field: field, Message: fmt.Sprintf("no %s %q", field, value),
		Params: map[string]string{"value": value}}
}

// Forbidden reports an action the operator's role does not allow.
func Forbidden(action, role string) *Error {
	return &Error{Code: ErrForbidden, Field: "role", Message: fmt.Sprintf("role %s may not %s", role, action),
		Params: map[string]string{"action": action, "role": role}}
}

// ErrorCode returns the code of err, ErrInternal for errors that are not *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return ErrInternal
}

// AsError returns err as *Error, wrapping unknown errors as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: ErrInternal, Message: err.Error()}
}

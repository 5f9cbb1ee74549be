package core

import (
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// NewID returns a time-ordered UUIDv7 string.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Clock tells the time; tests pass a fixed one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the wall clock.
var SystemClock Clock = systemClock{}

// FixedClock is a clock that stands still until moved.
type FixedClock struct{ T time.Time }

func (c *FixedClock) Now() time.Time { return c.T }

// NormalizePhone accepts a mainland mobile number with optional +86/0086, spaces and
// hyphens, and returns its 11 digits.
func NormalizePhone(s string) (string, error) {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９':
			b.WriteRune('0' + r - '０')
		case r == ' ' || r == '-' || r == '+' || r == '(' || r == ')' || unicode.IsSpace(r):
		default:
			return "", Invalid("phone", "13812341234", s, "a phone number has only digits")
		}
	}
	d := b.String()
	d = strings.TrimPrefix(d, "0086")
	if len(d) == 13 && strings.HasPrefix(d, "86") {
		d = d[2:]
	}
	if len(d) != 11 || d[0] != '1' || d[1] < '3' {
		return "", Invalid("phone", "13812341234", s, "a mobile number has 11 digits and starts with 13–19")
	}
	return d, nil
}

// MaskPhone shows 138****1234.
func MaskPhone(p string) string {
	if len(p) != 11 {
		return strings.Repeat("*", len(p))
	}
	return p[:3] + "****" + p[7:]
}

// MaskSecret shows the last two characters only.
func MaskSecret(s string) string {
	if len(s) <= 2 {
		return "******"
	}
	return "******" + s[len(s)-2:]
}

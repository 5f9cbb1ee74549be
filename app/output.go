package app

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/kameng/kameng/core"
	"golang.org/x/text/width"
)

// Exit codes of the command line (documented in the README).
const (
	ExitOK        = 0
	ExitInternal  = 1
	ExitInvalid   = 2
	ExitNotFound  = 3
	ExitConflict  = 4
	ExitForbidden = 5
	ExitRejected  = 6 // check or redeem answered with a reason other than ok
	ExitKey       = 7 // key or schema problem
	ExitAudit     = 8 // the audit chain is broken
	ExitCancelled = 9
	ExitUnhealthy = 10 // doctor found a problem
	ExitOffline   = 11 // the sync server did not answer
)

// ExitCode maps an error to the command line's exit code.
func ExitCode(err error) int {
	switch core.ErrorCode(err) {
	case "":
		return ExitOK
	case core.ErrInvalid:
		return ExitInvalid
	case core.ErrNotFound:
		return ExitNotFound
	case core.ErrConflict:
		return ExitConflict
	case core.ErrForbidden, core.ErrAuth:
		return ExitForbidden
	case core.ErrKey, core.ErrSchema:
		return ExitKey
	case ErrUnreachable:
		return ExitOffline
	}
	return ExitInternal
}

// emitJSON writes v as indented JSON.
func emitJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// JSONError is the --json form of a failure.
type JSONError struct {
	Error struct {
		Code    string            `json:"code"`
		Field   string            `json:"field,omitempty"`
		Message string            `json:"message"`
		Text    string            `json:"text"`
		Params  map[string]string `json:"params,omitempty"`
	} `json:"error"`
	Problems any `json:"problems,omitempty"`
}

func textWidth(s string) int {
	n := 0
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

// table prints rows in aligned columns; CJK characters count double.
func table(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = textWidth(h)
	}
	for _, r := range rows {
		for i, c := range r {
			if i < len(widths) && textWidth(c) > widths[i] {
				widths[i] = textWidth(c)
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-textWidth(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("─", widths[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// kv prints label/value pairs.
func kv(w io.Writer, pairs [][2]string) {
	wmax := 0
	for _, p := range pairs {
		wmax = max(wmax, textWidth(p[0]))
	}
	for _, p := range pairs {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(w, "%s%s  %s\n", p[0], strings.Repeat(" ", wmax-textWidth(p[0])), p[1])
	}
}

func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}

package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kameng/kameng/app"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run the real command line as "kameng".
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kameng": func() { os.Exit(app.Main(os.Args[1:], frontends)) },
	})
}

// TestScripts runs the user sessions in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("KAMENG_DATA", filepath.Join(env.WorkDir, "data"))
			env.Setenv("LANG", "zh_CN.UTF-8")
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			return os.MkdirAll(filepath.Join(env.WorkDir, "home"), 0o700)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":  cmdStatus,
			"jsonget": cmdJSONGet,
			"jsoneq":  cmdJSONEq,
			"magic":   cmdMagic,
			"typo":    cmdTypo,
		},
	})
}

// status N PROG [ARGS...] runs PROG and fails unless it exits with exactly N.
// Its stdout and stderr are kept for the stdout/stderr commands that follow.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: status N prog [args...] (no !)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: status N prog [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: bad exit code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("status: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// readJSON reads FILE ("stdout" and "stderr" mean the last command's output).
func readJSON(ts *testscript.TestScript, file string) any {
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(file)), &v); err != nil {
		ts.Fatalf("%s is not JSON: %v", file, err)
	}
	return v
}

// lookup walks a dotted path: object keys, array indexes, and "#" for a length.
func lookup(v any, path string) (any, error) {
	if path == "" || path == "." {
		return v, nil
	}
	for _, seg := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			if seg == "#" {
				v = float64(len(x))
				continue
			}
			val, ok := x[seg]
			if !ok {
				return nil, fmt.Errorf("no key %q", seg)
			}
			v = val
		case []any:
			if seg == "#" {
				v = float64(len(x))
				continue
			}
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("no index %q in an array of %d", seg, len(x))
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("cannot take %q of %v", seg, v)
		}
	}
	return v, nil
}

func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonget VAR FILE PATH sets $VAR to the value at PATH in the JSON of FILE.
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonget VAR FILE PATH")
	}
	v, err := lookup(readJSON(ts, args[1]), args[2])
	if err != nil {
		ts.Fatalf("jsonget %s: %v", args[2], err)
	}
	ts.Setenv(args[0], jsonText(v))
}

// jsoneq FILE PATH VALUE asserts the value at PATH (as text) equals VALUE.
func cmdJSONEq(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsoneq FILE PATH VALUE")
	}
	v, err := lookup(readJSON(ts, args[0]), args[1])
	if err != nil {
		ts.Fatalf("jsoneq %s: %v", args[1], err)
	}
	got := jsonText(v)
	if (got == args[2]) == neg {
		if neg {
			ts.Fatalf("%s at %s is %s, want anything else", args[0], args[1], got)
		}
		ts.Fatalf("%s at %s is %s, want %s", args[0], args[1], got, args[2])
	}
}

// magic FILE HEX asserts FILE starts with the bytes HEX (and so is not empty).
func cmdMagic(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: magic FILE HEX")
	}
	want, err := hex.DecodeString(args[1])
	if err != nil {
		ts.Fatalf("magic: %v", err)
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	if bytes.HasPrefix(b, want) == neg {
		ts.Fatalf("%s starts with % x, want %s% x", args[0], b[:min(len(b), len(want))], map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// typo VAR CODE sets $VAR to CODE with its first character replaced by another
// character of the default alphabet: the kind of slip a cashier makes typing a code.
func cmdTypo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || args[1] == "" {
		ts.Fatalf("usage: typo VAR CODE")
	}
	code := []byte(args[1])
	if code[0] == '2' {
		code[0] = '3'
	} else {
		code[0] = '2'
	}
	ts.Setenv(args[0], string(code))
}

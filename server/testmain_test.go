package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMain stops the throwaway PostgreSQL cluster (when a test started one) after
// the tests, and fails at once when PostgreSQL is required but cannot be had.
func TestMain(m *testing.M) {
	if os.Getenv("KAMENG_REQUIRE_POSTGRES") == "1" && os.Getenv("KAMENG_TEST_POSTGRES") == "" {
		if _, _, err := findPostgres(); err != nil {
			fmt.Fprintln(os.Stderr, "server tests: KAMENG_REQUIRE_POSTGRES=1 but", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	stopTestPostgres()
	os.Exit(code)
}

// eachStore runs fn once per store kind, each time on a fresh, empty store: an
// SQLite file in t.TempDir() and a new PostgreSQL database. The PostgreSQL half is
// skipped (with the reason) when no server can be had, unless
// KAMENG_REQUIRE_POSTGRES=1, which makes it fail.
func eachStore(t *testing.T, fn func(t *testing.T, s Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, newSQLiteStore(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newPostgresStore(t)) })
}

// newSQLiteStore opens a fresh SQLite store, closed when the test ends.
func newSQLiteStore(t testing.TB) Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newPostgresStore opens a store on a new database of the test server, closed and
// dropped when the test ends.
func newPostgresStore(t testing.TB) Store {
	t.Helper()
	s, err := Open(newPostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

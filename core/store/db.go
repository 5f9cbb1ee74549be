// Package store keeps Kameng's data in a local SQLite database (modernc.org/sqlite,
// pure Go). Every state change is one IMMEDIATE transaction that writes the domain
// rows together with the ledger, audit, rollup and outbox entries.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kameng/kameng/core"
	_ "modernc.org/sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations are applied in order; the database's user_version counts those applied.
var migrations = func() []string {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			panic(err)
		}
		out[i] = string(b)
	}
	return out
}()

// SchemaVersion is the schema this build writes.
var SchemaVersion = len(migrations)

// DB is one open local database.
type DB struct {
	Path  string
	w     *sql.DB // one connection: SQLite has one writer at a time anyway
	r     *sql.DB // readers, query_only
	Clock core.Clock

	mu          sync.Mutex
	secrets     *core.Secrets
	campaigns   sync.Map // id → *cachedCampaign
	stmts       sync.Map // pool+query → *sql.Stmt: SQLite compiles each statement once
	formatCache formatCache
	prepared    atomic.Int64
}

// Options tune Open.
type Options struct {
	// Synchronous overrides synchronous=FULL; only benchmarks set it.
	Synchronous string
}

func dsn(path string, readOnly bool, opt Options) string {
	sync := "FULL"
	if opt.Synchronous != "" {
		sync = opt.Synchronous
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "foreign_keys(1)")
	// Erased personal data must not linger in free pages (member anonymisation).
	q.Add("_pragma", "secure_delete(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and migrates it.
// A database written by a newer Kameng is refused.
func Open(path string) (*DB, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, opt Options) (*DB, error) {
	w, err := sql.Open("sqlite", dsn(path, false, opt))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true, opt))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	return &DB{Path: path, w: w, r: r, Clock: core.SystemClock}, nil
}

func migrate(w *sql.DB) error {
	var v int
	if err := w.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if v > len(migrations) {
		return &core.Error{Code: core.ErrSchema, Field: "data",
			Message: fmt.Sprintf("this database has schema version %d, newer than this program understands (%d): upgrade Kameng", v, len(migrations)),
			Params:  map[string]string{"found": fmt.Sprint(v), "supported": fmt.Sprint(len(migrations))}}
	}
	for i := v; i < len(migrations); i++ {
		tx, err := w.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.Range(func(_, s any) bool { s.(*sql.Stmt).Close(); return true })
	err1 := db.r.Close()
	err2 := db.w.Close()
	return errors.Join(err1, err2)
}

// Version returns the schema version recorded in the file.
func (db *DB) Version() (int, error) {
	var v int
	err := db.r.QueryRow("PRAGMA user_version").Scan(&v)
	return v, err
}

// IntegrityCheck runs PRAGMA integrity_check and returns its findings ("ok" when sound).
func (db *DB) IntegrityCheck() (string, error) {
	rows, err := db.r.Query("PRAGMA integrity_check")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", err
		}
		out = append(out, s)
	}
	return strings.Join(out, "; "), rows.Err()
}

// Raw gives benchmarks and tests the write connection pool.
func (db *DB) Raw() *sql.DB { return db.w }

// tx is one write transaction with the actor it acts for.
type tx struct {
	*sql.Tx
	db    *DB
	actor *Actor
	now   int64
	hlc   *core.HLC

	campaignsChanged bool     // code formats in use may differ after commit
	unprepared       []string // statements to prepare once the connection is free
	lastMID          int64    // mid of the outbox row written last in this transaction
	pull             *pull    // the page being applied (sync), nil otherwise
}

// Actor is who does a change, where.
type Actor struct {
	Operator core.Operator
	Device   core.Device
	Store    core.Store
	// Offline marks a change made without the server (the sync client could not
	// reach it): a redemption then follows the campaign's offline policy, and a
	// wallet payment or gift-card debit must fit in this device's allowance, which
	// it counts against. Set it on a copy of the signed-in actor.
	Offline bool
}

// write runs fn in one IMMEDIATE transaction and commits it, or changes nothing.
func (db *DB) write(a *Actor, fn func(t *tx) error) error {
	sqlTx, err := db.w.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &tx{Tx: sqlTx, db: db, actor: a, now: db.Clock.Now().UnixMilli()}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if t.campaignsChanged {
		db.forgetFormats()
	}
	for _, q := range t.unprepared {
		db.prep(db.w, q)
	}
	return nil
}

// prep returns a statement prepared once on a pool.
func (db *DB) prep(pool *sql.DB, query string) (*sql.Stmt, error) {
	key := query
	if pool == db.w {
		key = "w\x00" + query
	}
	if s, ok := db.stmts.Load(key); ok {
		return s.(*sql.Stmt), nil
	}
	if db.prepared.Load() >= maxPrepared {
		return nil, errTooManyStatements
	}
	s, err := pool.Prepare(query)
	if err != nil {
		return nil, err
	}
	if old, loaded := db.stmts.LoadOrStore(key, s); loaded {
		s.Close()
		return old.(*sql.Stmt), nil
	}
	db.prepared.Add(1)
	return s, nil
}

// maxPrepared bounds the cache: filtered list queries are built from their filters.
const maxPrepared = 256

var errTooManyStatements = errors.New("statement cache full")

// Exec runs a statement in the transaction through the prepared-statement cache. The
// write pool has one connection, which this transaction holds: a statement not yet
// prepared runs unprepared now and is prepared after the commit.
func (t *tx) Exec(query string, args ...any) (sql.Result, error) {
	if s, ok := t.db.stmts.Load("w\x00" + query); ok {
		return t.Tx.Stmt(s.(*sql.Stmt)).Exec(args...)
	}
	t.unprepared = append(t.unprepared, query)
	return t.Tx.Exec(query, args...)
}

// QueryRow runs a query in the transaction through the prepared-statement cache.
func (t *tx) QueryRow(query string, args ...any) *sql.Row {
	if s, ok := t.db.stmts.Load("w\x00" + query); ok {
		return t.Tx.Stmt(s.(*sql.Stmt)).QueryRow(args...)
	}
	t.unprepared = append(t.unprepared, query)
	return t.Tx.QueryRow(query, args...)
}

// reader runs read-only queries on the read pool through the prepared-statement cache.
type reader struct{ db *DB }

func (r reader) QueryRow(query string, args ...any) *sql.Row {
	s, err := r.db.prep(r.db.r, query)
	if err != nil {
		return r.db.r.QueryRow(query, args...)
	}
	return s.QueryRow(args...)
}

// getMeta and setMeta read and write the key/value table.
func getMeta(q interface {
	QueryRow(string, ...any) *sql.Row
}, key string) ([]byte, error) {
	var v []byte
	err := q.QueryRow(`SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

func setMeta(t *sql.Tx, key string, value any) error {
	_, err := t.Exec(`INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

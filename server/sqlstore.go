package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/kameng/kameng/core/wire"
	_ "modernc.org/sqlite"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Pool sizes. PostgreSQL serves about 64 concurrent requests per process; SQLite has
// one writer at a time anyway, and readers that never block it (WAL).
const (
	pgMaxConns     = 64
	sqliteReaders  = 8
	pgRetries      = 5
	sqliteBusyMS   = 15000
	tokenBytes     = 32
	enrolPrefix    = "km_"
	devicePrefix   = "kmd_"
	defaultTokenTT = 24 * time.Hour
)

// sqlStore is the one Store implementation, over database/sql, for both databases.
// The SQL is written once with ? placeholders; a few dialect strings differ.
type sqlStore struct {
	kind string // sqlite | postgres
	pg   bool
	w    *sql.DB // writes (SQLite: a single connection, transactions BEGIN IMMEDIATE)
	r    *sql.DB // reads (SQLite: query_only pool; PostgreSQL: the same pool as w)

	// forUpdate is the row lock suffix of a SELECT: empty on SQLite, whose writer is
	// exclusive; on PostgreSQL the lock that does not block inserts referring to the row.
	forUpdate string
	rebound   sync.Map // query → query with $n placeholders (PostgreSQL)
	stmts     sync.Map // "w"/"r" + query → *sql.Stmt (SQLite; pgx caches its own)
}

// Open opens the server's store: a postgres:// or postgresql:// URL opens
// PostgreSQL, anything else is the path (or file: URL) of an SQLite database, created
// when missing. The schema is migrated to this build's version.
func Open(dsn string) (Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(dsn)
	}
	return openSQLite(dsn)
}

func openPostgres(dsn string) (*sqlStore, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(pgMaxConns)
	db.SetMaxIdleConns(pgMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &sqlStore{kind: "postgres", pg: true, w: db, r: db, forUpdate: " FOR NO KEY UPDATE"}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func sqliteDSN(path string, readOnly bool) string {
	path = strings.TrimPrefix(path, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(sqliteBusyMS)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	// An acknowledged push or redemption must survive a power cut.
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func openSQLite(path string) (*sqlStore, error) {
	if strings.TrimPrefix(path, "file:") == "" {
		return nil, errorf(wire.ErrBadRequest, "no database path given")
	}
	w, err := sql.Open("sqlite", sqliteDSN(path, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &sqlStore{kind: "sqlite", w: w}
	if err := s.migrate(); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders)
	s.r = r
	return s, nil
}

func (s *sqlStore) Kind() string { return s.kind }

func (s *sqlStore) Close() error {
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	if s.r != s.w {
		return errors.Join(s.r.Close(), s.w.Close())
	}
	return s.w.Close()
}

// migrations lists one dialect's files in order.
func migrations(dialect string) ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/"+dialect+"/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}

// migrate applies the missing migrations in one transaction. On PostgreSQL an
// advisory lock keeps several server processes starting at once from racing.
func (s *sqlStore) migrate() error {
	files, err := migrations(s.kind)
	if err != nil {
		return err
	}
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("open %s store: %w", s.kind, err)
	}
	defer tx.Rollback()
	if s.pg {
		if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(727001)`); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)`); err != nil {
		return err
	}
	var v int
	if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(files) {
		return errorf(wire.ErrConflict, fmt.Sprintf("the server database has schema version %d, newer than this program understands (%d): upgrade Kameng", v, len(files)))
	}
	for i := v; i < len(files); i++ {
		if _, err := tx.Exec(files[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(s.bind(`INSERT INTO schema_version(version, applied_ms) VALUES (?, ?)`), i+1, time.Now().UnixMilli()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// bind rewrites ? placeholders to $1, $2… for PostgreSQL. Queries hold no literal ?.
func (s *sqlStore) bind(q string) string {
	if !s.pg {
		return q
	}
	if v, ok := s.rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	out := b.String()
	s.rebound.Store(q, out)
	return out
}

// stmt returns a statement prepared once on an SQLite pool; nil when it is not
// prepared yet (the caller runs the query unprepared).
func (s *sqlStore) stmt(pool string, q string) *sql.Stmt {
	if v, ok := s.stmts.Load(pool + q); ok {
		return v.(*sql.Stmt)
	}
	return nil
}

// prepare prepares q on an SQLite pool for later calls. The writer has one
// connection, so statements for it are prepared only when no transaction holds it.
func (s *sqlStore) prepare(pool string, q string) {
	if s.pg {
		return
	}
	db := s.r
	if pool == "w" {
		db = s.w
	}
	st, err := db.Prepare(q)
	if err != nil {
		return
	}
	if _, loaded := s.stmts.LoadOrStore(pool+q, st); loaded {
		st.Close()
	}
}

// queryRow reads one row outside a transaction, from the read pool.
func (s *sqlStore) queryRow(q string, args ...any) *sql.Row {
	if st := s.stmt("r", q); st != nil {
		return st.QueryRow(args...)
	}
	if !s.pg {
		s.prepare("r", q)
		if st := s.stmt("r", q); st != nil {
			return st.QueryRow(args...)
		}
	}
	return s.r.QueryRow(s.bind(q), args...)
}

// query reads rows outside a transaction, from the read pool.
func (s *sqlStore) query(q string, args ...any) (*sql.Rows, error) {
	if st := s.stmt("r", q); st != nil {
		return st.Query(args...)
	}
	return s.r.Query(s.bind(q), args...)
}

// tx is one write transaction of one merchant.
type tx struct {
	*sql.Tx
	s        *sqlStore
	now      int64
	merchant string
	device   string // who the transaction acts for (log rows, entries)

	// The merchant's seq counter: locked and read once (lockMerchant), handed out
	// in memory, written back before commit. The row lock is held until commit, so
	// seq order is commit order across server processes.
	locked     bool
	epoch      int64
	seq        int64
	seqStart   int64
	logAdded   int64
	codesAdded int64

	campaigns  map[string]*campaignRow
	unprepared []string
	logRows    []logRow // written by flushLog before commit
}

// write runs fn in one transaction and commits it, retrying on PostgreSQL when the
// database chose it as the victim of a serialization failure or deadlock. fn must
// set its results afresh on each run.
func (s *sqlStore) write(merchant, device string, now time.Time, fn func(t *tx) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = s.writeOnce(merchant, device, now, fn)
		if err == nil || !s.pg || !retryable(err) || attempt >= pgRetries {
			return err
		}
		time.Sleep(time.Duration(1+attempt*attempt) * 5 * time.Millisecond)
	}
}

func (s *sqlStore) writeOnce(merchant, device string, now time.Time, fn func(t *tx) error) error {
	sqlTx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &tx{Tx: sqlTx, s: s, now: now.UnixMilli(), merchant: merchant, device: device}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := t.flushLog(); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := t.flushSeq(); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, q := range t.unprepared {
		s.prepare("w", q)
	}
	return nil
}

// retryable reports a PostgreSQL serialization failure or deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// isUnique reports a unique-key violation in either database.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func (t *tx) exec(q string, args ...any) (sql.Result, error) {
	if st := t.s.stmt("w", q); st != nil {
		return t.Tx.Stmt(st).Exec(args...)
	}
	if !t.s.pg {
		t.unprepared = append(t.unprepared, q)
	}
	return t.Tx.Exec(t.s.bind(q), args...)
}

func (t *tx) queryRow(q string, args ...any) *sql.Row {
	if st := t.s.stmt("w", q); st != nil {
		return t.Tx.Stmt(st).QueryRow(args...)
	}
	if !t.s.pg {
		t.unprepared = append(t.unprepared, q)
	}
	return t.Tx.QueryRow(t.s.bind(q), args...)
}

func (t *tx) query(q string, args ...any) (*sql.Rows, error) {
	return t.Tx.Query(t.s.bind(q), args...)
}

// affected runs a statement and returns the number of rows it changed.
func (t *tx) affected(q string, args ...any) (int64, error) {
	res, err := t.exec(q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// lockMerchant takes the merchant's row lock and reads its epoch and counter.
func (t *tx) lockMerchant() error {
	if t.locked {
		return nil
	}
	err := t.queryRow(`SELECT epoch, seq FROM merchant WHERE id = ?`+t.s.forUpdate, t.merchant).Scan(&t.epoch, &t.seq)
	if errors.Is(err, sql.ErrNoRows) {
		return errorf(wire.ErrUnauthorized, "unknown merchant")
	}
	if err != nil {
		return err
	}
	t.locked, t.seqStart = true, t.seq
	return nil
}

// nextSeq hands out the merchant's next seq; lockMerchant must have run.
func (t *tx) nextSeq() int64 {
	t.seq++
	return t.seq
}

// flushSeq writes the counter back in the same transaction.
func (t *tx) flushSeq() error {
	if !t.locked || (t.seq == t.seqStart && t.logAdded == 0 && t.codesAdded == 0) {
		return nil
	}
	_, err := t.exec(`UPDATE merchant SET seq = ?, log_count = log_count + ?, code_count = code_count + ? WHERE id = ?`,
		t.seq, t.logAdded, t.codesAdded, t.merchant)
	return err
}

// newToken returns prefix + base64url of 32 random bytes, and its hash as stored.
func newToken(prefix string) (plain, hash string) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	plain = prefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, hashToken(plain)
}

// hashToken is what the database keeps of a token: sha256, hex.
func hashToken(plain string) string {
	h := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(h[:])
}

func (s *sqlStore) CreateToken(merchantID, label string, ttl time.Duration, now time.Time) (string, error) {
	if ttl <= 0 {
		ttl = defaultTokenTT
	}
	plain, hash := newToken(enrolPrefix)
	err := s.write(merchantID, "", now, func(t *tx) error {
		var m any
		if merchantID != "" {
			var one int
			err := t.queryRow(`SELECT 1 FROM merchant WHERE id = ?`, merchantID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return errorf(wire.ErrNotFound, "no merchant "+merchantID+" on this server")
			}
			if err != nil {
				return err
			}
			m = merchantID
		}
		_, err := t.exec(`INSERT INTO enrol_token(hash, merchant_id, label, expires_ms, created_ms) VALUES (?,?,?,?,?)`,
			hash, m, label, now.Add(ttl).UnixMilli(), now.UnixMilli())
		return err
	})
	if err != nil {
		return "", err
	}
	return plain, nil
}

func (s *sqlStore) Register(req wire.RegisterRequest, now time.Time) (*wire.RegisterResponse, error) {
	req.DeviceID = strings.TrimSpace(req.DeviceID)
	req.MerchantID = strings.TrimSpace(req.MerchantID)
	if req.Token == "" {
		return nil, errorf(wire.ErrUnauthorized, "an enrolment token is required")
	}
	if req.DeviceID == "" || len(req.DeviceID) > 100 || req.DeviceID == wire.ServerDevice {
		return nil, errorf(wire.ErrBadRequest, "a device id is required")
	}
	if req.DeviceName == "" {
		req.DeviceName = req.DeviceID
	}
	var resp *wire.RegisterResponse
	err := s.write("", req.DeviceID, now, func(t *tx) error {
		ms := t.now
		var bound sql.NullString
		var expires int64
		err := t.queryRow(`SELECT merchant_id, expires_ms FROM enrol_token WHERE hash = ?`, hashToken(req.Token)).Scan(&bound, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && expires <= ms) {
			return errorf(wire.ErrUnauthorized, "the enrolment token is unknown or expired")
		}
		if err != nil {
			return err
		}
		merchant := bound.String
		if !bound.Valid {
			// A founding token: the device brings its merchant, which must be new here.
			if req.MerchantID == "" {
				return errorf(wire.ErrBadRequest, "this token founds a merchant: the device must send its merchant id")
			}
			name := req.MerchantName
			if name == "" {
				name = req.MerchantID
			}
			n, err := t.affected(`INSERT INTO merchant(id, name, created_ms) VALUES (?,?,?) ON CONFLICT (id) DO NOTHING`, req.MerchantID, name, ms)
			if err != nil {
				return err
			}
			if n == 0 {
				return errorf(wire.ErrForbidden, "merchant "+req.MerchantID+" already exists on this server: join it with one of its tokens")
			}
			n, err = t.affected(`UPDATE enrol_token SET merchant_id = ? WHERE hash = ? AND merchant_id IS NULL`, req.MerchantID, hashToken(req.Token))
			if err != nil {
				return err
			}
			if n == 0 {
				return errorf(wire.ErrConflict, "the enrolment token was used at the same time; try again")
			}
			merchant = req.MerchantID
		} else if req.MerchantID != "" && req.MerchantID != merchant {
			return errorf(wire.ErrForbidden, "the enrolment token belongs to another merchant")
		}
		plain, hash := newToken(devicePrefix)
		var owner string
		var lastMID int64
		err = t.queryRow(`SELECT merchant_id, last_mid FROM device WHERE id = ?`+t.s.forUpdate, req.DeviceID).Scan(&owner, &lastMID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = t.exec(`INSERT INTO device(id, merchant_id, name, store_id, token_hash, last_mid, registered_ms, last_seen_ms) VALUES (?,?,?,?,?,0,?,?)`,
				req.DeviceID, merchant, req.DeviceName, req.StoreID, hash, ms, ms)
			if isUnique(err) {
				return errorf(wire.ErrConflict, "the device registered at the same time; try again")
			}
		case err != nil:
		case owner != merchant:
			return errorf(wire.ErrForbidden, "device "+req.DeviceID+" belongs to another merchant")
		default:
			// Re-registration: a new token; the old one stops working.
			_, err = t.exec(`UPDATE device SET token_hash = ?, name = ?, store_id = ?, last_seen_ms = ? WHERE id = ?`,
				hash, req.DeviceName, req.StoreID, ms, req.DeviceID)
		}
		if err != nil {
			return err
		}
		var epoch int64
		if err := t.queryRow(`SELECT epoch FROM merchant WHERE id = ?`, merchant).Scan(&epoch); err != nil {
			return err
		}
		resp = &wire.RegisterResponse{DeviceToken: plain, MerchantID: merchant, Epoch: epoch, LastMID: lastMID, ServerMS: ms}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *sqlStore) Authenticate(bearer string, now time.Time) (*Device, error) {
	bearer = strings.TrimSpace(bearer)
	if !strings.HasPrefix(bearer, devicePrefix) {
		return nil, errorf(wire.ErrUnauthorized, "a device token is required")
	}
	d := &Device{}
	err := s.queryRow(`SELECT id, merchant_id, name FROM device WHERE token_hash = ?`, hashToken(bearer)).Scan(&d.ID, &d.MerchantID, &d.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(wire.ErrUnauthorized, "unknown device token")
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (s *sqlStore) BumpEpoch(merchantID string) (int64, error) {
	var epoch int64
	err := s.write(merchantID, "", time.Now(), func(t *tx) error {
		err := t.queryRow(`UPDATE merchant SET epoch = epoch + 1 WHERE id = ? RETURNING epoch`, merchantID).Scan(&epoch)
		if errors.Is(err, sql.ErrNoRows) {
			return errorf(wire.ErrNotFound, "no merchant "+merchantID+" on this server")
		}
		return err
	})
	return epoch, err
}

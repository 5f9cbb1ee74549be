// Package app is the application layer every front end shares: configuration, the
// signed-in operator and what its role allows, the use cases that return
// display-ready data, and the command tree. Screens only lay out what it returns.
package app

import (
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// Frontends are the screens main hands in, so app never imports them.
type Frontends struct {
	GUI func(*App) error
	TUI func(*App) error
}

// App is one open data directory acting as one operator at one store.
type App struct {
	DataDir string
	Lang    Lang
	DB      *store.DB
	Actor   *store.Actor
	Out     io.Writer
	Err     io.Writer
	In      io.Reader
	JSON    bool
	Clock   core.Clock
}

// newKeyEncryptionKey makes the key that wraps a new database's data key: from the
// passphrase through Argon2id, or random and kept in the key file beside the database.
func newKeyEncryptionKey(dir, passphrase string) (kdf string, salt, kek []byte, err error) {
	if passphrase != "" {
		salt = make([]byte, 16)
		rand.Read(salt)
		return "passphrase", salt, core.PassphraseKey(passphrase, salt), nil
	}
	kek = core.NewDataKey()
	if err := os.WriteFile(KeyPath(dir), kek, 0o600); err != nil {
		return "", nil, nil, err
	}
	return "file", nil, kek, nil
}

// DefaultDataDir is the user's data directory for Kameng.
func DefaultDataDir() string {
	if d := os.Getenv("KAMENG_DATA"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "Kameng")
		}
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "Kameng")
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kameng")
	}
	return filepath.Join(home, ".local", "share", "kameng")
}

// DBPath and KeyPath are the files in a data directory.
func DBPath(dir string) string  { return filepath.Join(dir, "kameng.db") }
func KeyPath(dir string) string { return filepath.Join(dir, "kameng.key") }

// Exists reports whether the data directory holds a database.
func Exists(dir string) bool {
	_, err := os.Stat(DBPath(dir))
	return err == nil
}

// OpenDB opens the data directory's database and unlocks its data key. A missing
// key leaves it locked: what needs no secret still works, and doctor says so.
func OpenDB(dir string) (*store.DB, error) {
	if !Exists(dir) {
		return nil, &core.Error{Code: core.ErrNotFound, Field: "data", Message: "no database in " + dir + ": run kameng init or kameng demo",
			Params: map[string]string{"value": dir}}
	}
	db, err := store.Open(DBPath(dir))
	if err != nil {
		return nil, err
	}
	if kek, err := loadKEK(dir, db); err == nil {
		if err := db.Unlock(kek); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// loadKEK finds the key-encryption key: the passphrase (KAMENG_PASSPHRASE or
// KAMENG_PASSPHRASE_FILE) through Argon2id, or the key file beside the database,
// which stands in for the OS keyring on machines without one.
func loadKEK(dir string, db *store.DB) ([]byte, error) {
	kdf, salt, err := db.KeyInfo()
	if err != nil {
		return nil, err
	}
	switch kdf {
	case "passphrase":
		p, err := passphrase()
		if err != nil {
			return nil, err
		}
		return core.PassphraseKey(p, salt), nil
	case "file":
		k, err := os.ReadFile(KeyPath(dir))
		if err != nil {
			return nil, core.Errorf(core.ErrKey, "key file %s cannot be read: %v", KeyPath(dir), err)
		}
		if len(k) != 32 {
			return nil, core.Errorf(core.ErrKey, "key file %s is damaged (%d bytes, want 32)", KeyPath(dir), len(k))
		}
		return k, nil
	}
	return nil, core.Errorf(core.ErrKey, "this database has no data key")
}

func passphrase() (string, error) {
	if p := os.Getenv("KAMENG_PASSPHRASE"); p != "" {
		return p, nil
	}
	if f := os.Getenv("KAMENG_PASSPHRASE_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", core.Errorf(core.ErrKey, "passphrase file: %v", err)
		}
		return trimNewline(string(b)), nil
	}
	return "", core.Errorf(core.ErrKey, "this database is protected by a passphrase: set KAMENG_PASSPHRASE or KAMENG_PASSPHRASE_FILE")
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// InitOptions is what `kameng init` needs.
type InitOptions struct {
	Merchant, Store, TimeZone, Device, Owner, Password string
	Passphrase                                         string // empty: a key file
}

// Init creates the data directory, the key and the database.
func Init(dir string, o InitOptions, clock core.Clock) (*App, error) {
	if Exists(dir) {
		return nil, &core.Error{Code: core.ErrConflict, Field: "data", Message: "a database already exists in " + dir,
			Params: map[string]string{"value": dir}}
	}
	if len(o.Password) < 8 {
		return nil, core.Invalid("password", "8 or more characters", "", "the owner password needs at least 8 characters")
	}
	if o.Merchant == "" {
		return nil, core.Invalid("name", "the merchant's name", "", "the merchant needs a name")
	}
	if _, err := time.LoadLocation(o.TimeZone); o.TimeZone != "" && err != nil {
		return nil, core.Invalid("time_zone", "Asia/Shanghai", o.TimeZone, "unknown time zone")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &core.Error{Code: core.ErrInvalid, Field: "data", Message: err.Error()}
	}
	in := store.InitInput{Merchant: o.Merchant, Store: o.Store, TimeZone: o.TimeZone, Device: o.Device, Owner: o.Owner,
		PasswordHash: core.HashPassword(o.Password)}
	var err error
	if in.KDF, in.Salt, in.KEK, err = newKeyEncryptionKey(dir, o.Passphrase); err != nil {
		return nil, err
	}
	db, err := store.Open(DBPath(dir))
	if err != nil {
		return nil, err
	}
	if clock != nil {
		db.Clock = clock
	}
	actor, err := db.Init(in)
	if err != nil {
		db.Close()
		os.Remove(DBPath(dir))
		os.Remove(KeyPath(dir))
		return nil, err
	}
	return &App{DataDir: dir, DB: db, Actor: actor, Clock: db.Clock}, nil
}

// Open opens a data directory acting as the named operator (the first owner when
// empty) at the named store (the device's store when empty).
func Open(dir, operator, storeName string) (*App, error) {
	db, err := OpenDB(dir)
	if err != nil {
		return nil, err
	}
	a := &App{DataDir: dir, DB: db, Clock: db.Clock}
	if err := a.SignIn(operator, storeName); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// SignIn sets who acts and where. The command line trusts whoever can open the data
// directory (its permissions are the gate); screens check the password with Login.
func (a *App) SignIn(operator, storeName string) error {
	if operator == "" {
		if operator = os.Getenv("KAMENG_OPERATOR"); operator == "" {
			name, err := a.DB.OwnerName()
			if err != nil {
				return err
			}
			operator = name
		}
	}
	op, _, err := a.DB.FindOperator(operator)
	if err != nil {
		return err
	}
	if op.Disabled {
		return core.Errorf(core.ErrAuth, "operator %s is disabled", op.Name)
	}
	dev, err := a.DB.ThisDevice()
	if err != nil {
		return err
	}
	if storeName == "" {
		storeName = os.Getenv("KAMENG_STORE")
	}
	if storeName == "" {
		storeName = dev.StoreID
		if op.StoreID != "" {
			storeName = op.StoreID
		}
	}
	st, err := a.DB.FindStore(storeName)
	if err != nil {
		return err
	}
	if op.StoreID != "" && op.StoreID != st.ID {
		return core.Forbidden("work in store "+st.Name, string(op.Role))
	}
	a.Actor = &store.Actor{Operator: *op, Device: *dev, Store: *st}
	return nil
}

// Login checks an operator's password and signs in.
func (a *App) Login(operator, password, storeName string) error {
	op, hash, err := a.DB.FindOperator(operator)
	if err != nil || !core.CheckPassword(hash, password) {
		return core.Errorf(core.ErrAuth, "wrong operator name or password")
	}
	return a.SignIn(op.Name, storeName)
}

// Close closes the database.
func (a *App) Close() error {
	if a.DB == nil {
		return nil
	}
	a.StopSyncLoop()
	syncStates.Delete(a.DB) // the database's sync machinery goes with it
	return a.DB.Close()
}

// Now is the app's clock.
func (a *App) Now() time.Time {
	if a.Clock != nil {
		return a.Clock.Now()
	}
	return time.Now()
}

// Location is the current store's time zone.
func (a *App) Location() *time.Location { return a.Actor.Store.Location() }

// FormatTime shows milliseconds in the store's zone.
func (a *App) FormatTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).In(a.Location()).Format("2006-01-02 15:04")
}

var errCancelled = errors.New("cancelled")

func storeSchema() int { return store.SchemaVersion }

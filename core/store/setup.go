package store

import (
	"database/sql"
	"errors"
	"strings"

	"github.com/kameng/kameng/core"
)

// InitInput is what `kameng init` asks for.
type InitInput struct {
	Merchant     string
	Store        string
	TimeZone     string
	Device       string
	Owner        string
	PasswordHash string
	KDF          string // "file" or "passphrase"
	Salt         []byte
	KEK          []byte // key-encryption key that wraps the new data key
}

// Initialized reports whether init has run on this database.
func (db *DB) Initialized() (bool, error) {
	v, err := getMeta(db.r, "device_id")
	return v != nil, err
}

// Init creates the merchant, its first store, this device, the owner and the data key.
func (db *DB) Init(in InitInput) (*Actor, error) {
	if ok, err := db.Initialized(); err != nil {
		return nil, err
	} else if ok {
		return nil, core.Errorf(core.ErrConflict, "this database is already initialised")
	}
	if joining, err := getMeta(db.r, "join_device_id"); err != nil {
		return nil, err
	} else if joining != nil {
		return nil, core.Errorf(core.ErrConflict, "this database is joining a merchant: sync it instead of running init")
	}
	now := db.Clock.Now().UnixMilli()
	if in.TimeZone == "" {
		in.TimeZone = core.DefaultTimeZone
	}
	m := core.Merchant{ID: core.NewID(), Name: in.Merchant, Created: now}
	s := core.Store{ID: core.NewID(), MerchantID: m.ID, Name: in.Store, TimeZone: in.TimeZone, Created: now}
	d := core.Device{ID: core.NewID(), MerchantID: m.ID, StoreID: s.ID, Name: in.Device, Created: now}
	o := core.Operator{ID: core.NewID(), MerchantID: m.ID, Name: in.Owner, Role: core.RoleOwner, Created: now}
	a := &Actor{Operator: o, Device: d, Store: s}
	dataKey := core.NewDataKey()
	wrapped, err := core.WrapKey(in.KEK, dataKey)
	if err != nil {
		return nil, err
	}
	err = db.write(a, func(t *tx) error {
		stmts := []struct {
			q    string
			args []any
		}{
			{`INSERT INTO merchant(id, name, created_ms) VALUES (?,?,?)`, []any{m.ID, m.Name, now}},
			{`INSERT INTO store(id, merchant_id, name, time_zone, created_ms) VALUES (?,?,?,?,?)`, []any{s.ID, m.ID, s.Name, s.TimeZone, now}},
			{`INSERT INTO device(id, merchant_id, store_id, name, created_ms) VALUES (?,?,?,?,?)`, []any{d.ID, m.ID, s.ID, d.Name, now}},
			{`INSERT INTO operator(id, merchant_id, name, role, password_hash, created_ms) VALUES (?,?,?,?,?,?)`, []any{o.ID, m.ID, o.Name, o.Role, in.PasswordHash, now}},
		}
		for _, st := range stmts {
			if _, err := t.Exec(st.q, st.args...); err != nil {
				return err
			}
		}
		for k, v := range map[string]any{"merchant_id": m.ID, "device_id": d.ID, "key_kdf": in.KDF, "key_salt": in.Salt, "key_wrapped": wrapped} {
			if err := setMeta(t.Tx, k, v); err != nil {
				return err
			}
		}
		return t.journal("init", "merchant", m.ID, map[string]any{"merchant": m.Name, "store": s.Name, "device": d.Name, "owner": o.Name},
			// The owner's password hash travels so that a device joining the merchant
			// can sign the owner in.
			"merchant.init@1", map[string]any{"merchant": m, "store": s, "device": d, "owner": o, "password_hash": in.PasswordHash})
	})
	if err != nil {
		return nil, err
	}
	db.secrets, _ = core.NewSecrets(dataKey)
	return a, nil
}

// KeyInfo returns how the data key is wrapped: "file" or "passphrase", and the salt.
func (db *DB) KeyInfo() (kdf string, salt []byte, err error) {
	k, err := getMeta(db.r, "key_kdf")
	if err != nil {
		return "", nil, err
	}
	salt, err = getMeta(db.r, "key_salt")
	return string(k), salt, err
}

// Unlock opens the data key with the key-encryption key.
func (db *DB) Unlock(kek []byte) error {
	wrapped, err := getMeta(db.r, "key_wrapped")
	if err != nil {
		return err
	}
	if wrapped == nil {
		return core.Errorf(core.ErrKey, "this database has no data key: run kameng init")
	}
	dataKey, err := core.UnwrapKey(kek, wrapped)
	if err != nil {
		return err
	}
	return db.useKey(dataKey)
}

// useKey unlocks the secrets with the database's data key.
func (db *DB) useKey(dataKey []byte) error {
	s, err := core.NewSecrets(dataKey)
	if err != nil {
		return err
	}
	db.mu.Lock()
	db.secrets = s
	db.mu.Unlock()
	return nil
}

func (db *DB) sealer() (*core.Secrets, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.secrets == nil {
		return nil, core.Errorf(core.ErrKey, "the data key is locked: the key file or passphrase is missing")
	}
	return db.secrets, nil
}

// Unlocked reports whether secrets can be read and written.
func (db *DB) Unlocked() bool { _, err := db.sealer(); return err == nil }

// Merchant returns the merchant of this database.
func (db *DB) Merchant() (*core.Merchant, error) {
	var m core.Merchant
	err := db.r.QueryRow(`SELECT id, name, created_ms FROM merchant LIMIT 1`).Scan(&m.ID, &m.Name, &m.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ErrNotFound, "not initialised: run kameng init")
	}
	return &m, err
}

// ThisDevice returns the device this database belongs to.
func (db *DB) ThisDevice() (*core.Device, error) {
	id, err := getMeta(db.r, "device_id")
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, core.Errorf(core.ErrNotFound, "not initialised: run kameng init")
	}
	var d core.Device
	err = db.r.QueryRow(`SELECT id, merchant_id, store_id, name, created_ms FROM device WHERE id = ?`, string(id)).
		Scan(&d.ID, &d.MerchantID, &d.StoreID, &d.Name, &d.Created)
	return &d, err
}

// Stores lists the merchant's stores by name.
func (db *DB) Stores() ([]core.Store, error) {
	rows, err := db.r.Query(`SELECT id, merchant_id, name, time_zone, created_ms FROM store ORDER BY created_ms, name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Store
	for rows.Next() {
		var s core.Store
		if err := rows.Scan(&s.ID, &s.MerchantID, &s.Name, &s.TimeZone, &s.Created); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// FindStore finds a store by id or name.
func (db *DB) FindStore(idOrName string) (*core.Store, error) {
	var s core.Store
	err := db.r.QueryRow(`SELECT id, merchant_id, name, time_zone, created_ms FROM store WHERE id = ? OR name = ?`, idOrName, idOrName).
		Scan(&s.ID, &s.MerchantID, &s.Name, &s.TimeZone, &s.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("store", idOrName)
	}
	return &s, err
}

// AddStore adds a store to the merchant.
func (db *DB) AddStore(a *Actor, name, tz string) (*core.Store, error) {
	if name == "" {
		return nil, core.Invalid("name", "a store name", name, "the store needs a name")
	}
	if tz == "" {
		tz = core.DefaultTimeZone
	}
	s := core.Store{ID: core.NewID(), MerchantID: a.Operator.MerchantID, Name: name, TimeZone: tz, Created: db.Clock.Now().UnixMilli()}
	err := db.write(a, func(t *tx) error {
		if _, err := t.Exec(`INSERT INTO store(id, merchant_id, name, time_zone, created_ms) VALUES (?,?,?,?,?)`, s.ID, s.MerchantID, s.Name, s.TimeZone, s.Created); err != nil {
			if isUnique(err) {
				return core.Invalid("name", "a new store name", name, "a store named %q exists", name)
			}
			return err
		}
		return t.journal("store.add", "store", s.ID, map[string]any{"name": name, "time_zone": tz}, "store.add@1", s)
	})
	return &s, err
}

// AddOperator adds a staff login.
func (db *DB) AddOperator(a *Actor, name string, role core.Role, storeID, passwordHash string) (*core.Operator, error) {
	if name == "" {
		return nil, core.Invalid("name", "a login name", name, "the operator needs a name")
	}
	o := core.Operator{ID: core.NewID(), MerchantID: a.Operator.MerchantID, Name: name, Role: role, StoreID: storeID, Created: db.Clock.Now().UnixMilli()}
	err := db.write(a, func(t *tx) error {
		var store any
		if storeID != "" {
			store = storeID
		}
		if _, err := t.Exec(`INSERT INTO operator(id, merchant_id, name, role, store_id, password_hash, created_ms) VALUES (?,?,?,?,?,?,?)`,
			o.ID, o.MerchantID, o.Name, o.Role, store, passwordHash, o.Created); err != nil {
			if isUnique(err) {
				return core.Invalid("name", "a new login name", name, "an operator named %q exists", name)
			}
			return err
		}
		return t.journal("operator.add", "operator", o.ID, map[string]any{"name": name, "role": role}, "operator.add@1",
			operatorArgs{Operator: o, PasswordHash: passwordHash})
	})
	return &o, err
}

// operatorArgs are the arguments of operator.add@1: the operator with its password
// hash, so that every device of the merchant can sign them in.
type operatorArgs struct {
	core.Operator
	PasswordHash string `json:"password_hash"`
}

// FindOperator finds an operator by id or name, with its password hash.
func (db *DB) FindOperator(idOrName string) (*core.Operator, string, error) {
	var o core.Operator
	var store sql.NullString
	var hash string
	err := db.r.QueryRow(`SELECT id, merchant_id, name, role, store_id, password_hash, disabled, created_ms FROM operator WHERE id = ? OR name = ?`, idOrName, idOrName).
		Scan(&o.ID, &o.MerchantID, &o.Name, &o.Role, &store, &hash, &o.Disabled, &o.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", core.NotFound("operator", idOrName)
	}
	o.StoreID = store.String
	return &o, hash, err
}

// Operators lists staff logins.
func (db *DB) Operators() ([]core.Operator, error) {
	rows, err := db.r.Query(`SELECT id, merchant_id, name, role, COALESCE(store_id, ''), disabled, created_ms FROM operator ORDER BY created_ms`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Operator
	for rows.Next() {
		var o core.Operator
		if err := rows.Scan(&o.ID, &o.MerchantID, &o.Name, &o.Role, &o.StoreID, &o.Disabled, &o.Created); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// OwnerName returns the first owner's login, the CLI's default operator.
func (db *DB) OwnerName() (string, error) {
	var n string
	err := db.r.QueryRow(`SELECT name FROM operator WHERE role = 'owner' AND disabled = 0 ORDER BY created_ms LIMIT 1`).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.Errorf(core.ErrNotFound, "no owner: run kameng init")
	}
	return n, err
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

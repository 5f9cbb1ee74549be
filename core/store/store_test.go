package store_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func TestOpenMigratesAndInitOnce(t *testing.T) {
	e := newEnv(t)
	v, err := e.db.Version()
	if err != nil || v != store.SchemaVersion || v < 1 {
		t.Fatalf("schema version %d (%v), want %d", v, err, store.SchemaVersion)
	}
	if ok, err := e.db.Initialized(); !ok || err != nil {
		t.Fatalf("initialized = %v %v", ok, err)
	}
	if res, err := e.db.IntegrityCheck(); err != nil || res != "ok" {
		t.Fatalf("integrity %q %v", res, err)
	}
	_, err = e.db.Init(store.InitInput{Merchant: "again", Store: "x", Device: "y", Owner: "z", PasswordHash: passwordHash(), KDF: "file", KEK: testKEK()})
	wantErr(t, err, core.ErrConflict, "")
	m, err := e.db.Merchant()
	if err != nil || m.Name != "测试商户" {
		t.Fatalf("merchant %+v %v", m, err)
	}
	d, err := e.db.ThisDevice()
	if err != nil || d.ID != e.owner.Device.ID || d.Name != "pos-1" {
		t.Fatalf("device %+v %v", d, err)
	}
	if e.owner.Store.TimeZone != core.DefaultTimeZone || e.owner.Operator.Role != core.RoleOwner {
		t.Fatalf("owner actor %+v", e.owner)
	}
	o, hash, err := e.db.FindOperator("boss")
	if err != nil || o.ID != e.owner.Operator.ID || !core.CheckPassword(hash, "pw") || core.CheckPassword(hash, "wrong") {
		t.Fatalf("owner login %+v %v", o, err)
	}
	// Reopening keeps everything and migrates nothing.
	again := e.reopen()
	if v, _ := again.Version(); v != store.SchemaVersion {
		t.Fatalf("version after reopen %d", v)
	}
	if n, _ := again.OwnerName(); n != "boss" {
		t.Fatalf("owner after reopen %q", n)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Raw().Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(path)
	if err == nil {
		db.Close()
		t.Fatal("opened a database from a newer version")
	}
	if core.ErrorCode(err) != core.ErrSchema {
		t.Fatalf("error code %q (%v), want %q", core.ErrorCode(err), err, core.ErrSchema)
	}
	if !strings.Contains(strings.ToLower(err.Error()), "upgrade") {
		t.Fatalf("message %q does not say to upgrade", err)
	}
	ce := asError(t, err)
	if ce.Params["found"] != "99" {
		t.Fatalf("params %v", ce.Params)
	}
}

func TestStoresAndOperators(t *testing.T) {
	e := newEnv(t)
	s, err := e.db.AddStore(e.owner, "二店", "")
	if err != nil || s.TimeZone != core.DefaultTimeZone {
		t.Fatalf("add store %+v %v", s, err)
	}
	_, err = e.db.AddStore(e.owner, "二店", "")
	wantErr(t, err, core.ErrInvalid, "name")
	_, err = e.db.AddStore(e.owner, "", "")
	wantErr(t, err, core.ErrInvalid, "name")
	stores, _ := e.db.Stores()
	if len(stores) != 2 {
		t.Fatalf("stores %v", stores)
	}
	if got, err := e.db.FindStore("二店"); err != nil || got.ID != s.ID {
		t.Fatalf("find store %+v %v", got, err)
	}
	o, err := e.db.AddOperator(e.owner, "小王", core.RoleCashier, s.ID, passwordHash())
	if err != nil || o.Role != core.RoleCashier || o.StoreID != s.ID {
		t.Fatalf("add operator %+v %v", o, err)
	}
	_, err = e.db.AddOperator(e.owner, "小王", core.RoleCashier, "", passwordHash())
	wantErr(t, err, core.ErrInvalid, "name")
	acts := e.auditActions()
	if acts["store.add"] != 1 || acts["operator.add"] != 1 {
		t.Fatalf("audit %v", acts)
	}
}

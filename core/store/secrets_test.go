package store_test

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

func TestSecretsNeverStoredInPlaintext(t *testing.T) {
	e := newEnv(t)
	c := e.create(cardKey("话费卡50元", 5000))
	codes := e.codes(c.ID, 50)

	secrets := map[string]string{}
	for _, k := range codes {
		s, err := e.db.Reveal(e.owner, k, "secret")
		if err != nil {
			t.Fatalf("reveal %s: %v", k, err)
		}
		if len(s) != 16 {
			t.Fatalf("secret %q of %s is not 16 digits", s, k)
		}
		for _, r := range s {
			if r < '0' || r > '9' {
				t.Fatalf("secret %q of %s is not 16 digits", s, k)
			}
		}
		if _, dup := secrets[s]; dup {
			t.Fatalf("secret %s issued twice", s)
		}
		secrets[s] = k
	}
	if got := e.auditActions()["codes.reveal"]; got != 50 {
		t.Fatalf("%d codes.reveal audit entries, want 50", got)
	}
	// Revealing the same secret twice gives the same value.
	if s, _ := e.db.Reveal(e.owner, codes[0], "secret"); secrets[s] != codes[0] {
		t.Fatalf("second reveal of %s gave %s", codes[0], s)
	}

	phones := []string{"13812345678", "13987654321", "15011112222", "18655556666"}
	given := map[string][]string{}
	for i, p := range phones {
		batch := codes[i*5 : i*5+5]
		if n, err := e.db.Distribute(e.owner, batch, p); err != nil || n != 5 {
			t.Fatalf("distribute to %s: %d %v", p, n, err)
		}
		given[p] = batch
	}

	// Listing masks the phone unless asked to reveal it.
	masked, plain := map[string]string{}, map[string]string{}
	if err := e.db.EachCode(store.CodeFilter{Campaign: c.ID, Status: "distributed"}, false, func(k *core.Code) error {
		masked[k.Code] = k.Phone
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.EachCode(store.CodeFilter{Campaign: c.ID}, true, func(k *core.Code) error {
		plain[k.Code] = k.Phone
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(masked) != 20 {
		t.Fatalf("%d distributed codes listed, want 20", len(masked))
	}
	for p, batch := range given {
		for _, k := range batch {
			if masked[k] != p[:3]+"****"+p[7:] {
				t.Fatalf("masked phone of %s = %q, want %s", k, masked[k], p[:3]+"****"+p[7:])
			}
			if plain[k] != p {
				t.Fatalf("revealed phone of %s = %q, want %s", k, plain[k], p)
			}
		}
		found, err := e.db.CodesByPhone(p)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(found, batch) {
			t.Fatalf("codes for %s: %v, want %v", p, found, batch)
		}
	}
	if masked[codes[0]] != "138****5678" {
		t.Fatalf("mask of 13812345678 = %q", masked[codes[0]])
	}
	if k, err := e.db.FindCode(codes[0], false); err != nil || k.Phone != "138****5678" {
		t.Fatalf("FindCode phone %q %v", k.Phone, err)
	}
	if found, _ := e.db.CodesByPhone("13700000000"); len(found) != 0 {
		t.Fatalf("codes for an unknown phone: %v", found)
	}
	if p, err := e.db.Reveal(e.owner, codes[6], "phone"); err != nil || p != phones[1] {
		t.Fatalf("reveal phone: %q %v", p, err)
	}
	if got := e.auditActions()["codes.reveal"]; got != 52 {
		t.Fatalf("%d codes.reveal audit entries, want 52", got)
	}

	// A member phone given with a redemption is not stored either.
	member := "17755443322"
	e.mustRedeem(e.owner, codes[30], core.Order{Member: member, Amount: 5000})

	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.path + suffix)
		if os.IsNotExist(err) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if len(files[0]) == 0 {
		t.Fatal("database file is empty")
	}
	// The codes themselves are in the file: this proves the search looks at the data.
	if !bytes.Contains(bytes.Join(files, nil), []byte(codes[0])) {
		t.Fatal("the codes are not in the files read; the search is not looking at the data")
	}
	needles := map[string]string{}
	for s := range secrets {
		needles[s] = "secret"
	}
	for _, p := range append(phones, member) {
		needles[p] = "phone"
		needles[p[3:]] = "phone digits"
	}
	for _, b := range files {
		for n, what := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s %s is stored in plain text", what, n)
			}
		}
	}
}

func TestSecretsNeedTheKey(t *testing.T) {
	e := newEnv(t)
	c := e.create(cardKey("游戏点卡", 3000))
	code := e.codes(c.ID, 1)[0]
	want, err := e.db.Reveal(e.owner, code, "secret")
	if err != nil {
		t.Fatal(err)
	}

	locked := e.reopen()
	if locked.Unlocked() {
		t.Fatal("a freshly opened database is unlocked without its key")
	}
	_, err = locked.Reveal(e.owner, code, "secret")
	wantErr(t, err, core.ErrKey, "")
	_, err = locked.GenerateCodes(e.owner, c.ID, 1, nil)
	wantErr(t, err, core.ErrKey, "")

	wrong := testKEK()
	wrong[0] ^= 1
	wantErr(t, locked.Unlock(wrong), core.ErrKey, "")
	if locked.Unlocked() {
		t.Fatal("unlocked with a wrong key")
	}
	if err := locked.Unlock(testKEK()); err != nil {
		t.Fatal(err)
	}
	if got, err := locked.Reveal(e.owner, code, "secret"); err != nil || got != want {
		t.Fatalf("reveal after unlock: %q %v, want %q", got, err, want)
	}
	_, err = locked.Reveal(e.owner, code, "password")
	wantErr(t, err, core.ErrInvalid, "field")
	_, err = locked.Reveal(e.owner, code, "phone")
	wantErr(t, err, core.ErrNotFound, "")
}

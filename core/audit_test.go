package core_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kameng/kameng/core"
)

func sampleEntry(seq int64, prev string) *core.AuditEntry {
	return &core.AuditEntry{
		Seq: seq, ID: "0197a1b2-0000-7000-8000-00000000000" + string(rune('0'+seq%10)), Time: 1749520800000 + seq,
		Operator: "op-1", Device: "dev-1", Action: "redeem", Entity: "redemption", EntityID: "r-1",
		Detail:   core.CanonicalDetail(map[string]any{"code": "ABCD", "discount": 2000, "store": "旗舰店"}),
		PrevHash: prev,
	}
}

// topKeys returns the object keys of a JSON object in the order they are written.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("body %s is not a JSON object: %v", b, err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestAuditHashIsDocumentedFormula(t *testing.T) {
	e := sampleEntry(1, core.GenesisHash)
	body := e.Body()
	sum := sha256.Sum256(append([]byte(core.GenesisHash), body...))
	want := hex.EncodeToString(sum[:])
	if got := e.ComputeHash(core.GenesisHash); got != want {
		t.Fatalf("ComputeHash = %s, want hex(sha256(prev || body)) = %s", got, want)
	}
	if len(core.GenesisHash) != 64 || strings.Trim(core.GenesisHash, "0") != "" {
		t.Fatalf("genesis hash %q is not 64 zeros", core.GenesisHash)
	}
	// The next link hashes the previous hex hash, not its bytes.
	e2 := sampleEntry(2, want)
	sum2 := sha256.Sum256([]byte(want + string(e2.Body())))
	if got := e2.ComputeHash(want); got != hex.EncodeToString(sum2[:]) {
		t.Fatalf("second link: ComputeHash = %s, want %x", got, sum2)
	}
}

func TestAuditBodyCanonical(t *testing.T) {
	e := sampleEntry(7, core.GenesisHash)
	e.Hash = "ignored"
	body := e.Body()
	keys := topKeys(t, body)
	want := []string{"action", "detail", "device_id", "entity", "entity_id", "id", "operator_id", "seq", "ts_ms"}
	if !slices.Equal(keys, want) {
		t.Fatalf("body keys %v, want %v", keys, want)
	}
	if !slices.IsSorted(keys) {
		t.Fatalf("body keys not in alphabetical order: %v", keys)
	}
	if bytes.ContainsAny(body, " \n\t") {
		t.Fatalf("body has whitespace: %s", body)
	}
	// Neither hash nor prev_hash is part of the body.
	if bytes.Contains(body, []byte("prev_hash")) || bytes.Contains(body, []byte(`"hash"`)) {
		t.Fatalf("body includes the chain fields: %s", body)
	}
	// The detail keys are sorted too.
	var dec struct{ Detail json.RawMessage }
	if err := json.Unmarshal(body, &dec); err != nil {
		t.Fatal(err)
	}
	if dk := topKeys(t, dec.Detail); !slices.IsSorted(dk) || len(dk) != 3 {
		t.Fatalf("detail keys %v are not sorted", dk)
	}
	// The same content gives the same body.
	if again := sampleEntry(7, "different prev").Body(); !bytes.Equal(again, body) {
		t.Fatalf("body depends on prev hash or is unstable:\n%s\n%s", body, again)
	}
	// Empty detail is written as {}.
	e.Detail = nil
	if !bytes.Contains(e.Body(), []byte(`"detail":{}`)) {
		t.Fatalf("empty detail body: %s", e.Body())
	}
}

func TestAuditHashCoversEveryField(t *testing.T) {
	base := sampleEntry(3, core.GenesisHash)
	h := base.ComputeHash(base.PrevHash)
	mods := map[string]func(e *core.AuditEntry){
		"seq":       func(e *core.AuditEntry) { e.Seq++ },
		"id":        func(e *core.AuditEntry) { e.ID += "x" },
		"time":      func(e *core.AuditEntry) { e.Time++ },
		"operator":  func(e *core.AuditEntry) { e.Operator = "op-2" },
		"device":    func(e *core.AuditEntry) { e.Device = "dev-2" },
		"action":    func(e *core.AuditEntry) { e.Action = "rollback" },
		"entity":    func(e *core.AuditEntry) { e.Entity = "code" },
		"entity_id": func(e *core.AuditEntry) { e.EntityID = "r-2" },
		"detail":    func(e *core.AuditEntry) { e.Detail = core.CanonicalDetail(map[string]any{"discount": 1}) },
		"bad json":  func(e *core.AuditEntry) { e.Detail = json.RawMessage(`{"discount":`) },
	}
	for name, mod := range mods {
		e := *sampleEntry(3, core.GenesisHash)
		mod(&e)
		if e.ComputeHash(e.PrevHash) == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	if base.ComputeHash(strings.Repeat("1", 64)) == h {
		t.Error("the previous hash does not change the hash")
	}
}

func TestCanonicalDetailSortsKeys(t *testing.T) {
	d := core.CanonicalDetail(map[string]any{"zeta": 1, "alpha": map[string]any{"y": 1, "b": 2}, "mid": "x"})
	if string(d) != `{"alpha":{"b":2,"y":1},"mid":"x","zeta":1}` {
		t.Fatalf("CanonicalDetail = %s", d)
	}
	if string(core.CanonicalDetail(nil)) != "{}" {
		t.Fatalf("nil detail = %s", core.CanonicalDetail(nil))
	}
}

func chain(n int) []*core.AuditEntry {
	prev := core.GenesisHash
	var out []*core.AuditEntry
	for i := 1; i <= n; i++ {
		e := sampleEntry(int64(i), prev)
		e.Hash = e.ComputeHash(prev)
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func verify(entries []*core.AuditEntry) *core.AuditBreak {
	v := core.NewAuditVerifier()
	for _, e := range entries {
		if b := v.Next(e); b != nil {
			return b
		}
	}
	return nil
}

func TestAuditVerifier(t *testing.T) {
	if b := verify(chain(5)); b != nil {
		t.Fatalf("sound chain reported broken: %+v", b)
	}

	c := chain(5)
	c[2].Detail = core.CanonicalDetail(map[string]any{"discount": 999999})
	if b := verify(c); b == nil || b.Seq != 3 || b.Why != "hash" {
		t.Fatalf("altered entry 3: break %+v, want seq 3 hash", b)
	}

	c = chain(5)
	c = append(c[:2], c[3:]...) // entry 3 removed
	if b := verify(c); b == nil || b.Seq != 4 || b.Why != "link" {
		t.Fatalf("removed entry 3: break %+v, want seq 4 link", b)
	}

	// Rewriting an entry and its own hash still breaks the next link.
	c = chain(5)
	c[2].Detail = core.CanonicalDetail(map[string]any{"discount": 1})
	c[2].Hash = c[2].ComputeHash(c[2].PrevHash)
	if b := verify(c); b == nil || b.Seq != 4 || b.Why != "link" {
		t.Fatalf("rehashed entry 3: break %+v, want seq 4 link", b)
	}

	// A chain must start at the genesis hash and seq 1.
	c = chain(3)
	if b := verify(c[1:]); b == nil || b.Seq != 2 || b.Why != "link" {
		t.Fatalf("chain without its first entry: break %+v, want seq 2 link", b)
	}
}

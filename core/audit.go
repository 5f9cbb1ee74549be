package core

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// GenesisHash is the previous hash of the first audit entry.
var GenesisHash = strings.Repeat("0", 64)

// AuditEntry is one link of the audit hash chain. Hash = hex(sha256(PrevHash || Body())),
// where PrevHash is the previous entry's hex hash and Body is the canonical JSON below,
// so `printf '%s%s' "$prev" "$body" | sha256sum` checks an entry by hand.
type AuditEntry struct {
	Seq      int64           `json:"seq"`
	ID       string          `json:"id"`
	Time     int64           `json:"ts_ms"`
	Operator string          `json:"operator_id"`
	Device   string          `json:"device_id"`
	Action   string          `json:"action"`
	Entity   string          `json:"entity"`
	EntityID string          `json:"entity_id"`
	Detail   json.RawMessage `json:"detail"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// Body is the canonical JSON of the entry's content: fixed key order, no spaces,
// Detail as stored (it is written canonical: encoding/json sorts map keys).
func (e *AuditEntry) Body() []byte {
	detail := e.Detail
	if len(detail) == 0 {
		detail = json.RawMessage("{}")
	}
	body := struct {
		Action   string          `json:"action"`
		Detail   json.RawMessage `json:"detail"`
		Device   string          `json:"device_id"`
		Entity   string          `json:"entity"`
		EntityID string          `json:"entity_id"`
		ID       string          `json:"id"`
		Operator string          `json:"operator_id"`
		Seq      int64           `json:"seq"`
		Time     int64           `json:"ts_ms"`
	}{e.Action, detail, e.Device, e.Entity, e.EntityID, e.ID, e.Operator, e.Seq, e.Time}
	b, err := json.Marshal(body)
	if err != nil {
		// Detail is not valid JSON: hash its bytes so tampering still shows.
		return append([]byte(e.Action+"|"), e.Detail...)
	}
	return b
}

// ComputeHash returns the entry's chain hash given the previous hash.
func (e *AuditEntry) ComputeHash(prev string) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(e.Body())
	return hex.EncodeToString(h.Sum(nil))
}

// CanonicalDetail encodes an audit detail map with sorted keys.
func CanonicalDetail(detail map[string]any) json.RawMessage {
	if detail == nil {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

// AuditBreak names the first entry whose link is broken.
type AuditBreak struct {
	Seq    int64  `json:"seq"`
	ID     string `json:"id"`
	Action string `json:"action"`
	Why    string `json:"why"` // "hash" (content altered) or "link" (prev_hash does not match, or a gap)
}

// AuditVerifier checks a chain entry by entry, in sequence order.
type AuditVerifier struct {
	prev    string
	lastSeq int64
	Count   int64
}

func NewAuditVerifier() *AuditVerifier { return &AuditVerifier{prev: GenesisHash} }

// Next checks one entry; it returns the break when the chain is broken at e.
func (v *AuditVerifier) Next(e *AuditEntry) *AuditBreak {
	v.Count++
	if e.PrevHash != v.prev || e.Seq != v.lastSeq+1 {
		return &AuditBreak{Seq: e.Seq, ID: e.ID, Action: e.Action, Why: "link"}
	}
	if e.ComputeHash(e.PrevHash) != e.Hash {
		return &AuditBreak{Seq: e.Seq, ID: e.ID, Action: e.Action, Why: "hash"}
	}
	v.prev, v.lastSeq = e.Hash, e.Seq
	return nil
}

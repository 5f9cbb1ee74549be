package store

import (
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/imports"
	"golang.org/x/text/unicode/norm"
)

// Members (会员): a customer known by phone. Phone, name and birthday are sealed with
// the member id as associated data; the phone and the name are found through keyed
// hashes (phone_ix, name_ix) of their normalised forms, never through plaintext.

// Limits on what a member record holds.
const (
	MaxMemberName = 64 // characters
	MaxTags       = 20
	MaxTagLen     = 32 // characters
)

// MemberInput is a member as entered or imported; Line is the source line of an import.
type MemberInput struct {
	Line     int
	Phone    string // any form core.NormalizePhone accepts; required
	Name     string
	Birthday string // YYYY-MM-DD, MM-DD or --MM-DD
	Tags     string // "vip, 员工"
	Consent  bool   // marketing messages allowed
}

// MemberEdit changes the fields that are not nil.
type MemberEdit struct {
	Phone, Name, Birthday, Tags *string
	Consent                     *bool
}

// memberFields are a member's parsed and checked personal fields.
type memberFields struct {
	phone, name, birthday string
	month                 int
	tags                  []string
}

func cleanName(s string) (string, error) {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > MaxMemberName || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", core.Invalid("name", fmt.Sprintf("up to %d characters", MaxMemberName), s, "not a name")
	}
	return s, nil
}

// nameKey is the form of a name its index is computed from: compatibility-normalised
// (full-width letters become ASCII), spaces collapsed, lower case.
func nameKey(name string) string {
	return strings.ToLower(strings.Join(strings.Fields(norm.NFKC.String(name)), " "))
}

func parseTags(s string) ([]string, error) {
	tags := core.ParseTags(s)
	if len(tags) > MaxTags {
		return nil, core.Invalid("tags", fmt.Sprintf("up to %d tags", MaxTags), s, "too many tags")
	}
	for _, t := range tags {
		if utf8.RuneCountInString(t) > MaxTagLen || strings.IndexFunc(t, unicode.IsControl) >= 0 {
			return nil, core.Invalid("tags", fmt.Sprintf("tags of up to %d characters, separated by commas", MaxTagLen), t, "not a tag")
		}
	}
	return tags, nil
}

// storedTags is the tags column: ",vip,staff," so one tag is found with instr().
func storedTags(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return "," + strings.Join(tags, ",") + ","
}

func splitTags(s string) []string {
	out := []string{}
	for _, t := range strings.Split(s, ",") {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

func (in MemberInput) parse() (*memberFields, error) {
	var f memberFields
	var err error
	if strings.TrimSpace(in.Phone) == "" {
		return nil, core.Invalid("phone", "13812341234", "", "a member needs a mobile number")
	}
	if f.phone, err = core.NormalizePhone(in.Phone); err != nil {
		return nil, err
	}
	if f.name, err = cleanName(in.Name); err != nil {
		return nil, err
	}
	if f.birthday, f.month, err = core.ParseBirthday(in.Birthday); err != nil {
		return nil, err
	}
	if f.tags, err = parseTags(in.Tags); err != nil {
		return nil, err
	}
	return &f, nil
}

// sealOrNil seals a personal value onto its member row (AD = the member id); an empty
// value stays NULL, and so does its index (indexOrNil).
func sealOrNil(s *core.Secrets, value, id string) []byte {
	if value == "" {
		return nil
	}
	return s.Seal(value, id)
}

func indexOrNil(s *core.Secrets, key string) []byte {
	if key == "" {
		return nil
	}
	return s.Index(key)
}

// phoneTaken is the conflict of a phone number that is already a member's.
func phoneTaken(phone, id string) error {
	e := core.Errorf(core.ErrConflict, "%s is already member %s", core.MaskPhone(phone), id)
	e.Field, e.Params = "phone", map[string]string{"value": core.MaskPhone(phone), "id": id, "why": "phone_taken"}
	return e
}

// ownerOfIndex is the id of the member record holding a phone index ("" none).
func ownerOfIndex(q queryer, ix []byte) (string, error) {
	var id string
	err := q.QueryRow(`SELECT id FROM member WHERE phone_ix = ?`, ix).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// MemberAdded is a new member with the codes the welcome rules gave them.
type MemberAdded struct {
	Member *core.Member `json:"member"`
	Issued []Issued     `json:"issued"`
}

// AddMember signs a customer up at the actor's store. A phone number that is already a
// member's is a conflict. Codes distributed to the phone and redemptions made with it
// before become the member's, and the welcome rules fire, in the same transaction.
func (db *DB) AddMember(a *Actor, in MemberInput) (*MemberAdded, error) {
	f, err := in.parse()
	if err != nil {
		return nil, err
	}
	sealer, err := db.sealer()
	if err != nil {
		return nil, err
	}
	out := &MemberAdded{Issued: []Issued{}}
	var id string
	err = db.write(a, func(t *tx) error {
		tc, err := t.tierContext()
		if err != nil {
			return err
		}
		ins := memberInserter{t: t, sealer: sealer, tier: tc.initialTier()}
		if id, err = ins.insert(f, in.Consent); err != nil {
			return err
		}
		if id == "" {
			owner, err := ownerOfIndex(t, sealer.Index(f.phone))
			if err != nil {
				return err
			}
			return phoneTaken(f.phone, owner)
		}
		if out.Issued, err = t.fireWelcome(id); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out.Member, err = db.member(reader{db}, id); err != nil {
		return nil, err
	}
	return out, nil
}

// memberInserter writes new member rows; an import reuses one for every row, with
// its statements prepared once and one journal entry for the whole file.
type memberInserter struct {
	t      *tx
	sealer *core.Secrets
	tier   string
	stmts  []*sql.Stmt // memberInserts prepared for a bulk insert: no journal entry per member
}

// memberInserts are the statements that add one member: the row, then the codes
// given to the phone and the redemptions made with it before the customer signed up,
// which are theirs now.
var memberInserts = []string{
	`INSERT INTO member(id, merchant_id, phone, phone_ix, name, name_ix, birthday, birth_month, tags,
	consent, consent_ms, tier_id, store_id, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
	ON CONFLICT(phone_ix) DO NOTHING`,
	`UPDATE code SET member_id = ?1 WHERE phone_ix = ?2 AND member_id IS NULL`,
	`UPDATE redemption SET member_id = ?1 WHERE campaign_id IN (SELECT id FROM campaign) AND member_ix = ?2 AND member_id IS NULL`,
}

// prepare readies the statements of a bulk insert; close releases them.
func (m *memberInserter) prepare() error {
	for _, q := range memberInserts {
		st, err := m.t.Prepare(q)
		if err != nil {
			m.close()
			return err
		}
		m.stmts = append(m.stmts, st)
	}
	return nil
}

func (m *memberInserter) close() {
	for _, st := range m.stmts {
		st.Close()
	}
	m.stmts = nil
}

func (m *memberInserter) exec(i int, args ...any) (sql.Result, error) {
	if m.stmts != nil {
		return m.stmts[i].Exec(args...)
	}
	return m.t.Exec(memberInserts[i], args...)
}

// insert writes one member (and, unless prepared for bulk, its journal entry) and
// returns its id;
// "" when the phone is already a member's (nothing is written then).
func (m *memberInserter) insert(f *memberFields, consent bool) (string, error) {
	t, s := m.t, m.sealer
	id := core.NewID()
	ix := s.Index(f.phone)
	phone, name, birthday := s.Seal(f.phone, id), sealOrNil(s, f.name, id), sealOrNil(s, f.birthday, id)
	nameIx := indexOrNil(s, nameKey(f.name))
	consentMS := int64(0)
	if consent {
		consentMS = t.now
	}
	res, err := m.exec(0, id, t.actor.Operator.MerchantID, phone, ix, name, nameIx, birthday, f.month, storedTags(f.tags),
		consent, consentMS, m.tier, t.actor.Store.ID, t.now, t.now)
	if err != nil {
		return "", err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", nil
	}
	for i := 1; i < len(memberInserts); i++ {
		if _, err := m.exec(i, id, ix); err != nil {
			return "", err
		}
	}
	if m.stmts != nil {
		return id, nil
	}
	return id, t.journal("member.add", "member", id, map[string]any{"phone": core.MaskPhone(f.phone), "store_id": t.actor.Store.ID},
		"member.add@1", map[string]any{"member_id": id, "store_id": t.actor.Store.ID, "phone": phone, "phone_ix": ix,
			"name": name, "name_ix": nameIx, "birthday": birthday, "birth_month": f.month, "tags": f.tags,
			"consent": consent, "consent_ms": consentMS, "tier_id": m.tier, "created_ms": t.now})
}

// memberRows are an import's rows parsed, with the problems found so far.
type memberRows struct {
	rows     []MemberInput
	fields   []*memberFields // nil where the row has a problem
	problems []imports.Problem
}

func (mr *memberRows) bad(line int, err error, reason string) {
	ce := core.AsError(err)
	mr.problems = append(mr.problems, imports.Problem{Line: line, Field: ce.Field, Reason: reason, Detail: ce.Message, Value: ce.Params["value"]})
}

// parseMembers checks every row and the phones that appear twice in the file.
func parseMembers(rows []MemberInput) *memberRows {
	mr := &memberRows{rows: rows, fields: make([]*memberFields, len(rows))}
	first := make(map[string]int, len(rows))
	for i, r := range rows {
		f, err := r.parse()
		if err != nil {
			mr.bad(r.Line, err, imports.ReasonBadFormat)
			continue
		}
		if line, dup := first[f.phone]; dup {
			mr.bad(r.Line, core.Invalid("phone", "each phone once", core.MaskPhone(f.phone), "duplicate of line %d", line), imports.ReasonDuplicate)
			continue
		}
		first[f.phone] = r.Line
		mr.fields[i] = f
	}
	return mr
}

// taken adds a problem for each valid row from the from-th on whose phone is already
// a member's.
func (mr *memberRows) taken(q queryer, sealer *core.Secrets, from int) error {
	for i := from; i < len(mr.fields); i++ {
		f := mr.fields[i]
		if f == nil {
			continue
		}
		owner, err := ownerOfIndex(q, sealer.Index(f.phone))
		if err != nil {
			return err
		}
		if owner != "" {
			mr.bad(mr.rows[i].Line, phoneTaken(f.phone, owner), imports.ReasonDuplicate)
		}
	}
	return nil
}

// sorted returns the problems by line.
func (mr *memberRows) sorted() []imports.Problem {
	sort.SliceStable(mr.problems, func(i, j int) bool { return mr.problems[i].Line < mr.problems[j].Line })
	return mr.problems
}

// CheckMembers lists every problem an import of rows would meet (bad values, a phone
// twice in the file or already a member's), by line, writing nothing.
func (db *DB) CheckMembers(rows []MemberInput) ([]imports.Problem, error) {
	sealer, err := db.sealer()
	if err != nil {
		return nil, err
	}
	mr := parseMembers(rows)
	if err := mr.taken(reader{db}, sealer, 0); err != nil {
		return nil, err
	}
	return mr.sorted(), nil
}

// Above bulkRows rows an import runs with a page cache of bulkCacheKiB.
const (
	bulkRows     = 10_000
	bulkCacheKiB = 128 << 10
)

// pageCache sets the write connection's page cache to kib KiB; 0 restores the
// default.
func (t *tx) pageCache(kib int) error {
	size := "-2000" // SQLite's default
	if kib > 0 {
		size = fmt.Sprint(-kib)
	}
	_, err := t.Tx.Exec(`PRAGMA cache_size = ` + size)
	return err
}

// ImportMembers adds members from a file as one transaction: every row or none. Every
// problem (a bad phone, birthday or name, a phone twice in the file or already a
// member's) is reported with its line. With welcome set the welcome rules fire for
// each new member. progress, if set, is told how many rows are done.
func (db *DB) ImportMembers(a *Actor, rows []MemberInput, welcome bool, progress func(done int64)) (int, error) {
	if len(rows) == 0 {
		return 0, core.Invalid("file", "phone,name,birthday,tags,consent", "", "the file has no members")
	}
	sealer, err := db.sealer()
	if err != nil {
		return 0, err
	}
	mr := parseMembers(rows)
	if len(mr.problems) > 0 {
		if err := mr.taken(reader{db}, sealer, 0); err != nil {
			return 0, err
		}
		return 0, &ImportRejected{Problems: mr.sorted()}
	}
	err = db.write(a, func(t *tx) error {
		tc, err := t.tierContext()
		if err != nil {
			return err
		}
		ins := memberInserter{t: t, sealer: sealer, tier: tc.initialTier()}
		if err := ins.prepare(); err != nil {
			return err
		}
		defer ins.close()
		var rules []*ruleInTx
		if welcome {
			if rules, err = t.rulesOf(core.IssueWelcome); err != nil {
				return err
			}
		}
		// A large file in one transaction: a page cache big enough that SQLite does not
		// spill to the log and read the pages back, given back afterwards.
		if len(rows) > bulkRows {
			if err := t.pageCache(bulkCacheKiB); err != nil {
				return err
			}
			defer t.pageCache(0)
		}
		for i, f := range mr.fields {
			id, err := ins.insert(f, rows[i].Consent)
			if err != nil {
				return err
			}
			if id == "" { // already a member's: find the rest that are, then refuse
				if err := mr.taken(t, sealer, i); err != nil {
					return err
				}
				return &ImportRejected{Problems: mr.sorted()}
			}
			if _, err := t.fireAll(rules, id, ""); err != nil {
				return err
			}
			if progress != nil && (i+1)%4096 == 0 {
				progress(int64(i + 1))
			}
		}
		if progress != nil {
			progress(int64(len(rows)))
		}
		// Like a generated batch, the file goes to the outbox as a digest: the members
		// themselves are carried in bulk by sync.
		return t.journal("members.import", "store", t.actor.Store.ID, map[string]any{"count": len(rows), "welcome": welcome},
			"members.import@1", map[string]any{"store_id": t.actor.Store.ID, "count": len(rows), "created_ms": t.now, "tier_id": ins.tier})
	})
	if err != nil {
		return 0, err
	}
	return len(rows), nil
}

const memberCols = `m.id, m.phone, m.name, m.birthday, m.birth_month, m.tags, m.consent, m.consent_ms, m.tier_id,
	COALESCE(t.name, ''), m.status, m.merged_into, m.store_id, m.wallet, m.points, m.spend, m.visits, m.last_visit_ms,
	m.created_ms, m.updated_ms`

const memberFrom = ` FROM member m LEFT JOIN tier t ON t.id = m.tier_id`

// scanMember reads a member row and opens its sealed fields, the phone masked; with
// the key locked the phone shows as locked and the name and birthday stay empty.
func (db *DB) scanMember(row scanner) (*core.Member, error) {
	var m core.Member
	var phone, name, birthday []byte
	var tags string
	err := row.Scan(&m.ID, &phone, &name, &birthday, &m.BirthMonth, &tags, &m.Consent, &m.ConsentAt, &m.TierID, &m.Tier,
		&m.Status, &m.MergedInto, &m.StoreID, &m.Wallet, &m.Points, &m.Spend, &m.Visits, &m.LastVisit, &m.Created, &m.Updated)
	if err != nil {
		return nil, err
	}
	m.Tags = splitTags(tags)
	if phone == nil && name == nil && birthday == nil {
		return &m, nil
	}
	sealer, err := db.sealer()
	if err != nil {
		m.Phone = lockedPhone
		return &m, nil
	}
	if m.Phone, err = openOrEmpty(sealer, phone, m.ID); err != nil {
		return nil, err
	}
	m.Phone = core.MaskPhone(m.Phone)
	if m.Name, err = openOrEmpty(sealer, name, m.ID); err != nil {
		return nil, err
	}
	if m.Birthday, err = openOrEmpty(sealer, birthday, m.ID); err != nil {
		return nil, err
	}
	return &m, nil
}

func openOrEmpty(s *core.Secrets, sealed []byte, ad string) (string, error) {
	if sealed == nil {
		return "", nil
	}
	return s.Open(sealed, ad)
}

// member reads one member by id, phone masked.
func (db *DB) member(q queryer, id string) (*core.Member, error) {
	m, err := db.scanMember(q.QueryRow(`SELECT `+memberCols+memberFrom+` WHERE m.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("member", id)
	}
	return m, err
}

// MemberFilter narrows a member search. Phone and Name are exact (after
// normalisation); with neither nor Tag the newest members are listed.
type MemberFilter struct {
	Phone string
	Name  string
	Tag   string
	All   bool // merged and anonymised records too
	Limit int  // default 50
}

// FindMembers searches members; phones are masked. A phone finds the member it belongs
// to, also through a record that was merged into another.
func (db *DB) FindMembers(f MemberFilter) ([]*core.Member, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Phone != "" {
		phone, err := core.NormalizePhone(f.Phone)
		if err != nil {
			return nil, err
		}
		sealer, err := db.sealer()
		if err != nil {
			return nil, err
		}
		m, err := db.scanMember(reader{db}.QueryRow(`SELECT `+memberCols+memberFrom+` WHERE m.phone_ix = ?`, sealer.Index(phone)))
		if errors.Is(err, sql.ErrNoRows) {
			return []*core.Member{}, nil
		}
		if err != nil {
			return nil, err
		}
		for hops := 0; m.Status == core.MemberMerged && m.MergedInto != "" && hops < 16; hops++ {
			if m, err = db.member(reader{db}, m.MergedInto); err != nil {
				return nil, err
			}
		}
		return []*core.Member{m}, nil
	}
	q := `SELECT ` + memberCols + memberFrom + ` WHERE 1=1`
	var args []any
	if !f.All {
		q += ` AND m.status = 'active'`
	}
	if f.Name != "" {
		sealer, err := db.sealer()
		if err != nil {
			return nil, err
		}
		q += ` AND m.name_ix = ?`
		args = append(args, sealer.Index(nameKey(f.Name)))
	}
	if tag := strings.ToLower(strings.TrimSpace(f.Tag)); tag != "" {
		q += ` AND instr(m.tags, ?) > 0`
		args = append(args, ","+tag+",")
	}
	q += ` ORDER BY m.created_ms DESC, m.id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*core.Member{}
	for rows.Next() {
		m, err := db.scanMember(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// CountMembers counts members by status.
func (db *DB) CountMembers() (map[string]int64, error) {
	rows, err := db.r.Query(`SELECT status, count(*) FROM member GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{core.MemberActive: 0}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// TimelineEntry is one thing that happened to a member.
type TimelineEntry struct {
	Time     int64       `json:"time_ms"`
	Kind     string      `json:"kind"`           // code | redemption | wallet | points | tier
	What     string      `json:"what,omitempty"` // entry kind, redemption status, "old → new" tier
	Ref      string      `json:"ref,omitempty"`  // code, redemption or entry id
	Code     string      `json:"code,omitempty"`
	Campaign string      `json:"campaign,omitempty"` // name
	Amount   core.Amount `json:"amount,omitempty"`
	Points   int64       `json:"points,omitempty"`
}

// Timeline kinds.
const (
	TimelineCode       = "code"
	TimelineRedemption = "redemption"
	TimelineWallet     = "wallet"
	TimelinePoints     = "points"
	TimelineTier       = "tier"
)

// MemberDetail is a member with what happened to them, newest first.
type MemberDetail struct {
	*core.Member
	Timeline []TimelineEntry `json:"timeline"`
}

// resolveMember names a member by id (any status) or by phone (the active member it
// leads to).
func (db *DB) resolveMember(q queryer, ref string) (string, error) {
	var id string
	err := q.QueryRow(`SELECT id FROM member WHERE id = ?`, ref).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	return db.memberRef(q, ref)
}

// Member shows one member (by id or phone) with balances, tier and the newest limit
// entries of their timeline: codes received, redemptions, wallet and points entries
// and tier changes.
func (db *DB) Member(ref string, limit int) (*MemberDetail, error) {
	if limit <= 0 {
		limit = 20
	}
	id, err := db.resolveMember(reader{db}, ref)
	if err != nil {
		return nil, err
	}
	m, err := db.member(reader{db}, id)
	if err != nil {
		return nil, err
	}
	d := &MemberDetail{Member: m, Timeline: []TimelineEntry{}}
	add := func(q string, scan func(rows *sql.Rows) (TimelineEntry, error), args ...any) error {
		rows, err := db.r.Query(q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scan(rows)
			if err != nil {
				return err
			}
			d.Timeline = append(d.Timeline, e)
		}
		return rows.Err()
	}
	codes := func(rows *sql.Rows) (TimelineEntry, error) {
		e := TimelineEntry{Kind: TimelineCode, What: "received"}
		err := rows.Scan(&e.Code, &e.Campaign, &e.Time)
		e.Ref = e.Code
		return e, err
	}
	redemptions := func(rows *sql.Rows) (TimelineEntry, error) {
		e := TimelineEntry{Kind: TimelineRedemption}
		err := rows.Scan(&e.Ref, &e.Code, &e.Campaign, &e.What, &e.Amount, &e.Time)
		return e, err
	}
	wallet := func(rows *sql.Rows) (TimelineEntry, error) {
		e := TimelineEntry{Kind: TimelineWallet}
		err := rows.Scan(&e.Ref, &e.What, &e.Amount, &e.Time)
		return e, err
	}
	points := func(rows *sql.Rows) (TimelineEntry, error) {
		e := TimelineEntry{Kind: TimelinePoints}
		err := rows.Scan(&e.Ref, &e.What, &e.Points, &e.Time)
		return e, err
	}
	tiers := func(rows *sql.Rows) (TimelineEntry, error) {
		e := TimelineEntry{Kind: TimelineTier}
		var from, to string
		err := rows.Scan(&e.Ref, &from, &to, &e.Time)
		e.What = from + " → " + to
		return e, err
	}
	const redemptionTimeline = `SELECT r.id, r.code, c.name, r.status, r.discount + r.value, r.created_ms FROM redemption r
		JOIN campaign c ON c.id = r.campaign_id WHERE `
	steps := []func() error{
		func() error {
			return add(`SELECT k.code, c.name, k.distributed_ms FROM code k JOIN campaign c ON c.id = k.campaign_id
				WHERE k.member_id = ? ORDER BY k.distributed_ms DESC LIMIT ?`, codes, id, limit)
		},
		func() error {
			return add(redemptionTimeline+`r.member_id = ? ORDER BY r.created_ms DESC LIMIT ?`, redemptions, id, limit)
		},
		func() error { // a code they received, redeemed without naming a member
			return add(redemptionTimeline+`r.code IN (SELECT code FROM code WHERE member_id = ?) AND r.member_id IS NULL
				ORDER BY r.created_ms DESC LIMIT ?`, redemptions, id, limit)
		},
		func() error {
			return add(`SELECT id, kind, amount, created_ms FROM wallet_entry WHERE member_id = ? ORDER BY created_ms DESC LIMIT ?`, wallet, id, limit)
		},
		func() error {
			return add(`SELECT id, kind, points, created_ms FROM points_entry WHERE member_id = ? ORDER BY created_ms DESC LIMIT ?`, points, id, limit)
		},
		func() error {
			// Tier changes live in the audit chain (no index by entity: a scan).
			return add(`SELECT id, json_extract(detail, '$.from'), json_extract(detail, '$.to'), ts_ms FROM audit
				WHERE entity_id = ? AND action = 'member.tier' ORDER BY seq DESC LIMIT ?`, tiers, id, limit)
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(d.Timeline, func(i, j int) bool { return d.Timeline[i].Time > d.Timeline[j].Time })
	if len(d.Timeline) > limit {
		d.Timeline = d.Timeline[:limit]
	}
	return d, nil
}

// EditMember changes a member's fields. A new phone is re-sealed and re-indexed (a
// phone that is another member's is a conflict); a withdrawn consent is recorded
// with its time.
func (db *DB) EditMember(a *Actor, ref string, e MemberEdit) (*core.Member, error) {
	sealer, err := db.sealer()
	if err != nil {
		return nil, err
	}
	var id string
	err = db.write(a, func(t *tx) error {
		if id, err = db.memberRef(t, ref); err != nil {
			return err
		}
		var consent bool
		if err := t.QueryRow(`SELECT consent FROM member WHERE id = ?`, id).Scan(&consent); err != nil {
			return err
		}
		sets := []string{}
		vals := []any{}
		set := func(col string, v any) {
			sets = append(sets, col+" = ?")
			vals = append(vals, v)
		}
		args := map[string]any{"member_id": id}
		changed := []string{}
		if e.Phone != nil {
			phone, err := core.NormalizePhone(*e.Phone)
			if err != nil {
				return err
			}
			ix := sealer.Index(phone)
			owner, err := ownerOfIndex(t, ix)
			if err != nil {
				return err
			}
			if owner != "" && owner != id {
				return phoneTaken(phone, owner)
			}
			sealed := sealer.Seal(phone, id)
			set("phone", sealed)
			set("phone_ix", ix)
			args["phone"], args["phone_ix"] = sealed, ix
			changed = append(changed, "phone")
		}
		if e.Name != nil {
			name, err := cleanName(*e.Name)
			if err != nil {
				return err
			}
			sealed, ix := sealOrNil(sealer, name, id), indexOrNil(sealer, nameKey(name))
			set("name", sealed)
			set("name_ix", ix)
			args["name"], args["name_ix"] = sealed, ix
			changed = append(changed, "name")
		}
		if e.Birthday != nil {
			b, month, err := core.ParseBirthday(*e.Birthday)
			if err != nil {
				return err
			}
			sealed := sealOrNil(sealer, b, id)
			set("birthday", sealed)
			set("birth_month", month)
			args["birthday"], args["birth_month"] = sealed, month
			changed = append(changed, "birthday")
		}
		if e.Tags != nil {
			tags, err := parseTags(*e.Tags)
			if err != nil {
				return err
			}
			set("tags", storedTags(tags))
			args["tags"] = tags
			changed = append(changed, "tags")
		}
		detail := map[string]any{"changed": changed}
		if e.Consent != nil && *e.Consent != consent {
			set("consent", *e.Consent)
			set("consent_ms", t.now)
			args["consent"], args["consent_ms"] = *e.Consent, t.now
			changed = append(changed, "consent")
			detail["consent"] = *e.Consent
		}
		if len(changed) == 0 {
			return nil
		}
		detail["changed"] = changed
		set("updated_ms", t.now)
		if _, err := t.Exec(`UPDATE member SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(vals, id)...); err != nil {
			return err
		}
		args["changed"] = changed
		return t.journal("member.edit", "member", id, detail, "member.edit@1", args)
	})
	if err != nil {
		return nil, err
	}
	return db.member(reader{db}, id)
}

// RevealMember returns a member's phone number in full and writes an audit entry
// saying who saw it. The caller has checked the role.
func (db *DB) RevealMember(a *Actor, ref string) (string, error) {
	sealer, err := db.sealer()
	if err != nil {
		return "", err
	}
	var plain string
	err = db.write(a, func(t *tx) error {
		id, err := db.resolveMember(t, ref)
		if err != nil {
			return err
		}
		var sealed []byte
		if err := t.QueryRow(`SELECT phone FROM member WHERE id = ?`, id).Scan(&sealed); err != nil {
			return err
		}
		if sealed == nil {
			return core.Errorf(core.ErrNotFound, "member %s has no phone number (anonymised)", id)
		}
		if plain, err = sealer.Open(sealed, id); err != nil {
			return err
		}
		return t.audit("member.reveal", "member", id, map[string]any{"field": "phone"})
	})
	return plain, err
}

// Anonymised reports what erasing a member's personal data touched.
type Anonymised struct {
	MemberID    string `json:"member_id"`
	Records     int64  `json:"records"` // the member and the records merged into it
	Codes       int64  `json:"codes"`
	Redemptions int64  `json:"redemptions"`
	Outbox      int64  `json:"outbox"`
	Flushed     bool   `json:"flushed"` // the write-ahead log was emptied: no old copy is left on disk
}

// personalPaths are the keys of personal data in outbox arguments.
const personalPaths = `'$.phone', '$.phone_ix', '$.name', '$.name_ix', '$.birthday', '$.member_ix'`

// AnonymiseMember erases a member's personal data on request (个人信息删除): phone,
// name, birthday, their indexes, tags and consent, on the member and on every record
// merged into it; the phone on codes they received; the phone index on redemptions;
// and personal fields of mutations not yet sent. Ledger rows and totals stay. After
// the commit the write-ahead log is checkpointed and truncated so no old page with
// the data is left in it (secure_delete zeroes freed space in the database file).
func (db *DB) AnonymiseMember(a *Actor, ref string) (*Anonymised, error) {
	res := &Anonymised{}
	err := db.write(a, func(t *tx) error {
		id, err := db.memberRef(t, ref)
		if err != nil {
			return err
		}
		res.MemberID = id
		// The member and the records merged into it, with the phone indexes they hold.
		rows, err := t.Query(`WITH RECURSIVE r(id) AS (SELECT ? UNION SELECT m.id FROM member m JOIN r ON m.merged_into = r.id)
			SELECT m.id, m.phone_ix FROM member m JOIN r ON r.id = m.id`, id)
		if err != nil {
			return err
		}
		type record struct {
			id string
			ix []byte
		}
		var recs []record
		for rows.Next() {
			var r record
			if err := rows.Scan(&r.id, &r.ix); err != nil {
				rows.Close()
				return err
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		res.Records = int64(len(recs))
		var none int64
		byID := []struct {
			n *int64
			q string
		}{
			{&none, `UPDATE member SET phone = NULL, phone_ix = NULL, name = NULL, name_ix = NULL, birthday = NULL,
				birth_month = 0, tags = '', consent = 0, consent_ms = ?2, updated_ms = ?2 WHERE id = ?1`},
			{&res.Codes, `UPDATE code SET phone = NULL, phone_ix = NULL WHERE member_id = ?1 AND (phone IS NOT NULL OR phone_ix IS NOT NULL)`},
			{&res.Redemptions, `UPDATE redemption SET member_ix = NULL WHERE member_id = ?1 AND member_ix IS NOT NULL`},
			{&res.Outbox, `UPDATE outbox SET args = json_remove(args, ` + personalPaths + `)
				WHERE pushed_ms = 0 AND json_extract(args, '$.member_id') = ?1`},
		}
		// What went to the phone without naming the member (before they signed up).
		byPhone := []struct {
			n *int64
			q string
		}{
			{&res.Codes, `UPDATE code SET phone = NULL, phone_ix = NULL WHERE phone_ix = ?1`},
			{&res.Redemptions, `UPDATE redemption SET member_ix = NULL WHERE campaign_id IN (SELECT id FROM campaign) AND member_ix = ?1`},
			{&res.Outbox, `UPDATE outbox SET args = json_remove(args, ` + personalPaths + `)
				WHERE pushed_ms = 0 AND (json_extract(args, '$.phone_ix') = ?2 OR json_extract(args, '$.member_ix') = ?2)`},
		}
		run := func(n *int64, q string, args ...any) error {
			r, err := t.Exec(q, args...)
			if err != nil {
				return err
			}
			k, _ := r.RowsAffected()
			*n += k
			return nil
		}
		for _, r := range recs {
			for _, s := range byID {
				if err := run(s.n, s.q, r.id, t.now); err != nil {
					return err
				}
			}
			if r.ix == nil {
				continue
			}
			for _, s := range byPhone {
				if err := run(s.n, s.q, r.ix, base64.StdEncoding.EncodeToString(r.ix)); err != nil {
					return err
				}
			}
		}
		if _, err := t.Exec(`UPDATE member SET status = 'anonymised' WHERE id = ?`, id); err != nil {
			return err
		}
		return t.journal("member.anonymise", "member", id, map[string]any{"records": res.Records, "codes": res.Codes,
			"redemptions": res.Redemptions, "outbox": res.Outbox}, "member.anonymise@1", map[string]any{"member_id": id})
	})
	if err != nil {
		return nil, err
	}
	res.Flushed = db.flushWAL()
	return res, nil
}

// flushWAL copies the write-ahead log into the database and truncates it, retrying
// for a while when a reader still holds an old snapshot. It reports success.
func (db *DB) flushWAL() bool {
	for try := 0; try < 40; try++ {
		var busy, frames, done int
		if err := db.w.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err == nil && busy == 0 {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

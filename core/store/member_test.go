package store_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/imports"
	"github.com/kameng/kameng/core/store"
)

func (e *env) addMember(in store.MemberInput) *core.Member {
	e.t.Helper()
	res, err := e.db.AddMember(e.owner, in)
	if err != nil {
		e.t.Fatalf("add member %s: %v", in.Phone, err)
	}
	return res.Member
}

func (e *env) findPhone(phone string) []*core.Member {
	e.t.Helper()
	ms, err := e.db.FindMembers(store.MemberFilter{Phone: phone})
	if err != nil {
		e.t.Fatalf("find %s: %v", phone, err)
	}
	return ms
}

// rawMember reads a member's stored personal columns as they are on disk.
func (e *env) rawMember(id string) (phone, phoneIx, name, nameIx, birthday []byte) {
	e.t.Helper()
	if err := e.db.Raw().QueryRow(`SELECT phone, phone_ix, name, name_ix, birthday FROM member WHERE id = ?`, id).
		Scan(&phone, &phoneIx, &name, &nameIx, &birthday); err != nil {
		e.t.Fatal(err)
	}
	return
}

func TestAddMemberSealsIndexesAndFinds(t *testing.T) {
	e := newEnv(t)
	m := e.addMember(store.MemberInput{Phone: "+86 138-1234-5678", Name: "  Zhang   San ", Birthday: "1990-03-15", Tags: "VIP, 员工, vip", Consent: true})
	if m.Phone != "138****5678" || m.Name != "Zhang San" || m.Birthday != "1990-03-15" || m.BirthMonth != 3 {
		t.Fatalf("member %+v", m)
	}
	if strings.Join(m.Tags, ",") != "vip,员工" || !m.Consent || m.ConsentAt != t0.UnixMilli() || m.StoreID != e.owner.Store.ID || m.Status != core.MemberActive {
		t.Fatalf("member %+v", m)
	}
	phone, phoneIx, name, nameIx, birthday := e.rawMember(m.ID)
	for what, b := range map[string][]byte{"phone": phone, "name": name, "birthday": birthday} {
		if b == nil || bytes.Contains(b, []byte("13812345678")) || bytes.Contains(b, []byte("Zhang")) || bytes.Contains(b, []byte("1990")) {
			t.Errorf("%s stored as %q: not sealed", what, b)
		}
	}
	if len(phoneIx) != 32 || len(nameIx) != 32 {
		t.Fatalf("indexes of %d and %d bytes", len(phoneIx), len(nameIx))
	}
	other := e.addMember(store.MemberInput{Phone: "13900000001"})

	for _, q := range []string{"13812345678", "138 1234 5678", "008613812345678"} {
		if got := e.findPhone(q); len(got) != 1 || got[0].ID != m.ID || got[0].Phone != "138****5678" {
			t.Fatalf("find %s: %+v", q, got)
		}
	}
	if got := e.findPhone("13812345679"); len(got) != 0 {
		t.Fatalf("another phone found %+v", got)
	}
	for _, q := range []string{"zhang san", "ＺＨＡＮＧ  SAN"} {
		got, err := e.db.FindMembers(store.MemberFilter{Name: q})
		if err != nil || len(got) != 1 || got[0].ID != m.ID {
			t.Fatalf("find name %q: %+v %v", q, got, err)
		}
	}
	if got, _ := e.db.FindMembers(store.MemberFilter{Name: "Zhang"}); len(got) != 0 {
		t.Fatalf("name search is exact, found %+v", got)
	}
	got, err := e.db.FindMembers(store.MemberFilter{Tag: "员工"})
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("find tag: %+v %v", got, err)
	}
	if got, _ := e.db.FindMembers(store.MemberFilter{Tag: "vi"}); len(got) != 0 {
		t.Fatalf("a tag is matched whole, found %+v", got)
	}
	if got, _ := e.db.FindMembers(store.MemberFilter{Limit: 1}); len(got) != 1 || got[0].ID != other.ID {
		t.Fatalf("newest first with a limit: %+v", got)
	}

	// The same phone again, in another form: a conflict naming the phone.
	_, err = e.db.AddMember(e.owner, store.MemberInput{Phone: "138 1234 5678", Name: "李四"})
	ce := wantErr(t, err, core.ErrConflict, "phone")
	if ce.Params["id"] != m.ID || strings.Contains(ce.Error(), "13812345678") {
		t.Fatalf("conflict %q %v", ce.Error(), ce.Params)
	}
	for _, bad := range []store.MemberInput{{Phone: ""}, {Phone: "12345"}, {Phone: "13900000002", Birthday: "1990-13-01"},
		{Phone: "13900000002", Name: strings.Repeat("长", 65)}, {Phone: "13900000002", Tags: strings.Repeat("x", 33)}} {
		_, err := e.db.AddMember(e.owner, bad)
		if core.ErrorCode(err) != core.ErrInvalid {
			t.Errorf("add %+v: %v, want invalid", bad, err)
		}
	}
	if n, _ := e.db.CountMembers(); n[core.MemberActive] != 2 {
		t.Fatalf("counts %v", n)
	}
	if e.auditActions()["member.add"] != 2 {
		t.Fatalf("audit %v", e.auditActions())
	}
	// A sealed value belongs to its row: the member id is its associated data.
	if _, err := e.db.Raw().Exec(`UPDATE member SET phone = ? WHERE id = ?`, phone, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.RevealMember(e.owner, other.ID); core.ErrorCode(err) != core.ErrKey {
		t.Fatalf("a phone moved to another row opened: %v", err)
	}
}

func TestEditMemberReindexesPhoneAndRecordsConsent(t *testing.T) {
	e := newEnv(t)
	m := e.addMember(store.MemberInput{Phone: "13812345678", Name: "王五", Consent: true})
	e.addMember(store.MemberInput{Phone: "13900000001"})
	_, oldIx, _, _, _ := e.rawMember(m.ID)

	taken := "13900000001"
	_, err := e.db.EditMember(e.owner, m.ID, store.MemberEdit{Phone: &taken})
	wantErr(t, err, core.ErrConflict, "phone")

	e.advance(time.Hour)
	phone, name, tags, bday, no := "13700001111", "王五六", "gold", "--12-24", false
	got, err := e.db.EditMember(e.owner, "13812345678", store.MemberEdit{Phone: &phone, Name: &name, Tags: &tags, Birthday: &bday, Consent: &no})
	if err != nil {
		t.Fatal(err)
	}
	if got.Phone != "137****1111" || got.Name != name || got.Birthday != "--12-24" || got.BirthMonth != 12 || strings.Join(got.Tags, ",") != "gold" {
		t.Fatalf("edited %+v", got)
	}
	if got.Consent || got.ConsentAt != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("withdrawn consent %v at %d, want the time of withdrawal", got.Consent, got.ConsentAt)
	}
	_, newIx, _, _, _ := e.rawMember(m.ID)
	if bytes.Equal(oldIx, newIx) {
		t.Fatal("phone index unchanged")
	}
	if len(e.findPhone("13812345678")) != 0 || len(e.findPhone(phone)) != 1 {
		t.Fatal("the phone index does not follow the new phone")
	}
	if p, err := e.db.RevealMember(e.owner, m.ID); err != nil || p != phone {
		t.Fatalf("reveal %q %v", p, err)
	}
	// Nothing given, nothing changed.
	before := e.auditActions()["member.edit"]
	if _, err := e.db.EditMember(e.owner, m.ID, store.MemberEdit{Consent: &no}); err != nil {
		t.Fatal(err)
	}
	if e.auditActions()["member.edit"] != before || e.auditActions()["member.reveal"] != 1 {
		t.Fatalf("audit %v", e.auditActions())
	}
	if _, err := e.db.EditMember(e.owner, "13999999999", store.MemberEdit{Name: &name}); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("edit unknown: %v", err)
	}
}

func TestImportMembersAllOrNothingWithLines(t *testing.T) {
	e := newEnv(t)
	e.addMember(store.MemberInput{Phone: "13900000009"})
	bad := []store.MemberInput{
		{Line: 2, Phone: "13800000001", Name: "甲"},
		{Line: 3, Phone: "1380000", Name: "乙"},
		{Line: 4, Phone: "138 0000 0001", Name: "丙"},
		{Line: 5, Phone: "13800000005", Birthday: "02-30"},
		{Line: 6, Phone: "13900000009"},
	}
	_, err := e.db.ImportMembers(e.owner, bad, false, nil)
	var rej *store.ImportRejected
	if !errors.As(err, &rej) {
		t.Fatalf("import: %v", err)
	}
	want := []struct {
		line          int
		field, reason string
	}{{3, "phone", imports.ReasonBadFormat}, {4, "phone", imports.ReasonDuplicate}, {5, "birthday", imports.ReasonBadFormat}, {6, "phone", imports.ReasonDuplicate}}
	if len(rej.Problems) != len(want) {
		t.Fatalf("problems %+v", rej.Problems)
	}
	for i, w := range want {
		p := rej.Problems[i]
		if p.Line != w.line || p.Field != w.field || p.Reason != w.reason {
			t.Errorf("problem %d: %+v, want %+v", i, p, w)
		}
	}
	if n, _ := e.db.CountMembers(); n[core.MemberActive] != 1 {
		t.Fatalf("a refused import wrote members: %v", n)
	}

	// Valid rows whose phones are members' already: found in the transaction, every one
	// reported, and what was inserted before them rolled back.
	e.addMember(store.MemberInput{Phone: "13900000008"})
	_, err = e.db.ImportMembers(e.owner, []store.MemberInput{{Line: 2, Phone: "13800000001"}, {Line: 3, Phone: "13900000009"},
		{Line: 4, Phone: "13800000002"}, {Line: 5, Phone: "13900000008"}}, false, nil)
	if !errors.As(err, &rej) || len(rej.Problems) != 2 || rej.Problems[0].Line != 3 || rej.Problems[1].Line != 5 ||
		rej.Problems[0].Reason != imports.ReasonDuplicate || rej.Problems[0].Value != "139****0009" {
		t.Fatalf("import over members: %v %+v", err, rej)
	}
	if n, _ := e.db.CountMembers(); n[core.MemberActive] != 2 {
		t.Fatalf("a refused import wrote members: %v", n)
	}
	if probs, err := e.db.CheckMembers(bad); err != nil || len(probs) != 4 {
		t.Fatalf("check: %+v %v", probs, err)
	}

	var seen []int64
	good := []store.MemberInput{{Line: 2, Phone: "13800000001", Name: "甲", Tags: "vip", Consent: true}, {Line: 3, Phone: "13800000002", Birthday: "--02-29"}}
	n, err := e.db.ImportMembers(e.owner, good, false, func(done int64) { seen = append(seen, done) })
	if err != nil || n != 2 {
		t.Fatalf("import %d %v", n, err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != 2 {
		t.Fatalf("progress %v", seen)
	}
	got := e.findPhone("13800000001")
	if len(got) != 1 || got[0].Name != "甲" || !got[0].Consent || got[0].Tags[0] != "vip" {
		t.Fatalf("imported %+v", got)
	}
	if b := e.findPhone("13800000002"); len(b) != 1 || b[0].BirthMonth != 2 {
		t.Fatalf("imported %+v", b)
	}
	if a := e.auditActions(); a["members.import"] != 1 || a["member.add"] != 2 {
		t.Fatalf("audit %v", a)
	}
}

// fileBytes is the database file and its write-ahead log as they are on disk.
func (e *env) fileBytes() []byte {
	e.t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.path + suffix)
		if err != nil && !os.IsNotExist(err) {
			e.t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func (e *env) sums(id string) (wallet, points int64) {
	e.t.Helper()
	if err := e.db.Raw().QueryRow(`SELECT (SELECT COALESCE(sum(amount), 0) FROM wallet_entry WHERE member_id = ?1),
		(SELECT COALESCE(sum(points), 0) FROM points_entry WHERE member_id = ?1)`, id).Scan(&wallet, &points); err != nil {
		e.t.Fatal(err)
	}
	return
}

func TestAnonymiseLeavesNoPersonalDataOnDisk(t *testing.T) {
	e := newEnv(t)
	const phone, name = "13812345678", "欧阳娜娜"
	m := e.addMember(store.MemberInput{Phone: phone, Name: name, Birthday: "1995-07-08", Tags: "vip", Consent: true})
	keep := e.addMember(store.MemberInput{Phone: "13900000001", Name: "路人"})
	c := e.create(amountOff("满100减20", 2000, core.Rules{}))
	codes := e.codes(c.ID, 3)
	if _, err := e.db.Distribute(e.owner, codes[:2], phone); err != nil {
		t.Fatal(err)
	}
	e.mustRedeem(e.owner, codes[0], core.Order{Amount: 15000, Member: phone})
	// Ledger rows of both kinds, with the cached balances, as the wallet and points do.
	raw := e.db.Raw()
	for _, q := range []string{
		`INSERT INTO wallet_entry(id, member_id, kind, amount, store_id, operator_id, device_id, created_ms) VALUES ('w1', ?1, 'topup', 10000, 's', 'o', 'd', 1)`,
		`INSERT INTO points_entry(id, member_id, kind, points, remaining, store_id, operator_id, device_id, created_ms) VALUES ('p1', ?1, 'earn', 150, 150, 's', 'o', 'd', 1)`,
		`UPDATE member SET wallet = 10000, points = 150 WHERE id = ?1`,
	} {
		if _, err := raw.Exec(q, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	// A second record of the same person, merged into this one (kept with its phone index).
	dup := e.addMember(store.MemberInput{Phone: "13700000002", Name: "娜娜"})
	if _, err := raw.Exec(`UPDATE member SET status = 'merged', merged_into = ? WHERE id = ?`, m.ID, dup.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.findPhone("13700000002"); len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("the merged phone does not find the member: %+v", got)
	}
	dupPhone, dupIx, dupName, _, _ := e.rawMember(dup.ID)
	walletBefore, pointsBefore := e.sums(m.ID)
	sealedPhone, phoneIx, sealedName, nameIx, sealedBirthday := e.rawMember(m.ID)
	var codePhone []byte
	if err := raw.QueryRow(`SELECT phone FROM code WHERE code = ?`, codes[1]).Scan(&codePhone); err != nil || codePhone == nil {
		t.Fatalf("distributed code has no phone: %v", err)
	}
	secrets := map[string][]byte{"phone digits": []byte(phone), "name": []byte(name), "sealed phone": sealedPhone,
		"phone index": phoneIx, "sealed name": sealedName, "name index": nameIx, "sealed birthday": sealedBirthday,
		"phone sealed on a code": codePhone, "merged record's phone": dupPhone, "merged record's index": dupIx,
		"merged record's name": dupName, "merged record's name text": []byte("娜娜")}
	// The method sees what it looks for: the sealed values are on disk now.
	on := e.fileBytes()
	for _, what := range []string{"sealed phone", "phone index", "sealed name", "name index"} {
		if !bytes.Contains(on, secrets[what]) {
			t.Fatalf("%s not found on disk before anonymising: the check would prove nothing", what)
		}
	}
	var pending int
	raw.QueryRow(`SELECT count(*) FROM outbox WHERE pushed_ms = 0 AND instr(args, ?) > 0`, base64.StdEncoding.EncodeToString(phoneIx)).Scan(&pending)
	if pending == 0 {
		t.Fatal("no pending mutation carries the phone index")
	}

	res, err := e.db.AnonymiseMember(e.owner, phone)
	if err != nil {
		t.Fatal(err)
	}
	if res.MemberID != m.ID || res.Records != 2 || res.Codes != 2 || res.Redemptions != 1 || res.Outbox == 0 || !res.Flushed {
		t.Fatalf("anonymised %+v", res)
	}
	after := e.fileBytes()
	for what, b := range secrets {
		if bytes.Contains(after, b) {
			t.Errorf("%s is still in the database files after anonymising", what)
		}
	}
	if fi, err := os.Stat(e.path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("write-ahead log holds %d bytes after the checkpoint", fi.Size())
	}
	raw.QueryRow(`SELECT count(*) FROM outbox WHERE pushed_ms = 0 AND (instr(args, ?) > 0 OR instr(args, ?) > 0)`,
		base64.StdEncoding.EncodeToString(phoneIx), base64.StdEncoding.EncodeToString(sealedPhone)).Scan(&pending)
	if pending != 0 {
		t.Errorf("%d pending mutations still carry the member's sealed data", pending)
	}

	for _, p := range []string{phone, "13700000002"} {
		if got := e.findPhone(p); len(got) != 0 {
			t.Fatalf("found by phone %s after anonymising: %+v", p, got)
		}
	}
	d, err := e.db.Member(m.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != core.MemberAnonymised || d.Phone != "" || d.Name != "" || d.Birthday != "" || d.BirthMonth != 0 || len(d.Tags) != 0 || d.Consent {
		t.Fatalf("anonymised member %+v", d.Member)
	}
	if d.Wallet != 10000 || d.Points != 150 {
		t.Fatalf("cached totals changed: %d %d", d.Wallet, d.Points)
	}
	if w, p := e.sums(m.ID); w != walletBefore || p != pointsBefore {
		t.Fatalf("ledger sums %d %d, were %d %d", w, p, walletBefore, pointsBefore)
	}
	var linked int
	raw.QueryRow(`SELECT count(*) FROM code WHERE member_id = ? AND phone IS NULL AND phone_ix IS NULL`, m.ID).Scan(&linked)
	if linked != 2 {
		t.Fatalf("%d codes still linked to the member without a phone, want 2", linked)
	}
	if _, err := e.db.RevealMember(e.owner, m.ID); core.ErrorCode(err) != core.ErrNotFound {
		t.Fatalf("reveal after anonymising: %v", err)
	}
	if _, err := e.db.AnonymiseMember(e.owner, m.ID); core.ErrorCode(err) != core.ErrConflict {
		t.Fatalf("anonymising twice: %v", err)
	}
	// The other member is untouched, and the phone can sign up again as someone new.
	if got := e.findPhone("13900000001"); len(got) != 1 || got[0].Name != "路人" || got[0].ID != keep.ID {
		t.Fatalf("other member %+v", got)
	}
	if again := e.addMember(store.MemberInput{Phone: phone}); again.ID == m.ID {
		t.Fatal("the anonymised record came back")
	}
	if e.auditActions()["member.anonymise"] != 1 {
		t.Fatalf("audit %v", e.auditActions())
	}
	if _, brk, err := e.db.VerifyAudit(); err != nil || brk != nil {
		t.Fatalf("audit chain after anonymising: %v %+v", err, brk)
	}
}

func TestMemberTimelineNewestFirst(t *testing.T) {
	e := newEnv(t)
	const phone = "13812345678"
	m := e.addMember(store.MemberInput{Phone: phone, Name: "赵六"})
	c := e.create(amountOff("满100减20", 2000, core.Rules{}))
	codes := e.codes(c.ID, 2)
	e.advance(time.Minute)
	if _, err := e.db.Distribute(e.owner, codes[:1], phone); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	r := e.mustRedeem(e.owner, codes[0], core.Order{Amount: 15000, Member: phone})
	e.advance(time.Minute)
	// A redemption of a code the member never received, with their phone.
	r2 := e.mustRedeem(e.owner, codes[1], core.Order{Amount: 12000, Member: phone})
	// A tier by lifetime spend, set after the purchases: the member qualifies at the next retier.
	if _, err := e.db.SetLoyalty(e.owner, func(l *core.Loyalty) error { l.TierWindowMonths = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetTier(e.owner, core.Tier{Name: "银卡", MinSpend: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Raw().Exec(`UPDATE member SET spend = spend + 5 WHERE id = ?`, m.ID); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	if res, err := e.db.RetierAll(e.owner, nil); err != nil || res.Changed != 1 || res.Members != 1 {
		t.Fatalf("retier %+v %v", res, err)
	}
	d, err := e.db.Member(phone, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.Tier != "银卡" || d.Phone != "138****5678" {
		t.Fatalf("member %+v", d.Member)
	}
	var kinds []string
	for i, en := range d.Timeline {
		kinds = append(kinds, en.Kind)
		if i > 0 && en.Time > d.Timeline[i-1].Time {
			t.Fatalf("timeline not newest first: %+v", d.Timeline)
		}
	}
	// Each redemption with the member's phone is also the purchase that earns points.
	if got := strings.Join(kinds, ","); got != "tier,redemption,points,redemption,points,code" {
		t.Fatalf("timeline kinds %s: %+v", got, d.Timeline)
	}
	if d.Timeline[0].What != " → 银卡" || d.Timeline[1].Ref != r2.ID || d.Timeline[2].Points != 120 || d.Timeline[3].Ref != r.ID ||
		d.Timeline[3].Amount != 2000 || d.Timeline[4].Points != 150 || d.Timeline[5].Code != codes[0] || d.Timeline[5].Campaign != "满100减20" {
		t.Fatalf("timeline %+v", d.Timeline)
	}
	if short, _ := e.db.Member(m.ID, 2); len(short.Timeline) != 2 || short.Timeline[0].Kind != "tier" {
		t.Fatalf("limited timeline %+v", short.Timeline)
	}
}

func TestDistributeLinksTheMember(t *testing.T) {
	e := newEnv(t)
	m := e.addMember(store.MemberInput{Phone: "13812345678"})
	c := e.create(amountOff("满100减20", 2000, core.Rules{}))
	codes := e.codes(c.ID, 2)
	if _, err := e.db.Distribute(e.owner, codes[:1], "13812345678"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Distribute(e.owner, codes[1:], "13900000000"); err != nil {
		t.Fatal(err)
	}
	var a, b *string
	e.db.Raw().QueryRow(`SELECT (SELECT member_id FROM code WHERE code = ?), (SELECT member_id FROM code WHERE code = ?)`, codes[0], codes[1]).Scan(&a, &b)
	if a == nil || *a != m.ID || b != nil {
		t.Fatalf("member ids %v %v", a, b)
	}
}

package syncclient_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// The invariants of DESIGN §8, checked after healing. The server's side is read
// from its database file (read-only): the API does not show the log, the
// redemptions or the ledgers.

type srvLog struct {
	seq                    int64
	device                 string
	mid                    int64
	uuid, name             string
	status, reason, caseID string
}

type srvRedemption struct {
	code, status, device, idem string
}

type srvCase struct {
	kind, status, subject, action string
	detail                        json.RawMessage
}

type srvFacts struct {
	seq         int64
	lastMID     map[string]int64
	log         []srvLog
	redemptions map[string]srvRedemption
	codeUses    map[string]int64
	codeStatus  map[string]string
	codeBalance map[string]int64
	codeIssued  map[string]int64
	balance     map[string]int64 // kind/id → account balance
	frozen      map[string]bool
	entries     map[string]int64 // kind/id → sum of ledger entries
	cases       map[string]srvCase
	campaigns   map[string]core.Campaign
	hlcTies     map[string]bool // campaign → two devices edited it with the same HLC
}

func acctKey(kind, id string) string { return kind + "/" + id }

func (s *sim) serverFacts() (*srvFacts, error) {
	db, err := sql.Open("sqlite", "file:"+s.srvPath+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	f := &srvFacts{lastMID: map[string]int64{}, redemptions: map[string]srvRedemption{}, codeUses: map[string]int64{},
		codeStatus: map[string]string{}, codeBalance: map[string]int64{}, codeIssued: map[string]int64{}, balance: map[string]int64{}, frozen: map[string]bool{}, entries: map[string]int64{},
		cases: map[string]srvCase{}, campaigns: map[string]core.Campaign{}, hlcTies: map[string]bool{}}
	m := s.merchantID
	if err := db.QueryRow(`SELECT seq FROM merchant WHERE id = ?`, m).Scan(&f.seq); err != nil {
		return nil, fmt.Errorf("merchant: %w", err)
	}
	each := func(q string, scan func(r *sql.Rows) error) error {
		rows, err := db.Query(q, m)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err = each(`SELECT id, last_mid FROM device WHERE merchant_id = ?`, func(r *sql.Rows) error {
		var id string
		var n int64
		err := r.Scan(&id, &n)
		f.lastMID[id] = n
		return err
	})
	if err == nil {
		err = each(`SELECT seq, device_id, mid, uuid, name, status, reason, case_id FROM log WHERE merchant_id = ? ORDER BY seq`, func(r *sql.Rows) error {
			var l srvLog
			err := r.Scan(&l.seq, &l.device, &l.mid, &l.uuid, &l.name, &l.status, &l.reason, &l.caseID)
			f.log = append(f.log, l)
			return err
		})
	}
	if err == nil {
		err = each(`SELECT id, code, status, device_id, COALESCE(idem_key, '') FROM redemption WHERE merchant_id = ?`, func(r *sql.Rows) error {
			var id string
			var x srvRedemption
			err := r.Scan(&id, &x.code, &x.status, &x.device, &x.idem)
			f.redemptions[id] = x
			return err
		})
	}
	if err == nil {
		err = each(`SELECT code, uses, status, balance, issued FROM code WHERE merchant_id = ?`, func(r *sql.Rows) error {
			var k, st string
			var n, b, issued int64
			err := r.Scan(&k, &n, &st, &b, &issued)
			f.codeUses[k], f.codeStatus[k], f.codeBalance[k], f.codeIssued[k] = n, st, b, issued
			return err
		})
	}
	if err == nil {
		err = each(`SELECT kind, id, balance, frozen FROM account WHERE merchant_id = ?`, func(r *sql.Rows) error {
			var kind, id string
			var b, fr int64
			err := r.Scan(&kind, &id, &b, &fr)
			f.balance[acctKey(kind, id)], f.frozen[acctKey(kind, id)] = b, fr != 0
			return err
		})
	}
	if err == nil {
		err = each(`SELECT kind, account_id, sum(amount) FROM entry WHERE merchant_id = ? GROUP BY kind, account_id`, func(r *sql.Rows) error {
			var kind, id string
			var n int64
			err := r.Scan(&kind, &id, &n)
			f.entries[acctKey(kind, id)] = n
			return err
		})
	}
	if err == nil {
		err = each(`SELECT id, kind, status, subject, action, detail FROM sync_case WHERE merchant_id = ?`, func(r *sql.Rows) error {
			var id, detail string
			var c srvCase
			err := r.Scan(&id, &c.kind, &c.status, &c.subject, &c.action, &detail)
			c.detail = json.RawMessage(detail)
			f.cases[id] = c
			return err
		})
	}
	if err == nil {
		err = each(`SELECT id, body FROM campaign WHERE merchant_id = ?`, func(r *sql.Rows) error {
			var id, body string
			if err := r.Scan(&id, &body); err != nil {
				return err
			}
			var c core.Campaign
			if err := json.Unmarshal([]byte(body), &c); err != nil {
				return fmt.Errorf("campaign %s: %w", id, err)
			}
			f.campaigns[id] = c
			return nil
		})
	}
	if err == nil {
		edits := map[string]string{} // campaign/hlc → device
		err = each(`SELECT device_id, hlc, args FROM log WHERE merchant_id = ? AND name = 'campaign.edit@1'`, func(r *sql.Rows) error {
			var dev, args string
			var hlc int64
			if err := r.Scan(&dev, &hlc, &args); err != nil {
				return err
			}
			var a struct {
				ID string `json:"id"`
			}
			json.Unmarshal([]byte(args), &a)
			key := fmt.Sprintf("%s/%d", a.ID, hlc)
			if other, ok := edits[key]; ok && other != dev {
				f.hlcTies[a.ID] = true
			}
			edits[key] = dev
			return nil
		})
	}
	return f, err
}

type devMember struct {
	wallet, points, walletSum, pointsSum int64
	frozen                               bool
}

type devCase struct{ kind, status, action, subject string }

type devFacts struct {
	maxMID      int64
	outbox      map[int64]string // mid → uuid
	redemptions map[string]string
	doneByCode  map[string]int64
	doneByCamp  map[string]int64
	codeUses    map[string]int64
	codeStatus  map[string]string
	codeBalance map[string]int64
	codeFrozen  map[string]bool
	codeLedger  map[string]int64 // a gift card's ledger sum
	members     map[string]devMember
	cases       map[string]devCase
	repeated    []string // a mutation applied twice, or a ledger entry written twice
}

func (d *simDev) facts() (*devFacts, error) {
	db := d.db.Raw()
	f := &devFacts{outbox: map[int64]string{}, redemptions: map[string]string{}, doneByCode: map[string]int64{},
		doneByCamp: map[string]int64{}, codeUses: map[string]int64{}, codeStatus: map[string]string{},
		codeBalance: map[string]int64{}, codeFrozen: map[string]bool{}, codeLedger: map[string]int64{}, members: map[string]devMember{}, cases: map[string]devCase{}}
	each := func(q string, scan func(r *sql.Rows) error) error {
		rows, err := db.Query(q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err := each(`SELECT mid, uuid FROM outbox ORDER BY mid`, func(r *sql.Rows) error {
		var mid int64
		var u string
		err := r.Scan(&mid, &u)
		f.outbox[mid], f.maxMID = u, max(f.maxMID, mid)
		return err
	})
	if err == nil {
		err = each(`SELECT id, code, campaign_id, status FROM redemption`, func(r *sql.Rows) error {
			var id, code, camp, st string
			err := r.Scan(&id, &code, &camp, &st)
			f.redemptions[id] = st
			if st == core.RedemptionDone {
				f.doneByCode[code]++
				f.doneByCamp[camp]++
			}
			return err
		})
	}
	if err == nil {
		err = each(`SELECT code, uses, status, balance, frozen, COALESCE((SELECT sum(amount) FROM ledger l WHERE l.code = k.code), 0) FROM code k`, func(r *sql.Rows) error {
			var k, st string
			var n, b, sum int64
			var fr bool
			err := r.Scan(&k, &n, &st, &b, &fr, &sum)
			f.codeUses[k], f.codeStatus[k], f.codeBalance[k], f.codeFrozen[k], f.codeLedger[k] = n, st, b, fr, sum
			return err
		})
	}
	if err == nil {
		err = each(`SELECT m.id, m.wallet, m.points, m.frozen,
			COALESCE((SELECT sum(amount) FROM wallet_entry w WHERE w.member_id = m.id), 0),
			COALESCE((SELECT sum(points) FROM points_entry p WHERE p.member_id = m.id), 0) FROM member m`, func(r *sql.Rows) error {
			var id string
			var x devMember
			err := r.Scan(&id, &x.wallet, &x.points, &x.frozen, &x.walletSum, &x.pointsSum)
			f.members[id] = x
			return err
		})
	}
	if err == nil {
		err = each(`SELECT id, kind, status, action, subject FROM sync_case`, func(r *sql.Rows) error {
			var id string
			var c devCase
			err := r.Scan(&id, &c.kind, &c.status, &c.action, &c.subject)
			f.cases[id] = c
			return err
		})
	}
	if err == nil {
		// A remote change is applied once by uuid; the rows it wrote carry the ids the
		// device that made them gave, so a second apply would show as a second row.
		err = each(`SELECT 'wallet entry ' || ref || ' ' || amount FROM wallet_entry GROUP BY member_id, kind, amount, ref, device_id, created_ms HAVING count(*) > 1`, func(r *sql.Rows) error {
			var x string
			err := r.Scan(&x)
			f.repeated = append(f.repeated, x)
			return err
		})
	}
	if err == nil {
		err = each(`SELECT 'points entry ' || ref || ' ' || points FROM points_entry GROUP BY member_id, kind, points, ref, device_id, created_ms HAVING count(*) > 1`, func(r *sql.Rows) error {
			var x string
			err := r.Scan(&x)
			f.repeated = append(f.repeated, x)
			return err
		})
	}
	return f, err
}

// check runs every invariant after healing.
func (s *sim) check() {
	sf, err := s.serverFacts()
	if err != nil {
		s.violate("read the server's database: %v", err)
		return
	}
	// Edits with equal HLCs must converge like any others (ordered by device id):
	// counted, so a run shows the path was taken.
	s.count("campaigns edited with equal HLCs", len(sf.hlcTies))
	all := append(append([]string(nil), s.codes...), s.gifts...)

	// The server's own bookkeeping: one log row per (device, mid), mids 1..last_mid
	// without holes, code uses = redemptions that hold the code, balance = ledger.
	perDev := map[string][]int64{}
	uuids := map[string]bool{}
	for _, l := range sf.log {
		if l.device == wire.ServerDevice {
			continue
		}
		perDev[l.device] = append(perDev[l.device], l.mid)
		if uuids[l.uuid] {
			s.violate("server: mutation %s (%s) is in the log twice", l.uuid, l.name)
		}
		uuids[l.uuid] = true
	}
	for dev, mids := range perDev {
		sort.Slice(mids, func(i, j int) bool { return mids[i] < mids[j] })
		for i, mid := range mids {
			if mid != int64(i+1) {
				s.violate("server: the log of device %s has mids %v, not 1..%d", dev, mids, len(mids))
				break
			}
		}
		if last := sf.lastMID[dev]; last != int64(len(mids)) {
			s.violate("server: device %s has last_mid %d but %d log rows", dev, last, len(mids))
		}
	}
	holding := map[string]int64{}  // code → standing + claims
	standing := map[string]int64{} // code → standing
	var orphans []string
	for _, r := range sf.redemptions {
		switch r.status {
		case "standing":
			standing[r.code]++
			holding[r.code]++
		case "claim":
			holding[r.code]++
			orphans = append(orphans, s.name(r.code))
		}
	}
	sort.Strings(orphans)
	s.count("online claims never matched", len(orphans))
	for _, c := range sf.cases {
		s.count("case "+c.kind, 1)
	}
	for key, b := range sf.balance {
		if b < 0 {
			s.count("negative "+strings.SplitN(key, "/", 2)[0], 1)
		}
	}
	if len(orphans) > 0 {
		s.violate("server: online claims still held after they expired: %v", orphans)
	}
	for _, k := range all {
		if sf.codeUses[k] != holding[k] {
			s.violate("server: code %s has uses %d but %d redemptions hold it", s.name(k), sf.codeUses[k], holding[k])
		}
	}
	for _, k := range s.codes {
		if holding[k] > 1 {
			s.violate("server: single-use code %s is held by %d redemptions", s.name(k), holding[k])
		}
	}
	for _, k := range s.gifts {
		key := acctKey(wire.AccountGiftCard, k)
		if b := sf.codeBalance[k]; b != sf.codeIssued[k]+sf.entries[key] {
			s.violate("server: gift card %s has balance %d, issued %d and its ledger sums to %d", s.name(k), b, sf.codeIssued[k], sf.entries[key])
		}
		if b := sf.codeBalance[k]; b < 0 {
			if !s.hasCase(sf, wire.CaseOverdraft, k) {
				s.violate("server: gift card %s is at %d without an OVERDRAFT case", s.name(k), b)
			}
			s.count("negative gift card", 1)
		}
	}
	for key, b := range sf.balance {
		if strings.HasPrefix(key, wire.AccountGiftCard+"/") {
			continue // a gift card's balance is on its code row; the account row only marks it frozen
		}
		if b != sf.entries[key] {
			s.violate("server: account %s has balance %d, its ledger sums to %d", s.label2(key), b, sf.entries[key])
		}
		if b < 0 && !s.hasCase(sf, wire.CaseOverdraft, strings.SplitN(key, "/", 2)[1]) {
			s.violate("server: account %s is at %d without an OVERDRAFT case", s.label2(key), b)
		}
	}
	for key, n := range sf.entries {
		if _, ok := sf.balance[key]; !ok && n != 0 && !strings.HasPrefix(key, wire.AccountGiftCard+"/") {
			s.violate("server: ledger of %s sums to %d but there is no account", s.label2(key), n)
		}
	}

	// Every extra attempt at a single-use code is a DOUBLE_REDEMPTION case: each
	// redemption the server reversed is the loser of one, and each flagged
	// already_redeemed push names its case.
	losers := map[string]bool{}
	for id, c := range sf.cases {
		if c.kind != wire.CaseDoubleRedemption {
			continue
		}
		var d struct {
			Loser string `json:"loser_redemption_id"`
		}
		json.Unmarshal(c.detail, &d)
		if d.Loser == "" {
			s.violate("server: DOUBLE_REDEMPTION case %s names no loser", id)
			continue
		}
		if losers[d.Loser] {
			s.violate("server: two DOUBLE_REDEMPTION cases for redemption %s", s.name(d.Loser))
		}
		losers[d.Loser] = true
		if r, ok := sf.redemptions[d.Loser]; !ok || r.status == "standing" {
			s.violate("server: the loser %s of case %s is %q, not reversed", s.name(d.Loser), id, r.status)
		}
	}
	for id, r := range sf.redemptions {
		if r.status == "reversed" && !losers[id] {
			s.violate("server: redemption %s of %s was reversed without a DOUBLE_REDEMPTION case", s.name(id), s.name(r.code))
		}
	}
	for _, l := range sf.log {
		if l.status == wire.Flagged && l.reason == "already_redeemed" {
			if c, ok := sf.cases[l.caseID]; !ok || c.kind != wire.CaseDoubleRedemption {
				s.violate("server: flagged push %s/%d names case %q, not a DOUBLE_REDEMPTION", l.device, l.mid, l.caseID)
			}
		}
	}

	// Nothing a person did is lost: every redemption a device committed reached the
	// server, and stands there, was rolled back, or lost to an earlier one (with its case).
	made := make([]string, 0, len(s.made))
	for id := range s.made {
		made = append(made, id)
	}
	sort.Strings(made)
	for _, id := range made {
		if _, ok := sf.redemptions[id]; !ok {
			s.violate("redemption %s never reached the server", s.made[id])
		}
	}

	for _, d := range s.devs {
		s.checkDevice(d, sf, standing)
	}
}

// label2 names an account key for messages.
func (s *sim) label2(key string) string {
	kind, id, _ := strings.Cut(key, "/")
	return kind + " " + s.name(id)
}

func (s *sim) hasCase(sf *srvFacts, kind, subject string) bool {
	for _, c := range sf.cases {
		if c.kind == kind && c.subject == subject {
			return true
		}
	}
	return false
}

func (s *sim) checkDevice(d *simDev, sf *srvFacts, standing map[string]int64) {
	st, err := d.db.SyncState()
	if err != nil {
		s.violate("%s: sync state: %v", d.name, err)
		return
	}
	f, err := d.facts()
	if err != nil {
		s.violate("%s: read the database: %v", d.name, err)
		return
	}
	who := d.name

	// No mutation lost: the outbox drained, and the server holds each of its
	// mutations under the same mid.
	if st.Pending != 0 || st.AckedMID != f.maxMID {
		s.violate("%s: %d mutations pending, acknowledged %d of %d", who, st.Pending, st.AckedMID, f.maxMID)
	}
	if last := sf.lastMID[st.DeviceID]; last != f.maxMID {
		s.violate("%s: the server's last mid is %d, the device wrote %d", who, last, f.maxMID)
	}
	for _, l := range sf.log {
		if l.device == st.DeviceID && f.outbox[l.mid] != l.uuid {
			s.violate("%s: the server's mutation %d is %s (%s), the outbox has %s", who, l.mid, l.uuid, l.name, f.outbox[l.mid])
		}
	}
	if st.Cursors[wire.StreamLog] != sf.seq || st.Cursors[wire.StreamCodes] != sf.seq {
		s.violate("%s: cursors %v, the server is at %d", who, st.Cursors, sf.seq)
	}
	if st.Skipped != 0 {
		s.violate("%s: %d remote mutations skipped as not applicable", who, st.Skipped)
	}

	// At most one effect per mutation: the counters each redemption moves agree with
	// the redemptions, every balance with its ledger.
	for _, x := range f.repeated {
		s.violate("%s: written twice: %s", who, x)
	}
	for _, k := range append(append([]string(nil), s.codes...), s.gifts...) {
		if f.codeUses[k] != f.doneByCode[k] {
			s.violate("%s: code %s has uses %d but %d standing redemptions", who, s.name(k), f.codeUses[k], f.doneByCode[k])
		}
	}
	for _, k := range s.codes {
		if f.doneByCode[k] > 1 {
			s.violate("%s: single-use code %s has %d standing redemptions", who, s.name(k), f.doneByCode[k])
		}
	}
	for _, c := range []*core.Campaign{s.campOff, s.campOn} {
		dc, err := d.db.Campaign(c.ID)
		if err != nil {
			s.violate("%s: campaign %s: %v", who, c.Name, err)
			continue
		}
		if dc.Redeemed != f.doneByCamp[c.ID] {
			s.violate("%s: campaign %s counts %d redeemed, %d redemptions stand", who, c.Name, dc.Redeemed, f.doneByCamp[c.ID])
		}
		sc := sf.campaigns[c.ID]
		if dc.Description != sc.Description || dc.Rules.BudgetCount != sc.Rules.BudgetCount || dc.Rules.RollbackHours != sc.Rules.RollbackHours {
			s.violate("%s: campaign %s is (%q, budget %d, rollback %dh), on the server (%q, budget %d, rollback %dh)", who, c.Name,
				dc.Description, dc.Rules.BudgetCount, dc.Rules.RollbackHours, sc.Description, sc.Rules.BudgetCount, sc.Rules.RollbackHours)
		}
	}
	bad, err := d.db.LedgerMismatches()
	if err != nil {
		s.violate("%s: ledger mismatches: %v", who, err)
	}
	for _, k := range bad {
		// LedgerMismatches also names a card below zero; an overdraft the server
		// accepted with a case is one, and adds up.
		if f.codeBalance[k] < 0 && f.codeBalance[k] == f.codeLedger[k] && devHasCase(f, wire.CaseOverdraft, k) {
			continue
		}
		s.violate("%s: gift card %s: balance %d, its ledger sums to %d", who, s.name(k), f.codeBalance[k], f.codeLedger[k])
	}

	// Converged to the server: codes, standing redemptions, wallets and points, cases.
	for _, k := range s.codes {
		if f.codeUses[k] != standing[k] {
			s.violate("%s: code %s has uses %d, %d redemptions stand on the server", who, s.name(k), f.codeUses[k], standing[k])
		}
		if f.codeStatus[k] != sf.codeStatus[k] {
			s.violate("%s: code %s is %s here, %s on the server", who, s.name(k), f.codeStatus[k], sf.codeStatus[k])
		}
	}
	for _, k := range s.gifts {
		if f.codeUses[k] != standing[k] {
			s.violate("%s: gift card %s has uses %d, %d redemptions stand on the server", who, s.name(k), f.codeUses[k], standing[k])
		}
		if f.codeBalance[k] != f.codeLedger[k] {
			s.violate("%s: gift card %s has balance %d, its ledger sums to %d", who, s.name(k), f.codeBalance[k], f.codeLedger[k])
		}
		switch {
		case f.codeBalance[k] == sf.codeBalance[k]:
		default:
			s.violate("%s: gift card %s is at %d here, %d on the server", who, s.name(k), f.codeBalance[k], sf.codeBalance[k])
		}
		if frozen := sf.codeStatus[k] == "frozen"; f.codeFrozen[k] != frozen {
			s.violate("%s: gift card %s frozen %v here, %v on the server", who, s.name(k), f.codeFrozen[k], frozen)
		}
		if f.codeBalance[k] < 0 && !devHasCase(f, wire.CaseOverdraft, k) {
			s.violate("%s: gift card %s is at %d without an OVERDRAFT case", who, s.name(k), f.codeBalance[k])
		}
	}
	for id, r := range sf.redemptions {
		here, ok := f.redemptions[id]
		switch {
		case r.status == "standing" && here != core.RedemptionDone:
			s.violate("%s: redemption %s of %s stands on the server, here it is %q", who, s.name(id), s.name(r.code), here)
		case r.status != "standing" && r.status != "claim" && ok && here == core.RedemptionDone:
			s.violate("%s: redemption %s of %s is %s on the server, here it stands", who, s.name(id), s.name(r.code), r.status)
		}
	}
	for id, here := range f.redemptions {
		if _, ok := sf.redemptions[id]; !ok && here == core.RedemptionDone {
			s.violate("%s: redemption %s stands here, the server does not know it", who, s.name(id))
		}
	}
	for _, m := range s.members {
		x := f.members[m]
		if x.wallet != x.walletSum || x.points != x.pointsSum {
			s.violate("%s: member %s holds wallet %d / points %d, the ledgers sum to %d / %d", who, s.name(m), x.wallet, x.points, x.walletSum, x.pointsSum)
		}
		if w := sf.balance[acctKey(wire.AccountWallet, m)]; x.wallet != w {
			s.violate("%s: member %s's wallet is %d here, %d on the server", who, s.name(m), x.wallet, w)
		}
		if p := sf.balance[acctKey(wire.AccountPoints, m)]; x.points != p {
			s.violate("%s: member %s has %d points here, %d on the server", who, s.name(m), x.points, p)
		}
		if fr := sf.frozen[acctKey(wire.AccountWallet, m)]; x.frozen != fr {
			s.violate("%s: member %s's wallet frozen %v here, %v on the server", who, s.name(m), x.frozen, fr)
		}
		if x.wallet < 0 && !devHasCase(f, wire.CaseOverdraft, m) {
			s.violate("%s: member %s's wallet is at %d without an OVERDRAFT case", who, s.name(m), x.wallet)
		}
	}
	for id, c := range sf.cases {
		here, ok := f.cases[id]
		if !ok {
			s.violate("%s: the server's %s case %s is missing", who, c.kind, id)
			continue
		}
		if here.status != c.status || here.action != c.action || here.kind != c.kind {
			s.violate("%s: case %s (%s) is %s/%s here, %s/%s on the server", who, id, c.kind, here.status, here.action, c.status, c.action)
		}
	}
	for id := range f.cases {
		if _, ok := sf.cases[id]; !ok {
			s.violate("%s: case %s is unknown to the server", who, id)
		}
	}

	// The audit chain holds.
	if n, brk, err := d.db.VerifyAudit(); err != nil || brk != nil {
		s.violate("%s: audit chain of %d entries broken at %+v (%v)", who, n, brk, err)
	}
}

func devHasCase(f *devFacts, kind, subject string) bool {
	for _, c := range f.cases {
		if c.kind == kind && c.subject == subject {
			return true
		}
	}
	return false
}

package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

const defaultPullLimit = 1000

// read runs fn in one read-only transaction: one snapshot, so a page and the
// counters read with it agree.
func (s *sqlStore) read(fn func(q *sql.Tx) error) error {
	var opts *sql.TxOptions
	if s.pg {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.r.BeginTx(context.Background(), opts)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) Pull(d *Device, req wire.PullRequest, now time.Time) (*wire.PullResponse, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = defaultPullLimit
	}
	limit = min(limit, wire.MaxPullLimit)
	for _, c := range req.Cursors {
		if c.Stream != wire.StreamLog && c.Stream != wire.StreamCodes {
			return nil, errorf(wire.ErrBadRequest, "unknown stream "+c.Stream)
		}
		if c.Seq < 0 {
			return nil, errorf(wire.ErrBadRequest, "a cursor is 0 or more")
		}
	}
	if err := s.sweepClaims(d, now); err != nil {
		return nil, err
	}
	resp := &wire.PullResponse{ServerMS: now.UnixMilli(), Pages: []wire.Page{}}
	err := s.read(func(q *sql.Tx) error {
		var high, logCount, codeCount int64
		err := q.QueryRow(s.bind(`SELECT epoch, seq, log_count, code_count FROM merchant WHERE id = ?`), d.MerchantID).
			Scan(&resp.Epoch, &high, &logCount, &codeCount)
		if errors.Is(err, sql.ErrNoRows) {
			return errorf(wire.ErrUnauthorized, "unknown merchant")
		}
		if err != nil {
			return err
		}
		if req.Epoch != 0 && req.Epoch != resp.Epoch {
			resp.Reset = true
			return nil
		}
		for _, c := range req.Cursors {
			var p *wire.Page
			if c.Stream == wire.StreamLog {
				p, err = s.logPage(q, d, c.Seq, limit)
				p.Total = logCount
			} else {
				p, err = s.codesPage(q, d, c.Seq, limit)
				p.Total = codeCount
			}
			if err != nil {
				return err
			}
			if !p.More && high > p.Next {
				// Every change up to the counter is in this snapshot: the device's
				// own entries past its last page need not be read again.
				p.Next = high
			}
			resp.Pages = append(resp.Pages, *p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *sqlStore) rows(q *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if !s.pg {
		if st := s.stmt("r", query); st != nil {
			return q.Stmt(st).Query(args...)
		}
		defer s.prepare("r", query)
	}
	return q.Query(s.bind(query), args...)
}

func (s *sqlStore) logPage(q *sql.Tx, d *Device, after int64, limit int) (*wire.Page, error) {
	p := &wire.Page{Stream: wire.StreamLog, Changes: []wire.Change{}, Next: after}
	rows, err := s.rows(q, `SELECT seq, device_id, mid, uuid, name, args, hlc, wall_ms, status, reason FROM log
		WHERE merchant_id = ? AND seq > ? AND device_id <> ? ORDER BY seq LIMIT ?`, d.MerchantID, after, d.ID, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		if len(p.Changes) == limit {
			p.More = true
			break
		}
		var c wire.Change
		m := &wire.Mutation{}
		var args string
		if err := rows.Scan(&c.Seq, &c.DeviceID, &m.MID, &m.UUID, &m.Name, &args, &m.HLC, &m.WallMS, &c.Status, &c.Reason); err != nil {
			return nil, err
		}
		m.Args = []byte(args)
		c.Mutation = m
		p.Changes = append(p.Changes, c)
		p.Next = c.Seq
	}
	return p, rows.Err()
}

func (s *sqlStore) codesPage(q *sql.Tx, d *Device, after int64, limit int) (*wire.Page, error) {
	p := &wire.Page{Stream: wire.StreamCodes, Changes: []wire.Change{}, Next: after}
	rows, err := s.rows(q, `SELECT seq, code, campaign_id, batch_id, max_uses, uses, balance, issued, status, valid_from_ms, valid_to_ms, created_ms
		FROM code WHERE merchant_id = ? AND seq > ? ORDER BY seq LIMIT ?`, d.MerchantID, after, limit+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		if len(p.Changes) == limit {
			p.More = true
			break
		}
		var c wire.Change
		k := &wire.Code{}
		if err := rows.Scan(&c.Seq, &k.Code, &k.CampaignID, &k.BatchID, &k.MaxUses, &k.Uses, &k.Balance, &k.Issued, &k.Status,
			&k.ValidFromMS, &k.ValidToMS, &k.CreatedMS); err != nil {
			return nil, err
		}
		c.Code = k
		p.Changes = append(p.Changes, c)
		p.Next = c.Seq
	}
	return p, rows.Err()
}

func (s *sqlStore) UploadCodes(d *Device, up wire.CodesUpload, now time.Time) (*wire.CodesUploaded, error) {
	if len(up.Codes) > wire.MaxCodesUpload {
		return nil, errorf(wire.ErrTooLarge, fmt.Sprintf("at most %d codes per upload", wire.MaxCodesUpload))
	}
	for _, k := range up.Codes {
		if k.Code == "" || len(k.Code) > 200 || k.CampaignID == "" {
			return nil, errorf(wire.ErrBadRequest, "every code needs its text and campaign")
		}
	}
	out := &wire.CodesUploaded{}
	err := s.write(d.MerchantID, d.ID, now, func(t *tx) error {
		out.Inserted = 0
		if err := t.lockMerchant(); err != nil {
			return err
		}
		for _, k := range up.Codes {
			camp, err := t.campaign(k.CampaignID)
			if err != nil {
				return err
			}
			// The campaign, when the server has it, decides uses and face value; a
			// gift card opens with the value it was issued with (imports differ per
			// card). Redemptions the device made already arrive as pushes.
			mu, balance := k.MaxUses, k.Balance
			if k.Issued > 0 {
				balance = k.Issued
			}
			if camp != nil {
				mu = maxUses(&camp.c)
				switch {
				case camp.c.Kind != core.KindGiftCard:
					balance = 0
				case k.Issued <= 0:
					balance = int64(camp.c.FaceValue)
				}
			}
			status := core.CodeActive
			if k.Status == core.CodeVoided {
				status = core.CodeVoided
			}
			batch := k.BatchID
			if batch == "" {
				batch = up.BatchID
			}
			created := k.CreatedMS
			if created == 0 {
				created = t.now
			}
			seq := t.nextSeq()
			n, err := t.affected(`INSERT INTO code(merchant_id, code, campaign_id, batch_id, max_uses, uses, balance, issued, status, valid_from_ms, valid_to_ms, created_ms, seq)
				VALUES (?,?,?,?,?,0,?,?,?,?,?,?,?) ON CONFLICT (merchant_id, code) DO NOTHING`,
				t.merchant, k.Code, k.CampaignID, batch, mu, balance, balance, status, k.ValidFromMS, k.ValidToMS, created, seq)
			if err != nil {
				return err
			}
			if n == 0 {
				t.seq-- // nothing took it
				continue
			}
			out.Inserted++
			t.codesAdded++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// verdict says why a code cannot be redeemed now (or "ok").
func verdict(status string, uses, maxUses, balance, from, to, amount, now int64) string {
	switch {
	case status == core.CodeVoided:
		return "voided"
	case status == "frozen":
		return "frozen"
	case from > now:
		return "not_started"
	case to > 0 && to <= now:
		return "expired"
	case maxUses > 0 && uses >= maxUses:
		return "already_redeemed"
	case amount > balance:
		return "insufficient_balance"
	}
	return "ok"
}

func (s *sqlStore) Check(d *Device, req wire.RedeemRequest, now time.Time) (*wire.RedeemResponse, error) {
	if req.Code == "" {
		return nil, errorf(wire.ErrBadRequest, "a code is required")
	}
	if req.Amount < 0 {
		return nil, errorf(wire.ErrBadRequest, "the amount cannot be negative")
	}
	var status string
	var uses, mu, balance, from, to int64
	err := s.queryRow(`SELECT status, uses, max_uses, balance, valid_from_ms, valid_to_ms FROM code WHERE merchant_id = ? AND code = ?`,
		d.MerchantID, req.Code).Scan(&status, &uses, &mu, &balance, &from, &to)
	if errors.Is(err, sql.ErrNoRows) {
		return &wire.RedeemResponse{Reason: "not_found"}, nil
	}
	if err != nil {
		return nil, err
	}
	why := verdict(status, uses, mu, balance, from, to, req.Amount, now.UnixMilli())
	return &wire.RedeemResponse{OK: why == "ok", Reason: why, Uses: uses, Balance: balance}, nil
}

var errReplay = errors.New("claim exists")

// ClaimTTL is how long an online claim waits for the device's own redemption, pushed
// with the same idempotency key. A claim nothing matches (its answer was lost and the
// till then refused, or the till crashed before committing) would otherwise hold a
// single-use code or a gift card's value for ever. Once released, a redemption pushed
// later counts as a new one, and a collision becomes a DOUBLE_REDEMPTION case.
const ClaimTTL = 15 * time.Minute

// releaseClaims gives back what a code's expired claims hold. Each release is a
// conditional update, so two servers releasing the same claim release it once.
func (t *tx) releaseClaims(code string) (int64, error) {
	return t.release(`SELECT id, code, value FROM redemption WHERE merchant_id = ? AND code = ? AND status = 'claim' AND created_ms < ?`,
		t.merchant, code, t.now-ClaimTTL.Milliseconds())
}

// sweepClaims releases the merchant's expired claims before a pull, so the page
// shows the codes they held as free again. The look is one indexed read; the write
// happens only when there is something to release.
func (s *sqlStore) sweepClaims(d *Device, now time.Time) error {
	var one int
	err := s.queryRow(`SELECT 1 FROM redemption WHERE merchant_id = ? AND status = 'claim' AND created_ms < ? LIMIT 1`,
		d.MerchantID, now.UnixMilli()-ClaimTTL.Milliseconds()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.write(d.MerchantID, d.ID, now, func(t *tx) error {
		_, err := t.releaseExpiredClaims()
		return err
	})
}

// releaseExpiredClaims sweeps a merchant's expired claims (at each push and pull).
func (t *tx) releaseExpiredClaims() (int64, error) {
	return t.release(`SELECT id, code, value FROM redemption WHERE merchant_id = ? AND status = 'claim' AND created_ms < ? ORDER BY created_ms LIMIT 500`,
		t.merchant, t.now-ClaimTTL.Milliseconds())
}

func (t *tx) release(query string, args ...any) (int64, error) {
	type claim struct {
		id, code string
		value    int64
	}
	rows, err := t.query(query, args...)
	if err != nil {
		return 0, err
	}
	var claims []claim
	for rows.Next() {
		var c claim
		if err := rows.Scan(&c.id, &c.code, &c.value); err != nil {
			rows.Close()
			return 0, err
		}
		claims = append(claims, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var released int64
	if len(claims) > 0 {
		// Republishing the code rows needs seqs (lock order: merchant, then code rows).
		if err := t.lockMerchant(); err != nil {
			return 0, err
		}
	}
	for _, c := range claims {
		// The key is cleared so the device's own redemption, if it comes later, is
		// recorded as a redemption of its own rather than matched to nothing.
		n, err := t.affected(`UPDATE redemption SET status = 'expired', idem_key = NULL WHERE merchant_id = ? AND id = ? AND status = 'claim'`,
			t.merchant, c.id)
		if err != nil {
			return released, err
		}
		if n == 0 {
			continue
		}
		if _, err := t.exec(`UPDATE code SET uses = uses - 1, balance = balance + ?, seq = ? WHERE merchant_id = ? AND code = ?`,
			c.value, t.nextSeq(), t.merchant, c.code); err != nil {
			return released, err
		}
		if c.value > 0 {
			if _, err := t.exec(`INSERT INTO entry(merchant_id, id, kind, account_id, amount, device_id, created_ms) VALUES (?,?,?,?,?,?,?)`,
				t.merchant, c.id+".released", wire.AccountGiftCard, c.code, c.value, wire.ServerDevice, t.now); err != nil {
				return released, err
			}
		}
		released++
	}
	return released, nil
}

// Redeem claims a code online: one conditional update decides, the claim row
// remembers the answer under the idempotency key. No log row and no merchant lock,
// so concurrent counters do not queue behind each other.
func (s *sqlStore) Redeem(d *Device, req wire.RedeemRequest, now time.Time) (*wire.RedeemResponse, error) {
	if req.Code == "" {
		return nil, errorf(wire.ErrBadRequest, "a code is required")
	}
	if req.Amount < 0 || req.OrderAmount < 0 {
		return nil, errorf(wire.ErrBadRequest, "amounts cannot be negative")
	}
	key := req.IdemKey
	if key == "" {
		key = core.NewID() // no key: no idempotency
	}
	if s.pg {
		if out, err := s.claimPG(d, req, key, now); out != nil || err != nil {
			return out, err
		}
	}
	return s.redeemTx(d, req, key, now)
}

// redeemTx is the claim in one transaction: SQLite's path (which needs no round
// trips), and PostgreSQL's when its one-statement claim could not decide.
func (s *sqlStore) redeemTx(d *Device, req wire.RedeemRequest, key string, now time.Time) (*wire.RedeemResponse, error) {
	var out *wire.RedeemResponse
	err := s.write(d.MerchantID, d.ID, now, func(t *tx) error {
		out = nil
		var uses, balance int64
		var campaignID string
		take := func() error {
			return t.queryRow(`UPDATE code SET uses = uses + 1, balance = balance - ?
			WHERE merchant_id = ? AND code = ? AND status = 'active' AND (max_uses = 0 OR uses < max_uses) AND balance >= ?
				AND valid_from_ms <= ? AND (valid_to_ms = 0 OR valid_to_ms > ?)
			RETURNING uses, balance, campaign_id`,
				req.Amount, d.MerchantID, req.Code, req.Amount, t.now, t.now).Scan(&uses, &balance, &campaignID)
		}
		err := take()
		if errors.Is(err, sql.ErrNoRows) {
			// A stale claim may be what holds the code: release it and try once more.
			if n, rerr := t.releaseClaims(req.Code); rerr != nil {
				return rerr
			} else if n > 0 {
				err = take()
			}
		}
		if errors.Is(err, sql.ErrNoRows) {
			if prev, err := t.claimAnswer(req.Code, key); prev != nil || err != nil {
				out = prev
				return err
			}
			var status string
			var mu, from, to int64
			err := t.queryRow(`SELECT status, uses, max_uses, balance, valid_from_ms, valid_to_ms FROM code WHERE merchant_id = ? AND code = ?`,
				d.MerchantID, req.Code).Scan(&status, &uses, &mu, &balance, &from, &to)
			if errors.Is(err, sql.ErrNoRows) {
				out = &wire.RedeemResponse{Reason: "not_found"}
				return nil
			}
			if err != nil {
				return err
			}
			out = &wire.RedeemResponse{Reason: verdict(status, uses, mu, balance, from, to, req.Amount, t.now), Uses: uses, Balance: balance}
			if out.Reason == "ok" {
				out.Reason = "already_redeemed" // changed between the two reads
			}
			return nil
		}
		if err != nil {
			return err
		}
		claim := core.NewID()
		n, err := t.affected(`INSERT INTO redemption(merchant_id, id, code, campaign_id, device_id, operator_id, store_id, idem_key,
				order_amount, value, status, uses_after, balance_after, created_ms)
			VALUES (?,?,?,?,?,?,?,?,?,?,'claim',?,?,?) ON CONFLICT DO NOTHING`,
			d.MerchantID, claim, req.Code, campaignID, d.ID, req.OperatorID, req.StoreID, key, req.OrderAmount, req.Amount, uses, balance, t.now)
		if err != nil {
			return err
		}
		if n == 0 {
			return errReplay // the key was claimed before: undo this one
		}
		if req.Amount > 0 {
			if _, err := t.exec(`INSERT INTO entry(merchant_id, id, kind, account_id, amount, device_id, created_ms) VALUES (?,?,?,?,?,?,?)`,
				d.MerchantID, claim, wire.AccountGiftCard, req.Code, -req.Amount, d.ID, t.now); err != nil {
				return err
			}
		}
		out = &wire.RedeemResponse{OK: true, Reason: "ok", Uses: uses, Balance: balance, ClaimID: claim}
		return nil
	})
	if errors.Is(err, errReplay) {
		var prev *wire.RedeemResponse
		err = s.write(d.MerchantID, d.ID, now, func(t *tx) error {
			var err error
			prev, err = t.claimAnswer(req.Code, key)
			return err
		})
		out = prev
	}
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errorf(wire.ErrConflict, "the claim changed at the same time; try again")
	}
	return out, nil
}

// claimSQL is PostgreSQL's online claim as one statement, run in autocommit: the
// conditional use of the code row, and the claim row that remembers the answer. A
// key claimed before takes no use (NOT EXISTS). Two requests with the same key at
// once are decided by the unique index redemption_idem: the later INSERT fails, and
// with it the whole statement, its UPDATE included, so the loser leaves no use taken.
// A gift card's claim adds its ledger entry in the same statement (claimEntrySQL).
const claimSQL = `WITH taken AS (
	UPDATE code SET uses = uses + 1, balance = balance - $4
	WHERE merchant_id = $1 AND code = $2 AND status = 'active' AND (max_uses = 0 OR uses < max_uses) AND balance >= $4
		AND valid_from_ms <= $5 AND (valid_to_ms = 0 OR valid_to_ms > $5)
		AND NOT EXISTS (SELECT 1 FROM redemption WHERE merchant_id = $1 AND code = $2 AND idem_key = $3)
	RETURNING uses, balance, campaign_id
), claim AS (
	INSERT INTO redemption(merchant_id, id, code, campaign_id, device_id, operator_id, store_id, idem_key,
		order_amount, value, status, uses_after, balance_after, created_ms)
	SELECT $1, $6::text, $2, campaign_id, $7::text, $8::text, $9::text, $3, $10::bigint, $4, 'claim', uses, balance, $5 FROM taken
	RETURNING id
)`

const claimEntrySQL = `, gift AS (
	INSERT INTO entry(merchant_id, id, kind, account_id, amount, device_id, created_ms)
	SELECT $1, id, '` + wire.AccountGiftCard + `', $2, -$4, $7::text, $5 FROM claim
)`

const claimAnswerSQL = `
SELECT uses, balance FROM taken`

// refusalSQL reads, in a snapshot taken after the claim statement, what explains a
// refusal: the first answer under the key, the code row, and whether an expired
// claim holds the code.
const refusalSQL = `SELECT p.id, p.uses_after, p.balance_after,
	k.status, k.uses, k.max_uses, k.balance, k.valid_from_ms, k.valid_to_ms,
	EXISTS (SELECT 1 FROM redemption WHERE merchant_id = $1 AND code = $2 AND status = 'claim' AND created_ms < $4)
FROM (SELECT 1) one
LEFT JOIN redemption p ON p.merchant_id = $1 AND p.code = $2 AND p.idem_key = $3
LEFT JOIN code k ON k.merchant_id = $1 AND k.code = $2`

// claimPG is the online claim on PostgreSQL without BEGIN and COMMIT: a success is
// one round trip, a refusal two. It returns nil (and no error) when it cannot
// decide, and redeemTx then does: an expired claim to release, a serialization
// failure, or a code that the refusal read finds free again.
func (s *sqlStore) claimPG(d *Device, req wire.RedeemRequest, key string, now time.Time) (*wire.RedeemResponse, error) {
	ms := now.UnixMilli()
	claim := core.NewID()
	q := claimSQL + claimAnswerSQL
	if req.Amount > 0 {
		q = claimSQL + claimEntrySQL + claimAnswerSQL
	}
	var uses, balance int64
	err := s.w.QueryRow(q, d.MerchantID, req.Code, key, req.Amount, ms, claim, d.ID, req.OperatorID, req.StoreID, req.OrderAmount).
		Scan(&uses, &balance)
	switch {
	case err == nil:
		return &wire.RedeemResponse{OK: true, Reason: "ok", Uses: uses, Balance: balance, ClaimID: claim}, nil
	case retryable(err):
		return nil, nil
	case !errors.Is(err, sql.ErrNoRows) && !isUnique(err):
		return nil, err
	}
	// Refused, or the same key won at the same time (its claim is committed: the
	// unique check waited for it).
	var prevID, status sql.NullString
	var prevUses, prevBalance, kUses, kMax, kBalance, from, to sql.NullInt64
	var stale bool
	err = s.w.QueryRow(refusalSQL, d.MerchantID, req.Code, key, ms-ClaimTTL.Milliseconds()).
		Scan(&prevID, &prevUses, &prevBalance, &status, &kUses, &kMax, &kBalance, &from, &to, &stale)
	switch {
	case err != nil:
		return nil, err
	case stale:
		return nil, nil // redeemTx releases the expired claims and tries again
	case prevID.Valid:
		return &wire.RedeemResponse{OK: true, Reason: "ok", Uses: prevUses.Int64, Balance: prevBalance.Int64, ClaimID: prevID.String}, nil
	case !status.Valid:
		return &wire.RedeemResponse{Reason: "not_found"}, nil
	}
	why := verdict(status.String, kUses.Int64, kMax.Int64, kBalance.Int64, from.Int64, to.Int64, req.Amount, ms)
	if why == "ok" {
		return nil, nil // freed in between (a release or a rollback): try again
	}
	return &wire.RedeemResponse{Reason: why, Uses: kUses.Int64, Balance: kBalance.Int64}, nil
}

// claimAnswer is the first answer given under an idempotency key, if any.
func (t *tx) claimAnswer(code, key string) (*wire.RedeemResponse, error) {
	r := &wire.RedeemResponse{OK: true, Reason: "ok"}
	err := t.queryRow(`SELECT id, uses_after, balance_after FROM redemption WHERE merchant_id = ? AND code = ? AND idem_key = ?`,
		t.merchant, code, key).Scan(&r.ClaimID, &r.Uses, &r.Balance)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ---- allowances ----

const allowanceTTL = 24 * time.Hour

func (s *sqlStore) GrantAllowance(d *Device, req wire.AllowanceRequest, now time.Time) (*wire.Allowance, error) {
	switch req.Kind {
	case wire.AccountWallet, wire.AccountGiftCard, wire.AccountPoints:
	default:
		return nil, errorf(wire.ErrBadRequest, "unknown account kind "+req.Kind)
	}
	if req.AccountID == "" || req.Amount < 0 {
		return nil, errorf(wire.ErrBadRequest, "an allowance needs an account and an amount of 0 or more")
	}
	var out *wire.Allowance
	err := s.write(d.MerchantID, d.ID, now, func(t *tx) error {
		// The account row is locked first, so two devices asking at once cannot
		// both reserve the same money.
		var balance int64
		var frozen bool
		if req.Kind == wire.AccountGiftCard {
			var status string
			err := t.queryRow(`SELECT balance, status FROM code WHERE merchant_id = ? AND code = ?`+t.s.forUpdate,
				d.MerchantID, req.AccountID).Scan(&balance, &status)
			if errors.Is(err, sql.ErrNoRows) {
				return errorf(wire.ErrNotFound, "no gift card "+req.AccountID)
			}
			if err != nil {
				return err
			}
			frozen = status != core.CodeActive
		} else {
			var f int64
			err := t.queryRow(`SELECT balance, frozen FROM account WHERE merchant_id = ? AND kind = ? AND id = ?`+t.s.forUpdate,
				d.MerchantID, req.Kind, req.AccountID).Scan(&balance, &f)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			frozen = f != 0
		}
		var reserved int64
		if err := t.queryRow(`SELECT COALESCE(SUM(granted - spent), 0) FROM allowance
			WHERE merchant_id = ? AND kind = ? AND account_id = ? AND device_id <> ? AND expires_ms > ? AND granted > spent`,
			d.MerchantID, req.Kind, req.AccountID, d.ID, t.now).Scan(&reserved); err != nil {
			return err
		}
		grant := min(req.Amount, balance-reserved)
		if grant < 0 || frozen {
			grant = 0
		}
		out = &wire.Allowance{Kind: req.Kind, AccountID: req.AccountID, Granted: grant, ExpiresMS: t.now + allowanceTTL.Milliseconds()}
		_, err := t.exec(`INSERT INTO allowance(merchant_id, device_id, kind, account_id, granted, spent, expires_ms) VALUES (?,?,?,?,?,0,?)
			ON CONFLICT (merchant_id, device_id, kind, account_id) DO UPDATE SET granted = excluded.granted, spent = 0, expires_ms = excluded.expires_ms`,
			d.MerchantID, d.ID, req.Kind, req.AccountID, grant, out.ExpiresMS)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *sqlStore) Allowances(d *Device, now time.Time) ([]wire.Allowance, error) {
	rows, err := s.query(`SELECT kind, account_id, granted, spent, expires_ms FROM allowance
		WHERE merchant_id = ? AND device_id = ? AND expires_ms > ? AND granted > 0 ORDER BY kind, account_id`, d.MerchantID, d.ID, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.Allowance{}
	for rows.Next() {
		var a wire.Allowance
		if err := rows.Scan(&a.Kind, &a.AccountID, &a.Granted, &a.Spent, &a.ExpiresMS); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ---- cases ----

const caseCols = `id, kind, status, subject, detail, created_ms, resolved_ms, action, resolved_by, note`

func scanCase(sc interface{ Scan(...any) error }) (*wire.Case, error) {
	c := &wire.Case{}
	var detail string
	if err := sc.Scan(&c.ID, &c.Kind, &c.Status, &c.Subject, &detail, &c.CreatedMS, &c.ResolvedMS, &c.Action, &c.ResolvedBy, &c.Note); err != nil {
		return nil, err
	}
	c.Detail = []byte(detail)
	return c, nil
}

// maxCases bounds one listing.
const maxCases = 5000

func (s *sqlStore) Cases(d *Device, status string) ([]wire.Case, error) {
	var rows *sql.Rows
	var err error
	switch status {
	case "", "open", "resolved":
		if status == "" {
			status = "open"
		}
		rows, err = s.query(`SELECT `+caseCols+` FROM sync_case WHERE merchant_id = ? AND status = ? ORDER BY created_ms, id LIMIT ?`,
			d.MerchantID, status, maxCases)
	case "all":
		rows, err = s.query(`SELECT `+caseCols+` FROM sync_case WHERE merchant_id = ? ORDER BY created_ms, id LIMIT ?`, d.MerchantID, maxCases)
	default:
		return nil, errorf(wire.ErrBadRequest, "status is open, resolved or all")
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []wire.Case{}
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

func (s *sqlStore) Resolve(d *Device, id string, req wire.ResolveRequest, now time.Time) (*wire.Case, error) {
	var out *wire.Case
	err := s.write(d.MerchantID, d.ID, now, func(t *tx) error {
		var err error
		out, err = t.resolve(id, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// resolve settles an open case of the transaction's merchant. Everything that can
// refuse is checked before anything is written.
func (t *tx) resolve(id string, req wire.ResolveRequest) (*wire.Case, error) {
	switch req.Action {
	case wire.ActionAccept, wire.ActionReverse, wire.ActionFreeze, wire.ActionCharge, wire.ActionWriteOff:
	default:
		return nil, errorf(wire.ErrBadRequest, "unknown action "+req.Action)
	}
	if id == "" {
		return nil, errorf(wire.ErrNotFound, "no case given")
	}
	if err := t.lockMerchant(); err != nil {
		return nil, err
	}
	c, err := scanCase(t.queryRow(`SELECT `+caseCols+` FROM sync_case WHERE id = ? AND merchant_id = ?`+t.s.forUpdate, id, t.merchant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(wire.ErrNotFound, "no case "+id)
	}
	if err != nil {
		return nil, err
	}
	if c.Status != "open" {
		return nil, errorf(wire.ErrConflict, "case "+id+" is already resolved")
	}
	var detail struct {
		Code      string `json:"code"`
		Kind      string `json:"kind"`
		AccountID string `json:"account_id"`
		Loser     side   `json:"loser"`
	}
	_ = json.Unmarshal(c.Detail, &detail)
	switch req.Action {
	case wire.ActionReverse:
		if c.Kind != wire.CaseDoubleRedemption || detail.Loser.RedemptionID == "" {
			return nil, errorf(wire.ErrBadRequest, "only a double redemption can be reversed")
		}
	case wire.ActionFreeze:
		if (detail.Kind != wire.AccountWallet && detail.Kind != wire.AccountGiftCard) || detail.AccountID == "" {
			return nil, errorf(wire.ErrBadRequest, "this case names no account to freeze")
		}
	}
	switch req.Action {
	case wire.ActionReverse:
		// The later redemption stays undone on every device, and the server's code
		// row is restored from the redemptions that stand, then republished.
		if _, err := t.exec(`UPDATE redemption SET status = 'reversed' WHERE merchant_id = ? AND id = ? AND status = 'standing'`,
			t.merchant, detail.Loser.RedemptionID); err != nil {
			return nil, err
		}
		if _, err := t.exec(`UPDATE code SET uses = (SELECT COUNT(*) FROM redemption r WHERE r.merchant_id = ? AND r.code = ? AND r.status IN ('standing', 'claim')), seq = ?
			WHERE merchant_id = ? AND code = ?`, t.merchant, detail.Code, t.nextSeq(), t.merchant, detail.Code); err != nil {
			return nil, err
		}
		if err := t.serverLog(mRedemptionReverse, map[string]any{"redemption_id": detail.Loser.RedemptionID, "code": detail.Code,
			"reason": "case_resolved", "case_id": c.ID}); err != nil {
			return nil, err
		}
	case wire.ActionFreeze:
		if err := t.freeze(detail.Kind, detail.AccountID, c.ID); err != nil {
			return nil, err
		}
	}
	c.Status, c.ResolvedMS, c.Action, c.ResolvedBy, c.Note = "resolved", t.now, req.Action, req.OperatorID, req.Note
	if _, err := t.exec(`UPDATE sync_case SET status = ?, resolved_ms = ?, action = ?, resolved_by = ?, note = ? WHERE id = ? AND merchant_id = ?`,
		c.Status, c.ResolvedMS, c.Action, c.ResolvedBy, c.Note, c.ID, t.merchant); err != nil {
		return nil, err
	}
	return c, t.serverLog(mCaseResolve, c)
}

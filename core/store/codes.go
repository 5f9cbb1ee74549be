package store

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/imports"
)

// GenerateCodes creates n codes for a campaign as one batch: all of them or none, also
// when the process dies midway (one transaction). progress, if set, is told how many
// codes are written so far.
func (db *DB) GenerateCodes(a *Actor, campaignID string, n int64, progress func(done int64)) (*core.Batch, error) {
	if n <= 0 || n > 10_000_000 {
		return nil, core.Invalid("count", "1–10000000", fmt.Sprint(n), "the number of codes must be 1–10,000,000")
	}
	var batch *core.Batch
	err := db.write(a, func(t *tx) error {
		c, err := t.campaign(campaignID)
		if err != nil {
			return err
		}
		if c.Status == core.StatusArchived {
			return core.Errorf(core.ErrConflict, "campaign %q is archived", c.Name)
		}
		if batch, err = t.generate(c, n, progress); err != nil {
			return err
		}
		return t.journal("codes.generate", "batch", batch.ID, map[string]any{"campaign_id": c.ID, "count": n},
			"codes.generate@1", map[string]any{"batch": batch, "campaign_id": c.ID, "count": n})
	})
	if err != nil {
		return nil, err
	}
	return batch, nil
}

// generate writes n new codes of campaign c as one batch inside the transaction, with
// the campaign's issued count and the day's rollup; GenerateCodes and automatic
// issuing (a campaign with no code left to hand out) share it.
func (t *tx) generate(c *core.Campaign, n int64, progress func(done int64)) (*core.Batch, error) {
	if err := c.Format.CheckGuessOdds(c.Issued + n); err != nil {
		return nil, err
	}
	var sealer *core.Secrets
	var err error
	if c.Kind == core.KindCardKey {
		if sealer, err = t.db.sealer(); err != nil {
			return nil, err
		}
	}
	batch := &core.Batch{ID: core.NewID(), CampaignID: c.ID, Source: "generate", Count: n, Created: t.now}
	if _, err := t.Exec(`INSERT INTO batch(id, campaign_id, source, count, operator_id, created_ms) VALUES (?,?,?,?,?,?)`,
		batch.ID, c.ID, batch.Source, n, t.actor.Operator.ID, t.now); err != nil {
		return nil, err
	}
	ins, err := t.Prepare(`INSERT INTO code(code, campaign_id, batch_id, balance, secret, created_ms) VALUES (?,?,?,?,?,?) ON CONFLICT(code) DO NOTHING`)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	var ledger *sql.Stmt
	if c.Kind == core.KindGiftCard {
		if ledger, err = t.Prepare(`INSERT INTO ledger(id, code, campaign_id, kind, amount, created_ms) VALUES (?,?,?,'issue',?,?)`); err != nil {
			return nil, err
		}
		defer ledger.Close()
	}
	balance := core.Amount(0)
	if c.Kind == core.KindGiftCard {
		balance = c.FaceValue
	}
	gen := c.Format.NewGenerator(rand.Reader)
	pins := core.CodeFormat{Alphabet: "0123456789", Length: 16}.NewGenerator(rand.Reader)
	for done := int64(0); done < n; {
		code, err := gen.Next()
		if err != nil {
			return nil, err
		}
		var secret []byte
		if sealer != nil {
			pin, err := pins.Next()
			if err != nil {
				return nil, err
			}
			secret = sealer.Seal(pin, code)
		}
		res, err := ins.Exec(code, c.ID, batch.ID, balance, secret, t.now)
		if err != nil {
			return nil, err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			continue // taken already: draw again
		}
		if ledger != nil {
			if _, err := ledger.Exec(core.NewID(), code, c.ID, balance, t.now); err != nil {
				return nil, err
			}
		}
		done++
		if progress != nil && done%8192 == 0 {
			progress(done)
		}
	}
	if progress != nil {
		progress(n)
	}
	if _, err := t.Exec(`UPDATE campaign SET issued = issued + ? WHERE id = ?`, n, c.ID); err != nil {
		return nil, err
	}
	if err := t.rollup(c.ID, Rollup{Generated: n}); err != nil {
		return nil, err
	}
	c.Issued += n
	t.campaignsChanged = true // a format may be in use for the first time
	return batch, nil
}

// ImportRow is one code to import, already parsed by the caller.
type ImportRow struct {
	Line    int
	Code    string // normalised
	Secret  string
	Face    core.Amount // gift card balance / card key face value; 0: the campaign's
	ValidTo int64
}

// ImportRejected lists every line that stopped an import; nothing was written.
type ImportRejected struct{ Problems []imports.Problem }

func (e *ImportRejected) Error() string {
	return fmt.Sprintf("import refused: %d problem lines, nothing imported", len(e.Problems))
}

// ImportCodes adds existing codes (card keys bought from a supplier, gift cards from a
// shop platform) as one batch: every row or none.
func (db *DB) ImportCodes(a *Actor, campaignID string, rows []ImportRow, progress func(done int64)) (*core.Batch, error) {
	if len(rows) == 0 {
		return nil, core.Invalid("file", "one code per line or a CSV with a header", "", "the file has no codes")
	}
	var batch *core.Batch
	err := db.write(a, func(t *tx) error {
		c, err := t.campaign(campaignID)
		if err != nil {
			return err
		}
		if c.Status == core.StatusArchived {
			return core.Errorf(core.ErrConflict, "campaign %q is archived", c.Name)
		}
		sealer, err := db.sealer()
		if err != nil {
			return err
		}
		batch = &core.Batch{ID: core.NewID(), CampaignID: c.ID, Source: "import", Count: int64(len(rows)), Created: t.now}
		if _, err := t.Exec(`INSERT INTO batch(id, campaign_id, source, count, operator_id, created_ms) VALUES (?,?,?,?,?,?)`,
			batch.ID, c.ID, batch.Source, batch.Count, a.Operator.ID, t.now); err != nil {
			return err
		}
		ins, err := t.Prepare(`INSERT INTO code(code, campaign_id, batch_id, balance, secret, valid_to_ms, created_ms) VALUES (?,?,?,?,?,?,?) ON CONFLICT(code) DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		var problems []imports.Problem
		for i, r := range rows {
			if c.Kind == core.KindCardKey && r.Secret == "" {
				problems = append(problems, imports.Problem{Line: r.Line, Field: "secret", Reason: "empty", Detail: "a card key needs its secret", Value: r.Code})
				continue
			}
			face := r.Face
			if face == 0 {
				face = c.FaceValue
			}
			balance := core.Amount(0)
			if c.Kind == core.KindGiftCard {
				balance = face
			}
			var secret []byte
			if r.Secret != "" {
				secret = sealer.Seal(r.Secret, r.Code)
			}
			res, err := ins.Exec(r.Code, c.ID, batch.ID, balance, secret, r.ValidTo, t.now)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				problems = append(problems, imports.Problem{Line: r.Line, Field: "code", Reason: "duplicate", Detail: "this code is already in the database", Value: r.Code})
				continue
			}
			if c.Kind == core.KindGiftCard {
				if _, err := t.Exec(`INSERT INTO ledger(id, code, campaign_id, kind, amount, created_ms) VALUES (?,?,?,'issue',?,?)`,
					core.NewID(), r.Code, c.ID, balance, t.now); err != nil {
					return err
				}
			}
			if progress != nil && i%4096 == 0 {
				progress(int64(i))
			}
		}
		if len(problems) > 0 {
			return &ImportRejected{Problems: problems}
		}
		if progress != nil {
			progress(int64(len(rows)))
		}
		if _, err := t.Exec(`UPDATE campaign SET issued = issued + ? WHERE id = ?`, len(rows), c.ID); err != nil {
			return err
		}
		if err := t.rollup(c.ID, Rollup{Generated: int64(len(rows))}); err != nil {
			return err
		}
		return t.journal("codes.import", "batch", batch.ID, map[string]any{"campaign_id": c.ID, "count": len(rows)},
			"codes.import@1", map[string]any{"batch": batch, "campaign_id": c.ID, "count": len(rows)})
	})
	if err != nil {
		return nil, err
	}
	return batch, nil
}

// showPhone opens a code's sealed phone: in full when revealed, masked otherwise, and
// as lockedPhone when the key is locked and it need not be revealed.
func (db *DB) showPhone(code string, sealed []byte, reveal bool) (string, error) {
	if sealed == nil {
		return "", nil
	}
	sealer, err := db.sealer()
	if err != nil {
		if reveal {
			return "", err
		}
		return lockedPhone, nil
	}
	p, err := sealer.Open(sealed, code)
	if err != nil || reveal {
		return p, err
	}
	return core.MaskPhone(p), nil
}

// lockedPhone stands for a phone number that cannot be opened without the key.
const lockedPhone = "***********"

const codeCols = `code, campaign_id, batch_id, status, uses, balance, secret IS NOT NULL, phone, distributed_ms, valid_from_ms, valid_to_ms, created_ms`

// scanCode reads a code row; phone is left sealed in the returned bytes.
func scanCode(row scanner) (*core.Code, []byte, error) {
	var k core.Code
	var phone []byte
	err := row.Scan(&k.Code, &k.CampaignID, &k.BatchID, &k.Status, &k.Uses, &k.Balance, &k.HasSecret, &phone,
		&k.Distributed, &k.ValidFrom, &k.ValidTo, &k.Created)
	return &k, phone, err
}

// CodeFilter narrows a code list.
type CodeFilter struct {
	Campaign string // id
	Batch    string
	Status   string // active | voided | redeemed | unused | distributed
	Limit    int
	Offset   int
}

// CountCodes counts the codes a filter matches.
func (db *DB) CountCodes(f CodeFilter) (int64, error) {
	q, args := codeQuery(`count(*)`, f)
	var n int64
	err := db.r.QueryRow(q, args...).Scan(&n)
	return n, err
}

func codeQuery(cols string, f CodeFilter) (string, []any) {
	q := `SELECT ` + cols + ` FROM code WHERE 1=1`
	var args []any
	if f.Campaign != "" {
		q += ` AND campaign_id = ?`
		args = append(args, f.Campaign)
	}
	if f.Batch != "" {
		q += ` AND batch_id = ?`
		args = append(args, f.Batch)
	}
	switch f.Status {
	case "active", "voided":
		q += ` AND status = ?`
		args = append(args, f.Status)
	case "redeemed":
		q += ` AND uses > 0`
	case "unused":
		q += ` AND uses = 0 AND status = 'active'`
	case "distributed":
		q += ` AND distributed_ms > 0`
	}
	return q, args
}

// EachCode streams the codes a filter matches, in insertion order; phones are masked
// unless reveal is set (the caller has checked the role and audits the reveal).
func (db *DB) EachCode(f CodeFilter, reveal bool, fn func(k *core.Code) error) error {
	q, args := codeQuery(codeCols, f)
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d OFFSET %d`, f.Limit, f.Offset)
	}
	rows, err := db.r.Query(q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		k, phone, err := scanCode(rows)
		if err != nil {
			return err
		}
		if k.Phone, err = db.showPhone(k.Code, phone, reveal); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (t *tx) code(code string) (*core.Code, []byte, error) {
	k, phone, err := scanCode(t.QueryRow(`SELECT `+codeCols+` FROM code WHERE code = ?`, code))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, core.NotFound("code", code)
	}
	return k, phone, err
}

// Distribute hands codes out: to a phone number (stored sealed, indexed by a keyed
// hash, and linked to the active member with that phone) or, with an empty phone,
// marked as handed out or printed. Codes of a campaign valid N days from distribution
// get their window now.
func (db *DB) Distribute(a *Actor, codes []string, phone string) (int, error) {
	if len(codes) == 0 {
		return 0, core.Invalid("code", "one or more codes", "", "no codes to distribute")
	}
	sealer, err := db.sealer()
	if err != nil && phone != "" {
		return 0, err
	}
	var ix []byte
	if phone != "" {
		ix = sealer.Index(phone)
	}
	err = db.write(a, func(t *tx) error {
		memberID := "" // the member the phone leads to, if any
		if phone != "" {
			if memberID, err = db.memberRef(t, phone); core.ErrorCode(err) == core.ErrNotFound || core.ErrorCode(err) == core.ErrConflict {
				memberID, err = "", nil
			}
			if err != nil {
				return err
			}
		}
		perCampaign := map[string]int64{}
		camps := map[string]*core.Campaign{}
		for _, code := range codes {
			k, _, err := t.code(code)
			if err != nil {
				return err
			}
			if k.Status == core.CodeVoided {
				return core.Errorf(core.ErrConflict, "code %s is voided", code)
			}
			if k.Distributed > 0 {
				return core.Errorf(core.ErrConflict, "code %s was already distributed on %s", code, time.UnixMilli(k.Distributed).In(a.Store.Location()).Format("2006-01-02 15:04"))
			}
			c := camps[k.CampaignID]
			if c == nil {
				if c, err = t.campaign(k.CampaignID); err != nil {
					return err
				}
				camps[k.CampaignID] = c
			}
			if err := t.distributeOne(c, k, sealer, phone, ix, memberID); err != nil {
				return err
			}
			perCampaign[k.CampaignID]++
		}
		for id, n := range perCampaign {
			if err := t.rollup(id, Rollup{Distributed: n}); err != nil {
				return err
			}
		}
		to := "handed out"
		if phone != "" {
			to = core.MaskPhone(phone)
		}
		args := map[string]any{"codes": codes, "phone_ix": ix, "phone_sealed": phone != ""}
		if memberID != "" {
			args["member_id"] = memberID
		}
		return t.journal("codes.distribute", "code", codes[0], map[string]any{"count": len(codes), "to": to, "codes": firstN(codes, 20)},
			"codes.distribute@1", args)
	})
	return len(codes), err
}

// distributeOne marks one code handed out (Distribute and automatic issuing share
// it): the phone sealed onto the code (AD = the code), its keyed hash, the member it
// went to (NULL for none), and the window of a campaign valid N days from
// distribution, never past the campaign's own end. k's fields are updated to match.
func (t *tx) distributeOne(c *core.Campaign, k *core.Code, sealer *core.Secrets, phone string, ix []byte, memberID string) error {
	from, to := int64(0), k.ValidTo
	if c.Rules.ValidDays > 0 {
		from = t.now
		to = time.UnixMilli(t.now).In(t.actor.Store.Location()).AddDate(0, 0, c.Rules.ValidDays).UnixMilli()
		if c.Rules.ValidTo > 0 && c.Rules.ValidTo < to {
			to = c.Rules.ValidTo // never past the campaign's own end
		}
	}
	var sealed []byte
	if phone != "" {
		sealed = sealer.Seal(phone, k.Code)
	}
	var member any
	if memberID != "" {
		member = memberID
	}
	if _, err := t.Exec(`UPDATE code SET distributed_ms = ?, phone = ?, phone_ix = ?, member_id = ?, valid_from_ms = ?, valid_to_ms = ? WHERE code = ?`,
		t.now, sealed, ix, member, from, to, k.Code); err != nil {
		return err
	}
	k.Distributed, k.ValidFrom, k.ValidTo = t.now, from, to
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Void takes a code out of use.
func (db *DB) Void(a *Actor, code, reason string) error {
	return db.write(a, func(t *tx) error {
		k, _, err := t.code(code)
		if err != nil {
			return err
		}
		if k.Status == core.CodeVoided {
			return core.Errorf(core.ErrConflict, "code %s is already voided", code)
		}
		if _, err := t.Exec(`UPDATE code SET status = 'voided' WHERE code = ?`, code); err != nil {
			return err
		}
		return t.journal("codes.void", "code", code, map[string]any{"reason": reason}, "codes.void@1", map[string]any{"code": code, "reason": reason})
	})
}

// Reveal returns a card key's secret or a code's phone number in plain text and
// writes an audit entry saying who saw it. The caller has checked the role.
func (db *DB) Reveal(a *Actor, code, what string) (string, error) {
	if what != "secret" && what != "phone" {
		return "", core.Invalid("field", "secret|phone", what, "only a secret or a phone can be revealed")
	}
	sealer, err := db.sealer()
	if err != nil {
		return "", err
	}
	var plain string
	err = db.write(a, func(t *tx) error {
		var sealed []byte
		err := t.QueryRow(`SELECT `+what+` FROM code WHERE code = ?`, code).Scan(&sealed)
		if errors.Is(err, sql.ErrNoRows) {
			return core.NotFound("code", code)
		}
		if err != nil {
			return err
		}
		if sealed == nil {
			return core.Errorf(core.ErrNotFound, "code %s has no %s", code, what)
		}
		if plain, err = sealer.Open(sealed, code); err != nil {
			return err
		}
		return t.audit("codes.reveal", "code", code, map[string]any{"field": what})
	})
	return plain, err
}

// CodesByPhone finds the codes distributed to a phone number through its keyed hash.
func (db *DB) CodesByPhone(phone string) ([]string, error) {
	sealer, err := db.sealer()
	if err != nil {
		return nil, err
	}
	return db.strings(`SELECT code FROM code WHERE phone_ix = ? ORDER BY id`, sealer.Index(phone))
}

// Batches lists a campaign's batches.
func (db *DB) Batches(campaignID string) ([]core.Batch, error) {
	rows, err := db.r.Query(`SELECT id, campaign_id, source, count, created_ms FROM batch WHERE campaign_id = ? ORDER BY created_ms`, campaignID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Batch
	for rows.Next() {
		var b core.Batch
		if err := rows.Scan(&b.ID, &b.CampaignID, &b.Source, &b.Count, &b.Created); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// AuditExport records that codes were exported with phones revealed.
func (db *DB) AuditExport(a *Actor, campaignID, path string, rows int64) error {
	return db.write(a, func(t *tx) error {
		return t.audit("codes.export_revealed", "campaign", campaignID, map[string]any{"file": path, "rows": rows})
	})
}

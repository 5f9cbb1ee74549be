package app

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kameng/kameng/app/export"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/imports"
	"github.com/kameng/kameng/core/store"
)

// CreateCampaign designs a new campaign from a form.
func (a *App) CreateCampaign(in CampaignInput) (*core.Campaign, error) {
	if err := a.require(ActCampaignEdit); err != nil {
		return nil, err
	}
	c := &core.Campaign{Format: core.DefaultCodeFormat(), Currency: "CNY", Rules: core.Rules{UsesPerCode: 1, RollbackHours: 72}}
	if in.Kind == nil {
		return nil, core.Invalid("kind", "amount_off|percent_off|gift_card|card_key", "", "the campaign needs a kind")
	}
	if err := a.apply(in, c); err != nil {
		return nil, err
	}
	if err := a.DB.CreateCampaign(a.Actor, c); err != nil {
		return nil, err
	}
	return c, nil
}

// EditCampaign changes the fields given.
func (a *App) EditCampaign(id string, in CampaignInput) (*core.Campaign, error) {
	if err := a.require(ActCampaignEdit); err != nil {
		return nil, err
	}
	return a.DB.UpdateCampaign(a.Actor, id, func(c *core.Campaign) error { return a.apply(in, c) })
}

// SetCampaignStatus pauses, resumes or archives.
func (a *App) SetCampaignStatus(id string, s core.CampaignStatus) (*core.Campaign, error) {
	if err := a.require(ActCampaignEdit); err != nil {
		return nil, err
	}
	return a.DB.SetCampaignStatus(a.Actor, id, s)
}

// Campaigns lists campaigns.
func (a *App) Campaigns(f store.CampaignFilter) ([]*core.Campaign, error) {
	if err := a.require(ActCampaignView); err != nil {
		return nil, err
	}
	return a.DB.Campaigns(f)
}

// Campaign finds one campaign.
func (a *App) Campaign(id string) (*core.Campaign, error) {
	if err := a.require(ActCampaignView); err != nil {
		return nil, err
	}
	return a.DB.Campaign(id)
}

// GenerateCodes issues n new codes; progress is told how many are written.
func (a *App) GenerateCodes(campaign string, n int64, progress func(int64)) (*core.Batch, error) {
	if err := a.require(ActCodesIssue); err != nil {
		return nil, err
	}
	c, err := a.DB.Campaign(campaign)
	if err != nil {
		return nil, err
	}
	return a.DB.GenerateCodes(a.Actor, c.ID, n, progress)
}

// ImportResult reports an import: the batch, or the lines that stopped it.
type ImportResult struct {
	Batch    *core.Batch       `json:"batch,omitempty"`
	Format   string            `json:"format"`
	Rows     int               `json:"rows"`
	Problems []imports.Problem `json:"problems,omitempty"`
}

// ImportError carries an import's problem lines; nothing was written.
type ImportError struct{ Result *ImportResult }

func (e *ImportError) Error() string {
	return fmt.Sprintf("import refused: %d problem lines, nothing imported", len(e.Result.Problems))
}

// ImportCodes reads a file of card keys or gift cards and imports every line or none.
// format is lines, csv, shop or "" to detect; mapping names CSV columns ("code=卡号,secret=密码").
func (a *App) ImportCodes(campaign, path, format, mapping string, progress func(int64)) (*ImportResult, error) {
	if err := a.require(ActCodesIssue); err != nil {
		return nil, err
	}
	c, err := a.DB.Campaign(campaign)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, core.Invalid("file", "a readable file", path, "cannot open: %v", err)
	}
	defer f.Close()
	if format == "" {
		if format, err = imports.Detect(f); err != nil {
			return nil, core.Invalid("file", "text or CSV", path, "cannot read: %v", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	var res *imports.Result
	switch format {
	case "lines":
		res, err = imports.ParseLines(f)
	case "csv":
		var m imports.Mapping
		if m, err = parseMapping(mapping); err == nil {
			res, err = imports.ParseCSV(f, m)
		}
	case "shop", "shop_giftcard":
		res, err = imports.ParseShopGiftCardCSV(f)
	default:
		return nil, core.Invalid("format", "lines|csv|shop", format, "unknown import format")
	}
	if err != nil {
		return nil, core.Invalid("file", "one card key per line, or CSV with a header", path, "%v", err)
	}
	out := &ImportResult{Format: res.Format, Rows: len(res.Rows), Problems: res.Problems}
	rows := make([]store.ImportRow, 0, len(res.Rows))
	for _, r := range res.Rows {
		row := store.ImportRow{Line: r.Line, Code: store.PlainCode(r.Code), Secret: r.Secret}
		if r.Face != "" {
			face, err := core.ParseAmount("face_value", r.Face)
			if err != nil {
				out.Problems = append(out.Problems, imports.Problem{Line: r.Line, Field: "face", Reason: "bad_format", Detail: err.Error(), Value: r.Face})
				continue
			}
			row.Face = face
		}
		if r.Expires != "" {
			to, err := ParseDate("expires", r.Expires, a.Location(), true)
			if err != nil {
				out.Problems = append(out.Problems, imports.Problem{Line: r.Line, Field: "expires", Reason: "bad_format", Detail: err.Error(), Value: r.Expires})
				continue
			}
			row.ValidTo = to
		}
		rows = append(rows, row)
	}
	if len(out.Problems) > 0 {
		return nil, &ImportError{Result: out}
	}
	b, err := a.DB.ImportCodes(a.Actor, c.ID, rows, progress)
	if rej, ok := err.(*store.ImportRejected); ok {
		out.Problems = rej.Problems
		return nil, &ImportError{Result: out}
	}
	if err != nil {
		return nil, err
	}
	out.Batch = b
	return out, nil
}

func parseMapping(s string) (imports.Mapping, error) {
	var m imports.Mapping
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return m, core.Invalid("map", "code=卡号,secret=密码,face=面值,expires=有效期", s, "each mapping is field=column")
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "code":
			m.Code = v
		case "secret":
			m.Secret = v
		case "face":
			m.Face = v
		case "expires":
			m.Expires = v
		default:
			return m, core.Invalid("map", "code|secret|face|expires", k, "unknown field in mapping")
		}
	}
	return m, nil
}

// CodeRow is a code ready to show or export.
type CodeRow struct {
	core.Code
	Display  string `json:"display"`
	Campaign string `json:"campaign_name,omitempty"`
	Secret   string `json:"secret,omitempty"`
}

// ListCodes returns a page of a campaign's codes.
func (a *App) ListCodes(campaign string, f store.CodeFilter) ([]CodeRow, int64, error) {
	if err := a.require(ActCodesView); err != nil {
		return nil, 0, err
	}
	c, err := a.DB.Campaign(campaign)
	if err != nil {
		return nil, 0, err
	}
	f.Campaign = c.ID
	total, err := a.DB.CountCodes(f)
	if err != nil {
		return nil, 0, err
	}
	var out []CodeRow
	err = a.DB.EachCode(f, false, func(k *core.Code) error {
		out = append(out, CodeRow{Code: *k, Display: c.Format.Display(k.Code)})
		return nil
	})
	return out, total, err
}

// ExportCodes writes a campaign's codes to a CSV or XLSX file. Phones are masked
// unless reveal is set and the role may reveal (the reveal is audited).
func (a *App) ExportCodes(campaign, path string, f store.CodeFilter, reveal bool, progress func(int64)) (int64, error) {
	if err := a.require(ActCodesExport); err != nil {
		return 0, err
	}
	if reveal {
		if err := a.require(ActReveal); err != nil {
			return 0, err
		}
	}
	if _, err := export.FormatFromPath(path); err != nil {
		return 0, core.Invalid("out", "FILE.csv | FILE.xlsx", path, "%v", err)
	}
	c, err := a.DB.Campaign(campaign)
	if err != nil {
		return 0, err
	}
	f.Campaign = c.ID
	l := a.Lang
	header := []string{l.T("col.code"), l.T("col.campaign"), l.T("col.status"), l.T("col.uses"), l.T("col.balance"),
		l.T("col.phone"), l.T("col.distributed"), l.T("col.valid_to")}
	var n int64
	err = writeExport("out", path, c.Name, header, func(w export.Writer) error {
		return a.DB.EachCode(f, reveal, func(k *core.Code) error {
			n++
			if progress != nil && n%8192 == 0 {
				progress(n)
			}
			return w.Row([]string{c.Format.Display(k.Code), c.Name, l.T("status." + k.Status), fmt.Sprint(k.Uses), k.Balance.String(),
				k.Phone, a.FormatTime(k.Distributed), a.FormatTime(k.ValidTo)})
		})
	}, func() error {
		if progress != nil {
			progress(n)
		}
		if reveal { // the file is complete: record who took the phones before it appears
			return a.DB.AuditExport(a.Actor, c.ID, path, n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Distribute hands codes to a phone number, or marks them handed out.
func (a *App) Distribute(codes []string, phone string) (int, error) {
	if err := a.require(ActDistribute); err != nil {
		return 0, err
	}
	if phone != "" {
		p, err := core.NormalizePhone(phone)
		if err != nil {
			return 0, err
		}
		phone = p
	}
	norm := make([]string, 0, len(codes))
	for _, raw := range codes {
		k, err := a.DB.FindCode(raw, false)
		if err != nil {
			return 0, err
		}
		norm = append(norm, k.Code)
	}
	return a.DB.Distribute(a.Actor, norm, phone)
}

// DistributeBatch marks up to n undistributed codes of a campaign as handed out
// (printed cards, a stack given to a partner) and returns them.
func (a *App) DistributeBatch(campaign string, n int) ([]string, error) {
	if err := a.require(ActDistribute); err != nil {
		return nil, err
	}
	c, err := a.DB.Campaign(campaign)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > 1_000_000 {
		return nil, core.Invalid("count", "1–1000000", fmt.Sprint(n), "how many codes to hand out")
	}
	var codes []string
	err = a.DB.EachCode(store.CodeFilter{Campaign: c.ID, Status: "unused"}, false, func(k *core.Code) error {
		if k.Distributed == 0 && len(codes) < n {
			codes = append(codes, k.Code)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 {
		return nil, core.Errorf(core.ErrConflict, "campaign %q has no codes left to hand out", c.Name)
	}
	_, err = a.DB.Distribute(a.Actor, codes, "")
	return codes, err
}

// Void takes a code out of use.
func (a *App) Void(raw, reason string) (string, error) {
	if err := a.require(ActVoid); err != nil {
		return "", err
	}
	k, err := a.DB.FindCode(raw, false)
	if err != nil {
		return "", err
	}
	return k.Code, a.DB.Void(a.Actor, k.Code, reason)
}

// Reveal shows a card key's secret or a code's phone, audited.
func (a *App) Reveal(raw, what string) (string, error) {
	if err := a.require(ActReveal); err != nil {
		return "", err
	}
	k, err := a.DB.FindCode(raw, false)
	if err != nil {
		return "", err
	}
	return a.DB.Reveal(a.Actor, k.Code, what)
}

// ShowCode returns one code with its campaign and redemptions.
func (a *App) ShowCode(raw string) (*CodeRow, []*core.Redemption, error) {
	if err := a.require(ActCodesView); err != nil {
		return nil, nil, err
	}
	k, err := a.DB.FindCode(raw, false)
	if err != nil {
		return nil, nil, err
	}
	c, err := a.DB.Campaign(k.CampaignID)
	if err != nil {
		return nil, nil, err
	}
	rs, err := a.DB.Redemptions(store.RedemptionFilter{Code: k.Code})
	return &CodeRow{Code: *k, Display: c.Format.Display(k.Code), Campaign: c.Name}, rs, err
}

// OrderInput is an order as typed at the till.
type OrderInput struct {
	Amount, Debit, Member, Ref string
}

func (o OrderInput) parse() (core.Order, error) {
	var ord core.Order
	var err error
	if strings.TrimSpace(o.Amount) != "" {
		if ord.Amount, err = core.ParseAmount("order", o.Amount); err != nil {
			return ord, err
		}
	}
	if strings.TrimSpace(o.Debit) != "" {
		if ord.Debit, err = core.ParseAmount("debit", o.Debit); err != nil {
			return ord, err
		}
		if ord.Debit == 0 {
			return ord, core.Invalid("debit", "more than 0", o.Debit, "a debit must be above zero")
		}
	}
	if ord.Amount > 0 && ord.Debit > ord.Amount {
		return ord, core.Invalid("debit", "at most the order amount", o.Debit, "the card cannot be charged more than the order")
	}
	if strings.TrimSpace(o.Member) != "" {
		if ord.Member, err = core.NormalizePhone(o.Member); err != nil {
			return ord, err
		}
	}
	ord.Ref = strings.TrimSpace(o.Ref)
	return ord, nil
}

// Check asks whether a code can be redeemed now.
func (a *App) Check(code string, o OrderInput) (core.Verdict, error) {
	if err := a.require(ActCheck); err != nil {
		return core.Verdict{}, err
	}
	ord, err := o.parse()
	if err != nil {
		return core.Verdict{}, err
	}
	if strings.TrimSpace(code) == "" {
		return core.Verdict{}, core.Invalid("code", "the code on the coupon or card", "", "no code given")
	}
	return a.DB.Check(a.Actor, code, ord)
}

// Redeem uses a code, exactly once per idempotency key.
func (a *App) Redeem(code string, o OrderInput, idemKey string) (*store.RedeemResult, error) {
	if err := a.require(ActRedeem); err != nil {
		return nil, err
	}
	ord, err := o.parse()
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(code) == "" {
		return nil, core.Invalid("code", "the code on the coupon or card", "", "no code given")
	}
	if len(idemKey) > 128 {
		return nil, core.Invalid("key", "up to 128 characters", idemKey[:20]+"…", "idempotency key too long")
	}
	// A registered device asks the server first (see redeemOnline).
	if res, err := a.redeemOnline(code, ord, idemKey); res != nil || err != nil {
		return res, err
	}
	return a.DB.Redeem(a.Actor, code, ord, idemKey)
}

// CashierRollbackWindow is how far back a cashier may undo their own redemption.
const CashierRollbackWindow = 30 * time.Minute

// Rollback undoes a redemption. Owners and managers may undo any within the
// campaign's window; cashiers only their own, within 30 minutes.
func (a *App) Rollback(id, reason string) (*core.Redemption, error) {
	if err := a.require(ActRollback); err != nil {
		return nil, err
	}
	if a.Can(ActRollbackAny) {
		return a.DB.Rollback(a.Actor, id, reason, false, 0)
	}
	return a.DB.Rollback(a.Actor, id, reason, true, CashierRollbackWindow)
}

// Redemptions lists recent redemptions.
func (a *App) Redemptions(f store.RedemptionFilter) ([]*core.Redemption, error) {
	if err := a.require(ActCodesView); err != nil {
		return nil, err
	}
	return a.DB.Redemptions(f)
}

// Report sums the KPIs for a range of days.
func (a *App) Report(from, to, by, storeName, campaign string) ([]store.ReportRow, error) {
	if err := a.require(ActReport); err != nil {
		return nil, err
	}
	now := a.Now().In(a.Location())
	if from == "" {
		from = "-30d"
	}
	if to == "" {
		to = "today"
	}
	f := store.ReportFilter{By: by}
	var err error
	if f.From, err = ParseDay("from", from, now); err != nil {
		return nil, err
	}
	if f.To, err = ParseDay("to", to, now); err != nil {
		return nil, err
	}
	if f.From > f.To {
		return nil, core.Invalid("from", "a day on or before --to", from, "the range ends before it starts")
	}
	if storeName != "" {
		s, err := a.DB.FindStore(storeName)
		if err != nil {
			return nil, err
		}
		f.Store = s.ID
	}
	if campaign != "" {
		c, err := a.DB.Campaign(campaign)
		if err != nil {
			return nil, err
		}
		f.Campaign = c.ID
	}
	return a.DB.Report(f)
}

// AuditResult is the outcome of verifying the chain.
type AuditResult struct {
	Entries int64            `json:"entries"`
	OK      bool             `json:"ok"`
	Break   *core.AuditBreak `json:"break,omitempty"`
}

// VerifyAudit checks the audit hash chain.
func (a *App) VerifyAudit() (*AuditResult, error) {
	if err := a.require(ActAudit); err != nil {
		return nil, err
	}
	n, brk, err := a.DB.VerifyAudit()
	if err != nil {
		return nil, err
	}
	return &AuditResult{Entries: n, OK: brk == nil, Break: brk}, nil
}

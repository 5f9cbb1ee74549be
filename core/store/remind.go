package store

import (
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/kameng/kameng/core"
)

// Expiry reminders (到期提醒): codes handed to a member or a phone that are still
// unused (gift cards: with a balance) and end within a number of days, and points lots
// that expire within them.

// ReminderItem is one code or points lot about to expire, with whom it belongs to.
type ReminderItem struct {
	MemberID   string      `json:"member_id,omitempty"` // "" for a phone that is no member
	Phone      string      `json:"phone"`               // masked unless revealed
	Name       string      `json:"name,omitempty"`      // the member's name
	Consent    bool        `json:"consent"`             // the member agreed to marketing messages
	What       string      `json:"what"`                // the campaign's name, or "points"
	CampaignID string      `json:"campaign_id,omitempty"`
	Kind       string      `json:"kind"`             // the campaign's kind, or "points"
	Amount     core.Amount `json:"amount,omitempty"` // amount off, gift card balance or card key face value
	Points     int64       `json:"points,omitempty"`
	Expires    int64       `json:"expires_ms"`
}

// RemindOptions choose the reminders.
type RemindOptions struct {
	Now    time.Time
	Days   int    // what expires after Now and within this many days
	All    bool   // also holders without marketing consent (and phones that are no member)
	Reveal bool   // full phone numbers; audited once for the whole list
	File   string // where the list goes, for the audit entry
}

// Reminders is the list, and how many items were left out for want of consent.
type Reminders struct {
	Items      []ReminderItem `json:"items"`
	NoConsent  int            `json:"no_consent"`
	Revealed   bool           `json:"revealed"`
	UntilMilli int64          `json:"until_ms"`
}

type remindHolder struct {
	id      string
	phone   string // opened
	name    string
	consent bool
}

// Reminders lists what expires soon, soonest first. Phones are masked unless
// o.Reveal; a reveal is audited once, naming how many phones were shown. The caller
// has checked the role.
func (db *DB) Reminders(a *Actor, o RemindOptions) (*Reminders, error) {
	if o.Days < 0 || o.Days > 3660 {
		return nil, core.Invalid("days", "0 to 3660", "", "reminders look 0 to 3660 days ahead")
	}
	sealer, err := db.sealer()
	if err != nil && o.Reveal {
		return nil, err
	}
	now := o.Now.UnixMilli()
	until := o.Now.AddDate(0, 0, o.Days).UnixMilli()
	out := &Reminders{Items: []ReminderItem{}, Revealed: o.Reveal, UntilMilli: until}
	show := func(p string) string {
		if o.Reveal || p == lockedPhone {
			return p
		}
		return core.MaskPhone(p)
	}
	// open reads a sealed phone or name; a locked key shows phones as lockedPhone.
	open := func(sealed []byte, ad string, locked string) string {
		if sealed == nil {
			return ""
		}
		if sealer == nil {
			return locked
		}
		s, err := sealer.Open(sealed, ad)
		if err != nil {
			return locked
		}
		return s
	}
	holders := map[string]*remindHolder{}
	// holder is the member a code or lot belongs to, following merged records to the
	// one that remains; nil when none remains (anonymised).
	holder := func(id string) (*remindHolder, error) {
		if h, ok := holders[id]; ok {
			return h, nil
		}
		cur, err := db.memberRef(reader{db}, id)
		if core.ErrorCode(err) == core.ErrConflict || core.ErrorCode(err) == core.ErrNotFound {
			holders[id] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var phone, name []byte
		h := &remindHolder{id: cur}
		if err := db.r.QueryRow(`SELECT phone, name, consent FROM member WHERE id = ?`, cur).Scan(&phone, &name, &h.consent); err != nil {
			return nil, err
		}
		h.phone, h.name = open(phone, cur, lockedPhone), open(name, cur, "")
		holders[id] = h
		return h, nil
	}
	add := func(h *remindHolder, codePhone string, it ReminderItem) {
		if h != nil {
			it.MemberID, it.Name, it.Consent = h.id, h.name, h.consent
			if h.phone != "" {
				codePhone = h.phone
			}
		}
		if !it.Consent && !o.All {
			out.NoConsent++
			return
		}
		it.Phone = show(codePhone)
		out.Items = append(out.Items, it)
	}

	// Codes: those with an end of their own in the window, and those that end with a
	// campaign whose end is in it.
	camps, err := db.Campaigns(CampaignFilter{})
	if err != nil {
		return nil, err
	}
	byID := map[string]*core.Campaign{}
	ending := []string{}
	for _, c := range camps {
		byID[c.ID] = c
		if end := c.Rules.ValidTo; end > now && end <= until {
			ending = append(ending, c.ID)
		}
	}
	const codeQ = `SELECT k.code, k.campaign_id, k.balance, k.valid_to_ms, COALESCE(k.member_id, ''), k.phone, k.phone_ix
		FROM code k JOIN campaign c ON c.id = k.campaign_id
		WHERE %s AND k.status = 'active' AND c.status != 'archived'
		AND (CASE c.kind WHEN 'gift_card' THEN k.balance > 0 ELSE k.uses = 0 END)
		AND (k.valid_to_ms > ? AND k.valid_to_ms <= ? OR k.valid_to_ms = 0 AND k.campaign_id IN (SELECT value FROM json_each(?)))`
	for _, who := range []string{"k.member_id IS NOT NULL", "k.member_id IS NULL AND k.phone_ix IS NOT NULL"} {
		rows, err := db.r.Query(fmt.Sprintf(codeQ, who), now, until, jsonString(ending))
		if err != nil {
			return nil, err
		}
		type found struct {
			code, campaign, member string
			balance                core.Amount
			end                    int64
			phone, ix              []byte
		}
		var list []found
		for rows.Next() {
			var f found
			if err := rows.Scan(&f.code, &f.campaign, &f.balance, &f.end, &f.member, &f.phone, &f.ix); err != nil {
				rows.Close()
				return nil, err
			}
			list = append(list, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, f := range list {
			c := byID[f.campaign]
			if c == nil {
				continue
			}
			if f.end == 0 {
				f.end = c.Rules.ValidTo
			}
			it := ReminderItem{What: c.Name, CampaignID: c.ID, Kind: string(c.Kind), Expires: f.end}
			switch c.Kind {
			case core.KindAmountOff:
				it.Amount = c.AmountOff
			case core.KindGiftCard:
				it.Amount = f.balance
			case core.KindCardKey:
				it.Amount = c.FaceValue
			}
			member := f.member
			if member == "" && f.ix != nil {
				if err := db.r.QueryRow(`SELECT id FROM member WHERE phone_ix = ?`, f.ix).Scan(&member); err != nil && !errors.Is(err, sql.ErrNoRows) {
					return nil, err
				}
			}
			var h *remindHolder
			if member != "" {
				if h, err = holder(member); err != nil {
					return nil, err
				}
			}
			add(h, open(f.phone, f.code, lockedPhone), it)
		}
	}

	// Points lots.
	rows, err := db.r.Query(`SELECT member_id, expires_ms, sum(remaining) FROM points_entry
		WHERE remaining > 0 AND expires_ms > ? AND expires_ms <= ? GROUP BY member_id, expires_ms`, now, until)
	if err != nil {
		return nil, err
	}
	type lot struct {
		member string
		end    int64
		points int64
	}
	var lots []lot
	for rows.Next() {
		var l lot
		if err := rows.Scan(&l.member, &l.end, &l.points); err != nil {
			rows.Close()
			return nil, err
		}
		lots = append(lots, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, l := range lots {
		h, err := holder(l.member)
		if err != nil {
			return nil, err
		}
		if h == nil {
			continue
		}
		add(h, "", ReminderItem{What: "points", Kind: "points", Points: l.points, Expires: l.end})
	}

	sort.SliceStable(out.Items, func(i, j int) bool {
		a, b := out.Items[i], out.Items[j]
		if a.Expires != b.Expires {
			return a.Expires < b.Expires
		}
		if a.MemberID != b.MemberID {
			return a.MemberID < b.MemberID
		}
		return a.What < b.What
	})
	if o.Reveal && len(out.Items) > 0 {
		phones := map[string]bool{}
		for _, it := range out.Items {
			phones[it.Phone] = true
		}
		err := db.write(a, func(t *tx) error {
			return t.audit("remind.reveal", "reminders", "", map[string]any{"phones": len(phones), "items": len(out.Items),
				"days": o.Days, "all": o.All, "file": o.File})
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

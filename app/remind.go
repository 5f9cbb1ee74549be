package app

import (
	"strconv"
	"strings"
	"time"

	"github.com/kameng/kameng/app/export"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// Expiry reminders (到期提醒): who holds codes or points that expire soon, and the text
// messages to send them.

func init() {
	addMessages(map[string][2]string{
		"remind.col.member":  {"会员", "Member"},
		"remind.col.name":    {"姓名", "Name"},
		"remind.col.what":    {"内容", "What"},
		"remind.col.amount":  {"金额/积分", "Amount / points"},
		"remind.col.expires": {"到期", "Expires"},
		"remind.col.message": {"短信内容", "Message"},
		"remind.points":      {"积分", "points"},
		"remind.greeting":    {"%s您好：您的%s，请及时使用。", "Hello %s, your %s. Please use them in time."},
		"remind.someone":     {"会员", "customer"},
		"remind.item_code":   {"「%s」%s将于 %s 到期", "%q %swill expire on %s"},
		"remind.item_points": {"%d 积分将于 %s 到期", "%d points will expire on %s"},
		"remind.join":        {"；", "; "},
		"remind.none":        {"%d 天内没有需要提醒的券码或积分", "Nothing expires within %d days"},
		"remind.no_consent":  {"另有 %d 项因会员未同意接收营销信息而未列出（--all 可全部列出）", "%d more items left out: no marketing consent (--all lists them)"},
		"remind.exported":    {"已导出 %d 条短信到 %s", "Exported %d messages to %s"},
	})
}

// RemindInput chooses the reminders: what expires within Days; All also lists holders
// without marketing consent; Reveal shows full phone numbers (audited); File is where
// the messages go, if anywhere.
type RemindInput struct {
	Days   int
	All    bool
	Reveal bool
	File   string
}

// Remind lists codes and points that expire within in.Days.
func (a *App) Remind(in RemindInput) (*store.Reminders, error) {
	if err := a.require(ActMemberView); err != nil {
		return nil, err
	}
	if in.Reveal {
		if err := a.require(ActReveal); err != nil {
			return nil, err
		}
	}
	if in.File != "" {
		if _, err := export.FormatFromPath(in.File); err != nil {
			return nil, core.Invalid("export", "FILE.csv | FILE.xlsx", in.File, "%v", err)
		}
	}
	return a.DB.Reminders(a.Actor, store.RemindOptions{Now: a.Now(), Days: in.Days, All: in.All, Reveal: in.Reveal, File: in.File})
}

// SMS is one text message: to a phone, for a name, what to say.
type SMS struct {
	Phone string `json:"phone"`
	Name  string `json:"name"`
	Text  string `json:"text"`
}

// expiryDay is the last day something is valid (its end is exclusive), in the store's zone.
func (a *App) expiryDay(ms int64) string {
	return time.UnixMilli(ms - 1).In(a.Location()).Format(time.DateOnly)
}

// Messages puts each holder's items into one message in the app's language; the
// same benefit ending the same day is named once, with how many.
func (a *App) Messages(r *store.Reminders) []SMS {
	l := a.Lang
	type line struct {
		key   string
		item  store.ReminderItem
		count int
	}
	var out []SMS
	lines := map[int][]*line{}
	at := map[string]int{}
	for _, it := range r.Items {
		who := it.MemberID + "/" + it.Phone
		i, ok := at[who]
		if !ok {
			i = len(out)
			at[who] = i
			out = append(out, SMS{Phone: it.Phone, Name: it.Name})
		}
		key := it.Kind + "/" + it.What + "/" + strconv.FormatInt(int64(it.Amount), 10) + "/" + a.expiryDay(it.Expires)
		found := false
		for _, ln := range lines[i] {
			if ln.key == key {
				ln.count++
				ln.item.Points += it.Points
				found = true
			}
		}
		if !found {
			lines[i] = append(lines[i], &line{key: key, item: it, count: 1})
		}
	}
	for i := range out {
		var parts []string
		for _, ln := range lines[i] {
			it, day := ln.item, a.expiryDay(ln.item.Expires)
			if it.Kind == "points" {
				parts = append(parts, l.T("remind.item_points", it.Points, day))
				continue
			}
			amount := ""
			if it.Amount > 0 {
				amount = it.Amount.Yuan()
				if l == "zh" {
					amount = "（" + amount + "）"
				}
			}
			if ln.count > 1 {
				amount += "×" + strconv.Itoa(ln.count)
			}
			if l != "zh" && amount != "" {
				amount += " "
			}
			parts = append(parts, l.T("remind.item_code", it.What, amount, day))
		}
		name := out[i].Name
		if name == "" {
			name = l.T("remind.someone")
		}
		out[i].Text = l.T("remind.greeting", name, strings.Join(parts, l.T("remind.join")))
	}
	return out
}

// RemindTable lays the items out, one per line.
func (a *App) RemindTable(r *store.Reminders) ([]string, [][]string) {
	l := a.Lang
	rows := make([][]string, 0, len(r.Items))
	for _, it := range r.Items {
		what, amount := it.What, it.Amount.Yuan()
		if it.Kind == "points" {
			what, amount = l.T("remind.points"), strconv.FormatInt(it.Points, 10)
		}
		rows = append(rows, []string{it.MemberID, it.Phone, it.Name, what, amount, a.expiryDay(it.Expires)})
	}
	return []string{l.T("remind.col.member"), l.T("col.phone"), l.T("remind.col.name"), l.T("remind.col.what"),
		l.T("remind.col.amount"), l.T("remind.col.expires")}, rows
}

// ExportMessages writes the messages for an SMS tool: phone, name, text.
func (a *App) ExportMessages(msgs []SMS, path string) error {
	l := a.Lang
	rows := make([][]string, len(msgs))
	for i, m := range msgs {
		rows[i] = []string{m.Phone, m.Name, m.Text}
	}
	return a.ExportTable(path, "SMS", []string{l.T("col.phone"), l.T("remind.col.name"), l.T("remind.col.message")}, rows)
}

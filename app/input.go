package app

import (
	"strconv"
	"strings"
	"time"

	"github.com/kameng/kameng/core"
)

// ParseDate reads "2026-11-23" or "2026-11-23 10:00" in loc. endOfDay makes a bare date
// mean the end of that day (so --to 2026-12-31 includes the 31st).
func ParseDate(field, s string, loc *time.Location, endOfDay bool) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UnixMilli(), nil
		}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UnixMilli(), nil
	}
	for _, layout := range []string{"2006-01-02", "2006/01/02", "20060102"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			if endOfDay {
				t = t.AddDate(0, 0, 1)
			}
			return t.UnixMilli(), nil
		}
	}
	return 0, core.Invalid(field, "2026-12-31 / 2026-12-31 18:00", s, "not a date")
}

// ParseDay reads a calendar day for reports, "today", or an offset like "-30d".
func ParseDay(field, s string, now time.Time) (string, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	switch {
	case s == "today" || s == "今天":
		return now.Format(time.DateOnly), nil
	case strings.HasPrefix(s, "-") && strings.HasSuffix(s, "d"):
		n, err := strconv.Atoi(s[1 : len(s)-1])
		if err == nil && n >= 0 && n < 100000 {
			return now.AddDate(0, 0, -n).Format(time.DateOnly), nil
		}
	default:
		for _, layout := range []string{"2006-01-02", "2006/01/02", "20060102"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.Format(time.DateOnly), nil
			}
		}
	}
	return "", core.Invalid(field, "2026-11-01 / today / -30d", s, "not a day")
}

var weekdayNames = map[string]int{
	"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	"日": 0, "天": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6,
	"7": 0, "0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6,
}

// ParseWeekdays reads "1-5", "mon,wed,fri", "六,日" (1 = Monday … 7 = Sunday) into a mask.
func ParseWeekdays(s string) (uint8, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" || s == "all" || s == "每天" {
		return 0, nil
	}
	bad := core.Invalid("weekdays", "1-5 / mon,tue / 六,日", s, "not a list of weekdays")
	var mask uint8
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' || r == ' ' || r == '、' }) {
		part = strings.TrimPrefix(strings.TrimPrefix(part, "周"), "星期")
		if lo, hi, ok := strings.Cut(part, "-"); ok {
			a, ok1 := weekdayNames[lo]
			b, ok2 := weekdayNames[hi]
			if !ok1 || !ok2 {
				return 0, bad
			}
			if hi == "7" || hi == "日" || hi == "sun" {
				b = 7
			}
			if a > b {
				return 0, bad
			}
			for d := a; d <= b; d++ {
				mask |= 1 << uint(d%7)
			}
			continue
		}
		d, ok := weekdayNames[part]
		if !ok {
			return 0, bad
		}
		mask |= 1 << uint(d)
	}
	return mask, nil
}

// FormatWeekdays shows a mask as "1-5"-style Monday-first numbers.
func FormatWeekdays(mask uint8) string {
	if mask == 0 || mask == 127 {
		return ""
	}
	var parts []string
	for d := 1; d <= 7; d++ {
		if mask&(1<<uint(d%7)) != 0 {
			parts = append(parts, strconv.Itoa(d))
		}
	}
	return strings.Join(parts, ",")
}

// ParseHours reads "09:00-21:00" (or "22:00-02:00" across midnight) into minutes.
func ParseHours(s string) (from, to int, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return 0, 0, nil
	}
	bad := core.Invalid("hours", "09:00-21:00", s, "not a time range")
	a, b, ok := strings.Cut(strings.ReplaceAll(s, "–", "-"), "-")
	if !ok {
		return 0, 0, bad
	}
	parse := func(x string) (int, bool) {
		t, err := time.Parse("15:04", strings.TrimSpace(x))
		if err != nil {
			if strings.TrimSpace(x) == "24:00" {
				return 1440, true
			}
			return 0, false
		}
		return t.Hour()*60 + t.Minute(), true
	}
	f, ok1 := parse(a)
	t, ok2 := parse(b)
	if !ok1 || !ok2 || f == t {
		return 0, 0, bad
	}
	return f, t, nil
}

// FormatHours shows minutes as "09:00-21:00".
func FormatHours(from, to int) string {
	if from == 0 && to == 0 {
		return ""
	}
	f := func(m int) string { return strconv.Itoa(100 + m/60)[1:] + ":" + strconv.Itoa(100 + m%60)[1:] }
	return f(from) + "-" + f(to)
}

func parseInt(field, s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, core.Invalid(field, strconv.FormatInt(lo, 10)+"–"+strconv.FormatInt(hi, 10), s, "not a whole number in range")
	}
	return n, nil
}

func parseBool(field, s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "y", "on", "是", "允许":
		return true, nil
	case "0", "false", "no", "n", "off", "否", "不允许", "":
		return false, nil
	}
	return false, core.Invalid(field, "yes|no", s, "not yes or no")
}

// CampaignInput is a campaign form as typed: every field a string, nil when not given
// (so an edit changes only what was given). The CLI, TUI and GUI all fill this.
type CampaignInput struct {
	Name, Description, Kind                         *string
	AmountOff, Percent, MaxDiscount, MinSpend, Face *string
	From, To, ValidDays, Stores, Weekdays, Hours    *string
	Uses, PerMember, BudgetCount, BudgetAmount      *string
	RollbackHours, Tiers                            *string
	Offline, OfflineMaxValue, OfflineMaxCount       *string
	OfflineMaxAge                                   *string
	Alphabet, Length, Prefix, Group, Check          *string
}

// apply parses the given fields into c, stopping at the first bad one.
func (a *App) apply(in CampaignInput, c *core.Campaign) error {
	loc := a.Location()
	var err error
	str := func(p *string, dst *string) {
		if p != nil {
			*dst = strings.TrimSpace(*p)
		}
	}
	money := func(p *string, field string, dst *core.Amount) {
		if p != nil && err == nil {
			if strings.TrimSpace(*p) == "" {
				*dst = 0
				return
			}
			*dst, err = core.ParseAmount(field, *p)
		}
	}
	num := func(p *string, field string, lo, hi int64, set func(int64)) {
		if p != nil && err == nil {
			var n int64
			if strings.TrimSpace(*p) == "" {
				set(0)
				return
			}
			if n, err = parseInt(field, *p, lo, hi); err == nil {
				set(n)
			}
		}
	}
	str(in.Name, &c.Name)
	str(in.Description, &c.Description)
	if in.Kind != nil {
		k, e := core.ParseKind(strings.TrimSpace(*in.Kind))
		if e != nil {
			return e
		}
		c.Kind = k
	}
	money(in.AmountOff, "amount_off", &c.AmountOff)
	if in.Percent != nil && err == nil {
		c.PercentOff, err = core.ParsePercent("percent_off", *in.Percent)
	}
	money(in.MaxDiscount, "max_discount", &c.MaxDiscount)
	money(in.MinSpend, "min_spend", &c.MinSpend)
	money(in.Face, "face_value", &c.FaceValue)
	if in.From != nil && err == nil {
		c.Rules.ValidFrom, err = ParseDate("from", *in.From, loc, false)
	}
	if in.To != nil && err == nil {
		c.Rules.ValidTo, err = ParseDate("to", *in.To, loc, true)
	}
	num(in.ValidDays, "valid_days", 0, 3660, func(n int64) { c.Rules.ValidDays = int(n) })
	if in.Stores != nil && err == nil {
		c.Rules.Stores = nil
		for _, s := range strings.FieldsFunc(*in.Stores, func(r rune) bool { return r == ',' || r == '，' }) {
			st, e := a.DB.FindStore(strings.TrimSpace(s))
			if e != nil {
				return e
			}
			c.Rules.Stores = append(c.Rules.Stores, st.ID)
		}
	}
	if in.Weekdays != nil && err == nil {
		c.Rules.Weekdays, err = ParseWeekdays(*in.Weekdays)
	}
	if in.Tiers != nil && err == nil {
		if c.Rules.Tiers, err = a.tierIDs(*in.Tiers); err != nil {
			return err
		}
	}
	if in.Hours != nil && err == nil {
		c.Rules.HoursFrom, c.Rules.HoursTo, err = ParseHours(*in.Hours)
	}
	num(in.Uses, "uses", 1, 1000, func(n int64) { c.Rules.UsesPerCode = int(n) })
	num(in.PerMember, "per_member", 0, 1000, func(n int64) { c.Rules.PerMemberLimit = int(n) })
	num(in.BudgetCount, "budget", 0, 1e12, func(n int64) { c.Rules.BudgetCount = n })
	money(in.BudgetAmount, "budget", &c.Rules.BudgetAmount)
	num(in.RollbackHours, "rollback", 0, 24*366, func(n int64) { c.Rules.RollbackHours = int(n) })
	if in.Offline != nil && err == nil {
		c.Rules.Offline.Allowed, err = parseBool("offline", *in.Offline)
	}
	money(in.OfflineMaxValue, "offline", &c.Rules.Offline.MaxValue)
	num(in.OfflineMaxCount, "offline", 0, 1e6, func(n int64) { c.Rules.Offline.MaxCount = int(n) })
	num(in.OfflineMaxAge, "offline", 0, 60*24*365, func(n int64) { c.Rules.Offline.MaxAgeMins = int(n) })
	if in.Alphabet != nil {
		c.Format.Alphabet = strings.ToUpper(strings.TrimSpace(*in.Alphabet))
	}
	num(in.Length, "length", 1, 64, func(n int64) { c.Format.Length = int(n) })
	if in.Prefix != nil {
		c.Format.Prefix = strings.ToUpper(strings.TrimSpace(*in.Prefix))
	}
	num(in.Group, "group", 0, 16, func(n int64) { c.Format.Group = int(n) })
	if in.Check != nil && err == nil {
		c.Format.Check, err = parseBool("format", *in.Check)
	}
	return err
}

// Ptr is a helper for filling CampaignInput.
func Ptr(s string) *string { return &s }

// tierIDs resolves "银卡,金卡" (tier names or ids) to tier ids; empty means every member
// and non-member alike.
func (a *App) tierIDs(list string) ([]string, error) {
	names := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '，' })
	if len(names) == 0 {
		return nil, nil
	}
	tiers, err := a.DB.Tiers()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		found := ""
		for _, t := range tiers {
			if t.Name == n || t.ID == n {
				found = t.ID
			}
		}
		if found == "" {
			return nil, core.NotFound("tier", n)
		}
		ids = append(ids, found)
	}
	return ids, nil
}

// tierNames shows a campaign's tier limit by name; "" for every customer.
func (a *App) tierNames(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	tiers, _ := a.DB.Tiers()
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		name := id
		for _, t := range tiers {
			if t.ID == id {
				name = t.Name
			}
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

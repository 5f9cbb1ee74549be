package app

import (
	"os"
	"strconv"
	"time"

	"github.com/kameng/kameng/app/export"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// Analytics: funnel, discount cost, repeat purchases, liability, expiry forecast and
// the hour-of-week heatmap. Each use case returns core/store's plain struct; each
// table function lays it out for the terminal and for CSV/XLSX files alike.

func init() {
	addMessages(map[string][2]string{
		"an.col.distributed_rate": {"发放率", "Distributed %"},
		"an.col.redeemed_rate":    {"核销率", "Redeemed %"},
		"an.col.overall_rate":     {"总转化率", "Overall %"},
		"an.col.cost_rate":        {"优惠占订单", "Discount / orders"},
		"an.col.avg_discount":     {"单均优惠", "Avg discount"},
		"an.col.avg_order":        {"单均订单", "Avg order"},
		"an.col.item":             {"项目", "Item"},
		"an.col.count":            {"数量", "Count"},
		"an.col.amount":           {"金额", "Amount"},
		"an.col.ledger":           {"流水合计", "Ledger sum"},
		"an.col.mismatch":         {"差额", "Mismatch"},
		"an.col.month":            {"到期月份", "Month"},
		"an.col.gift_cards":       {"礼品卡", "Gift cards"},
		"an.col.gift_balance":     {"礼品卡余额", "Gift card balance"},
		"an.col.coupons":          {"未用优惠券", "Unused coupons"},
		"an.col.coupon_value":     {"券面额", "Coupon value"},
		"an.col.lots":             {"积分批次", "Points lots"},
		"an.col.points":           {"到期积分", "Points"},
		"an.col.weekday":          {"星期", "Weekday"},
		"an.col.value":            {"数值", "Value"},
		"an.members":              {"有消费的会员", "Members who bought"},
		"an.repeat":               {"复购会员（≥2 天）", "Repeat members (≥2 days)"},
		"an.repeat_rate":          {"复购率", "Repeat rate"},
		"an.orders":               {"订单数", "Orders"},
		"an.amount":               {"消费金额", "Amount"},
		"an.gift_valid":           {"礼品卡余额（有效）", "Gift card balances (valid)"},
		"an.gift_expired":         {"礼品卡余额（已过期）", "Gift card balances (expired)"},
		"an.gift_total":           {"礼品卡余额合计", "Gift card balances, total"},
		"an.wallets":              {"储值余额", "Wallet balances"},
		"an.points":               {"积分余额", "Points outstanding"},
		"an.points_lots":          {"积分批次剩余", "Points left in lots"},
		"an.liability_ok":         {"每项余额均与流水一致", "Every balance equals its ledger"},
		"an.liability_bad":        {"余额与流水不一致：请运行 kameng doctor", "A balance differs from its ledger: run kameng doctor"},
		"an.heatmap_total":        {"合计 %d 笔净核销，单格最多 %d 笔", "%d net redemptions in all, at most %d in one hour"},
		"msg.exported_to":         {"已导出到 %s", "Exported to %s"},
		"wd.0":                    {"周日", "Sun"},
		"wd.1":                    {"周一", "Mon"},
		"wd.2":                    {"周二", "Tue"},
		"wd.3":                    {"周三", "Wed"},
		"wd.4":                    {"周四", "Thu"},
		"wd.5":                    {"周五", "Fri"},
		"wd.6":                    {"周六", "Sat"},
	})
}

// Range is a range of days and the filters of an analytics view, as typed: days as
// 2026-11-01, today or -30d; a store and a campaign by name or id.
type Range struct {
	From, To string
	Store    string
	Campaign string
}

// filter turns a typed range into the store's filter; defFrom and defTo fill the days
// not given.
func (a *App) filter(r Range, defFrom, defTo string) (store.AnalyticsFilter, error) {
	if err := a.require(ActReport); err != nil {
		return store.AnalyticsFilter{}, err
	}
	var f store.AnalyticsFilter
	var err error
	if f.From, f.To, err = a.days(Period{From: r.From, To: r.To}, defFrom, defTo); err != nil {
		return f, err
	}
	if r.Store != "" {
		s, err := a.DB.FindStore(r.Store)
		if err != nil {
			return f, err
		}
		f.Store = s.ID
	}
	if r.Campaign != "" {
		c, err := a.DB.Campaign(r.Campaign)
		if err != nil {
			return f, err
		}
		f.Campaign = c.ID
	}
	return f, nil
}

// Funnel is generated → distributed → redeemed per campaign (default: the last 30 days).
func (a *App) Funnel(r Range) (*store.Funnel, error) {
	f, err := a.filter(r, "-30d", "today")
	if err != nil {
		return nil, err
	}
	return a.DB.Funnel(f)
}

// Cost is the discount given against the orders, by campaign, store or day.
func (a *App) Cost(r Range, by string) (*store.Cost, error) {
	f, err := a.filter(r, "-30d", "today")
	if err != nil {
		return nil, err
	}
	return a.DB.Cost(f, by)
}

// Repeat is the members' repeat-purchase rate (default: the last 90 days).
func (a *App) Repeat(r Range) (*store.Repeat, error) {
	f, err := a.filter(r, "-90d", "today")
	if err != nil {
		return nil, err
	}
	return a.DB.Repeat(f)
}

// Liability is what is owed now: gift cards, wallets and points, checked against
// their ledgers.
func (a *App) Liability() (*store.Liability, error) {
	if err := a.require(ActReport); err != nil {
		return nil, err
	}
	return a.DB.Liability(a.Now())
}

// Forecast is what expires by month (default: from today for a year).
func (a *App) Forecast(r Range) ([]store.ForecastRow, error) {
	year := r.To == ""
	if year {
		r.To = r.From // for the check that the range is in order; a year from the first day follows
	}
	f, err := a.filter(r, "today", "today")
	if err != nil {
		return nil, err
	}
	if year {
		from, _ := time.Parse(time.DateOnly, f.From)
		f.To = from.AddDate(1, 0, -1).Format(time.DateOnly)
	}
	rows, err := a.DB.Forecast(f, a.Location())
	if rows == nil {
		rows = []store.ForecastRow{}
	}
	return rows, err
}

// Heatmap is redemptions by weekday and hour (default: the last 8 weeks).
func (a *App) Heatmap(r Range) (*store.Heatmap, error) {
	f, err := a.filter(r, "-55d", "today")
	if err != nil {
		return nil, err
	}
	return a.DB.Heatmap(f)
}

// ExportTable writes a table to FILE.csv or FILE.xlsx: the whole file or none.
func (a *App) ExportTable(path, sheet string, header []string, rows [][]string) error {
	return writeExport("export", path, sheet, header, func(w export.Writer) error {
		for _, r := range rows {
			if err := w.Row(r); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// writeExport writes a CSV or XLSX file (by path's extension) whole or not at all: the
// rows go to path.part, which replaces path only once fill and then done succeed.
func writeExport(field, path, sheet string, header []string, fill func(w export.Writer) error, done func() error) error {
	format, err := export.FormatFromPath(path)
	if err != nil {
		return core.Invalid(field, "FILE.csv | FILE.xlsx", path, "%v", err)
	}
	tmp := path + ".part"
	file, err := os.Create(tmp)
	if err != nil {
		return core.Invalid(field, "a writable path", path, "cannot create: %v", err)
	}
	defer os.Remove(tmp)
	var w export.Writer
	if format == "xlsx" {
		w = export.NewXLSX(file, sheet)
	} else {
		w = export.NewCSV(file)
	}
	err = w.Header(header)
	if err == nil {
		err = fill(w)
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil && done != nil {
		err = done()
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pct shows basis points as a percentage, or nothing when there was no base.
func pct(bp, base int64) string {
	if base <= 0 {
		return ""
	}
	return core.FormatPercent(bp)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func funnelCells(name string, r store.FunnelRow) []string {
	return []string{name, itoa(r.Generated), itoa(r.Distributed), pct(r.DistributedBP, r.Generated), itoa(r.Redeemed),
		itoa(r.RolledBack), itoa(r.Net), pct(r.RedeemedBP, r.Distributed), pct(r.OverallBP, r.Generated)}
}

// FunnelTable lays a funnel out, with its total.
func (l Lang) FunnelTable(f *store.Funnel) ([]string, [][]string) {
	rows := make([][]string, 0, len(f.Rows)+1)
	for _, r := range f.Rows {
		rows = append(rows, funnelCells(r.Campaign, r))
	}
	rows = append(rows, funnelCells(l.T("msg.total"), f.Total))
	return []string{l.T("col.campaign"), l.T("col.generated"), l.T("col.distrib"), l.T("an.col.distributed_rate"), l.T("col.redeemed"),
		l.T("col.rolled_back"), l.T("col.net"), l.T("an.col.redeemed_rate"), l.T("an.col.overall_rate")}, rows
}

func costCells(name string, r store.CostRow) []string {
	return []string{name, itoa(r.Net), r.OrderAmount.String(), r.Discount.String(), pct(r.CostBP, int64(r.OrderAmount)),
		r.AvgDiscount.String(), r.AvgOrder.String(), r.Value.String()}
}

// CostTable lays the discount cost out, with its total.
func (l Lang) CostTable(c *store.Cost) ([]string, [][]string) {
	first := l.T("col.campaign")
	switch c.By {
	case "store":
		first = l.T("col.store")
	case "day":
		first = l.T("col.day")
	}
	rows := make([][]string, 0, len(c.Rows)+1)
	for _, r := range c.Rows {
		rows = append(rows, costCells(r.Name, r))
	}
	rows = append(rows, costCells(l.T("msg.total"), c.Total))
	return []string{first, l.T("col.net"), l.T("col.order_amount"), l.T("col.discount"), l.T("an.col.cost_rate"),
		l.T("an.col.avg_discount"), l.T("an.col.avg_order"), l.T("col.value_redeem")}, rows
}

// RepeatTable lays the repeat-purchase figures out as label and value.
func (l Lang) RepeatTable(r *store.Repeat) ([]string, [][]string) {
	return []string{l.T("an.col.item"), l.T("an.col.value")}, [][]string{
		{l.T("an.members"), itoa(r.Members)},
		{l.T("an.repeat"), itoa(r.Repeat)},
		{l.T("an.repeat_rate"), pct(r.RateBP, r.Members)},
		{l.T("an.orders"), itoa(r.Orders)},
		{l.T("an.amount"), r.Amount.String()},
	}
}

// LiabilityTable lays what is owed out, each line with its ledger and any mismatch.
func (l Lang) LiabilityTable(v *store.Liability) ([]string, [][]string) {
	g, w, p := v.GiftCards, v.Wallets, v.Points
	return []string{l.T("an.col.item"), l.T("an.col.count"), l.T("an.col.amount"), l.T("an.col.ledger"), l.T("an.col.mismatch")}, [][]string{
		{l.T("an.gift_valid"), itoa(g.Valid.Count), g.Valid.Amount.String(), "", ""},
		{l.T("an.gift_expired"), itoa(g.Expired.Count), g.Expired.Amount.String(), "", ""},
		{l.T("an.gift_total"), itoa(g.Valid.Count + g.Expired.Count), g.Balance.String(), g.Ledger.String(), g.Mismatch.String()},
		{l.T("an.wallets"), itoa(w.Members), w.Balance.String(), w.Ledger.String(), w.Mismatch.String()},
		{l.T("an.points"), itoa(p.Members), itoa(p.Points), itoa(p.Ledger), itoa(p.Mismatch)},
		{l.T("an.points_lots"), "", itoa(p.Lots), "", ""},
	}
}

// ForecastTable lays the expiry forecast out by month.
func (l Lang) ForecastTable(rows []store.ForecastRow) ([]string, [][]string) {
	out := make([][]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, []string{r.Month, itoa(r.GiftCards), r.GiftCardBalance.String(), itoa(r.Coupons), r.CouponValue.String(),
			itoa(r.PointsLots), itoa(r.Points)})
	}
	return []string{l.T("an.col.month"), l.T("an.col.gift_cards"), l.T("an.col.gift_balance"), l.T("an.col.coupons"),
		l.T("an.col.coupon_value"), l.T("an.col.lots"), l.T("an.col.points")}, out
}

// HeatmapTable lays the heatmap out Monday first, one column per hour.
func (l Lang) HeatmapTable(h *store.Heatmap) ([]string, [][]string) {
	header := []string{l.T("an.col.weekday")}
	for hour := range 24 {
		header = append(header, strconv.Itoa(hour))
	}
	rows := make([][]string, 0, 7)
	for i := range 7 {
		wd := (i + 1) % 7
		row := []string{l.T("wd." + strconv.Itoa(wd))}
		for _, n := range h.Cells[wd] {
			row = append(row, itoa(n))
		}
		rows = append(rows, row)
	}
	return header, rows
}

package store

import (
	"math/big"
	"sort"
	"time"

	"github.com/kameng/kameng/core"
)

// Analytics for the dashboards: every figure is read from a rollup or from a cached
// balance, never by scanning redemptions, and comes back as a plain struct.

// AnalyticsFilter chooses the days (YYYY-MM-DD, inclusive, in each store's zone) and,
// for the figures that have them, one store and one campaign (ids).
type AnalyticsFilter struct {
	From, To string
	Store    string
	Campaign string
}

// RateBP is n of base in basis points (10000 = 100%), rounded down; 0 when base is 0.
func RateBP(n, base int64) int64 {
	if base <= 0 {
		return 0
	}
	r := new(big.Int).Mul(big.NewInt(n), big.NewInt(10000))
	return r.Quo(r, big.NewInt(base)).Int64()
}

func (f AnalyticsFilter) report(by string) ReportFilter {
	return ReportFilter{From: f.From, To: f.To, By: by, Store: f.Store, Campaign: f.Campaign}
}

// FunnelRow is one campaign's way from generated to redeemed codes. Redeemed counts
// redemptions, so codes used more than once (次卡) can take a rate past 100%.
type FunnelRow struct {
	CampaignID    string `json:"campaign_id"`
	Campaign      string `json:"campaign"`
	Generated     int64  `json:"generated"`
	Distributed   int64  `json:"distributed"`
	Redeemed      int64  `json:"redeemed"`
	RolledBack    int64  `json:"rolled_back"`
	Net           int64  `json:"net_redeemed"`
	DistributedBP int64  `json:"distributed_bp"` // distributed / generated
	RedeemedBP    int64  `json:"redeemed_bp"`    // net redeemed / distributed
	OverallBP     int64  `json:"overall_bp"`     // net redeemed / generated
}

func (r *FunnelRow) rates() {
	r.Net = r.Redeemed - r.RolledBack
	r.DistributedBP = RateBP(r.Distributed, r.Generated)
	r.RedeemedBP = RateBP(r.Net, r.Distributed)
	r.OverallBP = RateBP(r.Net, r.Generated)
}

// Funnel is generated → distributed → redeemed per campaign, with the rates between.
type Funnel struct {
	Rows  []FunnelRow `json:"rows"`
	Total FunnelRow   `json:"total"`
}

// Funnel sums the rollup per campaign over the filter's days (and store).
func (db *DB) Funnel(f AnalyticsFilter) (*Funnel, error) {
	rows, err := db.Report(f.report("campaign"))
	if err != nil {
		return nil, err
	}
	out := &Funnel{Rows: []FunnelRow{}}
	for _, r := range rows {
		fr := FunnelRow{CampaignID: r.Key, Campaign: r.Name, Generated: r.Generated, Distributed: r.Distributed,
			Redeemed: r.Redeemed, RolledBack: r.RolledBack}
		fr.rates()
		out.Rows = append(out.Rows, fr)
		t := &out.Total
		t.Generated += fr.Generated
		t.Distributed += fr.Distributed
		t.Redeemed += fr.Redeemed
		t.RolledBack += fr.RolledBack
	}
	out.Total.rates()
	return out, nil
}

// CostRow is what the discounts of a day, store or campaign cost against the orders
// they came with.
type CostRow struct {
	Key         string      `json:"key"`
	Name        string      `json:"name"`
	Net         int64       `json:"net_redeemed"`
	OrderAmount core.Amount `json:"order_amount"`
	Discount    core.Amount `json:"discount"`
	Value       core.Amount `json:"value"`   // taken from gift cards or delivered as card keys: prepaid, no cost
	CostBP      int64       `json:"cost_bp"` // discount / order amount
	AvgDiscount core.Amount `json:"avg_discount"`
	AvgOrder    core.Amount `json:"avg_order"`
}

func (r *CostRow) rates() {
	r.CostBP = RateBP(int64(r.Discount), int64(r.OrderAmount))
	r.AvgDiscount, r.AvgOrder = 0, 0
	if r.Net > 0 {
		r.AvgDiscount = r.Discount / core.Amount(r.Net)
		r.AvgOrder = r.OrderAmount / core.Amount(r.Net)
	}
}

// Cost is the discount cost grouped by day, store or campaign, with the total.
type Cost struct {
	By    string    `json:"by"`
	Rows  []CostRow `json:"rows"`
	Total CostRow   `json:"total"`
}

// Cost sums discounts and order amounts (net of rollbacks) from the rollup.
func (db *DB) Cost(f AnalyticsFilter, by string) (*Cost, error) {
	if by == "" {
		by = "campaign"
	}
	rows, err := db.Report(f.report(by))
	if err != nil {
		return nil, err
	}
	out := &Cost{By: by, Rows: []CostRow{}, Total: CostRow{Key: "total", Name: "total"}}
	for _, r := range rows {
		c := CostRow{Key: r.Key, Name: r.Name, Net: r.Net, OrderAmount: r.OrderAmount, Discount: r.Discount, Value: r.Value}
		c.rates()
		out.Rows = append(out.Rows, c)
		t := &out.Total
		t.Net += c.Net
		t.OrderAmount += c.OrderAmount
		t.Discount += c.Discount
		t.Value += c.Value
	}
	out.Total.rates()
	return out, nil
}

// Repeat is the repeat-purchase rate of members over a range of days: of the members
// who bought on at least one day, those who bought on two or more distinct days.
type Repeat struct {
	Members int64       `json:"members"`
	Repeat  int64       `json:"repeat"`
	RateBP  int64       `json:"rate_bp"`
	Orders  int64       `json:"orders"`
	Amount  core.Amount `json:"amount"`
}

// Repeat reads the member visit rollup (member_visit) over the filter's days and store.
func (db *DB) Repeat(f AnalyticsFilter) (*Repeat, error) {
	q := `SELECT count(*), COALESCE(sum(days >= 2), 0), COALESCE(sum(orders), 0), COALESCE(sum(amount), 0) FROM
		(SELECT member_id, count(DISTINCT day) days, sum(orders) orders, sum(amount) amount FROM member_visit
		 WHERE day >= ? AND day <= ?`
	args := []any{f.From, f.To}
	if f.Store != "" {
		q += ` AND store_id = ?`
		args = append(args, f.Store)
	}
	q += ` GROUP BY member_id)`
	var r Repeat
	if err := db.r.QueryRow(q, args...).Scan(&r.Members, &r.Repeat, &r.Orders, &r.Amount); err != nil {
		return nil, err
	}
	r.RateBP = RateBP(r.Repeat, r.Members)
	return &r, nil
}

// Outstanding is a count and an amount owed.
type Outstanding struct {
	Count  int64       `json:"count"`
	Amount core.Amount `json:"amount"`
}

// GiftCardLiability is the unredeemed balance of active gift cards.
type GiftCardLiability struct {
	Valid    Outstanding `json:"valid"`
	Expired  Outstanding `json:"expired"` // past their end: owed until written off
	Balance  core.Amount `json:"balance"` // valid + expired: the cached balances
	Ledger   core.Amount `json:"ledger"`  // the same cards' ledger sum
	Mismatch core.Amount `json:"mismatch"`
}

// WalletLiability is the stored value members hold.
type WalletLiability struct {
	Members  int64       `json:"members"` // with a balance other than 0
	Balance  core.Amount `json:"balance"` // sum of member.wallet
	Ledger   core.Amount `json:"ledger"`  // sum of wallet_entry.amount
	Mismatch core.Amount `json:"mismatch"`
}

// PointsLiability is the points members hold.
type PointsLiability struct {
	Members  int64 `json:"members"` // with points other than 0
	Points   int64 `json:"points"`  // sum of member.points
	Ledger   int64 `json:"ledger"`  // sum of points_entry.points
	Lots     int64 `json:"lots"`    // points left in lots (what expiry will take)
	Mismatch int64 `json:"mismatch"`
}

// Liability is what the merchant owes its customers at a moment, each figure checked
// against the ledger it is the sum of.
type Liability struct {
	At        int64             `json:"at_ms"`
	GiftCards GiftCardLiability `json:"gift_cards"`
	Wallets   WalletLiability   `json:"wallets"`
	Points    PointsLiability   `json:"points"`
	OK        bool              `json:"ok"` // every cached figure equals its ledger
}

// Liability reads outstanding gift-card balances (valid and expired at now), wallet
// balances and points, and cross-checks each against its ledger.
func (db *DB) Liability(now time.Time) (*Liability, error) {
	ms := now.UnixMilli()
	l := &Liability{At: ms}
	ends, err := db.campaignEnds(core.KindGiftCard)
	if err != nil {
		return nil, err
	}
	rows, err := db.r.Query(`SELECT k.campaign_id, k.valid_to_ms = 0, k.valid_to_ms > 0 AND k.valid_to_ms <= ?, count(*), sum(k.balance)
		FROM code k JOIN campaign c ON c.id = k.campaign_id AND c.kind = 'gift_card'
		WHERE k.status = 'active' AND k.balance != 0 GROUP BY 1, 2, 3`, ms)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var open, expired bool
		var o Outstanding
		if err := rows.Scan(&id, &open, &expired, &o.Count, &o.Amount); err != nil {
			return nil, err
		}
		if open { // no end of its own: the campaign's
			end := ends[id]
			expired = end > 0 && end <= ms
		}
		g := &l.GiftCards.Valid
		if expired {
			g = &l.GiftCards.Expired
		}
		g.Count += o.Count
		g.Amount += o.Amount
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	g := &l.GiftCards
	g.Balance = g.Valid.Amount + g.Expired.Amount
	if err := db.r.QueryRow(`SELECT COALESCE(sum(l.amount), 0) FROM ledger l JOIN code k ON k.code = l.code
		JOIN campaign c ON c.id = k.campaign_id AND c.kind = 'gift_card' WHERE k.status = 'active'`).Scan(&g.Ledger); err != nil {
		return nil, err
	}
	g.Mismatch = g.Balance - g.Ledger
	w := &l.Wallets
	if err := db.r.QueryRow(`SELECT count(*) FILTER (WHERE wallet != 0), COALESCE(sum(wallet), 0),
		(SELECT COALESCE(sum(amount), 0) FROM wallet_entry) FROM member`).Scan(&w.Members, &w.Balance, &w.Ledger); err != nil {
		return nil, err
	}
	w.Mismatch = w.Balance - w.Ledger
	p := &l.Points
	if err := db.r.QueryRow(`SELECT count(*) FILTER (WHERE points != 0), COALESCE(sum(points), 0),
		(SELECT COALESCE(sum(points), 0) FROM points_entry), (SELECT COALESCE(sum(remaining), 0) FROM points_entry WHERE remaining > 0)
		FROM member`).Scan(&p.Members, &p.Points, &p.Ledger, &p.Lots); err != nil {
		return nil, err
	}
	p.Mismatch = p.Points - p.Ledger
	l.OK = g.Mismatch == 0 && w.Mismatch == 0 && p.Mismatch == 0
	return l, nil
}

// campaignEnds maps the campaigns of a kind to their own end (rules' valid_to; 0 none).
func (db *DB) campaignEnds(kinds ...core.Kind) (map[string]int64, error) {
	out := map[string]int64{}
	for _, k := range kinds {
		cs, err := db.Campaigns(CampaignFilter{Kind: k})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out[c.ID] = c.Rules.ValidTo
		}
	}
	return out, nil
}

// ForecastRow is what expires in one month (in the given zone): the month of the last
// moment it can be used.
type ForecastRow struct {
	Month           string      `json:"month"` // YYYY-MM
	GiftCards       int64       `json:"gift_cards"`
	GiftCardBalance core.Amount `json:"gift_card_balance"`
	Coupons         int64       `json:"coupons"`      // unused coupons (amount and percent off)
	CouponValue     core.Amount `json:"coupon_value"` // their face value where fixed (amount off)
	PointsLots      int64       `json:"points_lots"`
	Points          int64       `json:"points"`
}

// quarterHour buckets instants for grouping in SQL: every zone's offset is a multiple
// of 15 minutes, so a bucket lies within one local day (and month) of any zone.
const quarterHour = 15 * 60 * 1000

// Forecast lists, by the month they expire within the filter's days (in loc), the
// balances of active gift cards, the unused coupons and the points left in lots. The
// filter's campaign, when set, narrows the codes (and leaves points out).
func (db *DB) Forecast(f AnalyticsFilter, loc *time.Location) ([]ForecastRow, error) {
	from, err := time.ParseInLocation(time.DateOnly, f.From, loc)
	if err != nil {
		return nil, core.Invalid("from", "YYYY-MM-DD", f.From, "not a day")
	}
	to, err := time.ParseInLocation(time.DateOnly, f.To, loc)
	if err != nil {
		return nil, core.Invalid("to", "YYYY-MM-DD", f.To, "not a day")
	}
	// Ends are exclusive: what can be used until the last moment of the range ends at hi.
	lo, hi := from.UnixMilli(), to.AddDate(0, 0, 1).UnixMilli()
	ends, err := db.campaignEnds(core.KindGiftCard, core.KindAmountOff, core.KindPercentOff)
	if err != nil {
		return nil, err
	}
	months := map[string]*ForecastRow{}
	row := func(end int64) *ForecastRow {
		m := time.UnixMilli(end - 1).In(loc).Format("2006-01")
		r := months[m]
		if r == nil {
			r = &ForecastRow{Month: m}
			months[m] = r
		}
		return r
	}
	// Codes with an end of their own, by the quarter hour of their last moment, and codes
	// that end with their campaign.
	open := []string{}
	for id, end := range ends {
		if end > lo && end <= hi {
			open = append(open, id)
		}
	}
	q := `SELECT k.campaign_id, c.kind, c.amount_off, CASE k.valid_to_ms WHEN 0 THEN -1 ELSE (k.valid_to_ms - 1) / ? END, count(*), sum(k.balance)
		FROM code k JOIN campaign c ON c.id = k.campaign_id
		WHERE k.status = 'active' AND (c.kind = 'gift_card' AND k.balance > 0 OR c.kind IN ('amount_off', 'percent_off') AND k.uses = 0)
		AND (k.valid_to_ms > ? AND k.valid_to_ms <= ? OR k.valid_to_ms = 0 AND c.id IN (SELECT value FROM json_each(?)))`
	args := []any{quarterHour, lo, hi, jsonString(open)}
	if f.Campaign != "" {
		q += ` AND k.campaign_id = ?`
		args = append(args, f.Campaign)
	}
	rows, err := db.r.Query(q+` GROUP BY 1, 4`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var kind core.Kind
		var off, balance core.Amount
		var b, n int64
		if err := rows.Scan(&id, &kind, &off, &b, &n, &balance); err != nil {
			return nil, err
		}
		end := b*quarterHour + 1
		if b < 0 { // no end of its own (valid_to_ms 0): the campaign's
			end = ends[id]
		}
		r := row(end)
		if kind == core.KindGiftCard {
			r.GiftCards += n
			r.GiftCardBalance += balance
		} else {
			r.Coupons += n
			if kind == core.KindAmountOff {
				r.CouponValue += off * core.Amount(n)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if f.Campaign == "" {
		prows, err := db.r.Query(`SELECT (expires_ms - 1) / ?, count(*), sum(remaining) FROM points_entry
			WHERE remaining > 0 AND expires_ms > ? AND expires_ms <= ? GROUP BY 1`, quarterHour, lo, hi)
		if err != nil {
			return nil, err
		}
		defer prows.Close()
		for prows.Next() {
			var b, n, pts int64
			if err := prows.Scan(&b, &n, &pts); err != nil {
				return nil, err
			}
			r := row(b*quarterHour + 1)
			r.PointsLots += n
			r.Points += pts
		}
		if err := prows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]ForecastRow, 0, len(months))
	for _, r := range months {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Month < out[j].Month })
	return out, nil
}

// Heatmap counts redemptions (net of rollbacks) by weekday and hour in the store's zone.
type Heatmap struct {
	Cells [7][24]int64 `json:"cells"` // [weekday, 0 = Sunday][hour]
	Total int64        `json:"total"`
	Max   int64        `json:"max"`
}

// Heatmap sums the hour rollup over the filter's days (and store).
func (db *DB) Heatmap(f AnalyticsFilter) (*Heatmap, error) {
	q := `SELECT day, hour, sum(redeemed) FROM rollup_hour WHERE day >= ? AND day <= ?`
	args := []any{f.From, f.To}
	if f.Store != "" {
		q += ` AND store_id = ?`
		args = append(args, f.Store)
	}
	rows, err := db.r.Query(q+` GROUP BY day, hour`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	h := &Heatmap{}
	for rows.Next() {
		var day string
		var hour int
		var n int64
		if err := rows.Scan(&day, &hour, &n); err != nil {
			return nil, err
		}
		d, err := time.Parse(time.DateOnly, day)
		if err != nil || hour < 0 || hour > 23 {
			return nil, core.Errorf(core.ErrInternal, "bad hour rollup row %s %d", day, hour)
		}
		h.Cells[d.Weekday()][hour] += n
		h.Total += n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, row := range h.Cells {
		for _, n := range row {
			h.Max = max(h.Max, n)
		}
	}
	return h, nil
}

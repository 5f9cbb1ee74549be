package core

import (
	"math/big"
	"sort"
	"strings"
	"time"
)

// Member status values.
const (
	MemberActive     = "active"
	MemberMerged     = "merged"     // folded into another record; history kept
	MemberAnonymised = "anonymised" // personal data erased on request; ledger totals kept
)

// Member is a customer known by phone (会员). Personal fields are sealed at rest.
type Member struct {
	ID         string   `json:"id"`
	Phone      string   `json:"phone,omitempty"` // masked unless revealed
	Name       string   `json:"name,omitempty"`
	Birthday   string   `json:"birthday,omitempty"` // YYYY-MM-DD or --MM-DD
	BirthMonth int      `json:"birth_month,omitempty"`
	Tags       []string `json:"tags"`
	Consent    bool     `json:"consent"`    // marketing messages allowed
	ConsentAt  int64    `json:"consent_ms"` // when consent was given or withdrawn
	TierID     string   `json:"tier_id,omitempty"`
	Tier       string   `json:"tier,omitempty"` // the tier's name
	Status     string   `json:"status"`
	MergedInto string   `json:"merged_into,omitempty"`
	StoreID    string   `json:"store_id"`
	Wallet     Amount   `json:"wallet"`
	Points     int64    `json:"points"`
	Spend      Amount   `json:"spend"`
	Visits     int64    `json:"visits"`
	LastVisit  int64    `json:"last_visit_ms,omitempty"`
	Created    int64    `json:"created_ms"`
	Updated    int64    `json:"updated_ms"`
}

// ParseTags splits "vip, 员工" into distinct, trimmed, lower-case tags. Commas are the
// separator, so a tag cannot contain one.
func ParseTags(s string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' }) {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// ParseBirthday accepts YYYY-MM-DD, MM-DD or --MM-DD and returns the stored form and
// the month.
func ParseBirthday(s string) (string, int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", 0, nil
	}
	bad := Invalid("birthday", "YYYY-MM-DD or MM-DD", s, "not a birthday: %q", s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if t.Year() < 1900 || t.After(time.Now().AddDate(0, 0, 1)) {
			return "", 0, bad
		}
		return s, int(t.Month()), nil
	}
	md := strings.TrimPrefix(s, "--")
	t, err := time.Parse("01-02", md)
	if err != nil {
		// Feb 29 without a year does not parse against year 0; try a leap year.
		t, err = time.Parse("2006-01-02", "2024-"+md)
		if err != nil {
			return "", 0, bad
		}
	}
	return "--" + t.Format("01-02"), int(t.Month()), nil
}

// Tier is a member level with a threshold and its benefits (会员等级).
type Tier struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	MinSpend     Amount `json:"min_spend"`     // qualifying spend over the tier window
	MinPoints    int64  `json:"min_points"`    // or points balance, by Loyalty.TierBasis
	MultiplierBP int64  `json:"multiplier_bp"` // points multiplier, 10000 = ×1
	Created      int64  `json:"created_ms"`
}

// Tier bases: what a tier threshold is compared with.
const (
	TierBySpend  = "spend"  // purchases within the last TierWindowMonths
	TierByPoints = "points" // current points balance
)

// TierFor picks the highest tier whose threshold the member meets, or nil. Tiers are
// ordered by threshold, so a member moves down as well as up when the value changes.
func TierFor(tiers []Tier, basis string, spend Amount, points int64) *Tier {
	var best *Tier
	for i := range tiers {
		t := &tiers[i]
		var ok bool
		var level, bestLevel int64
		if basis == TierByPoints {
			ok, level = points >= t.MinPoints, t.MinPoints
			if best != nil {
				bestLevel = best.MinPoints
			}
		} else {
			ok, level = spend >= t.MinSpend, int64(t.MinSpend)
			if best != nil {
				bestLevel = int64(best.MinSpend)
			}
		}
		if ok && (best == nil || level > bestLevel || (level == bestLevel && t.MultiplierBP > best.MultiplierBP)) {
			best = t
		}
	}
	return best
}

// TopupBonus is one stored-value bonus rule: pay at least Min, get Bonus (充100送20).
type TopupBonus struct {
	Min   Amount `json:"min"`
	Bonus Amount `json:"bonus"`
}

// Points expiry rules.
const (
	ExpireNextYearEnd = "next_year_end" // end of the year after the one earned in (default)
	ExpireDays        = "days"          // ExpiryDays after earning
	ExpireNever       = "never"
)

// Loyalty holds the merchant's points and stored-value settings.
type Loyalty struct {
	PointsPerYuanBP  int64            `json:"points_per_yuan_bp"` // 10000 = 1 point per yuan spent
	Expiry           string           `json:"expiry"`
	ExpiryDays       int              `json:"expiry_days,omitempty"`
	TierBasis        string           `json:"tier_basis"`         // spend | points
	TierWindowMonths int              `json:"tier_window_months"` // spend basis; 0: lifetime
	Bonuses          []TopupBonus     `json:"bonuses"`
	CampaignBonus    map[string]int64 `json:"campaign_bonus"` // campaign id → extra points per purchase using it
	Rewards          map[string]int64 `json:"rewards"`        // campaign id → points price of one code
}

// DefaultLoyalty is what a new merchant starts with.
func DefaultLoyalty() Loyalty {
	return Loyalty{PointsPerYuanBP: 10000, Expiry: ExpireNextYearEnd, TierBasis: TierBySpend, TierWindowMonths: 12,
		Bonuses: []TopupBonus{}, CampaignBonus: map[string]int64{}, Rewards: map[string]int64{}}
}

// Validate checks the settings before they are saved.
func (l *Loyalty) Validate() error {
	if l.PointsPerYuanBP < 0 || l.PointsPerYuanBP > 100*10000 {
		return Invalid("points_per_yuan", "0 to 100", FormatPercent(l.PointsPerYuanBP), "points per yuan must be between 0 and 100")
	}
	switch l.Expiry {
	case ExpireNextYearEnd, ExpireNever:
	case ExpireDays:
		if l.ExpiryDays <= 0 || l.ExpiryDays > 3660 {
			return Invalid("expiry_days", "1 to 3660", "", "points expiry needs a number of days between 1 and 3660")
		}
	default:
		return Invalid("expiry", "next_year_end|days|never", l.Expiry, "unknown points expiry rule %q", l.Expiry)
	}
	if l.TierBasis != TierBySpend && l.TierBasis != TierByPoints {
		return Invalid("tier_basis", "spend|points", l.TierBasis, "unknown tier basis %q", l.TierBasis)
	}
	if l.TierWindowMonths < 0 || l.TierWindowMonths > 120 {
		return Invalid("tier_window", "0 to 120 months", "", "the tier window must be 0 (lifetime) to 120 months")
	}
	seen := map[Amount]bool{}
	for _, b := range l.Bonuses {
		if b.Min <= 0 || b.Bonus <= 0 {
			return Invalid("bonus", "pay > 0, bonus > 0", b.Min.Yuan()+"→"+b.Bonus.Yuan(), "a top-up bonus needs a positive amount and bonus")
		}
		if seen[b.Min] {
			return Invalid("bonus", "one bonus per amount", b.Min.Yuan(), "two bonuses for top-ups of %s", b.Min.Yuan())
		}
		seen[b.Min] = true
	}
	for id, p := range l.CampaignBonus {
		if p < 0 {
			return Invalid("campaign_bonus", "points ≥ 0", id, "a campaign bonus cannot be negative")
		}
	}
	for id, p := range l.Rewards {
		if p <= 0 {
			return Invalid("reward", "points > 0", id, "a reward needs a positive points price")
		}
	}
	return nil
}

// BonusFor is the bonus of the highest rule a top-up reaches (bonuses do not stack).
func (l *Loyalty) BonusFor(paid Amount) Amount {
	var best TopupBonus
	for _, b := range l.Bonuses {
		if paid >= b.Min && b.Min > best.Min {
			best = b
		}
	}
	return best.Bonus
}

// PointsFor is the points a purchase earns: yuan × rate × tier multiplier, rounded
// down, computed exactly (no float, no overflow).
func (l *Loyalty) PointsFor(amount Amount, multiplierBP int64) int64 {
	if amount <= 0 || l.PointsPerYuanBP <= 0 {
		return 0
	}
	if multiplierBP <= 0 {
		multiplierBP = 10000
	}
	n := new(big.Int).Mul(big.NewInt(int64(amount)), big.NewInt(l.PointsPerYuanBP))
	n.Mul(n, big.NewInt(multiplierBP))
	n.Quo(n, big.NewInt(100*10000*10000))
	if !n.IsInt64() {
		return 0
	}
	return n.Int64()
}

// ExpiresAt is when points earned at t expire (exclusive), in the store's zone; 0 never.
func (l *Loyalty) ExpiresAt(t time.Time, loc *time.Location) int64 {
	switch l.Expiry {
	case ExpireNever:
		return 0
	case ExpireDays:
		lt := t.In(loc)
		d := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, l.ExpiryDays+1)
		return d.UnixMilli()
	default:
		return time.Date(t.In(loc).Year()+2, 1, 1, 0, 0, 0, 0, loc).UnixMilli()
	}
}

// Automatic issuing rule kinds.
const (
	IssueWelcome  = "welcome"  // 新人券: on sign-up
	IssueSpend    = "spend"    // 复购券: once the member's spend reaches Threshold fen
	IssueIdle     = "idle"     // 复购券: Threshold days without a visit
	IssueBirthday = "birthday" // in the birthday month, once a year
)

// IssueRule hands a campaign's code to members automatically.
type IssueRule struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	CampaignID string `json:"campaign_id"`
	Campaign   string `json:"campaign,omitempty"` // name, for display
	Threshold  int64  `json:"threshold"`
	Active     bool   `json:"active"`
	Created    int64  `json:"created_ms"`
}

// Validate checks an issuing rule.
func (r *IssueRule) Validate() error {
	switch r.Kind {
	case IssueWelcome, IssueBirthday:
		if r.Threshold != 0 {
			return Invalid("threshold", "none", "", "a %s rule takes no threshold", r.Kind)
		}
	case IssueSpend:
		if r.Threshold <= 0 {
			return Invalid("threshold", "a spend amount > 0", "", "a spend rule needs the amount that triggers it")
		}
	case IssueIdle:
		if r.Threshold <= 0 || r.Threshold > 3650 {
			return Invalid("threshold", "1 to 3650 days", "", "an idle rule needs the days without a visit (1–3650)")
		}
	default:
		return Invalid("kind", "welcome|spend|idle|birthday", r.Kind, "unknown issuing rule %q", r.Kind)
	}
	return nil
}

// Wallet entry kinds (储值流水).
const (
	WalletTopup    = "topup"
	WalletBonus    = "bonus"
	WalletPay      = "pay"
	WalletRefund   = "refund"
	WalletMergeIn  = "merge_in"
	WalletMergeOut = "merge_out"
)

// WalletEntry is one signed movement of a member's stored value.
type WalletEntry struct {
	ID         string `json:"id"`
	MemberID   string `json:"member_id"`
	Kind       string `json:"kind"`
	Amount     Amount `json:"amount"`
	Ref        string `json:"ref,omitempty"`
	RelatedID  string `json:"related_id,omitempty"`
	StoreID    string `json:"store_id"`
	OperatorID string `json:"operator_id"`
	DeviceID   string `json:"device_id"`
	IdemKey    string `json:"idem_key,omitempty"`
	Created    int64  `json:"created_ms"`
}

// Points entry kinds (积分流水).
const (
	PointsEarn     = "earn"
	PointsSpend    = "spend"
	PointsExpire   = "expire"
	PointsAdjust   = "adjust"
	PointsReverse  = "reverse"
	PointsMergeIn  = "merge_in"
	PointsMergeOut = "merge_out"
)

// PointsEntry is one signed movement of a member's points; positive entries are lots.
type PointsEntry struct {
	ID          string `json:"id"`
	MemberID    string `json:"member_id"`
	Kind        string `json:"kind"`
	Points      int64  `json:"points"`
	Remaining   int64  `json:"remaining,omitempty"`
	Expires     int64  `json:"expires_ms,omitempty"`
	OrderAmount Amount `json:"order_amount,omitempty"`
	Ref         string `json:"ref,omitempty"`
	RelatedID   string `json:"related_id,omitempty"`
	CampaignID  string `json:"campaign_id,omitempty"`
	Reason      string `json:"reason,omitempty"`
	StoreID     string `json:"store_id"`
	OperatorID  string `json:"operator_id"`
	DeviceID    string `json:"device_id"`
	Created     int64  `json:"created_ms"`
}

// Package core is Kameng's domain: the things a merchant works with, the rules
// that decide whether a code may be redeemed, money, code formats, the audit chain
// and the clock. It knows nothing of screens, HTTP or SQL drivers.
package core

import (
	"sync"
	"time"
)

// Role is what an operator may do.
type Role string

const (
	RoleOwner      Role = "owner"
	RoleManager    Role = "manager"
	RoleCashier    Role = "cashier"
	RoleTechnician Role = "technician"
)

// ParseRole accepts a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleOwner, RoleManager, RoleCashier, RoleTechnician:
		return r, nil
	}
	return "", Invalid("role", "owner|manager|cashier|technician", s, "unknown role %q", s)
}

// Kind is the kind of benefit a campaign issues.
type Kind string

const (
	KindAmountOff  Kind = "amount_off"  // 满减券 / 无门槛券
	KindPercentOff Kind = "percent_off" // 折扣券
	KindGiftCard   Kind = "gift_card"   // 礼品卡 / 储值卡
	KindCardKey    Kind = "card_key"    // 卡密
)

// Kinds lists every campaign kind in display order.
var Kinds = []Kind{KindAmountOff, KindPercentOff, KindGiftCard, KindCardKey}

// ParseKind accepts a kind name.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", Invalid("kind", "amount_off|percent_off|gift_card|card_key", s, "unknown campaign kind %q", s)
}

// CampaignStatus is where a campaign is in its life.
type CampaignStatus string

const (
	StatusActive   CampaignStatus = "active"
	StatusPaused   CampaignStatus = "paused"
	StatusArchived CampaignStatus = "archived"
)

type Merchant struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Created int64  `json:"created_ms"`
}

type Store struct {
	ID         string `json:"id"`
	MerchantID string `json:"merchant_id"`
	Name       string `json:"name"`
	TimeZone   string `json:"time_zone"`
	Created    int64  `json:"created_ms"`
}

// Location returns the store's time zone, Asia/Shanghai when unset or unknown.
func (s *Store) Location() *time.Location {
	return LoadLocation(s.TimeZone)
}

// DefaultTimeZone is where a store is unless told otherwise.
const DefaultTimeZone = "Asia/Shanghai"

var locations sync.Map // name → *time.Location

// LoadLocation loads a zone, falling back to the default zone. Zones are cached: the
// check and redeem paths ask for the store's zone on every call.
func LoadLocation(name string) *time.Location {
	if name == "" {
		name = DefaultTimeZone
	}
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		if loc, err = time.LoadLocation(DefaultTimeZone); err != nil {
			loc = time.FixedZone("CST", 8*3600)
		}
	}
	locations.Store(name, loc)
	return loc
}

type Device struct {
	ID         string `json:"id"`
	MerchantID string `json:"merchant_id"`
	StoreID    string `json:"store_id"`
	Name       string `json:"name"`
	Created    int64  `json:"created_ms"`
}

type Operator struct {
	ID         string `json:"id"`
	MerchantID string `json:"merchant_id"`
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	StoreID    string `json:"store_id,omitempty"`
	Disabled   bool   `json:"disabled"`
	Created    int64  `json:"created_ms"`
}

// Rules are the conditions under which a campaign's codes may be redeemed.
type Rules struct {
	ValidFrom      int64    `json:"valid_from_ms"`    // 0: from creation
	ValidTo        int64    `json:"valid_to_ms"`      // 0: no end
	ValidDays      int      `json:"valid_days"`       // >0: N days from distribution
	Stores         []string `json:"stores"`           // empty: every store
	Weekdays       uint8    `json:"weekdays"`         // bit 0 = Sunday … bit 6 = Saturday; 0: every day
	HoursFrom      int      `json:"hours_from_min"`   // minute of day, inclusive
	HoursTo        int      `json:"hours_to_min"`     // minute of day, exclusive; 0 with HoursFrom 0: all day
	UsesPerCode    int      `json:"uses_per_code"`    // coupons: redemptions per code
	PerMemberLimit int      `json:"per_member_limit"` // 0: unlimited
	Tiers          []string `json:"tiers,omitempty"`  // member tier ids; empty: everyone
	BudgetCount    int64    `json:"budget_count"`     // 0: unlimited redemptions
	BudgetAmount   Amount   `json:"budget_amount"`    // 0: unlimited discount/value
	RollbackHours  int      `json:"rollback_hours"`   // how long a redemption may be rolled back; 0: never
	Offline        Offline  `json:"offline"`
}

// Offline is the campaign's policy for redeeming without the server (used by sync).
type Offline struct {
	Allowed    bool   `json:"allowed"`
	MaxValue   Amount `json:"max_value"`    // 0: no cap on face value
	MaxCount   int    `json:"max_count"`    // per device between syncs; 0: unlimited
	MaxAgeMins int    `json:"max_age_mins"` // since last sync; 0: unlimited
}

// Campaign is the design of a benefit (活动 / 券模板).
type Campaign struct {
	ID          string         `json:"id"`
	MerchantID  string         `json:"merchant_id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Kind        Kind           `json:"kind"`
	Status      CampaignStatus `json:"status"`
	Currency    string         `json:"currency"`
	AmountOff   Amount         `json:"amount_off"`     // amount_off
	PercentOff  int64          `json:"percent_off_bp"` // percent_off, basis points
	MaxDiscount Amount         `json:"max_discount"`   // percent_off cap; 0: none
	MinSpend    Amount         `json:"min_spend"`
	FaceValue   Amount         `json:"face_value"` // gift card opening balance, card key face value
	Rules       Rules          `json:"rules"`
	Format      CodeFormat     `json:"format"`
	Issued      int64          `json:"issued"`
	Redeemed    int64          `json:"redeemed"` // redemptions standing (net of rollbacks)
	Spent       Amount         `json:"spent"`    // discount given + value redeemed, net
	Created     int64          `json:"created_ms"`
	Updated     int64          `json:"updated_ms"`
}

// SingleUse reports whether each code is used up by one redemption.
func (c *Campaign) SingleUse() bool {
	return c.Kind == KindCardKey || (c.Kind != KindGiftCard && c.Rules.UsesPerCode <= 1)
}

// ValueSummary describes the benefit in a few characters, e.g. "¥20.00 off ≥ ¥100.00".
func (c *Campaign) ValueSummary() string {
	switch c.Kind {
	case KindAmountOff:
		if c.MinSpend > 0 {
			return c.AmountOff.Yuan() + " off ≥ " + c.MinSpend.Yuan()
		}
		return c.AmountOff.Yuan() + " off"
	case KindPercentOff:
		s := FormatPercent(c.PercentOff) + " off"
		if c.MaxDiscount > 0 {
			s += " ≤ " + c.MaxDiscount.Yuan()
		}
		if c.MinSpend > 0 {
			s += " ≥ " + c.MinSpend.Yuan()
		}
		return s
	default:
		return c.FaceValue.Yuan()
	}
}

// Code status values.
const (
	CodeActive = "active"
	CodeVoided = "voided"
)

// Code is one redeemable token. Its identity is its normalised text.
type Code struct {
	Code        string `json:"code"`
	CampaignID  string `json:"campaign_id"`
	BatchID     string `json:"batch_id"`
	Status      string `json:"status"`
	Uses        int    `json:"uses"`
	Balance     Amount `json:"balance"`
	HasSecret   bool   `json:"has_secret"`
	Phone       string `json:"phone,omitempty"` // masked unless revealed
	Distributed int64  `json:"distributed_ms,omitempty"`
	ValidFrom   int64  `json:"valid_from_ms,omitempty"`
	ValidTo     int64  `json:"valid_to_ms,omitempty"`
	Created     int64  `json:"created_ms"`
}

type Batch struct {
	ID         string `json:"id"`
	CampaignID string `json:"campaign_id"`
	Source     string `json:"source"` // generate | import
	Count      int64  `json:"count"`
	Created    int64  `json:"created_ms"`
}

// Redemption is one use of a code (核销).
type Redemption struct {
	ID          string `json:"id"`
	Code        string `json:"code"`
	CampaignID  string `json:"campaign_id"`
	StoreID     string `json:"store_id"`
	DeviceID    string `json:"device_id"`
	OperatorID  string `json:"operator_id"`
	OrderRef    string `json:"order_ref,omitempty"`
	OrderAmount Amount `json:"order_amount"`
	Discount    Amount `json:"discount"`
	Value       Amount `json:"value"`  // taken from a gift card's balance, or a card key's face value
	Status      string `json:"status"` // done | rolled_back
	Created     int64  `json:"created_ms"`
	RolledBack  int64  `json:"rolled_back_ms,omitempty"`
	Reason      string `json:"rollback_reason,omitempty"`
	IdemKey     string `json:"idempotency_key,omitempty"`
}

// Redemption status values.
const (
	RedemptionDone       = "done"
	RedemptionRolledBack = "rolled_back"
)

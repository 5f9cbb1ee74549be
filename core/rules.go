package core

import (
	"slices"
	"strconv"
	"time"
)

// Reasons a check gives. "ok" means the code may be redeemed now.
const (
	ReasonOK                  = "ok"
	ReasonNotFound            = "not_found"
	ReasonBadCheckChar        = "bad_check_char"
	ReasonNotStarted          = "not_started"
	ReasonExpired             = "expired"
	ReasonAlreadyRedeemed     = "already_redeemed"
	ReasonVoided              = "voided"
	ReasonPaused              = "paused"
	ReasonWrongStore          = "wrong_store"
	ReasonBelowMinSpend       = "below_min_spend"
	ReasonOutsideHours        = "outside_hours"
	ReasonPerMemberLimit      = "per_member_limit"
	ReasonTierOnly            = "tier_only"
	ReasonBudgetExhausted     = "budget_exhausted"
	ReasonInsufficientBalance = "insufficient_balance"
	ReasonThrottled           = "throttled"
)

// Reasons lists every check reason, for documentation and translation tests.
var Reasons = []string{ReasonOK, ReasonNotFound, ReasonBadCheckChar, ReasonNotStarted, ReasonExpired,
	ReasonAlreadyRedeemed, ReasonVoided, ReasonPaused, ReasonWrongStore, ReasonBelowMinSpend,
	ReasonOutsideHours, ReasonPerMemberLimit, ReasonTierOnly, ReasonBudgetExhausted, ReasonInsufficientBalance, ReasonThrottled}

// Order is what the customer is buying when a code is checked or redeemed.
type Order struct {
	Ref    string // the till's order number, optional
	Amount Amount // order total before the benefit; 0 when unknown
	Debit  Amount // gift card: how much to take; 0 means min(order, balance)
	Member string // member phone (normalised) for per-member limits, optional
}

// CheckInput is everything Evaluate needs; the store gathers it.
type CheckInput struct {
	Code       *Code
	Campaign   *Campaign
	Store      *Store
	Now        time.Time
	Order      Order
	MemberUses int    // redemptions standing for this campaign by Order.Member
	MemberTier string // tier id of the member named by Order.Member; "" none
}

// Verdict is the answer to a check: whether, why, and what the order would get.
type Verdict struct {
	OK       bool   `json:"ok"`
	Reason   string `json:"reason"`
	Code     string `json:"code"`
	Campaign string `json:"campaign_id,omitempty"`
	Name     string `json:"campaign_name,omitempty"`
	Kind     Kind   `json:"kind,omitempty"`
	Discount Amount `json:"discount"` // off the order
	Value    Amount `json:"value"`    // taken from a balance or delivered (card key)
	Payable  Amount `json:"payable"`  // order amount left to pay
	Balance  Amount `json:"balance"`  // gift card balance before this redemption
	UsesLeft int    `json:"uses_left"`
	ValidTo  int64  `json:"valid_to_ms,omitempty"`
}

func reject(v Verdict, reason string) Verdict {
	v.OK, v.Reason, v.Discount, v.Value = false, reason, 0, 0
	v.Payable = 0
	return v
}

// Evaluate applies a campaign's rules to one code at one moment. It is pure: the
// same input gives the same verdict, which is what lets redeem re-run it inside the
// write transaction.
func Evaluate(in CheckInput) Verdict {
	c, k := in.Campaign, in.Code
	v := Verdict{Code: k.Code, Campaign: c.ID, Name: c.Name, Kind: c.Kind, Balance: k.Balance}
	uses := c.Rules.UsesPerCode
	if uses < 1 {
		uses = 1
	}
	v.UsesLeft = max(uses-k.Uses, 0)
	if c.Kind == KindGiftCard {
		v.UsesLeft = 0
	}

	if in.Order.Debit < 0 || in.Order.Amount < 0 {
		// Only a bug in a caller gets here: amounts are parsed as non-negative.
		return reject(v, ReasonInsufficientBalance)
	}
	if k.Status == CodeVoided || c.Status == StatusArchived {
		return reject(v, ReasonVoided)
	}
	if c.Status == StatusPaused {
		return reject(v, ReasonPaused)
	}
	if len(c.Rules.Stores) > 0 && !slices.Contains(c.Rules.Stores, in.Store.ID) {
		return reject(v, ReasonWrongStore)
	}
	from, to := c.Rules.ValidFrom, c.Rules.ValidTo
	if k.ValidFrom > 0 {
		from = k.ValidFrom
	}
	if k.ValidTo > 0 {
		to = k.ValidTo
	}
	v.ValidTo = to
	now := in.Now.UnixMilli()
	if from > 0 && now < from {
		return reject(v, ReasonNotStarted)
	}
	if to > 0 && now >= to {
		return reject(v, ReasonExpired)
	}
	if !withinHours(c.Rules, in.Now.In(in.Store.Location())) {
		return reject(v, ReasonOutsideHours)
	}
	switch c.Kind {
	case KindGiftCard:
		if k.Balance <= 0 {
			return reject(v, ReasonAlreadyRedeemed)
		}
	default:
		if k.Uses >= uses {
			return reject(v, ReasonAlreadyRedeemed)
		}
	}
	if c.MinSpend > 0 && in.Order.Amount < c.MinSpend {
		return reject(v, ReasonBelowMinSpend)
	}
	if len(c.Rules.Tiers) > 0 && !slices.Contains(c.Rules.Tiers, in.MemberTier) {
		return reject(v, ReasonTierOnly)
	}
	if c.Rules.PerMemberLimit > 0 && in.Order.Member != "" && in.MemberUses >= c.Rules.PerMemberLimit {
		return reject(v, ReasonPerMemberLimit)
	}

	switch c.Kind {
	case KindAmountOff:
		v.Discount = c.AmountOff
		if in.Order.Amount > 0 {
			v.Discount = min(c.AmountOff, in.Order.Amount)
		}
	case KindPercentOff:
		v.Discount = MulPercent(in.Order.Amount, c.PercentOff)
		if c.MaxDiscount > 0 {
			v.Discount = min(v.Discount, c.MaxDiscount)
		}
	case KindGiftCard:
		want := in.Order.Debit
		if want == 0 {
			want = min(in.Order.Amount, k.Balance)
			if in.Order.Amount == 0 {
				want = k.Balance
			}
		}
		if want > k.Balance {
			return reject(v, ReasonInsufficientBalance)
		}
		v.Value = want
	case KindCardKey:
		v.Value = c.FaceValue
	}
	if c.Rules.BudgetCount > 0 && c.Redeemed >= c.Rules.BudgetCount {
		return reject(v, ReasonBudgetExhausted)
	}
	if c.Rules.BudgetAmount > 0 && c.Spent+v.Discount+v.Value > c.Rules.BudgetAmount {
		return reject(v, ReasonBudgetExhausted)
	}
	if in.Order.Amount > 0 {
		v.Payable = max(in.Order.Amount-v.Discount-v.Value, 0)
		if c.Kind == KindCardKey {
			v.Payable = in.Order.Amount
		}
	}
	v.OK, v.Reason = true, ReasonOK
	return v
}

func withinHours(r Rules, local time.Time) bool {
	if r.Weekdays != 0 && r.Weekdays&(1<<uint(local.Weekday())) == 0 {
		return false
	}
	if r.HoursFrom == 0 && r.HoursTo == 0 {
		return true
	}
	m := local.Hour()*60 + local.Minute()
	if r.HoursFrom <= r.HoursTo {
		return m >= r.HoursFrom && m < r.HoursTo
	}
	return m >= r.HoursFrom || m < r.HoursTo // a window across midnight, e.g. 22:00–02:00
}

// FormatPercent shows basis points as a percent, e.g. 1250 → "12.5%".
func FormatPercent(bp int64) string {
	s := strconv.FormatInt(bp/100, 10)
	if f := bp % 100; f != 0 {
		frac := strconv.FormatInt(100+f, 10)[1:]
		if frac[1] == '0' {
			frac = frac[:1]
		}
		s += "." + frac
	}
	return s + "%"
}

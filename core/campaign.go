package core

import (
	"slices"
	"time"
)

// Validate checks a campaign's design before it is saved.
func (c *Campaign) Validate() error {
	if c.Name == "" || len([]rune(c.Name)) > 80 {
		return Invalid("name", "1–80 characters", c.Name, "the campaign needs a name of 1–80 characters")
	}
	if c.Currency == "" {
		c.Currency = "CNY"
	}
	switch c.Kind {
	case KindAmountOff:
		if c.AmountOff <= 0 {
			return Invalid("amount_off", "20 / ¥20.00", c.AmountOff.String(), "an amount-off coupon needs an amount above zero")
		}
	case KindPercentOff:
		if c.PercentOff <= 0 || c.PercentOff >= 10000 {
			return Invalid("percent_off", "15% / 8.5折", FormatPercent(c.PercentOff), "a percent-off coupon needs a percentage between 0 and 100")
		}
	case KindGiftCard, KindCardKey:
		if c.FaceValue <= 0 {
			return Invalid("face_value", "100 / ¥100.00", c.FaceValue.String(), "a %s needs a face value above zero", c.Kind)
		}
	default:
		_, err := ParseKind(string(c.Kind))
		return err
	}
	if c.MinSpend < 0 {
		return Invalid("min_spend", "0 or more", c.MinSpend.String(), "the minimum spend cannot be negative")
	}
	if c.MaxDiscount < 0 {
		return Invalid("max_discount", "0 or more", c.MaxDiscount.String(), "the maximum discount cannot be negative")
	}
	if c.Kind == KindAmountOff && c.MinSpend > 0 && c.MinSpend < c.AmountOff {
		return Invalid("min_spend", "at least the amount off", c.MinSpend.String(), "the minimum spend is below the discount")
	}
	r := &c.Rules
	if r.ValidTo != 0 && r.ValidTo <= r.ValidFrom {
		return Invalid("valid_to", "a date after valid_from", time.UnixMilli(r.ValidTo).Format(time.DateOnly), "the campaign ends before it starts")
	}
	if r.ValidDays < 0 || r.ValidDays > 3660 {
		return Invalid("valid_days", "0–3660", "", "validity in days must be 0–3660")
	}
	if r.HoursFrom < 0 || r.HoursFrom >= 1440 || r.HoursTo < 0 || r.HoursTo > 1440 {
		return Invalid("hours", "09:00-21:00", "", "hours must be within the day")
	}
	if r.HoursFrom == r.HoursTo && r.HoursFrom != 0 {
		return Invalid("hours", "09:00-21:00", "", "the hours start and end at the same minute")
	}
	if r.Weekdays > 127 {
		return Invalid("weekdays", "1-5 / mon,tue", "", "unknown weekdays")
	}
	if r.UsesPerCode < 1 {
		r.UsesPerCode = 1
	}
	if c.Kind == KindCardKey {
		r.UsesPerCode = 1
	}
	if r.PerMemberLimit < 0 || r.BudgetCount < 0 || r.BudgetAmount < 0 || r.RollbackHours < 0 {
		return Invalid("budget", "0 or more", "", "limits cannot be negative")
	}
	if err := c.Format.Validate(); err != nil {
		return err
	}
	// A format that cannot issue even one code safely is refused at design time.
	return c.Format.CheckGuessOdds(1)
}

// LockedChanges lists the fields an edit may not change once a campaign has
// redemptions (its value and kind) or codes (its code format).
func LockedChanges(old, new *Campaign, hasRedemptions, hasCodes bool) []string {
	var bad []string
	if hasRedemptions {
		if old.Kind != new.Kind {
			bad = append(bad, "kind")
		}
		if old.AmountOff != new.AmountOff {
			bad = append(bad, "amount_off")
		}
		if old.PercentOff != new.PercentOff {
			bad = append(bad, "percent_off")
		}
		if old.MaxDiscount != new.MaxDiscount {
			bad = append(bad, "max_discount")
		}
		if old.MinSpend != new.MinSpend {
			bad = append(bad, "min_spend")
		}
		if old.FaceValue != new.FaceValue {
			bad = append(bad, "face_value")
		}
		if old.Currency != new.Currency {
			bad = append(bad, "currency")
		}
	}
	if hasCodes {
		if old.Kind != new.Kind && !slices.Contains(bad, "kind") {
			bad = append(bad, "kind")
		}
		if old.Format != new.Format {
			bad = append(bad, "format")
		}
		if old.Kind == KindGiftCard && old.FaceValue != new.FaceValue && !slices.Contains(bad, "face_value") {
			bad = append(bad, "face_value")
		}
	}
	return bad
}

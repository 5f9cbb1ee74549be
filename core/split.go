package core

import (
	"sort"
	"strings"
)

// Split rule scopes, most specific first: a campaign's rule wins over its store's,
// which wins over the default.
const (
	SplitCampaign = "campaign"
	SplitStore    = "store"
	SplitDefault  = "default"
)

// RemainderLargest gives the rounding fen to the party with the largest share.
const RemainderLargest = "largest"

// Share is one party's percentage of a redemption's value.
type Share struct {
	Party     string `json:"party"`
	PercentBP int64  `json:"percent_bp"` // 10000 = 100%
}

// SplitRule divides redeemed value among parties (分账): brand, franchisee, platform…
type SplitRule struct {
	ID        string  `json:"id"`
	Scope     string  `json:"scope"`
	ScopeID   string  `json:"scope_id,omitempty"`
	ScopeName string  `json:"scope_name,omitempty"`
	Parties   []Share `json:"parties"`
	Remainder string  `json:"remainder"` // a party's name, or "largest"
	Created   int64   `json:"created_ms"`
	Updated   int64   `json:"updated_ms"`
}

// ParseShares reads "brand:60,store:35.5,platform:4.5" (percentages).
func ParseShares(s string) ([]Share, error) {
	var out []Share
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' }) {
		part = strings.NewReplacer("：", ":", "=", ":").Replace(strings.TrimSpace(part))
		name, pct, ok := strings.Cut(part, ":")
		if !ok {
			return nil, Invalid("parties", "party:percent,…", part, "a share needs a party and a percentage: %q", part)
		}
		pct = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(pct), "%"), "％"))
		bp, ok := parseFixed(pct, 2, 3)
		if !ok {
			return nil, Invalid("parties", "party:percent,…", part, "bad percentage in %q", part)
		}
		out = append(out, Share{Party: strings.TrimSpace(name), PercentBP: bp})
	}
	return out, nil
}

// Validate checks that the shares name distinct parties and add up to exactly 100%.
func (r *SplitRule) Validate() error {
	switch r.Scope {
	case SplitCampaign, SplitStore:
		if r.ScopeID == "" {
			return Invalid("scope", "a "+r.Scope, "", "a %s rule needs the %s it applies to", r.Scope, r.Scope)
		}
	case SplitDefault:
		r.ScopeID = ""
	default:
		return Invalid("scope", "campaign|store|default", r.Scope, "unknown split scope %q", r.Scope)
	}
	if len(r.Parties) == 0 {
		return Invalid("parties", "party:percent,…", "", "a split needs at least one party")
	}
	seen := map[string]bool{}
	var total int64
	for _, p := range r.Parties {
		if p.Party == "" || strings.ContainsAny(p.Party, ",:=") || len(p.Party) > 64 {
			return Invalid("parties", "a name without , : =", p.Party, "bad party name %q", p.Party)
		}
		if p.Party == RemainderLargest {
			return Invalid("parties", "a name other than "+RemainderLargest, p.Party, "%q is reserved", p.Party)
		}
		if seen[p.Party] {
			return Invalid("parties", "distinct parties", p.Party, "party %q appears twice", p.Party)
		}
		seen[p.Party] = true
		if p.PercentBP <= 0 {
			return Invalid("parties", "a share above 0%", p.Party, "party %q has no share", p.Party)
		}
		total += p.PercentBP
	}
	if total != 10000 {
		return Invalid("parties", "shares adding up to 100%", FormatPercent(total), "the shares add up to %s, not 100%%", FormatPercent(total))
	}
	if r.Remainder == "" {
		r.Remainder = RemainderLargest
	}
	if r.Remainder != RemainderLargest && !seen[r.Remainder] {
		return Invalid("remainder", "one of the parties or "+RemainderLargest, r.Remainder, "remainder party %q is not in the split", r.Remainder)
	}
	return nil
}

// PartyAmount is one party's share in fen.
type PartyAmount struct {
	Party  string `json:"party"`
	Amount Amount `json:"amount"`
}

// Split divides value by the shares, each rounded toward zero; the fen left over go
// to the remainder party, so the parts always add up to value exactly.
func (r *SplitRule) Split(value Amount) []PartyAmount {
	out := make([]PartyAmount, len(r.Parties))
	var sum Amount
	rem, largest := 0, int64(-1)
	for i, p := range r.Parties {
		out[i] = PartyAmount{Party: p.Party, Amount: MulPercent(value, p.PercentBP)}
		sum += out[i].Amount
		if (r.Remainder == RemainderLargest && p.PercentBP > largest) || p.Party == r.Remainder {
			rem, largest = i, p.PercentBP
			if p.Party == r.Remainder {
				largest = 1 << 62 // named party: nothing displaces it
			}
		}
	}
	out[rem].Amount += value - sum
	sort.SliceStable(out, func(i, j int) bool { return out[i].Party < out[j].Party })
	return out
}

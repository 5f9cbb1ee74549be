package core

import (
	"math/bits"
	"strconv"
	"strings"
)

// Amount is a sum of money counted in fen (分, 0.01 yuan). Money is never a float:
// 0.1+0.2 must equal 0.3 to the fen on every till.
type Amount int64

// maxAmountFen bounds what ParseAmount accepts (90 trillion yuan), far above any
// real figure yet small enough that sums of many amounts cannot overflow int64.
const maxAmountFen = 9_000_000_000_000_000

const amountAccepted = "12.50 / ¥12.50 / 12.50元"

// ParseAmount reads a money amount typed by a person or found in an import, e.g.
// "12", "12.5", "¥12.50", "CNY 1,234.50", "12.50元". It is strict: an amount that
// could mean two things (12.505, 12,34) is refused rather than rounded or guessed.
func ParseAmount(field, s string) (Amount, error) {
	body := strings.TrimSpace(s)
	body = trimCurrencyPrefix(body)
	for _, suffix := range []string{"元", "块"} {
		if strings.HasSuffix(body, suffix) {
			body = strings.TrimSpace(strings.TrimSuffix(body, suffix))
			break
		}
	}
	fail := func(format string, args ...any) (Amount, error) {
		return 0, Invalid(field, amountAccepted, s, format, args...)
	}
	if body == "" {
		return fail("amount is empty")
	}
	if body[0] == '-' || strings.HasPrefix(body, "−") {
		return fail("amount %q is negative; enter a positive amount", s)
	}

	intPart, frac, hasDot := strings.Cut(body, ".")
	yuan, ok := parseGroupedDigits(intPart)
	if !ok {
		return fail("%q is not an amount; write it like 12.50", s)
	}
	var fen uint64
	if hasDot {
		if frac == "" || !allASCIIDigits(frac) {
			return fail("%q is not an amount; write it like 12.50", s)
		}
		if len(frac) > 2 {
			return fail("amount %q has more than 2 decimal places; the smallest unit is 0.01", s)
		}
		fen, _ = strconv.ParseUint(frac, 10, 64)
		if len(frac) == 1 {
			fen *= 10
		}
	}
	if yuan > maxAmountFen/100 {
		return fail("amount %q is too large", s)
	}
	total := yuan*100 + fen
	if total > maxAmountFen {
		return fail("amount %q is too large", s)
	}
	return Amount(total), nil
}

// trimCurrencyPrefix drops one leading currency mark and the space after it.
func trimCurrencyPrefix(s string) string {
	switch {
	case strings.HasPrefix(s, "¥"):
		s = s[len("¥"):]
	case strings.HasPrefix(s, "￥"):
		s = s[len("￥"):]
	case len(s) >= 3 && (strings.EqualFold(s[:3], "CNY") || strings.EqualFold(s[:3], "RMB")):
		s = s[3:]
	default:
		return s
	}
	return strings.TrimLeft(s, " ")
}

// parseGroupedDigits reads the whole-yuan part: plain digits, or digits grouped by
// commas in threes ("1,234,567"). Anything else ("12,34", ",5", "1 234") is refused,
// because a comma in the wrong place is as likely a mistyped decimal point.
func parseGroupedDigits(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	if strings.IndexByte(s, ',') >= 0 {
		groups := strings.Split(s, ",")
		if len(groups[0]) < 1 || len(groups[0]) > 3 || groups[0][0] == '0' {
			return 0, false
		}
		for _, g := range groups[1:] {
			if len(g) != 3 {
				return 0, false
			}
		}
		s = strings.ReplaceAll(s, ",", "")
	}
	if !allASCIIDigits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 16 { // more than 10^16 yuan: certainly too large, and keeps uint64 safe
		return maxAmountFen, true
	}
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func allASCIIDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String shows the amount in yuan with two decimals, e.g. "12.50", "-3.00".
// Negative amounts appear in ledgers as reversals.
func (a Amount) String() string {
	u := uint64(a)
	neg := a < 0
	if neg {
		u = -u // two's complement: also right for the most negative int64
	}
	var buf [24]byte
	i := len(buf)
	frac := u % 100
	buf[i-1] = byte('0' + frac%10)
	buf[i-2] = byte('0' + frac/10)
	buf[i-3] = '.'
	i -= 3
	yuan := u / 100
	for {
		i--
		buf[i] = byte('0' + yuan%10)
		yuan /= 10
		if yuan == 0 {
			break
		}
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// Yuan shows the amount with the yuan sign, e.g. "¥12.50", "-¥3.00".
func (a Amount) Yuan() string {
	s := a.String()
	if a < 0 {
		return "-¥" + s[1:]
	}
	return "¥" + s
}

// MulPercent returns basisPoints/10000 of a (1% = 100 bp), truncated toward zero.
// Truncating means a discount rounds down to the fen: the customer loses at most
// 0.99 fen against the exact percentage, and the merchant never gives away more
// than the percentage they set. The product is computed in 128 bits, so there is
// no intermediate overflow; a result outside int64 panics, as it can only come
// from a programming error (amounts are at most 9e15 fen and rates at most 100%).
func MulPercent(a Amount, basisPoints int64) Amount {
	neg := (a < 0) != (basisPoints < 0)
	ua, ub := uint64(a), uint64(basisPoints)
	if a < 0 {
		ua = -ua
	}
	if basisPoints < 0 {
		ub = -ub
	}
	hi, lo := bits.Mul64(ua, ub)
	if hi >= 10000 {
		panic("core: MulPercent overflow")
	}
	q, _ := bits.Div64(hi, lo, 10000)
	if neg {
		if q > 1<<63 {
			panic("core: MulPercent overflow")
		}
		return Amount(-q)
	}
	if q > 1<<63-1 {
		panic("core: MulPercent overflow")
	}
	return Amount(q)
}

const percentAccepted = "15% / 8.5折"

// ParsePercent reads a discount rate and returns it in basis points off the price.
// Two notations are common: "15%" (or "15", "12.5%") is the share taken off, while
// "8.5折" is the share paid, so 8.5折 = 85% paid = 15% off = 1500 bp. Written with
// two digits and no point, 折 reads as one decimal: "95折" is 9.5折 (500 bp).
// The rate must be above 0 and below 100%, to at most 0.01%.
func ParsePercent(field, s string) (int64, error) {
	body := strings.TrimSpace(s)
	fail := func(format string, args ...any) (int64, error) {
		return 0, Invalid(field, percentAccepted, s, format, args...)
	}
	if body == "" {
		return fail("discount rate is empty")
	}
	if body[0] == '-' || strings.HasPrefix(body, "−") {
		return fail("discount rate %q is negative", s)
	}

	var off int64
	if zhe, ok := strings.CutSuffix(body, "折"); ok {
		paid, ok := parseZhe(strings.TrimSpace(zhe))
		if !ok {
			return fail("%q is not a discount; write it like 8.5折 or 85折", s)
		}
		off = 10000 - paid
	} else {
		for _, suffix := range []string{"%", "％"} {
			if cut, ok := strings.CutSuffix(body, suffix); ok {
				body = strings.TrimSpace(cut)
				break
			}
		}
		v, ok := parseFixed(body, 2, 6)
		if !ok {
			return fail("%q is not a percentage; write it like 15%% or 12.5%% (at most 2 decimals)", s)
		}
		off = v
	}
	if off <= 0 || off >= 10000 {
		return fail("discount rate %q must be more than 0%% and less than 100%%", s)
	}
	return off, nil
}

// parseZhe reads the number before 折 and returns the share paid in basis points.
// "8", "8.5", "8.55" are tenths; "85" is 8.5. "80" is refused: it reads as either
// 8折 or a typo, and 8折 is the usual way to write it.
func parseZhe(s string) (int64, bool) {
	if len(s) == 2 && allASCIIDigits(s) {
		if s[0] == '0' || s[1] == '0' {
			return 0, false
		}
		return int64(s[0]-'0')*1000 + int64(s[1]-'0')*100, true
	}
	// One whole digit and up to three decimals: 1折 = 10% = 1000 bp, so three
	// decimals of 折 are two decimals of a percent.
	return parseFixed(s, 3, 1)
}

// parseFixed reads a non-negative decimal with at most maxFrac decimals and at most
// maxInt whole digits, returning it scaled by 10^maxFrac. A leading digit is required.
func parseFixed(s string, maxFrac, maxInt int) (int64, bool) {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || len(intPart) > maxInt || !allASCIIDigits(intPart) {
		return 0, false
	}
	if hasDot && (frac == "" || len(frac) > maxFrac || !allASCIIDigits(frac)) {
		return 0, false
	}
	var v int64
	for i := 0; i < len(intPart); i++ {
		v = v*10 + int64(intPart[i]-'0')
	}
	for i := 0; i < maxFrac; i++ {
		v *= 10
		if i < len(frac) {
			v += int64(frac[i] - '0')
		}
	}
	return v, true
}

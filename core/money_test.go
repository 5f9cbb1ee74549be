package core

import (
	"errors"
	"math"
	"testing"
)

func TestParseAmountAccepts(t *testing.T) {
	cases := []struct {
		in   string
		want Amount
	}{
		{"12", 1200},
		{"12.5", 1250},
		{"12.50", 1250},
		{"0.01", 1},
		{"0", 0},
		{"0.00", 0},
		{"007", 700},
		{"1,234.50", 123450},
		{"1,234,567", 123456700},
		{"  12.50  ", 1250},
		{"¥12.50", 1250},
		{"￥12.50", 1250},
		{"¥ 12.50", 1250},
		{"CNY12.50", 1250},
		{"cny 12.50", 1250},
		{"RMB 8", 800},
		{"Rmb1,000", 100000},
		{"12.50元", 1250},
		{"12.50 元", 1250},
		{"30块", 3000},
		{"¥12.50元", 1250},
		{"90,000,000,000,000.00", maxAmountFen},
		{"90000000000000", maxAmountFen},
	}
	for _, c := range cases {
		got, err := ParseAmount("amount", c.in)
		if err != nil {
			t.Errorf("ParseAmount(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseAmount(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestParseAmountRejects(t *testing.T) {
	for _, in := range []string{
		"", "   ", "¥", "元", "CNY",
		"-1", "-0.01", "¥-5", "−5", "+5",
		"12.505", "12.500", "12.", ".5", "12..5", "1.2.3",
		"1e3", "0x10", "12,34", "1,23", "1234,567", ",123", "0,123", "1,234,56", "1,,234",
		"１２", "1 234", "12 .50", "12. 5", "12,5",
		"abc", "12a", "¥¥12", "12元元", "元12", "CNYRMB12", "12 yuan",
		"90000000000000.01", "90,000,000,000,001", "99999999999999999999", "100000000000000000000000000",
	} {
		got, err := ParseAmount("amount", in)
		if err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", in, got)
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("ParseAmount(%q) error %T is not *Error", in, err)
			continue
		}
		if e.Code != ErrInvalid || e.Field != "amount" || e.Params["value"] != in || e.Params["accepted"] == "" {
			t.Errorf("ParseAmount(%q) error = %+v", in, e)
		}
	}
}

func TestParseAmountMessages(t *testing.T) {
	for in, want := range map[string]string{
		"12.505": `amount: amount "12.505" has more than 2 decimal places; the smallest unit is 0.01`,
		"-1":     `amount: amount "-1" is negative; enter a positive amount`,
		"":       `amount: amount is empty`,
	} {
		_, err := ParseAmount("amount", in)
		if err == nil || err.Error() != want {
			t.Errorf("ParseAmount(%q) error = %v, want %s", in, err, want)
		}
	}
}

func TestAmountString(t *testing.T) {
	cases := []struct {
		a         Amount
		str, yuan string
	}{
		{1250, "12.50", "¥12.50"},
		{5, "0.05", "¥0.05"},
		{0, "0.00", "¥0.00"},
		{100, "1.00", "¥1.00"},
		{-300, "-3.00", "-¥3.00"},
		{-5, "-0.05", "-¥0.05"},
		{123456789, "1234567.89", "¥1234567.89"},
		{math.MaxInt64, "92233720368547758.07", "¥92233720368547758.07"},
		{math.MinInt64, "-92233720368547758.08", "-¥92233720368547758.08"},
	}
	for _, c := range cases {
		if got := c.a.String(); got != c.str {
			t.Errorf("Amount(%d).String() = %q, want %q", int64(c.a), got, c.str)
		}
		if got := c.a.Yuan(); got != c.yuan {
			t.Errorf("Amount(%d).Yuan() = %q, want %q", int64(c.a), got, c.yuan)
		}
	}
}

func TestAmountStringRoundTrip(t *testing.T) {
	for _, a := range []Amount{0, 1, 9, 10, 99, 100, 101, 1250, 999999, maxAmountFen} {
		for _, s := range []string{a.String(), a.Yuan()} {
			got, err := ParseAmount("amount", s)
			if err != nil || got != a {
				t.Errorf("ParseAmount(%q) = %d, %v; want %d", s, got, err, a)
			}
		}
	}
}

func TestMulPercent(t *testing.T) {
	cases := []struct {
		a    Amount
		bp   int64
		want Amount
	}{
		{10000, 1500, 1500},   // 15% of ¥100.00
		{999, 1500, 149},      // 149.85 fen rounds down
		{1, 9999, 0},          // never more than the exact share
		{3333, 3333, 1110},    // 1110.8889
		{12345, 10000, 12345}, // 100%
		{12345, 0, 0},
		{0, 1500, 0},
		{-999, 1500, -149}, // a reversal truncates toward zero too
		{999, -1500, -149},
		{maxAmountFen, 9999, 8_999_100_000_000_000},
		{math.MaxInt64, 10000, math.MaxInt64},
		{math.MinInt64, 10000, math.MinInt64},
		{math.MaxInt64, 5000, math.MaxInt64 / 2},
	}
	for _, c := range cases {
		if got := MulPercent(c.a, c.bp); got != c.want {
			t.Errorf("MulPercent(%d, %d) = %d, want %d", c.a, c.bp, got, c.want)
		}
	}
}

func TestMulPercentNeverExceedsExact(t *testing.T) {
	for a := Amount(0); a < 2000; a += 7 {
		for bp := int64(1); bp < 10000; bp += 37 {
			got := MulPercent(a, bp)
			// got ≤ a·bp/10000 < got + 1 fen, in exact integers
			if int64(got)*10000 > int64(a)*bp || (int64(got)+1)*10000 <= int64(a)*bp {
				t.Fatalf("MulPercent(%d, %d) = %d is not the floor", a, bp, got)
			}
		}
	}
}

func TestMulPercentOverflowPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MulPercent(MaxInt64, 20000) did not panic")
		}
	}()
	MulPercent(math.MaxInt64, 20000)
}

func TestParsePercentAccepts(t *testing.T) {
	cases := []struct {
		in   string
		want int64
	}{
		{"15", 1500},
		{"15%", 1500},
		{"15 %", 1500},
		{"15％", 1500},
		{" 12.5% ", 1250},
		{"12.55%", 1255},
		{"0.01%", 1},
		{"99.99%", 9999},
		{"8.5折", 1500},
		{"8.5 折", 1500},
		{"9折", 1000},
		{"95折", 500},
		{"85折", 1500},
		{"88折", 1200},
		{"1折", 9000},
		{"0.5折", 9500},
		{"8.55折", 1450},
		{"9.995折", 5},
	}
	for _, c := range cases {
		got, err := ParsePercent("percent_off", c.in)
		if err != nil {
			t.Errorf("ParsePercent(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParsePercent(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestParsePercentRejects(t *testing.T) {
	for _, in := range []string{
		"", "%", "折", "0", "0%", "0.00%", "100", "100%", "150%", "1000%", "-5%", "−5%",
		"12.555%", "12.%", ".5%", "1e2%", "15%%", "%15", "abc", "１５%",
		"0折", "10折", "80折", "05折", "100折", "85.5折", "8.5555折", "10.0折", "八五折", "8.5折折",
	} {
		got, err := ParsePercent("percent_off", in)
		if err == nil {
			t.Errorf("ParsePercent(%q) = %d, want an error", in, got)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != ErrInvalid || e.Field != "percent_off" ||
			e.Params["value"] != in || e.Params["accepted"] != percentAccepted {
			t.Errorf("ParsePercent(%q) error = %#v", in, err)
		}
	}
}

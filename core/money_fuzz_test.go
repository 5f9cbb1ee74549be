package core

import (
	"fmt"
	"testing"
)

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12", "12.5", "¥12.50", "1,234.50", "12.50元", "CNY 3", "12.505",
		"-1", ".5", "90000000000000", "9,000,000,000,000,000", "￥0.01", "rmb1,000,000.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAmount("amount", s)
		if err != nil {
			if a != 0 {
				t.Fatalf("ParseAmount(%q) returned %d with an error", s, a)
			}
			return
		}
		if a < 0 || a > maxAmountFen {
			t.Fatalf("ParseAmount(%q) = %d, out of range", s, a)
		}
		for _, shown := range []string{a.String(), a.Yuan()} {
			back, err := ParseAmount("amount", shown)
			if err != nil || back != a {
				t.Fatalf("ParseAmount(%q) = %d, but %q parses to %d, %v", s, a, shown, back, err)
			}
		}
	})
}

func FuzzParsePercent(f *testing.F) {
	for _, s := range []string{"15", "15%", "12.5%", "8.5折", "9折", "95折", "0.01%", "100%", "80折", "8.555折"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bp, err := ParsePercent("percent_off", s)
		if err != nil {
			return
		}
		if bp <= 0 || bp >= 10000 {
			t.Fatalf("ParsePercent(%q) = %d, out of range", s, bp)
		}
		shown := fmt.Sprintf("%d.%02d%%", bp/100, bp%100)
		if back, err := ParsePercent("percent_off", shown); err != nil || back != bp {
			t.Fatalf("ParsePercent(%q) = %d, but %q parses to %d, %v", s, bp, shown, back, err)
		}
		zhe := fmt.Sprintf("%d.%03d折", (10000-bp)/1000, (10000-bp)%1000)
		if back, err := ParsePercent("percent_off", zhe); err != nil || back != bp {
			t.Fatalf("ParsePercent(%q) = %d, but %q parses to %d, %v", s, bp, zhe, back, err)
		}
	})
}

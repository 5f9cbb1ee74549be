package app

import (
	"testing"
	"time"

	"github.com/kameng/kameng/core"
)

func TestParseWeekdays(t *testing.T) {
	cases := []struct {
		in   string
		want uint8
		ok   bool
	}{
		{"", 0, true},
		{"1-5", 0b0111110, true},
		{"6,7", 0b1000001, true},
		{"六,日", 0b1000001, true},
		{"周一、周三", 0b0001010, true},
		{"mon,fri", 0b0100010, true},
		{"1-7", 0b1111111, true},
		{"5-1", 0, false},
		{"xyz", 0, false},
		{"8", 0, false},
	}
	for _, c := range cases {
		got, err := ParseWeekdays(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseWeekdays(%q) = %07b, %v; want %07b ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && core.AsError(err).Field != "weekdays" {
			t.Errorf("ParseWeekdays(%q) error names field %q", c.in, core.AsError(err).Field)
		}
	}
	if s := FormatWeekdays(0b0111110); s != "1,2,3,4,5" {
		t.Errorf("FormatWeekdays = %q", s)
	}
}

func TestParseHours(t *testing.T) {
	cases := []struct {
		in       string
		from, to int
		ok       bool
	}{
		{"09:00-21:00", 540, 1260, true},
		{"22:00-02:00", 1320, 120, true},
		{"00:00-24:00", 0, 1440, true},
		{"", 0, 0, true},
		{"25:00-26:00", 0, 0, false},
		{"9-21", 0, 0, false},
		{"10:00-10:00", 0, 0, false},
	}
	for _, c := range cases {
		f, to, err := ParseHours(c.in)
		if (err == nil) != c.ok || (c.ok && (f != c.from || to != c.to)) {
			t.Errorf("ParseHours(%q) = %d,%d,%v; want %d,%d ok=%v", c.in, f, to, err, c.from, c.to, c.ok)
		}
	}
	if s := FormatHours(540, 1260); s != "09:00-21:00" {
		t.Errorf("FormatHours = %q", s)
	}
}

func TestParseDateInStoreZone(t *testing.T) {
	sh := core.LoadLocation("Asia/Shanghai")
	ms, err := ParseDate("to", "2026-12-31", sh, true)
	if err != nil {
		t.Fatal(err)
	}
	// The end of 31 December in Shanghai is 16:00 UTC that day.
	if got := time.UnixMilli(ms).UTC(); !got.Equal(time.Date(2026, 12, 31, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("end of day = %v", got)
	}
	ms, err = ParseDate("from", "2026-12-01 10:00", sh, false)
	if err != nil || !time.UnixMilli(ms).UTC().Equal(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("from = %v, %v", time.UnixMilli(ms).UTC(), err)
	}
	for _, bad := range []string{"2026-13-45", "tomorrow", "31/12/2026"} {
		if _, err := ParseDate("to", bad, sh, true); core.ErrorCode(err) != core.ErrInvalid || core.AsError(err).Field != "to" {
			t.Errorf("ParseDate(%q) = %v, want invalid 'to'", bad, err)
		}
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, sh)
	if d, _ := ParseDay("from", "-30d", now); d != "2026-10-24" {
		t.Errorf("-30d = %s", d)
	}
}

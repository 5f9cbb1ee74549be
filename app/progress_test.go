package app

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// progressLines splits what a Progress wrote into the lines it drew.
func progressLines(out string) []string {
	var lines []string
	for _, seg := range strings.Split(strings.TrimSuffix(out, "\n"), "\r") {
		if seg != "" {
			lines = append(lines, seg)
		}
	}
	return lines
}

type progressClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *progressClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *progressClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestProgressDisabledPrintsNothing(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, "生成", 1000, false)
	for i := 0; i < 10000; i++ {
		p.Add(1)
	}
	p.Add(5000)
	p.Set(1000)
	p.Done()
	if buf.Len() != 0 {
		t.Fatalf("disabled progress wrote %q", buf.String())
	}

	var nilBar *Progress // a nil bar is a no-op too
	nilBar.Add(1)
	nilBar.Set(1)
	nilBar.Done()
}

func TestProgressDoneShowsFullBar(t *testing.T) {
	var buf bytes.Buffer
	const total = 1_000_000
	p := NewProgress(&buf, "generate", total, true)
	for i := 0; i < total; i++ {
		p.Add(1)
	}
	p.Done()
	p.Done() // a second Done draws nothing more
	p.Add(1)

	out := buf.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("want exactly one trailing newline, got %q", out)
	}
	lines := progressLines(out)
	last := lines[len(lines)-1]
	for _, want := range []string{"generate [####################] 100%", "1000000/1000000", "/s in "} {
		if !strings.Contains(last, want) {
			t.Errorf("final line %q lacks %q", last, want)
		}
	}
	if !strings.HasPrefix(lines[0], "generate [--------------------]   0% 0/1000000") {
		t.Errorf("first line %q is not the empty bar", lines[0])
	}
	for _, l := range lines {
		if w := progressTextWidth(l); w > progressColumns {
			t.Errorf("line %q is %d columns wide", l, w)
		}
	}
}

func TestProgressRateLimited(t *testing.T) {
	clock := &progressClock{t: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)}
	var buf bytes.Buffer
	p := progressWith(&buf, "import", 100_000, true, clock.now)
	draws := func() int { return strings.Count(buf.String(), "\r") }
	if draws() != 1 {
		t.Fatalf("want the initial draw, got %q", buf.String())
	}

	// The clock stands still: however many adds, no redraw.
	for i := 0; i < 3*progressEvery; i++ {
		p.Add(1)
	}
	p.Set(20_000)
	p.Add(progressBatch)
	if draws() != 1 {
		t.Fatalf("redrew within 100 ms: %q", buf.String())
	}

	// 150 ms later, the next clock check redraws once.
	clock.advance(150 * time.Millisecond)
	for i := 0; i < progressEvery; i++ {
		p.Add(1)
	}
	if draws() != 2 {
		t.Fatalf("want 2 draws after 150 ms and %d adds, got %d: %q", progressEvery, draws(), buf.String())
	}

	// A batched add looks at the clock straight away.
	clock.advance(150 * time.Millisecond)
	p.Add(progressBatch)
	if draws() != 3 {
		t.Fatalf("want a redraw on a batched add, got %d draws", draws())
	}

	// Set redraws when the interval has passed.
	clock.advance(100 * time.Millisecond)
	p.Set(50_000)
	lines := progressLines(buf.String())
	if len(lines) != 4 || !strings.Contains(lines[3], " 50% 50000/100000 ") {
		t.Fatalf("want a 4th line at 50%%, got %q", lines)
	}
	// 50000 in 0.4 s is 125k/s; 50000 left takes 0.4 s, shown rounded up.
	if !strings.HasSuffix(lines[3], "125.0k/s ETA 1s") {
		t.Errorf("rate and ETA wrong in %q", lines[3])
	}

	clock.advance(time.Second)
	p.Set(100_000)
	p.Done()
	lines = progressLines(buf.String())
	if got := lines[len(lines)-1]; !strings.HasSuffix(got, "100% 100000/100000 71.4k/s in 1.4s") {
		t.Errorf("final line %q", got)
	}
}

func TestProgressLine(t *testing.T) {
	elapsed := 36585 * time.Millisecond // 450000 at 12.3k/s
	got := progressLine("generate", 450_000, 1_000_000, elapsed, false)
	want := "generate [#########-----------]  45% 450000/1000000 12.3k/s ETA 45s"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	// Unknown total: count and rate, no bar.
	got = progressLine("export", 1500, 0, 2*time.Second, false)
	if want := "export 1500 750/s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// Nothing done yet: no rate, no estimate.
	got = progressLine("x", 0, 10, 0, false)
	if want := "x [--------------------]   0% 0/10 -/s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// More than the total never overflows the bar.
	got = progressLine("x", 12, 10, time.Second, false)
	if !strings.Contains(got, "[####################] 100% 12/10") {
		t.Errorf("over-full bar: %q", got)
	}
}

func TestProgressFitsEightyColumns(t *testing.T) {
	labels := []string{
		"",
		"gen",
		"生成卡密：春节礼品卡第一批次，全部门店通用，面值一百元",
		strings.Repeat("import-", 20),
		"混合mixed标签label与全角ＡＢＣ字符",
	}
	totals := []int64{0, 1, 1_000_000, 9_223_372_036_854_775_807}
	for _, label := range labels {
		for _, total := range totals {
			for _, final := range []bool{false, true} {
				n := total / 3
				line := progressLine(label, n, total, 3*time.Hour+time.Second, final)
				if w := progressTextWidth(line); w > progressColumns {
					t.Errorf("label %q total %d: %d columns: %q", label, total, w, line)
				}
				if label != "" && total > 0 && total < 1e12 && !strings.Contains(line, "[") {
					t.Errorf("bar missing: %q", line)
				}
			}
		}
	}

	// A long CJK label is cut on a rune and marked.
	line := progressLine("生成卡密：春节礼品卡第一批次，全部门店通用，面值一百元，限本月使用", 1, 2, time.Second, false)
	if !strings.Contains(line, "…") || !strings.HasPrefix(line, "生成卡密") {
		t.Errorf("long label not truncated: %q", line)
	}
}

func TestProgressTextWidth(t *testing.T) {
	for s, want := range map[string]int{
		"":         0,
		"abc":      3,
		"卡盟":       4,
		"ab卡":      4,
		"ＡＢ":       4, // fullwidth Latin
		"e\u0301":  1, // e + combining acute
		"¥12.50 元": 9,
		"礼品卡 gift": 11,
	} {
		if got := progressTextWidth(s); got != want {
			t.Errorf("width(%q) = %d, want %d", s, got, want)
		}
	}
	if got := progressTruncate("卡盟系统", 5); got != "卡盟…" {
		t.Errorf("truncate = %q", got)
	}
	if got := progressTruncate("卡盟系统", 8); got != "卡盟系统" {
		t.Errorf("truncate = %q", got)
	}
	if got := progressCleanLabel(" a\nb\tc "); got != "a b c" {
		t.Errorf("clean label = %q", got)
	}
}

func TestProgressWipesLongerLine(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, "x", 0, true)
	p.mu.Lock()
	p.drawn = 70
	p.draw(p.start.Add(time.Second), 5, false)
	p.mu.Unlock()
	lines := progressLines(buf.String())
	if got := lines[len(lines)-1]; progressTextWidth(got) != 70 || !strings.HasPrefix(got, "x 5 5.0/s ") {
		t.Errorf("shorter line not padded over the longer one: %q", got)
	}
}

func TestProgressConcurrentAdd(t *testing.T) {
	var buf bytes.Buffer
	const workers, each = 8, 50_000
	p := NewProgress(&buf, "并发", workers*each, true)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p.Add(1)
			}
		}()
	}
	wg.Wait()
	p.Done()
	lines := progressLines(buf.String())
	if last := lines[len(lines)-1]; !strings.Contains(last, "100% 400000/400000") {
		t.Errorf("final line %q", last)
	}
}

func TestProgressDurations(t *testing.T) {
	for _, c := range []struct {
		d       time.Duration
		precise bool
		want    string
	}{
		{0, false, "0s"},
		{400 * time.Millisecond, false, "1s"},
		{400 * time.Millisecond, true, "0.4s"},
		{45 * time.Second, false, "45s"},
		{187 * time.Second, false, "3m07s"},
		{2*time.Hour + 5*time.Minute, false, "2h05m"},
		{-time.Second, false, "0s"},
	} {
		if got := progressDuration(c.d, c.precise); got != c.want {
			t.Errorf("duration(%v, %v) = %q, want %q", c.d, c.precise, got, c.want)
		}
	}
	for v, want := range map[float64]string{0.5: "0.5", 42: "42", 12345: "12.3k", 2.5e6: "2.5M", 3e9: "3.0G"} {
		if got := progressSI(v); got != want {
			t.Errorf("si(%v) = %q, want %q", v, got, want)
		}
	}
}

// BenchmarkProgressAdd measures Add in the per-code loop of a generation.
func BenchmarkProgressAdd(b *testing.B) {
	for _, enabled := range []bool{false, true} {
		name := "disabled"
		if enabled {
			name = "enabled"
		}
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			p := NewProgress(&buf, "generate", int64(b.N), enabled)
			for b.Loop() {
				p.Add(1)
			}
			p.Done()
		})
	}
}

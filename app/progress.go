package app

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/term"
	"golang.org/x/text/width"
)

const (
	// progressColumns is the widest line drawn: one less than an 80-column
	// terminal, so writing the last cell never wraps the cursor.
	progressColumns = 79
	// progressInterval is the shortest time between two redraws.
	progressInterval = 100 * time.Millisecond
	// progressEvery is how many Add calls pass between two looks at the
	// clock: Add sits in loops of a million codes and must stay cheap.
	progressEvery = 4096
	// progressBatch: an Add of at least this many looks at the clock at
	// once, so callers that add in chunks still see the bar move.
	progressBatch = 1024
	// progressCells is the bar's width when the line has room for it;
	// progressMinCells is how far it shrinks for a long label.
	progressCells    = 20
	progressMinCells = 10
)

// Progress is a one-line terminal progress bar for long work (generating,
// importing, exporting codes):
//
//	label [#########-----------]  45% 450000/1000000 12.3k/s ETA 45s
//
// It redraws in place with a carriage return, at most every 100 ms, within
// 80 columns (wide CJK characters in the label count two). Add and Set may be
// called from several goroutines. A disabled Progress, or a nil one, prints
// nothing: callers disable it under --json or when the output is not a
// terminal (see IsTerminal).
type Progress struct {
	w       io.Writer
	label   string
	total   int64
	enabled bool
	now     func() time.Time

	n     atomic.Int64  // work done so far
	calls atomic.Uint64 // Add calls, to look at the clock only now and then

	mu    sync.Mutex // guards the fields below and writes to w
	start time.Time
	last  time.Time // when the line was last drawn
	drawn int       // display width of the line last drawn
	done  bool
}

// NewProgress starts a progress bar for total units of work (0 when the
// total is unknown: then it shows the count and rate without a bar) and, if
// enabled, draws it at 0 on w.
func NewProgress(w io.Writer, label string, total int64, enabled bool) *Progress {
	return progressWith(w, label, total, enabled, time.Now)
}

func progressWith(w io.Writer, label string, total int64, enabled bool, now func() time.Time) *Progress {
	p := &Progress{
		w:       w,
		label:   progressCleanLabel(label),
		total:   total,
		enabled: enabled && w != nil,
		now:     now,
	}
	p.start = now()
	if p.enabled {
		p.mu.Lock()
		p.draw(p.start, 0, false)
		p.mu.Unlock()
	}
	return p
}

// Add records n more units of work done.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.n.Add(n)
	if !p.enabled {
		return
	}
	if p.calls.Add(1)%progressEvery != 0 && n < progressBatch {
		return
	}
	p.tick()
}

// Set records that n units of work are done in all.
func (p *Progress) Set(n int64) {
	if p == nil {
		return
	}
	p.n.Store(n)
	if p.enabled {
		p.tick()
	}
}

// Done draws the final line, with the time the work took, and ends it with a
// newline. Later calls to Add, Set and Done draw nothing.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	if !p.enabled {
		return
	}
	p.draw(p.now(), p.n.Load(), true)
	_, _ = io.WriteString(p.w, "\n")
}

// IsTerminal reports whether f is a terminal, where a progress bar makes
// sense; a pipe or a file gets none.
func IsTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(int(f.Fd()))
}

// tick redraws if the last redraw is old enough. When another goroutine is
// drawing, it leaves the drawing to that one.
func (p *Progress) tick() {
	if !p.mu.TryLock() {
		return
	}
	defer p.mu.Unlock()
	if p.done {
		return
	}
	now := p.now()
	if now.Sub(p.last) < progressInterval {
		return
	}
	p.draw(now, p.n.Load(), false)
}

// draw writes the line over the previous one. The caller holds p.mu.
func (p *Progress) draw(now time.Time, n int64, final bool) {
	line := progressLine(p.label, n, p.total, now.Sub(p.start), final)
	lw := progressTextWidth(line)
	pad := ""
	if p.drawn > lw {
		pad = strings.Repeat(" ", p.drawn-lw) // wipe the rest of a longer line
	}
	_, _ = io.WriteString(p.w, "\r"+line+pad)
	p.drawn = lw
	p.last = now
}

// progressLine lays out one line of the bar. While running it ends with the
// estimated time left; the final line ends with the time taken.
func progressLine(label string, n, total int64, elapsed time.Duration, final bool) string {
	var rate float64
	if secs := elapsed.Seconds(); secs > 0.001 {
		rate = float64(n) / secs
	}
	rateText := "-/s"
	if rate > 0 {
		rateText = progressSI(rate) + "/s"
	}

	var tail string
	switch {
	case final:
		tail = fmt.Sprintf("%s %s in %s", progressCount(n, total), rateText, progressDuration(elapsed, true))
	case total > 0 && rate > 0 && n < total:
		left := time.Duration(float64(total-n) / rate * float64(time.Second))
		tail = fmt.Sprintf("%s %s ETA %s", progressCount(n, total), rateText, progressDuration(left, false))
	default:
		tail = fmt.Sprintf("%s %s", progressCount(n, total), rateText)
	}

	if total <= 0 {
		// Unknown total: no bar, no percentage.
		avail := progressColumns - progressTextWidth(tail) - 1
		if label = progressTruncate(label, avail); label == "" {
			return tail
		}
		return label + " " + tail
	}

	frac := float64(n) / float64(total)
	frac = max(0, min(1, frac))
	tail = fmt.Sprintf(" %3d%% %s", int(frac*100), tail)

	avail := progressColumns - progressTextWidth(tail)
	cells := progressCells
	if lw := progressTextWidth(label); lw > 0 && lw+1+cells+2 > avail {
		cells = max(progressMinCells, avail-lw-3) // the label gets cut below
	}
	cells = max(0, min(cells, avail-2)) // only for absurd totals
	filled := int(frac * float64(cells))
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat("-", cells-filled) + "]"
	if label = progressTruncate(label, avail-len(bar)-1); label == "" {
		return bar + tail
	}
	return label + " " + bar + tail
}

func progressCount(n, total int64) string {
	if total > 0 {
		return strconv.FormatInt(n, 10) + "/" + strconv.FormatInt(total, 10)
	}
	return strconv.FormatInt(n, 10)
}

// progressSI prints a rate with a k, M or G suffix: 12.3k.
func progressSI(v float64) string {
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 1, 64) + "G"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// progressDuration prints 45s, 3m07s or 2h05m; precise adds tenths of a
// second below ten seconds (for the time taken, not for an estimate).
func progressDuration(d time.Duration, precise bool) string {
	if d < 0 {
		d = 0
	}
	if precise && d < 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	s := int64((d + time.Second - 1) / time.Second) // round up: never promise too early
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}

// progressCleanLabel keeps the label on one line.
func progressCleanLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
}

// progressRuneWidth is the number of terminal columns r takes: two for wide
// and fullwidth East Asian characters, none for combining marks.
func progressRuneWidth(r rune) int {
	switch {
	case unicode.IsControl(r), unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

func progressTextWidth(s string) int {
	n := 0
	for _, r := range s {
		n += progressRuneWidth(r)
	}
	return n
}

// progressTruncate shortens s to at most limit columns, marking the cut with
// an ellipsis.
func progressTruncate(s string, limit int) string {
	if limit <= 0 {
		return ""
	}
	if progressTextWidth(s) <= limit {
		return s
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		rw := progressRuneWidth(r)
		if used+rw > limit-1 { // keep a column for "…"
			break
		}
		b.WriteRune(r)
		used += rw
	}
	return b.String() + "…"
}

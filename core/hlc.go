package core

// HLC is a hybrid logical clock: wall milliseconds in the high bits, a counter in the
// low 16, so timestamps from several devices order causally even when clocks drift.
type HLC struct{ last int64 }

const hlcCounterBits = 16

// NewHLC resumes a clock from its last persisted value.
func NewHLC(last int64) *HLC { return &HLC{last: last} }

// Now returns a timestamp greater than every one issued or observed before.
func (h *HLC) Now(wallMs int64) int64 {
	t := wallMs << hlcCounterBits
	if t > h.last {
		h.last = t
	} else {
		h.last++
	}
	return h.last
}

// Observe merges a timestamp received from elsewhere.
func (h *HLC) Observe(remote int64) {
	if remote > h.last {
		h.last = remote
	}
}

// Last is the value to persist.
func (h *HLC) Last() int64 { return h.last }

// HLCWall returns the wall-clock milliseconds of a timestamp.
func HLCWall(t int64) int64 { return t >> hlcCounterBits }

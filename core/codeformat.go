package core

import (
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// DefaultAlphabet has 32 characters and none that are easily confused when read
// aloud or off a receipt: no 0/O, 1/I/L.
const DefaultAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// CodeFormat describes how a campaign's codes look. The stored (normalised) form of
// a code is Prefix + Length random characters + one check character when Check is set.
type CodeFormat struct {
	Alphabet string `json:"alphabet"`
	Length   int    `json:"length"` // random characters, not counting Prefix and the check character
	Prefix   string `json:"prefix"`
	Group    int    `json:"group"` // display only: a '-' every Group characters; 0 for none
	Check    bool   `json:"check"` // append a check character
}

// DefaultCodeFormat is 12 random characters of DefaultAlphabet plus a check
// character, shown in groups of four.
func DefaultCodeFormat() CodeFormat {
	return CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Group: 4, Check: true}
}

const maxGuessOdds = 1e-9

// Validate reports the first setting that cannot be used.
func (f CodeFormat) Validate() error {
	a := alphabetFor(f.Alphabet)
	if a.err != nil {
		return a.invalid()
	}
	if f.Length < 4 || f.Length > 40 {
		return Invalid("length", "4–40", strconv.Itoa(f.Length),
			"code length must be between 4 and 40 characters, not %d", f.Length)
	}
	if len(f.Prefix) > 8 {
		return Invalid("prefix", "up to 8 letters or digits", f.Prefix,
			"prefix %q is longer than 8 characters", f.Prefix)
	}
	for i := 0; i < len(f.Prefix); i++ {
		c := f.Prefix[i]
		if !isUpperAlnum(c) {
			return Invalid("prefix", "up to 8 letters or digits", f.Prefix,
				"prefix %q may only hold the letters A–Z and digits", f.Prefix)
		}
		// Input is normalised before lookup, so a prefix character that normalisation
		// rewrites could never be matched.
		if to := a.similar[c]; to != 0 {
			return Invalid("prefix", "up to 8 letters or digits", f.Prefix,
				"prefix %q holds %q, which is read as %q with this alphabet", f.Prefix, string(c), string(to))
		}
	}
	if f.Group != 0 && (f.Group < 2 || f.Group > 8) {
		return Invalid("group", "0 or 2–8", strconv.Itoa(f.Group),
			"group size must be 0 (no grouping) or between 2 and 8, not %d", f.Group)
	}
	return nil
}

// Space is the number of distinct codes the format can produce.
func (f CodeFormat) Space() float64 {
	return math.Pow(float64(len(f.Alphabet)), float64(f.Length))
}

// GuessOdds is the chance that one random guess hits one of issued codes.
func (f CodeFormat) GuessOdds(issued int64) float64 {
	if issued <= 0 {
		return 0
	}
	return float64(issued) / f.Space()
}

// CheckGuessOdds refuses to issue so many codes that a random guess succeeds more
// often than 1 in 10^9: a code is the only secret protecting its value.
func (f CodeFormat) CheckGuessOdds(issued int64) error {
	odds := f.GuessOdds(issued)
	if odds <= maxGuessOdds {
		return nil
	}
	oneIn := formatOneIn(odds)
	e := Invalid("length", "a longer code or fewer codes", strconv.Itoa(f.Length),
		"with %d codes of %d characters a random guess succeeds 1 in %s; it must be rarer than 1 in 1,000,000,000",
		issued, f.Length, oneIn)
	e.Params["odds"] = "1 in " + oneIn
	e.Params["issued"] = strconv.FormatInt(issued, 10)
	return e
}

// formatOneIn shows the N of "1 in N" with thousands separators.
func formatOneIn(odds float64) string {
	n := 1 / odds
	if math.IsNaN(n) || n < 1 {
		return "1"
	}
	if n >= 1e15 {
		return strconv.FormatFloat(n, 'g', 3, 64)
	}
	digits := strconv.FormatInt(int64(n), 10)
	var b strings.Builder
	for i := 0; i < len(digits); i++ {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(digits[i])
	}
	return b.String()
}

// CheckChar returns the check character for s (Prefix + random characters), or 0
// when the alphabet is unusable.
//
// The check is Verhoeff's scheme generalised to the alphabet's size N: each
// character is a group element, the element at position i from the right is first
// permuted i times by an anti-symmetric mapping, and the check character makes the
// product the identity. Unlike Luhn mod N, which for an even N misses swapping the
// first and last alphabet characters ("2Z" ↔ "Z2"), it catches every single wrong
// character and every swap of neighbours, the two commonest typing mistakes.
// Prefix characters outside the alphabet count as their position in 0–9A–Z, mod N.
func (f CodeFormat) CheckChar(s string) byte {
	a := alphabetFor(f.Alphabet)
	if a.err != nil {
		return 0
	}
	return a.chars[a.group.inv[checkProduct(a, s, 1)]]
}

// Normalize turns what a person typed or scanned into the stored form of a code:
// spaces, hyphens and underscores (also their full-width and Unicode forms) are
// dropped, full-width letters and digits become ASCII, letters become upper-case.
// Look-alikes are folded when the alphabet lacks the character typed but holds
// its look-alike: O and 0 stand for each other, I and 1 stand for each other, and
// L is read as 1 (a lower-case l looks like a 1). So with Crockford's alphabet "o"
// becomes "0" and "I" and "l" become "1", while DefaultAlphabet, which holds L but
// none of O, 0, I and 1, folds nothing.
// Input that is already normalised is returned as is, without allocating.
func (f CodeFormat) Normalize(input string) string {
	a := alphabetFor(f.Alphabet)
	i := 0
	for ; i < len(input); i++ {
		if c := input[i]; !isUpperAlnum(c) || a.similar[c] != 0 {
			break
		}
	}
	if i == len(input) {
		return input
	}
	var b strings.Builder
	b.Grow(len(input))
	b.WriteString(input[:i])
	for i < len(input) {
		c := input[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(input[i:])
			i += size
			switch {
			case r == utf8.RuneError && size == 1:
				// Keep invalid bytes visible (so the code fails) without letting two
				// stray bytes join into a character on a second pass.
				b.WriteRune(utf8.RuneError)
				continue
			case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
				c = byte(r - 0xFEE0)
			case isCodeSeparator(r):
				continue
			default:
				b.WriteString(input[i-size : i])
				continue
			}
		} else {
			i++
		}
		switch {
		case c == ' ' || c == '-' || c == '_' || (c >= '\t' && c <= '\r'):
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if to := a.similar[c]; to != 0 {
			c = to
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isCodeSeparator reports runes that people and word processors put between the
// groups of a code: spaces, dashes and invisible joiners.
func isCodeSeparator(r rune) bool {
	switch r {
	case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, // zero-width characters
		0x2212, 0xFE58, 0xFE63, 0x30FC, 0xFF70: // minus and dash look-alikes
		return true
	}
	return (r >= 0x2010 && r <= 0x2015) || unicode.IsSpace(r)
}

// Verify checks that a normalised code could belong to the format. A code of the
// wrong shape cannot exist, so it is reported as not found without a lookup; a code
// whose only fault is the check character is reported as a typing mistake.
func (f CodeFormat) Verify(normalized string) error {
	a := alphabetFor(f.Alphabet)
	if a.err != nil {
		return a.invalid()
	}
	want := len(f.Prefix) + f.Length
	if f.Check {
		want++
	}
	if f.Length <= 0 || len(normalized) != want || !strings.HasPrefix(normalized, f.Prefix) {
		return codeNotFound()
	}
	for i := len(f.Prefix); i < len(normalized); i++ {
		if a.index[normalized[i]] < 0 {
			return codeNotFound()
		}
	}
	if f.Check && checkProduct(a, normalized, 0) != 0 {
		return &Error{Code: "bad_check_char", Field: "code",
			Message: "the code has a typing mistake: its check character does not match"}
	}
	return nil
}

func codeNotFound() *Error {
	return &Error{Code: ErrNotFound, Field: "code",
		Message: "no such code: it does not have the shape of this campaign's codes"}
}

// Display formats a normalised code for printing: the prefix, then the rest in
// groups of Group characters joined by '-'. The check character joins the last
// group so it never stands alone. Normalize undoes Display.
func (f CodeFormat) Display(normalized string) string {
	for i := 0; i < len(normalized); i++ {
		if normalized[i] >= utf8.RuneSelf {
			return normalized // not a code; splitting it could break a character
		}
	}
	rest := normalized
	var b strings.Builder
	b.Grow(len(normalized) + len(normalized)/2 + 2)
	if f.Prefix != "" && len(rest) > len(f.Prefix) && strings.HasPrefix(rest, f.Prefix) {
		b.WriteString(f.Prefix)
		b.WriteByte('-')
		rest = rest[len(f.Prefix):]
	}
	if f.Group < 2 {
		b.WriteString(rest)
		return b.String()
	}
	body, tail := rest, ""
	if f.Check && f.Length > 0 && len(rest) == f.Length+1 {
		body, tail = rest[:f.Length], rest[f.Length:]
	}
	for i := 0; i < len(body); i += f.Group {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(body[i:min(i+f.Group, len(body))])
	}
	b.WriteString(tail)
	return b.String()
}

// CodeGenerator draws codes of one format from a source of random bytes.
// It is not safe for concurrent use.
type CodeGenerator struct {
	format CodeFormat
	a      *codeAlphabet
	r      io.Reader
	err    error
	buf    []byte // random bytes read ahead, buf[pos:end] unused
	pos    int
	end    int
	limit  int    // bytes at or above limit are rejected, keeping every character equally likely
	code   []byte // scratch for the code being built; the prefix is already in place
}

const codeRandomChunk = 64 << 10

// NewGenerator returns a generator reading r, which is crypto/rand.Reader in
// production. A format that fails Validate makes every Next fail.
func (f CodeFormat) NewGenerator(r io.Reader) *CodeGenerator {
	g := &CodeGenerator{format: f, r: r, err: f.Validate()}
	if g.err != nil {
		return g
	}
	g.a = alphabetFor(f.Alphabet)
	n := len(f.Alphabet)
	g.limit = 256 - 256%n
	size := len(f.Prefix) + f.Length
	if f.Check {
		size++
	}
	g.code = make([]byte, size)
	copy(g.code, f.Prefix)
	g.buf = make([]byte, codeRandomChunk)
	return g
}

// Next returns a new code in its stored (normalised) form.
func (g *CodeGenerator) Next() (string, error) {
	if g.err != nil {
		return "", g.err
	}
	chars, n := g.a.chars, len(g.a.chars)
	p := len(g.format.Prefix)
	for i := p; i < p+g.format.Length; i++ {
		for {
			if g.pos == g.end {
				if err := g.fill(); err != nil {
					return "", err
				}
			}
			b := int(g.buf[g.pos])
			g.pos++
			// Rejection sampling: b%n is uniform only below the largest multiple of n.
			if b < g.limit {
				g.code[i] = chars[b%n]
				break
			}
		}
	}
	if g.format.Check {
		body := g.code[:p+g.format.Length]
		g.code[len(body)] = chars[g.a.group.inv[checkProduct(g.a, body, 1)]]
	}
	return string(g.code), nil
}

func (g *CodeGenerator) fill() error {
	n, err := io.ReadAtLeast(g.r, g.buf, 1)
	if err != nil {
		return Errorf(ErrInternal, "reading random bytes for codes: %v", err)
	}
	g.pos, g.end = 0, n
	return nil
}

// badRune returns the character s starts with, whole even when it is not ASCII.
func badRune(s string) string {
	_, size := utf8.DecodeRuneInString(s)
	return s[:size]
}

func isUpperAlnum(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// codeAlphabet is what checking and normalising need to know about an alphabet,
// worked out once per alphabet.
type codeAlphabet struct {
	chars   string
	err     *Error     // why the alphabet cannot be used; nil when it can
	index   [256]int16 // position of each byte in chars, -1 when absent
	similar [256]byte  // look-alike folding: the character a byte is read as, 0 for itself
	group   *checkGroup
}

var (
	codeAlphabets     sync.Map // alphabet string → *codeAlphabet
	codeAlphabetCount atomic.Int32
)

// A handful of alphabets is normal; the cap keeps arbitrary input from growing the
// cache without bound.
const maxCachedAlphabets = 64

func alphabetFor(chars string) *codeAlphabet {
	if v, ok := codeAlphabets.Load(chars); ok {
		return v.(*codeAlphabet)
	}
	a := newCodeAlphabet(chars)
	if codeAlphabetCount.Load() < maxCachedAlphabets {
		if v, loaded := codeAlphabets.LoadOrStore(chars, a); loaded {
			return v.(*codeAlphabet)
		}
		codeAlphabetCount.Add(1)
	}
	return a
}

const alphabetAccepted = "10–64 different characters from A–Z and 0–9"

func newCodeAlphabet(chars string) *codeAlphabet {
	a := &codeAlphabet{chars: chars}
	for i := range a.index {
		a.index[i] = -1
	}
	for i := 0; i < len(chars); i++ {
		c := chars[i]
		switch {
		case !isUpperAlnum(c):
			if a.err == nil {
				a.err = Invalid("alphabet", alphabetAccepted, chars,
					"alphabet may only hold the letters A–Z and digits; %q is not allowed", badRune(chars[i:]))
			}
		case a.index[c] >= 0:
			if a.err == nil {
				a.err = Invalid("alphabet", alphabetAccepted, chars,
					"alphabet holds %q twice", string(c))
			}
		default:
			a.index[c] = int16(i)
		}
	}
	if a.err == nil && (len(chars) < 10 || len(chars) > 64) {
		a.err = Invalid("alphabet", alphabetAccepted, chars,
			"alphabet must have between 10 and 64 characters, not %d", len(chars))
	}
	has := func(c byte) bool { return a.index[c] >= 0 }
	fold := func(from, to byte) {
		if !has(from) && has(to) {
			a.similar[from] = to
		}
	}
	fold('O', '0')
	fold('0', 'O')
	fold('I', '1')
	fold('1', 'I')
	fold('L', '1')
	if a.err == nil {
		a.group = checkGroupFor(len(chars))
	}
	return a
}

// invalid returns a copy of the alphabet's error, so a caller may change it freely.
func (a *codeAlphabet) invalid() *Error {
	e := *a.err
	e.Params = map[string]string{"accepted": a.err.Params["accepted"], "value": a.err.Params["value"]}
	return &e
}

const base36Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// value maps a character to a group element. Characters outside the alphabet can
// only appear in the prefix, which is fixed, so any deterministic mapping will do.
func (a *codeAlphabet) value(c byte) uint8 {
	if v := a.index[c]; v >= 0 {
		return uint8(v)
	}
	n := len(a.chars)
	if v := strings.IndexByte(base36Digits, c); v >= 0 {
		return uint8(v % n)
	}
	return uint8(int(c) % n)
}

// checkProduct multiplies σ^i(value) over s, where i counts from the right starting at
// first: 1 when computing a check character for s, 0 when s ends with one.
func checkProduct[S ~string | ~[]byte](a *codeAlphabet, s S, first int) uint8 {
	g := a.group
	n := g.n
	var c uint8
	pos := first % g.period
	for j := len(s) - 1; j >= 0; j-- {
		c = g.mul[int(c)*n+int(g.sigma[pos*n+int(a.value(s[j]))])]
		if pos++; pos == g.period {
			pos = 0
		}
	}
	return c
}

// checkGroup is a group on {0..n-1} (0 the identity) with a permutation σ such that
// x·σ(y) ≠ y·σ(x) whenever x ≠ y. That anti-symmetry is what makes swapped
// neighbours change the product.
type checkGroup struct {
	n      int
	mul    []uint8 // mul[x*n+y] = x·y
	inv    []uint8
	sigma  []uint8 // sigma[i*n+x] = σ^i(x) for i < period
	period int
}

var checkGroups [65]struct {
	once sync.Once
	g    *checkGroup
}

func checkGroupFor(n int) *checkGroup {
	slot := &checkGroups[n]
	slot.once.Do(func() { slot.g = newCheckGroup(n) })
	return slot.g
}

// gf2Poly holds an irreducible polynomial of degree k for GF(2^k).
var gf2Poly = [7]int{2: 0b111, 3: 0b1011, 4: 0b10011, 5: 0b100101, 6: 0b1000011}

// newCheckGroup builds the group for an alphabet of n characters (10 ≤ n ≤ 64).
// Write n = 2^k·m with m odd.
//   - k ≠ 1: the additive group of GF(2^k) times Z_m, with σ(g, z) = (x·g, 2z).
//     x·g ⊕ h = x·h ⊕ g forces g = h because x ≠ 1, and z + 2w = w + 2z forces z = w.
//   - k = 1: no abelian group of order 2m has such a σ, so use the dihedral group
//     D_m (Verhoeff's choice for decimal digits) with Gumm's mapping
//     σ(r^j) = r^-j, σ(s·r^j) = s·r^(j+1). Tests check anti-symmetry for every n.
func newCheckGroup(n int) *checkGroup {
	g := &checkGroup{n: n, mul: make([]uint8, n*n), inv: make([]uint8, n)}
	sigma := make([]uint8, n)
	k := bits.TrailingZeros(uint(n))
	m := n >> k
	if k == 1 {
		// Element t·m + j stands for s^t·r^j; r^j·s = s·r^-j.
		for x := 0; x < n; x++ {
			tx, jx := x/m, x%m
			for y := 0; y < n; y++ {
				ty, jy := y/m, y%m
				j := jx
				if ty == 1 {
					j = m - jx
				}
				g.mul[x*n+y] = uint8((tx^ty)*m + (j+jy)%m)
			}
			if tx == 0 {
				sigma[x] = uint8((m - jx) % m)
			} else {
				sigma[x] = uint8(m + (jx+1)%m)
			}
		}
	} else {
		// Element h·m + z stands for (h, z) with h in GF(2^k), z in Z_m.
		for x := 0; x < n; x++ {
			hx, zx := x/m, x%m
			for y := 0; y < n; y++ {
				hy, zy := y/m, y%m
				g.mul[x*n+y] = uint8((hx^hy)*m + (zx+zy)%m)
			}
			h := hx
			if k > 0 {
				h <<= 1
				if h>>k != 0 {
					h ^= gf2Poly[k]
				}
			}
			sigma[x] = uint8(h*m + (2*zx)%m)
		}
	}
	for x := 0; x < n; x++ {
		for y := 0; y < n; y++ {
			if g.mul[x*n+y] == 0 {
				g.inv[x] = uint8(y)
				break
			}
		}
	}
	// Tabulate σ^i until it returns to the identity permutation.
	power := make([]uint8, n)
	for x := range power {
		power[x] = uint8(x)
	}
	for {
		g.sigma = append(g.sigma, power...)
		g.period++
		next := make([]uint8, n)
		identity := true
		for x := range next {
			next[x] = sigma[power[x]]
			identity = identity && int(next[x]) == x
		}
		if identity {
			break
		}
		power = next
	}
	return g
}

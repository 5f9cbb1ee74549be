package core

import (
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

// crockfordAlphabet holds 0 and 1 but not O, I or L, so input folding applies.
const crockfordAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func codeErrorCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T (%v) is not *Error", err, err)
	}
	return e.Code
}

func TestCodeFormatValidate(t *testing.T) {
	if err := DefaultCodeFormat().Validate(); err != nil {
		t.Fatalf("default format: %v", err)
	}
	ok := []CodeFormat{
		{Alphabet: crockfordAlphabet, Length: 10, Prefix: "K9", Group: 5, Check: true},
		{Alphabet: "0123456789", Length: 16, Group: 0},
		{Alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", Length: 40, Prefix: "ABCDEFGH", Group: 8},
		{Alphabet: DefaultAlphabet, Length: 4, Prefix: "GOLD", Group: 2}, // O is not folded: the alphabet has neither O nor 0
	}
	for _, f := range ok {
		if err := f.Validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	bad := []struct {
		f     CodeFormat
		field string
	}{
		{CodeFormat{Alphabet: "", Length: 12}, "alphabet"},
		{CodeFormat{Alphabet: "ABCDEFGHJ", Length: 12}, "alphabet"},   // 9 characters
		{CodeFormat{Alphabet: "abcdefghjk", Length: 12}, "alphabet"},  // lower case
		{CodeFormat{Alphabet: "ABCDEFGHJKA", Length: 12}, "alphabet"}, // repeated A
		{CodeFormat{Alphabet: "ABCDEFGHJK-", Length: 12}, "alphabet"}, // symbol
		{CodeFormat{Alphabet: "ABCDEFGHJKÄ", Length: 12}, "alphabet"}, // not ASCII
		{CodeFormat{Alphabet: strings.Repeat(DefaultAlphabet, 3), Length: 12}, "alphabet"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 3}, "length"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 41}, "length"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Prefix: "ABCDEFGHJ"}, "prefix"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Prefix: "vip"}, "prefix"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Prefix: "V-P"}, "prefix"},
		{CodeFormat{Alphabet: crockfordAlphabet, Length: 12, Prefix: "GOLD"}, "prefix"}, // typed GOLD reads as G01D
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Group: 1}, "group"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Group: 9}, "group"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 12, Group: -4}, "group"},
	}
	for _, c := range bad {
		err := c.f.Validate()
		var e *Error
		if !errors.As(err, &e) || e.Code != ErrInvalid || e.Field != c.field || e.Params["accepted"] == "" {
			t.Errorf("%+v: got %v, want an invalid %s", c.f, err, c.field)
		}
	}
}

func TestCodeFormatSpaceAndOdds(t *testing.T) {
	f := DefaultCodeFormat()
	if got, want := f.Space(), float64(uint64(1)<<60); got != want {
		t.Errorf("Space = %g, want %g", got, want)
	}
	if got := f.GuessOdds(1 << 20); got != 1.0/(1<<40) {
		t.Errorf("GuessOdds = %g", got)
	}
	if err := f.CheckGuessOdds(1_000_000); err != nil {
		t.Errorf("default format refuses 1,000,000 codes: %v", err)
	}
	if err := f.CheckGuessOdds(0); err != nil {
		t.Errorf("no codes: %v", err)
	}

	short := f
	short.Length = 6
	err := short.CheckGuessOdds(1_000_000)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("length 6 accepts 1,000,000 codes (odds %g)", short.GuessOdds(1_000_000))
	}
	if e.Code != ErrInvalid || e.Field != "length" || e.Params["accepted"] != "a longer code or fewer codes" {
		t.Errorf("error = %+v", e)
	}
	// 32^6 / 10^6 = 1073.7
	if e.Params["odds"] != "1 in 1,073" || !strings.Contains(e.Message, "1 in 1,073") {
		t.Errorf("odds = %q, message = %q", e.Params["odds"], e.Message)
	}
	if err := short.CheckGuessOdds(1); err != nil {
		t.Errorf("length 6 refuses one code: %v", err) // 1 in 1.07e9
	}
	if err := short.CheckGuessOdds(2); err == nil {
		t.Error("length 6 accepts two codes, odds 1 in 5.4e8")
	}
}

func TestCheckGroupAntiSymmetric(t *testing.T) {
	for n := 10; n <= 64; n++ {
		g := checkGroupFor(n)
		for x := 0; x < n; x++ {
			if g.mul[x] != uint8(x) || g.mul[x*n] != uint8(x) {
				t.Fatalf("n=%d: 0 is not the identity for %d", n, x)
			}
			if g.mul[x*n+int(g.inv[x])] != 0 || g.mul[int(g.inv[x])*n+x] != 0 {
				t.Fatalf("n=%d: inv[%d] = %d is not an inverse", n, x, g.inv[x])
			}
			row, col := make([]bool, n), make([]bool, n)
			for y := 0; y < n; y++ {
				row[g.mul[x*n+y]] = true
				col[g.mul[y*n+x]] = true
			}
			for y := 0; y < n; y++ {
				if !row[y] || !col[y] {
					t.Fatalf("n=%d: row or column %d is not a permutation", n, x)
				}
			}
		}
		sigma := g.sigma[n : 2*n]
		if g.period == 1 {
			t.Fatalf("n=%d: σ is the identity", n)
		}
		for x := 0; x < n; x++ {
			for y := x + 1; y < n; y++ {
				if g.mul[x*n+int(sigma[y])] == g.mul[y*n+int(sigma[x])] {
					t.Fatalf("n=%d: x·σ(y) = y·σ(x) for x=%d, y=%d", n, x, y)
				}
			}
		}
		// associativity, on a sample
		for x := 0; x < n; x += 3 {
			for y := 0; y < n; y += 5 {
				for z := 0; z < n; z += 7 {
					if g.mul[int(g.mul[x*n+y])*n+z] != g.mul[x*n+int(g.mul[y*n+z])] {
						t.Fatalf("n=%d: not associative at %d,%d,%d", n, x, y, z)
					}
				}
			}
		}
	}
}

// typoFormats cover the three kinds of check group: GF(32), Z_m × GF(2^k) and dihedral.
var typoFormats = []CodeFormat{
	DefaultCodeFormat(),
	{Alphabet: crockfordAlphabet, Length: 8, Prefix: "K9", Check: true},
	{Alphabet: "0123456789", Length: 10, Check: true},
	{Alphabet: "ABCDEFGHJKLMNPQRSTUVWXYZ", Length: 9, Prefix: "X9", Check: true}, // 24 = 8·3
	{Alphabet: "ABCDEFGHJKLMNPQRSTUVWXYZ234567", Length: 7, Check: true},         // 30 = 2·15
	{Alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", Length: 6, Check: true},      // 33
}

func TestCheckCharCatchesTypos(t *testing.T) {
	for _, f := range typoFormats {
		a := f.Alphabet
		n := len(a)
		bodies := []string{
			strings.Repeat(a[:1], f.Length),
			strings.Repeat(a[:1]+a[n-1:], f.Length)[:f.Length], // first and last letters side by side: Luhn mod N misses these swaps
			strings.Repeat(a[n-1:]+a[1:2]+a[:1], f.Length)[:f.Length],
		}
		gen := f.NewGenerator(mrand.NewChaCha8([32]byte{byte(n)}))
		for range 3 {
			code, err := gen.Next()
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, code[len(f.Prefix):len(f.Prefix)+f.Length])
		}
		for _, body := range bodies {
			code := f.Prefix + body
			code += string(f.CheckChar(code))
			if err := f.Verify(code); err != nil {
				t.Fatalf("%s: %v", code, err)
			}
			b := []byte(code)
			for i := len(f.Prefix); i < len(b); i++ {
				orig := b[i]
				for j := 0; j < n; j++ {
					if a[j] == orig {
						continue
					}
					b[i] = a[j]
					if got := codeErrorCode(t, f.Verify(string(b))); got != "bad_check_char" {
						t.Errorf("%s → %s (position %d): got %q, want bad_check_char", code, b, i, got)
					}
				}
				b[i] = orig
			}
			for i := len(f.Prefix); i+1 < len(b); i++ {
				if b[i] == b[i+1] {
					continue
				}
				b[i], b[i+1] = b[i+1], b[i]
				if got := codeErrorCode(t, f.Verify(string(b))); got != "bad_check_char" {
					t.Errorf("%s → %s (swap at %d): got %q, want bad_check_char", code, b, i, got)
				}
				b[i], b[i+1] = b[i+1], b[i]
			}
		}
	}
}

func TestCheckCharEveryPairSwap(t *testing.T) {
	// Every ordered pair of different characters, swapped at every position of a short
	// code, including against the check character itself.
	f := CodeFormat{Alphabet: DefaultAlphabet, Length: 4, Check: true}
	for _, x := range []byte(DefaultAlphabet) {
		for _, y := range []byte(DefaultAlphabet) {
			if x == y {
				continue
			}
			for pos := 0; pos < f.Length; pos++ {
				body := []byte("A7K2")
				body[pos] = x
				if pos+1 < f.Length {
					body[pos+1] = y
				}
				code := append(body, f.CheckChar(string(body)))
				if code[pos] == code[pos+1] {
					continue
				}
				code[pos], code[pos+1] = code[pos+1], code[pos]
				if got := codeErrorCode(t, f.Verify(string(code))); got != "bad_check_char" {
					t.Fatalf("swap at %d in %s not caught: %q", pos, code, got)
				}
			}
		}
	}
}

func TestVerify(t *testing.T) {
	f := DefaultCodeFormat()
	body := "ABCDEFGH2345"
	code := body + string(f.CheckChar(body))
	if err := f.Verify(code); err != nil {
		t.Fatalf("Verify(%s): %v", code, err)
	}
	typo := []byte(code)
	typo[3] = 'E'
	cases := []struct {
		in   string
		want string
	}{
		{code, ""},
		{string(typo), "bad_check_char"},
		{code[:len(code)-1], ErrNotFound},
		{code + "A", ErrNotFound},
		{"", ErrNotFound},
		{strings.Replace(code, "A", "0", 1), ErrNotFound}, // 0 is not in the alphabet
		{strings.ToLower(code), ErrNotFound},              // Verify takes normalised input
	}
	for _, c := range cases {
		err := f.Verify(c.in)
		if got := codeErrorCode(t, err); got != c.want {
			t.Errorf("Verify(%q) = %v, want %q", c.in, err, c.want)
		}
		var e *Error
		if errors.As(err, &e) && e.Field != "code" {
			t.Errorf("Verify(%q) field = %q", c.in, e.Field)
		}
	}

	p := CodeFormat{Alphabet: DefaultAlphabet, Length: 6, Prefix: "VIP", Check: true}
	pc := "VIP" + "ABCDEF"
	pc += string(p.CheckChar(pc))
	if err := p.Verify(pc); err != nil {
		t.Errorf("Verify(%s): %v", pc, err)
	}
	if got := codeErrorCode(t, p.Verify("VIQ"+pc[3:])); got != ErrNotFound {
		t.Errorf("wrong prefix: %q", got)
	}

	plain := CodeFormat{Alphabet: DefaultAlphabet, Length: 8}
	if err := plain.Verify("ABCDEFGH"); err != nil {
		t.Errorf("no check character: %v", err)
	}
	if got := codeErrorCode(t, plain.Verify("ABCDEFGHJ")); got != ErrNotFound {
		t.Errorf("no check character, too long: %q", got)
	}

	broken := CodeFormat{Alphabet: "abc", Length: 8}
	if got := codeErrorCode(t, broken.Verify("ABCDEFGH")); got != ErrInvalid {
		t.Errorf("bad alphabet: %q", got)
	}
	if c := broken.CheckChar("ABC"); c != 0 {
		t.Errorf("bad alphabet check char = %q", c)
	}
}

func TestNormalize(t *testing.T) {
	def := DefaultCodeFormat()
	crock := CodeFormat{Alphabet: crockfordAlphabet, Length: 12}
	withO := CodeFormat{Alphabet: "ABCDEFGHJKMNOPQRSTUVWXYZ23456789", Length: 12}  // O but no 0, no I/L/1
	withI := CodeFormat{Alphabet: "ABCDEFGHIJKMNPQRSTUVWXYZ23456789", Length: 12}  // I but no L or 1
	withIL := CodeFormat{Alphabet: "ABCDEFGHIJKLMNPQRSTUVWXYZ2345678", Length: 12} // I and L, no 1
	cases := []struct {
		f        CodeFormat
		in, want string
	}{
		{def, "abcd-efgh 2345", "ABCDEFGH2345"},
		{def, "  ABCD EFGH  ", "ABCDEFGH"},
		{def, "ab_cd\t-ef\n", "ABCDEF"},
		{def, "ＡＢＣＤ－ｅｆｇｈ　２３４５", "ABCDEFGH2345"},
		{def, "AB\u00a0CD\u2013EF\u2014GH\u200bJK\ufeff", "ABCDEFGHJK"},
		{def, "ABCD＿EFGH", "ABCDEFGH"},
		{def, "o0il1", "O0IL1"}, // the default alphabet holds L but none of O, 0, I, 1: nothing to fold
		{def, "码ABC", "码ABC"},
		{def, "AB\xffC", "AB\uFFFDC"},
		{crock, "o0-Il1", "00111"},
		{crock, "ｏＩｌ", "011"},
		{withO, "0o", "OO"},
		{withI, "1lIi", "ILII"}, // L is never read as I
		{withIL, "1lIi", "ILII"},
		{def, "", ""},
		{def, "ABCD", "ABCD"},
	}
	for _, c := range cases {
		got := c.f.Normalize(c.in)
		if got != c.want {
			t.Errorf("Normalize(%q) with %s = %q, want %q", c.in, c.f.Alphabet, got, c.want)
		}
		if again := c.f.Normalize(got); again != got {
			t.Errorf("Normalize(%q) = %q, not idempotent", got, again)
		}
	}
}

func TestNormalizeAllocations(t *testing.T) {
	f := DefaultCodeFormat()
	clean := "ABCDEFGH2345Q"
	if n := testing.AllocsPerRun(100, func() { _ = f.Normalize(clean) }); n != 0 {
		t.Errorf("normalised input: %v allocations, want 0", n)
	}
	typed := "abcd-efgh-2345-q"
	if n := testing.AllocsPerRun(100, func() { _ = f.Normalize(typed) }); n > 1 {
		t.Errorf("typed input: %v allocations, want 1", n)
	}
	code := f.Normalize(typed)
	if n := testing.AllocsPerRun(100, func() { _ = f.Verify(code) }); n > 1 {
		t.Errorf("Verify: %v allocations", n)
	}
}

func TestDisplay(t *testing.T) {
	f := DefaultCodeFormat()
	cases := []struct {
		f        CodeFormat
		in, want string
	}{
		{f, "ABCDEFGH2345Q", "ABCD-EFGH-2345Q"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 10, Group: 4, Check: true}, "ABCDEFGH23Q", "ABCD-EFGH-23Q"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 8, Group: 4}, "ABCDEFGH", "ABCD-EFGH"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 6, Prefix: "VIP", Group: 3, Check: true}, "VIPABCDEFQ", "VIP-ABC-DEFQ"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 6, Prefix: "VIP", Check: true}, "VIPABCDEFQ", "VIP-ABCDEFQ"},
		{CodeFormat{Alphabet: DefaultAlphabet, Length: 6, Check: true}, "ABCDEFQ", "ABCDEFQ"},
		{f, "ABCDE", "ABCD-E"}, // wrong length: plain grouping
		{f, "码ABCDEFG", "码ABCDEFG"},
		{f, "", ""},
	}
	for _, c := range cases {
		got := c.f.Display(c.in)
		if got != c.want {
			t.Errorf("Display(%q) = %q, want %q", c.in, got, c.want)
		}
		if back := c.f.Normalize(got); back != c.in {
			t.Errorf("Normalize(Display(%q)) = %q", c.in, back)
		}
	}
}

func TestCodeGenerator(t *testing.T) {
	for _, f := range append(typoFormats, CodeFormat{Alphabet: DefaultAlphabet, Length: 5, Prefix: "P", Group: 2}) {
		g := f.NewGenerator(rand.Reader)
		seen := map[string]bool{}
		for range 1000 {
			code, err := g.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Verify(code); err != nil {
				t.Fatalf("%+v: generated %s does not verify: %v", f, code, err)
			}
			if f.Normalize(f.Display(code)) != code {
				t.Fatalf("%s: display %s does not normalise back", code, f.Display(code))
			}
			if f.Normalize(code) != code {
				t.Fatalf("%s is not normalised", code)
			}
			seen[code] = true
		}
		if len(seen) < 990 {
			t.Errorf("%+v: only %d distinct codes in 1000", f, len(seen))
		}
	}
}

// byteReader returns its bytes one call at a time, then EOF.
type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestCodeGeneratorRejectsBiasedBytes(t *testing.T) {
	// With 10 characters only bytes below 250 are used, so 250–255 are skipped.
	f := CodeFormat{Alphabet: "0123456789", Length: 4}
	g := f.NewGenerator(&byteReader{[]byte{255, 250, 3, 249, 10, 251, 127}})
	code, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if code != "3907" {
		t.Errorf("code = %q, want 3907", code)
	}
	if _, err := g.Next(); codeErrorCode(t, err) != ErrInternal {
		t.Errorf("reader at EOF: err = %v", err)
	}
}

func TestCodeGeneratorInvalidFormat(t *testing.T) {
	g := CodeFormat{Alphabet: DefaultAlphabet, Length: 2}.NewGenerator(rand.Reader)
	if _, err := g.Next(); codeErrorCode(t, err) != ErrInvalid {
		t.Errorf("err = %v", err)
	}
}

func TestCodeGeneratorUniform(t *testing.T) {
	// A loose chi-square bound: modulo bias (10 or 33 characters from a byte) pushes
	// the statistic into the hundreds; fair draws stay near the degrees of freedom.
	for _, alphabet := range []string{DefaultAlphabet, "0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"} {
		n := len(alphabet)
		f := CodeFormat{Alphabet: alphabet, Length: 32}
		g := f.NewGenerator(mrand.NewChaCha8([32]byte{1, 2, 3}))
		counts := make(map[rune]int)
		const total = 320_000
		for range total / f.Length {
			code, err := g.Next()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range code {
				counts[c]++
			}
		}
		if len(counts) != n {
			t.Fatalf("%s: %d distinct characters, want %d", alphabet, len(counts), n)
		}
		expected := float64(total) / float64(n)
		chi2 := 0.0
		for _, c := range counts {
			d := float64(c) - expected
			chi2 += d * d / expected
		}
		dof := float64(n - 1)
		if chi2 > dof*2+30 {
			t.Errorf("%s: chi-square %.1f with %d degrees of freedom", alphabet, chi2, n-1)
		}
	}
}

func BenchmarkCodeGenerator(b *testing.B) {
	g := DefaultCodeFormat().NewGenerator(rand.Reader)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeVerify(b *testing.B) {
	f := DefaultCodeFormat()
	code, _ := f.NewGenerator(rand.Reader).Next()
	typed := strings.ToLower(f.Display(code))
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Verify(f.Normalize(typed)); err != nil {
			b.Fatal(err)
		}
	}
}

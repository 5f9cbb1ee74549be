package core

import (
	mrand "math/rand/v2"
	"testing"
)

var fuzzCodeFormats = []CodeFormat{
	DefaultCodeFormat(),
	{Alphabet: crockfordAlphabet, Length: 10, Prefix: "K9", Group: 5, Check: true},
	{Alphabet: "0123456789", Length: 8, Prefix: "VP", Group: 4, Check: true},
	{Alphabet: "ABCDEFGHJKMNOPQRSTUVWXYZ23456789", Length: 6, Group: 3, Check: true},
	{Alphabet: "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", Length: 40, Prefix: "ZZ", Group: 8, Check: true},
	{Alphabet: DefaultAlphabet, Length: 7, Prefix: "Q", Group: 0, Check: false},
}

func FuzzNormalizeVerify(f *testing.F) {
	f.Add("abcd-efgh 2345", uint64(1), uint8(0))
	f.Add("ＡＢＣＤ－ｅｆｇｈ　２３４５", uint64(2), uint8(0))
	f.Add("k9-o0il1-xxxx", uint64(3), uint8(1))
	f.Add("vip 1234 5678 9", uint64(4), uint8(2))
	f.Add("\xef \xbc\xa1", uint64(5), uint8(3))
	f.Add("", uint64(6), uint8(4))
	f.Add("码-q\u200b1", uint64(7), uint8(5))
	f.Fuzz(func(t *testing.T, input string, seed uint64, which uint8) {
		format := fuzzCodeFormats[int(which)%len(fuzzCodeFormats)]

		n := format.Normalize(input)
		if again := format.Normalize(n); again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q", input, n, n, again)
		}
		verr := format.Verify(n)
		_ = format.Verify(input)
		if verr == nil {
			if back := format.Normalize(format.Display(n)); back != n {
				t.Fatalf("valid %q displays as %q, which normalises to %q", n, format.Display(n), back)
			}
		}
		_ = format.Display(input)
		_ = format.CheckChar(input)

		var key [32]byte
		for i := range 8 {
			key[i] = byte(seed >> (8 * i))
		}
		code, err := format.NewGenerator(mrand.NewChaCha8(key)).Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := format.Verify(code); err != nil {
			t.Fatalf("generated %q does not verify: %v", code, err)
		}
		shown := format.Display(code)
		if back := format.Normalize(shown); back != code {
			t.Fatalf("generated %q displays as %q, which normalises to %q", code, shown, back)
		}
	})
}

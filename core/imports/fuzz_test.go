package imports

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func addSeedFiles(f *testing.F) {
	for _, name := range []string{"testdata/cardkeys.txt", "testdata/shop_giftcard.csv"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// checkResult asserts the invariants every parser keeps.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range res.Rows {
		if r.Line <= 0 {
			t.Fatalf("row with line %d: %+v", r.Line, r)
		}
		if strings.TrimSpace(r.Code) == "" {
			t.Fatalf("row with empty code: %+v", r)
		}
		key := strings.ToUpper(r.Code)
		if first, ok := seen[key]; ok {
			t.Fatalf("code %q in rows twice (lines %d and %d)", r.Code, first, r.Line)
		}
		seen[key] = r.Line
	}
	for i, p := range res.Problems {
		if p.Line <= 0 || p.Reason == "" {
			t.Fatalf("bad problem %+v", p)
		}
		if i > 0 && res.Problems[i-1].Line > p.Line {
			t.Fatalf("problems out of order: %d before %d", res.Problems[i-1].Line, p.Line)
		}
	}
}

func FuzzParseLines(f *testing.F) {
	for _, s := range []string{
		"1380001111222233----802211334455\n",
		"卡号----密码----面值\r\nK1----P1----100\r\n",
		"\uFEFFa,b\nc\td\ne|f\ng h\n# note\n\n",
		"K1,P1,¥5.00\nk1，p2\nX,Y,Z,W\n",
		"\xff\xfe\x41\x00\x0a\x00",
		"---\n-----\n|,\t \n",
	} {
		f.Add([]byte(s))
	}
	addSeedFiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseLines(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res)

		// Every line with content becomes exactly one Row or one Problem,
		// except a leading line of column titles.
		outcomes := map[int]int{}
		for _, r := range res.Rows {
			outcomes[r.Line]++
		}
		for _, p := range res.Problems {
			outcomes[p.Line]++
		}
		text := string(decodeText(data))
		first := true
		for i, line := range strings.Split(text, "\n") {
			n := i + 1
			s := strings.TrimSpace(line)
			if s == "" || s[0] == '#' {
				if outcomes[n] != 0 {
					t.Fatalf("line %d is blank or a comment but has an outcome", n)
				}
				continue
			}
			header := first && isHeaderLine(splitCardLine(s))
			first = false
			switch {
			case header && outcomes[n] == 0:
			case outcomes[n] != 1:
				t.Fatalf("line %d %q has %d outcomes, want 1", n, s, outcomes[n])
			}
		}
	})
}

func FuzzParseCSV(f *testing.F) {
	for _, s := range []string{
		"卡号,密码,面值,有效期\r\nC001,P001,100,2025-12-31\r\n",
		"code,secret\n\"A,1\",\"p,\"\"w\"\"\"\n\"unterminated\n",
		"卡号,卡密,面值(元),余额(元),状态,有效期至\n=\"001\",x,1,1,已作废,\n'002,y,2,,正常,\n",
		"券码\nQ1\nq1\n,\n\"a\nb\"\n",
	} {
		f.Add([]byte(s))
	}
	addSeedFiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// With the file's own header, and with a known header in front so
		// the record parsing is reached for arbitrary bytes too.
		for _, in := range [][]byte{data, append([]byte("卡号,密码,面值,余额,状态,有效期\n"), data...)} {
			if res, err := ParseCSV(bytes.NewReader(in), Mapping{}); err == nil {
				if res.Format != FormatCSV {
					t.Fatalf("format %q", res.Format)
				}
				checkResult(t, res)
			}
			if res, err := ParseShopGiftCardCSV(bytes.NewReader(in)); err == nil {
				checkResult(t, res)
			}
			if _, err := Detect(bytes.NewReader(in)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

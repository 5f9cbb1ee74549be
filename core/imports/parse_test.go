package imports

import (
	"bytes"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

const bom = "\uFEFF"

// got is the comparable shape of a Result: rows, then "line:reason" per problem.
type got struct {
	Rows     []Row
	Problems []string
}

func summarize(res *Result) got {
	g := got{Rows: res.Rows}
	for _, p := range res.Problems {
		g.Problems = append(g.Problems, strconv.Itoa(p.Line)+":"+p.Reason)
	}
	return g
}

func TestParseLines(t *testing.T) {
	long64 := strings.Repeat("A", 64)
	long65 := strings.Repeat("A", 65)
	tests := []struct {
		name string
		in   string
		want got
	}{
		{
			name: "four hyphens",
			in:   "1380001111222233----802211334455\n",
			want: got{Rows: []Row{{Line: 1, Code: "1380001111222233", Secret: "802211334455"}}},
		},
		{
			name: "three and six hyphens",
			in:   "AAA---111\nBBB------222\n",
			want: got{Rows: []Row{{Line: 1, Code: "AAA", Secret: "111"}, {Line: 2, Code: "BBB", Secret: "222"}}},
		},
		{
			name: "single hyphens stay inside the code",
			in:   "ABCD-EFGH-JKLM----PIN-1\n",
			want: got{Rows: []Row{{Line: 1, Code: "ABCD-EFGH-JKLM", Secret: "PIN-1"}}},
		},
		{
			name: "tab",
			in:   "移动充值卡001\t密码甲\n",
			want: got{Rows: []Row{{Line: 1, Code: "移动充值卡001", Secret: "密码甲"}}},
		},
		{
			name: "comma and full-width comma",
			in:   "JD0001,pw1\nJD0002，pw2\nJD0003 , pw3\n",
			want: got{Rows: []Row{
				{Line: 1, Code: "JD0001", Secret: "pw1"},
				{Line: 2, Code: "JD0002", Secret: "pw2"},
				{Line: 3, Code: "JD0003", Secret: "pw3"},
			}},
		},
		{
			name: "pipe",
			in:   "京东E卡123|9988\n京东E卡124｜9989\n",
			want: got{Rows: []Row{{Line: 1, Code: "京东E卡123", Secret: "9988"}, {Line: 2, Code: "京东E卡124", Secret: "9989"}}},
		},
		{
			name: "whitespace runs including ideographic space",
			in:   "CARD01   PIN01\nCARD02\u3000PIN02\n",
			want: got{Rows: []Row{{Line: 1, Code: "CARD01", Secret: "PIN01"}, {Line: 2, Code: "CARD02", Secret: "PIN02"}}},
		},
		{
			name: "code only",
			in:   "  满100减20券-X7K9  \n",
			want: got{Rows: []Row{{Line: 1, Code: "满100减20券-X7K9"}}},
		},
		{
			name: "third field face value",
			in:   "K1----P1----100\nK2,P2,¥50.00\nK3 P3 30元\nK4,,20\n",
			want: got{Rows: []Row{
				{Line: 1, Code: "K1", Secret: "P1", Face: "100"},
				{Line: 2, Code: "K2", Secret: "P2", Face: "¥50.00"},
				{Line: 3, Code: "K3", Secret: "P3", Face: "30元"},
				{Line: 4, Code: "K4", Face: "20"},
			}},
		},
		{
			name: "third field that is not money",
			in:   "K1----P1----备注\n",
			want: got{Problems: []string{"1:bad_format"}},
		},
		{
			name: "too many fields",
			in:   "K1,P1,100,extra\nK2 P2 3 4\n",
			want: got{Problems: []string{"1:bad_format", "2:bad_format"}},
		},
		{
			name: "BOM, CRLF, comments and blank lines",
			in:   bom + "# 导入于 2024-06-01\r\n\r\nK1----P1\r\n   \r\n#K2----P2\r\nK3----P3\r\n",
			want: got{Rows: []Row{{Line: 3, Code: "K1", Secret: "P1"}, {Line: 6, Code: "K3", Secret: "P3"}}},
		},
		{
			name: "header line is skipped",
			in:   "卡号----密码----面值\nK1----P1----10\n",
			want: got{Rows: []Row{{Line: 2, Code: "K1", Secret: "P1", Face: "10"}}},
		},
		{
			name: "header words later in the file are data",
			in:   "K1----P1\n卡号----密码\n",
			want: got{Rows: []Row{{Line: 1, Code: "K1", Secret: "P1"}, {Line: 2, Code: "卡号", Secret: "密码"}}},
		},
		{
			name: "duplicates ignore case",
			in:   "abc123,1\nXYZ,2\nABC123,3\nabc123 ,4\n",
			want: got{
				Rows:     []Row{{Line: 1, Code: "abc123", Secret: "1"}, {Line: 2, Code: "XYZ", Secret: "2"}},
				Problems: []string{"3:duplicate", "4:duplicate"},
			},
		},
		{
			name: "empty code",
			in:   "----PIN\n,PIN2\n",
			want: got{Problems: []string{"1:empty", "2:empty"}},
		},
		{
			name: "code length limit",
			in:   long64 + "\n" + long65 + "\n",
			want: got{Rows: []Row{{Line: 1, Code: long64}}, Problems: []string{"2:too_long"}},
		},
		{
			name: "secret length limit",
			in:   "K1," + strings.Repeat("s", MaxSecretLen+1) + "\n",
			want: got{Problems: []string{"1:too_long"}},
		},
		{
			name: "invalid UTF-8 affects only its line",
			in:   "K1----P1\n\xbf\xa8\xba\xc5----P2\nK3----P3",
			want: got{
				Rows:     []Row{{Line: 1, Code: "K1", Secret: "P1"}, {Line: 3, Code: "K3", Secret: "P3"}},
				Problems: []string{"2:bad_encoding"},
			},
		},
		{
			name: "number mangled by a spreadsheet",
			in:   "6.20011E+15,PIN\n",
			want: got{Problems: []string{"1:bad_format"}},
		},
		{
			name: "empty input",
			in:   "",
			want: got{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseLines(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != FormatLines {
				t.Errorf("Format = %q", res.Format)
			}
			if g := summarize(res); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got  %+v\nwant %+v\nproblems: %+v", g, tt.want, res.Problems)
			}
		})
	}
}

func TestParseLinesDuplicateDetail(t *testing.T) {
	res, err := ParseLines(strings.NewReader("Q1----a\nQ2----b\nq1----c\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Problem{{Line: 3, Field: "code", Reason: ReasonDuplicate, Detail: "duplicate of line 1", Value: "q1"}}
	if !reflect.DeepEqual(res.Problems, want) {
		t.Fatalf("problems = %+v", res.Problems)
	}
}

func TestParseLinesUTF16(t *testing.T) {
	text := "卡号----密码\r\n礼品卡01----口令01\r\n"
	units := utf16.Encode([]rune(text))
	le := []byte{0xFF, 0xFE}
	be := []byte{0xFE, 0xFF}
	for _, u := range units {
		le = append(le, byte(u), byte(u>>8))
		be = append(be, byte(u>>8), byte(u))
	}
	for name, data := range map[string][]byte{"LE": le, "BE": be} {
		res, err := ParseLines(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		want := []Row{{Line: 2, Code: "礼品卡01", Secret: "口令01"}}
		if !reflect.DeepEqual(res.Rows, want) || len(res.Problems) != 0 {
			t.Errorf("%s: rows %+v problems %+v", name, res.Rows, res.Problems)
		}
	}
}

func TestParseLinesFile(t *testing.T) {
	f, err := os.Open("testdata/cardkeys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ParseLines(f)
	if err != nil {
		t.Fatal(err)
	}
	want := got{
		Rows: []Row{
			{Line: 3, Code: "1380001111222233", Secret: "802211334455", Face: "100"},
			{Line: 4, Code: "1380001111222234", Secret: "802211334456", Face: "100"},
			{Line: 6, Code: "1380001111222235", Secret: "802211334457", Face: "¥50.00"},
		},
		Problems: []string{"7:duplicate"},
	}
	if g := summarize(res); !reflect.DeepEqual(g, want) {
		t.Errorf("got %+v", g)
	}
}

type readErr struct{}

func (readErr) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestReadErrorsAreErrors(t *testing.T) {
	if _, err := ParseLines(readErr{}); err == nil {
		t.Error("ParseLines: want error")
	}
	if _, err := ParseCSV(readErr{}, Mapping{}); err == nil {
		t.Error("ParseCSV: want error")
	}
	if _, err := ParseShopGiftCardCSV(readErr{}); err == nil {
		t.Error("ParseShopGiftCardCSV: want error")
	}
}

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name string
		in   string
		m    Mapping
		want got
	}{
		{
			name: "Chinese headers, BOM and CRLF",
			in:   bom + "卡号,密码,面值,有效期\r\nC001,P001,100,2025-12-31\r\nC002,P002,¥50.00,\r\n",
			want: got{Rows: []Row{
				{Line: 2, Code: "C001", Secret: "P001", Face: "100", Expires: "2025-12-31"},
				{Line: 3, Code: "C002", Secret: "P002", Face: "¥50.00"},
			}},
		},
		{
			name: "English headers in any case and order",
			in:   "Amount, PIN ,Card Number,Valid_Until\n20,9,X-1,2026-01-01\n",
			want: got{Rows: []Row{{Line: 2, Code: "X-1", Secret: "9", Face: "20", Expires: "2026-01-01"}}},
		},
		{
			name: "quoted fields with commas and quotes",
			in:   "code,secret,amount\n\"A,1\",\"p,\"\"w\"\"\",\"1,000\"\n",
			want: got{Rows: []Row{{Line: 2, Code: "A,1", Secret: `p,"w"`, Face: "1,000"}}},
		},
		{
			name: "multi-line quoted field keeps later line numbers",
			in:   "券码,备注\nQ1,\"第一行\n第二行\"\nQ2,x\n",
			want: got{Rows: []Row{{Line: 2, Code: "Q1"}, {Line: 4, Code: "Q2"}}},
		},
		{
			name: "explicit mapping",
			in:   "券号,口令,金额,截止\nM1,K1,5,2025-01-01\n",
			m:    Mapping{Code: "券号", Secret: " 口令 ", Face: "金额", Expires: "截止"},
			want: got{Rows: []Row{{Line: 2, Code: "M1", Secret: "K1", Face: "5", Expires: "2025-01-01"}}},
		},
		{
			name: "卡密 beside 卡号 is the secret",
			in:   "卡号,卡密\n8800,1234\n",
			want: got{Rows: []Row{{Line: 2, Code: "8800", Secret: "1234"}}},
		},
		{
			name: "卡密 alone is the code",
			in:   "卡密,金额\nKM-1,10\n",
			want: got{Rows: []Row{{Line: 2, Code: "KM-1", Face: "10"}}},
		},
		{
			name: "Excel text protection is unwrapped",
			in:   "code,pin\n=\"000123\",'0456\n\"=\"\"000124\"\"\",x\n",
			want: got{Rows: []Row{{Line: 2, Code: "000123", Secret: "0456"}, {Line: 3, Code: "000124", Secret: "x"}}},
		},
		{
			name: "bad rows",
			in: "卡号,密码,面值\n" +
				"G1,p,1\n" +
				"G2,b\"ad,2\n" + // bare quote
				",p,3\n" + // empty code
				"g1,p,4\n" + // duplicate of line 2
				",,\n" + // blank record: skipped
				"G3\n" + // short record: secret missing is fine
				strings.Repeat("Z", 65) + ",p\n" +
				"G4,\xff,5\n",
			want: got{
				Rows:     []Row{{Line: 2, Code: "G1", Secret: "p", Face: "1"}, {Line: 7, Code: "G3"}},
				Problems: []string{"3:bad_format", "4:empty", "5:duplicate", "8:too_long", "9:bad_encoding"},
			},
		},
		{
			name: "record shorter than the code column",
			in:   "name,code\nonly-name\nn,C9\n",
			want: got{Rows: []Row{{Line: 3, Code: "C9"}}, Problems: []string{"2:missing_column"}},
		},
		{
			name: "unterminated quote at the end",
			in:   "code\nA1\n\"A2\n",
			want: got{Rows: []Row{{Line: 2, Code: "A1"}}, Problems: []string{"3:bad_format"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseCSV(strings.NewReader(tt.in), tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != FormatCSV {
				t.Errorf("Format = %q", res.Format)
			}
			if g := summarize(res); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got  %+v\nwant %+v\nproblems: %+v", g, tt.want, res.Problems)
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		m       Mapping
		mention []string
	}{
		{"no code column", "名称,数量\nx,1\n", Mapping{}, []string{`"名称"`, `"数量"`}},
		{"mapped column absent", "卡号,密码\n1,2\n", Mapping{Code: "券号"}, []string{`"券号"`, `"卡号"`, `"密码"`}},
		{"mapped secret absent", "卡号,密码\n1,2\n", Mapping{Code: "卡号", Secret: "pin"}, []string{`"pin"`}},
		{"empty file", "", Mapping{}, []string{"empty"}},
		{"BOM only", bom, Mapping{}, []string{"empty"}},
		{"broken header", "\"code\n", Mapping{}, []string{"header"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tt.in), tt.m)
			if err == nil {
				t.Fatal("want error")
			}
			for _, s := range tt.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestParseShopGiftCardCSVFile(t *testing.T) {
	f, err := os.Open("testdata/shop_giftcard.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ParseShopGiftCardCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatShopGiftCard {
		t.Errorf("Format = %q", res.Format)
	}
	wantRows := []Row{
		{Line: 2, Code: "6200112233445566", Secret: "A1B2C3D4", Face: "100.00", Expires: "2025-12-31 23:59:59"},
		{Line: 3, Code: "6200112233445567", Secret: "E5F6G7H8", Face: "35.50", Expires: "2025-12-31 23:59:59"},
		{Line: 6, Code: "6200112233445570", Secret: "S8T9U1V2", Face: "50.00", Expires: "2026-01-31"},
		// empty balance falls back to the face value
		{Line: 7, Code: "6200112233445571", Secret: "W3X4Y5Z6", Face: "50.00", Expires: "2026-01-31"},
	}
	if !reflect.DeepEqual(res.Rows, wantRows) {
		t.Errorf("rows:\n%+v\nwant\n%+v", res.Rows, wantRows)
	}
	wantProblems := []Problem{
		{Line: 4, Field: "status", Reason: ReasonSkippedStatus, Detail: "card 6200112233445568 is 已作废; not imported", Value: "已作废"},
		{Line: 5, Field: "status", Reason: ReasonSkippedStatus, Detail: "card 0000112233445569 is 已用完; not imported", Value: "已用完"},
	}
	if !reflect.DeepEqual(res.Problems, wantProblems) {
		t.Errorf("problems:\n%+v", res.Problems)
	}
}

func TestParseShopGiftCardCSV(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want got
	}{
		{
			name: "alternative headers",
			in:   "礼品卡号,密码,面额,余额,到期时间,状态\nL1,M1,200,120.5,2026-03-01,正常\nL2,M2,100,0,2024-01-01,已过期\n",
			want: got{
				Rows:     []Row{{Line: 2, Code: "L1", Secret: "M1", Face: "120.5", Expires: "2026-03-01"}},
				Problems: []string{"3:skipped_status"},
			},
		},
		{
			name: "no balance column uses face value",
			in:   "卡号,卡密,面值（元）,有效期至\n\"\t001\",s,100.00,2025-01-01\n",
			want: got{Rows: []Row{{Line: 2, Code: "001", Secret: "s", Face: "100.00", Expires: "2025-01-01"}}},
		},
		{
			name: "duplicates and empty codes",
			in:   "卡号,余额(元),状态\n=\"A\",1,正常\n=\"a\",2,正常\n=\"\",3,正常\n",
			want: got{
				Rows:     []Row{{Line: 2, Code: "A", Face: "1"}},
				Problems: []string{"3:duplicate", "4:empty"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseShopGiftCardCSV(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if g := summarize(res); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got  %+v\nwant %+v\nproblems: %+v", g, tt.want, res.Problems)
			}
		})
	}
	_, err := ParseShopGiftCardCSV(strings.NewReader("订单号,金额\n1,2\n"))
	if err == nil || !strings.Contains(err.Error(), `"订单号"`) {
		t.Errorf("missing code column: err = %v", err)
	}
}

func TestUnwrap(t *testing.T) {
	for in, want := range map[string]string{
		`="123456"`: "123456",
		` ="0012" `: "0012",
		`'0012`:     "0012",
		"\t0012":    "0012",
		`=""`:       "",
		`="a""b"`:   `a"b`,
		`=SUM(A1)`:  `=SUM(A1)`,
		`plain`:     "plain",
	} {
		if got := unwrap(in); got != want {
			t.Errorf("unwrap(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuoteExcelText(t *testing.T) {
	for in, want := range map[string]string{
		"=\"1\",=\"2\"\r\n=\"3\"":      "\"1\",\"2\"\r\n\"3\"",
		"\"x,=\"\"y\"\"\",=\"z\"":      "\"x,=\"\"y\"\"\",\"z\"", // inside a quoted field: untouched
		"a=\"1\",=\"2\"x":              "a=\"1\",=\"2\"x",        // not at field start / not a whole field
		"=\"unterminated\n=\"ok\"":     "=\"unterminated\n\"ok\"",
		"no protection here, at all\n": "no protection here, at all\n",
	} {
		if got := string(quoteExcelText([]byte(in))); got != want {
			t.Errorf("quoteExcelText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1380001111222233----802211334455\n", FormatLines},
		{"卡号----密码\nA----B\n", FormatLines},
		{"A1,P1\nA2,P2\n", FormatLines},
		{"", FormatLines},
		{"code,pin\nA1,P1\n", FormatCSV},
		{bom + "\r\n# 导出\r\n卡号,密码,面值\r\nA,B,1\r\n", FormatCSV},
		{"\"Card Number\",\"Amount\"\n", FormatCSV},
		{"卡号,卡密,面值(元),余额(元),状态,有效期至\n", FormatShopGiftCard},
		{"礼品卡号,密码,面额,到期时间\n", FormatShopGiftCard},
		{"卡号,状态\n", FormatShopGiftCard},
	}
	for _, tt := range tests {
		r := strings.NewReader("prefix:" + tt.in)
		if _, err := r.Seek(int64(len("prefix:")), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := Detect(r)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("Detect(%q) = %q, want %q", tt.in, got, tt.want)
		}
		rest, _ := io.ReadAll(r)
		if string(rest) != tt.in {
			t.Errorf("Detect did not restore the reader position: %q", rest)
		}
	}
	f, err := os.Open("testdata/shop_giftcard.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := Detect(f); err != nil || got != FormatShopGiftCard {
		t.Errorf("Detect(shop_giftcard.csv) = %q, %v", got, err)
	}
}

func TestNormHeader(t *testing.T) {
	for in, want := range map[string]string{
		" Card_No ":   "cardno",
		"card number": "cardnumber",
		"面值(元)":       "面值",
		"余额（元）":       "余额",
		"(元)":         "(元)",
	} {
		if got := normHeader(in); got != want {
			t.Errorf("normHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

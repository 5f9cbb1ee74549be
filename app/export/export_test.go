package export

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

var sampleHeader = []string{"券码", "密码", "面值", "状态", "备注"}

var sampleRows = [][]string{
	{"000123", "0456", "100.00", "未使用", "满100减20"},
	{"GIFT-8K2M", "", "-3.00", "已核销", "退款 \"含引号\", 逗号"},
	{"007", "密码甲", "50", "已作废", "多行\n备注"},
}

func writeAll(t testing.TB, w Writer, header []string, rows [][]string) {
	t.Helper()
	if header != nil {
		if err := w.Header(header); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		if err := w.Row(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	writeAll(t, NewCSV(&buf), sampleHeader, sampleRows)
	out := buf.Bytes()
	if !bytes.HasPrefix(out, []byte("\xEF\xBB\xBF")) {
		t.Fatalf("no UTF-8 BOM: % x", out[:min(len(out), 8)])
	}
	if !bytes.HasPrefix(out[3:], []byte("券码,密码,面值,状态,备注\r\n")) {
		t.Errorf("header line: %q", out[3:min(len(out), 60)])
	}
	if bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
		t.Errorf("line ends are not all CRLF: %q", out)
	}
	records, err := csv.NewReader(bytes.NewReader(out[3:])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := append([][]string{sampleHeader}, sampleRows...)
	// encoding/csv reads a quoted CRLF inside a field back as LF.
	if !reflect.DeepEqual(records, want) {
		t.Errorf("round trip:\n%q\nwant\n%q", records, want)
	}
}

func TestCSVFormulaGuard(t *testing.T) {
	tests := map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
		"+86 138":                  "'+86 138",
		"-2+3":                     "'-2+3",
		"@SUM(A1)":                 "'@SUM(A1)",
		"\tcmd":                    "'\tcmd",
		"\rcmd":                    "'\rcmd",
		"-3.00":                    "-3.00",
		"-3":                       "-3",
		"+5.5":                     "+5.5",
		"-":                        "'-",
		"-.5":                      "'-.5",
		"0012":                     "0012",
		"满=减":                      "满=减",
		"":                         "",
	}
	for in, want := range tests {
		if got := guardFormula(in); got != want {
			t.Errorf("guardFormula(%q) = %q, want %q", in, got, want)
		}
	}
	var buf bytes.Buffer
	writeAll(t, NewCSV(&buf), []string{"=bad"}, [][]string{{"=1+1", "-3.00"}})
	cr := csv.NewReader(bytes.NewReader(buf.Bytes()[3:]))
	cr.FieldsPerRecord = -1
	records, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"'=bad"}, {"'=1+1", "-3.00"}}; !reflect.DeepEqual(records, want) {
		t.Errorf("records %q, want %q", records, want)
	}
}

func TestCSVEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := NewCSV(&buf).Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "\uFEFF" {
		t.Errorf("empty export = %q", buf.String())
	}
}

func TestWriterOrder(t *testing.T) {
	for name, w := range map[string]Writer{"csv": NewCSV(io.Discard), "xlsx": NewXLSX(io.Discard, "x")} {
		if err := w.Row([]string{"a"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Header([]string{"h"}); !errors.Is(err, errHeaderAfterRows) {
			t.Errorf("%s: header after row: err = %v", name, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Row([]string{"b"}); !errors.Is(err, errClosed) {
			t.Errorf("%s: row after close: err = %v", name, err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("%s: second close: %v", name, err)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsReachClose(t *testing.T) {
	for name, w := range map[string]Writer{"csv": NewCSV(failWriter{}), "xlsx": NewXLSX(failWriter{}, "")} {
		_ = w.Header([]string{"a"})
		_ = w.Row([]string{"1"})
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: Close = %v, want the write error", name, err)
		}
	}
}

func readXLSX(t *testing.T, path, sheet string) [][]string {
	t.Helper()
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); !reflect.DeepEqual(got, []string{sheet}) {
		t.Fatalf("sheets = %q, want [%q]", got, sheet)
	}
	rows, err := f.GetRows(sheet)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestXLSXRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "codes.xlsx")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, NewXLSX(out, "6月批次"), sampleHeader, sampleRows)
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}

	rows := readXLSX(t, path, "6月批次")
	want := append([][]string{sampleHeader}, sampleRows...)
	// GetRows drops trailing empty cells; pad to compare.
	for i := range rows {
		for len(rows[i]) < len(want[i]) {
			rows[i] = append(rows[i], "")
		}
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows:\n%q\nwant\n%q", rows, want)
	}

	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Codes must be text cells, not numbers that lose their zeros.
	for _, ref := range []string{"A2", "B2", "A4"} {
		typ, err := f.GetCellType("6月批次", ref)
		if err != nil {
			t.Fatal(err)
		}
		if typ != excelize.CellTypeInlineString {
			t.Errorf("%s type = %v, want inline string", ref, typ)
		}
	}
	style, err := f.GetCellStyle("6月批次", "A1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.GetStyle(style)
	if err != nil {
		t.Fatal(err)
	}
	if st.Font == nil || !st.Font.Bold {
		t.Errorf("header is not bold: %+v", st.Font)
	}
	if w, err := f.GetColWidth("6月批次", "E"); err != nil || w < 12 || w > maxColWidth {
		t.Errorf("column E width = %v, %v", w, err)
	}
}

func TestXLSXSheetNames(t *testing.T) {
	tests := map[string]string{
		"":                      "Sheet1",
		"Sheet1":                "Sheet1",
		"报表:2024/06?":           "报表_2024_06_",
		"'quoted'":              "quoted",
		strings.Repeat("码", 40): strings.Repeat("码", 31),
	}
	for in, want := range tests {
		if got := sheetName(in); got != want {
			t.Errorf("sheetName(%q) = %q, want %q", in, got, want)
		}
		path := filepath.Join(t.TempDir(), "s.xlsx")
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, NewXLSX(out, in), []string{"h"}, [][]string{{"v"}})
		out.Close()
		if rows := readXLSX(t, path, want); len(rows) != 2 {
			t.Errorf("sheet %q: %d rows", want, len(rows))
		}
	}
}

func TestXLSXManyRowsAfterSample(t *testing.T) {
	// Crosses the point where held-back rows are flushed.
	path := filepath.Join(t.TempDir(), "many.xlsx")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for i := range widthSampleRows*2 + 7 {
		rows = append(rows, []string{fmt.Sprintf("%08d", i), "卡密"})
	}
	writeAll(t, NewXLSX(out, "codes"), []string{"code", "pin"}, rows)
	out.Close()
	got := readXLSX(t, path, "codes")
	if !reflect.DeepEqual(got[1:], rows) || !reflect.DeepEqual(got[0], []string{"code", "pin"}) {
		t.Errorf("got %d rows, first %q last %q", len(got), got[1], got[len(got)-1])
	}
}

func TestFormatFromPath(t *testing.T) {
	for in, want := range map[string]string{"a.csv": "csv", "/tmp/报表.XLSX": "xlsx", `C:\out\b.Csv`: "csv"} {
		if got, err := FormatFromPath(in); err != nil || got != want {
			t.Errorf("FormatFromPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"a.xls", "a", "a.csv.txt"} {
		_, err := FormatFromPath(in)
		if err == nil || !strings.Contains(err.Error(), ".csv") || !strings.Contains(err.Error(), ".xlsx") {
			t.Errorf("FormatFromPath(%q): err = %v", in, err)
		}
	}
}

// heapPeak samples HeapInuse until stop is called and returns the highest value.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapInuse > peak.Load() {
			peak.Store(m.HeapInuse)
		}
	}
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak.Load()
	}
}

func TestXLSXMemoryStaysSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 rows")
	}
	const n = 200_000
	path := filepath.Join(t.TempDir(), "big.xlsx")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	runtime.GC()
	stop := heapPeak()
	w := NewXLSX(out, "codes")
	if err := w.Header([]string{"券码", "密码", "面值", "有效期", "备注"}); err != nil {
		t.Fatal(err)
	}
	cells := make([]string, 5)
	for i := range n {
		cells[0] = fmt.Sprintf("KM%014d", i)
		cells[1] = fmt.Sprintf("%012d", i*7919)
		cells[2] = "100.00"
		cells[3] = "2026-12-31 23:59:59"
		cells[4] = "话费充值卡 第6批"
		if err := w.Row(cells); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	peak := stop()
	t.Logf("peak HeapInuse %.1f MB for %d rows", float64(peak)/(1<<20), n)
	if peak > 150<<20 {
		t.Errorf("peak HeapInuse %.1f MB, want < 150 MB", float64(peak)/(1<<20))
	}

	info, err := out.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() < 1<<20 {
		t.Errorf("file is only %d bytes", info.Size())
	}
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Stream the sheet back: every code present, in order.
	it, err := f.Rows("codes")
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	count := 0
	for it.Next() {
		cols, err := it.Columns()
		if err != nil {
			t.Fatal(err)
		}
		if count > 0 {
			if want := fmt.Sprintf("KM%014d", count-1); len(cols) != 5 || cols[0] != want {
				t.Fatalf("row %d = %q, want code %s", count+1, cols, want)
			}
		}
		count++
	}
	if count != n+1 {
		t.Errorf("read back %d rows, want %d", count, n+1)
	}
}

func benchRows(b *testing.B, newWriter func(io.Writer) Writer) {
	const n = 100_000
	cells := []string{"", "", "100.00", "2026-12-31", "话费充值卡"}
	for b.Loop() {
		w := newWriter(io.Discard)
		if err := w.Header([]string{"券码", "密码", "面值", "有效期", "备注"}); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			cells[0] = fmt.Sprintf("KM%014d", i)
			cells[1] = fmt.Sprintf("%012d", i)
			if err := w.Row(cells); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/row")
}

func BenchmarkCSV100k(b *testing.B) {
	b.ReportAllocs()
	benchRows(b, NewCSV)
}

func BenchmarkXLSX100k(b *testing.B) {
	b.ReportAllocs()
	benchRows(b, func(w io.Writer) Writer { return NewXLSX(w, "codes") })
}

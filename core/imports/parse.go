// Package imports reads the code lists merchants already have — plain card-key
// text files, CSV files with a header, and gift-card exports from e-commerce
// platforms — into rows plus a line-by-line list of problems.
//
// Parsing never writes anything: the caller decides whether a file with
// problems is imported at all, so nothing is half-imported.
package imports

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Formats reported in Result.Format and by Detect.
const (
	FormatLines        = "lines"
	FormatCSV          = "csv"
	FormatShopGiftCard = "shop_giftcard"
)

// Problem reasons (machine codes; screens translate them).
const (
	ReasonEmpty         = "empty"
	ReasonDuplicate     = "duplicate"
	ReasonBadFormat     = "bad_format"
	ReasonMissingColumn = "missing_column"
	ReasonTooLong       = "too_long"
	ReasonBadEncoding   = "bad_encoding"
	ReasonSkippedStatus = "skipped_status"
)

// Limits on a single row.
const (
	MaxCodeLen   = 64  // characters
	MaxSecretLen = 256 // characters; a PIN longer than this is a broken file, not a PIN
)

// maxValueLen bounds Problem.Value so one broken multi-megabyte line does not
// end up copied into every report.
const maxValueLen = 100

// Row is one importable code.
type Row struct {
	Line    int    // 1-based source line (for CSV: the record's first line)
	Code    string // card number / gift-card number / coupon code, as written (trimmed)
	Secret  string // card-key PIN/password, may be empty
	Face    string // face value or balance as written (e.g. "100", "¥50.00"), may be empty
	Expires string // as written, may be empty
}

// Problem is one line that was not turned into a Row.
type Problem struct {
	Line   int    `json:"line"`
	Field  string `json:"field"`  // "line", "record", "code", "secret", "face" or "status"
	Reason string `json:"reason"` // one of the Reason constants
	Detail string `json:"detail"` // English detail for logs and the CLI
	Value  string `json:"value"`  // the offending text, shortened
}

// Result is what a parser found. Problems are ordered by line.
type Result struct {
	Rows     []Row
	Problems []Problem
	Format   string
}

// Mapping names the CSV columns (header names, case-insensitive, trimmed).
// An empty name means "find it by the usual header names".
type Mapping struct {
	Code, Secret, Face, Expires string
}

// Header names recognised without a Mapping. Order is priority: when a file
// has several matching columns the earlier name wins.
var (
	codeHeaders    = []string{"code", "卡号", "券码", "card", "card_no", "card number", "卡密"}
	secretHeaders  = []string{"secret", "pin", "password", "密码", "卡密密码"}
	faceHeaders    = []string{"face", "value", "面值", "金额", "余额", "balance", "amount"}
	expiresHeaders = []string{"expires", "expiry", "有效期", "过期时间", "valid_until"}

	shopCodeHeaders    = []string{"卡号", "礼品卡号", "card_no", "code"}
	shopSecretHeaders  = []string{"卡密", "密码", "pin", "password"}
	shopFaceHeaders    = []string{"面值", "面额"}
	shopBalanceHeaders = []string{"余额"}
	shopStatusHeaders  = []string{"状态"}
	shopExpiresHeaders = []string{"有效期至", "到期时间", "有效期", "过期时间"}
)

// skippedStatuses are gift-card states that cannot be imported as live cards.
var skippedStatuses = map[string]bool{"已作废": true, "已过期": true, "已用完": true}

// collector applies the checks shared by every format.
type collector struct {
	res  *Result
	seen map[string]int // upper-cased code → first line
}

func newCollector(format string) *collector {
	return &collector{res: &Result{Format: format}, seen: make(map[string]int)}
}

func (c *collector) problem(line int, field, reason, detail, value string) {
	c.res.Problems = append(c.res.Problems, Problem{
		Line: line, Field: field, Reason: reason, Detail: detail, Value: shorten(value),
	})
}

// add validates a row and keeps it, or records why not.
func (c *collector) add(row Row) {
	code := row.Code
	switch {
	case code == "":
		c.problem(row.Line, "code", ReasonEmpty, "code is empty", "")
		return
	case utf8.RuneCountInString(code) > MaxCodeLen:
		c.problem(row.Line, "code", ReasonTooLong,
			fmt.Sprintf("code is longer than %d characters", MaxCodeLen), code)
		return
	case strings.IndexFunc(code, unicode.IsControl) >= 0:
		c.problem(row.Line, "code", ReasonBadFormat, "code contains control characters", code)
		return
	case looksScientific(code):
		c.problem(row.Line, "code", ReasonBadFormat,
			"code was turned into a number by a spreadsheet (scientific notation); export the column as text", code)
		return
	case utf8.RuneCountInString(row.Secret) > MaxSecretLen:
		c.problem(row.Line, "secret", ReasonTooLong,
			fmt.Sprintf("secret is longer than %d characters", MaxSecretLen), row.Secret)
		return
	}
	key := strings.ToUpper(code)
	if first, ok := c.seen[key]; ok {
		c.problem(row.Line, "code", ReasonDuplicate, fmt.Sprintf("duplicate of line %d", first), code)
		return
	}
	c.seen[key] = row.Line
	c.res.Rows = append(c.res.Rows, row)
}

func (c *collector) result() *Result {
	slices.SortStableFunc(c.res.Problems, func(a, b Problem) int { return a.Line - b.Line })
	return c.res
}

// ParseLines reads one card key per line: "卡号----密码", "卡号,密码",
// "卡号 密码", "卡号\t密码", "卡号|密码" or just "卡号", optionally followed by a
// face value separated the same way ("卡号----密码----面值"). Blank lines and
// lines starting with '#' are skipped, and so is a first line that is only
// column titles such as "卡号----密码".
func ParseLines(r io.Reader) (*Result, error) {
	data, err := readText(r)
	if err != nil {
		return nil, err
	}
	c := newCollector(FormatLines)
	firstContent := true
	for lineNo, raw := range lines(data) {
		s := strings.TrimSpace(raw)
		if s == "" || s[0] == '#' {
			continue
		}
		mayBeHeader := firstContent
		firstContent = false
		if !utf8.ValidString(s) {
			c.problem(lineNo, "line", ReasonBadEncoding,
				"line is not valid UTF-8 (GBK/GB18030 files must be saved as UTF-8 first)",
				strings.ToValidUTF8(s, "\uFFFD"))
			continue
		}
		fields := splitCardLine(s)
		if mayBeHeader && isHeaderLine(fields) {
			continue
		}
		row := Row{Line: lineNo, Code: fields[0]}
		switch len(fields) {
		case 1:
		case 2:
			row.Secret = fields[1]
		case 3:
			if !looksLikeAmount(fields[2]) {
				c.problem(lineNo, "face", ReasonBadFormat,
					"third field must be a face value such as 100 or ¥50.00", s)
				continue
			}
			row.Secret, row.Face = fields[1], fields[2]
		default:
			c.problem(lineNo, "line", ReasonBadFormat,
				fmt.Sprintf("expected code, code+secret or code+secret+face value; found %d fields", len(fields)), s)
			continue
		}
		c.add(row)
	}
	return c.result(), nil
}

// lines yields each line of data with its 1-based number, without the line
// ending ("\n" or "\r\n").
func lines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		for n := 1; len(data) > 0; n++ {
			i := bytes.IndexByte(data, '\n')
			var line []byte
			if i < 0 {
				line, data = data, nil
			} else {
				line, data = data[:i], data[i+1:]
			}
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if !yield(n, string(line)) {
				return
			}
		}
	}
}

// splitCardLine splits a trimmed line on the first separator kind it
// contains, in priority order, and trims each field. It always returns at
// least one field.
func splitCardLine(s string) []string {
	var fields []string
	switch {
	case strings.Contains(s, "---"):
		fields = splitHyphenRuns(s)
	case strings.Contains(s, "\t"):
		fields = strings.Split(s, "\t")
	case strings.ContainsAny(s, ",，"):
		fields = splitOn(s, ',', '，')
	case strings.ContainsAny(s, "|｜"):
		fields = splitOn(s, '|', '｜')
	default:
		fields = strings.Fields(s)
	}
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	if len(fields) == 0 {
		fields = []string{""}
	}
	return fields
}

// splitHyphenRuns splits on runs of three or more hyphens; shorter runs are
// part of the value (codes like "ABCD-EFGH" exist).
func splitHyphenRuns(s string) []string {
	var fields []string
	start := 0
	for i := 0; i < len(s); {
		if s[i] != '-' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '-' {
			j++
		}
		if j-i >= 3 {
			fields = append(fields, s[start:i])
			start = j
		}
		i = j
	}
	return append(fields, s[start:])
}

// splitOn splits on either an ASCII separator or its full-width form, which
// Chinese input methods type by default.
func splitOn(s string, ascii, wide rune) []string {
	var fields []string
	start := 0
	for i, r := range s {
		if r == ascii || r == wide {
			fields = append(fields, s[start:i])
			start = i + utf8.RuneLen(r)
		}
	}
	return append(fields, s[start:])
}

// isHeaderLine reports whether a card-key line is column titles
// ("卡号----密码", "code,pin,面值") rather than data.
func isHeaderLine(fields []string) bool {
	if !inHeaders(fields[0], codeHeaders) && !inHeaders(fields[0], shopCodeHeaders) {
		return false
	}
	for _, f := range fields[1:] {
		if !inHeaders(f, secretHeaders) && !inHeaders(f, shopSecretHeaders) &&
			!inHeaders(f, faceHeaders) && !inHeaders(f, shopFaceHeaders) {
			return false
		}
	}
	return true
}

// looksLikeAmount accepts what merchants write as a face value: "100",
// "50.00", "¥50", "￥50.00", "50元". It only tells a face value from a stray
// field; the caller parses the money strictly.
func looksLikeAmount(s string) bool {
	for _, p := range []string{"¥", "￥", "RMB", "CNY"} {
		s = strings.TrimPrefix(s, p)
	}
	s = strings.TrimSpace(strings.TrimSuffix(s, "元"))
	intPart, frac, hasDot := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasDot || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// looksScientific spots a long number a spreadsheet already rewrote as
// "1.23457E+17": the real code is lost and must not be imported.
func looksScientific(s string) bool {
	mant, exp, ok := strings.Cut(strings.ToUpper(s), "E+")
	if !ok || !allDigits(exp) {
		return false
	}
	intPart, frac, hasDot := strings.Cut(mant, ".")
	return len(intPart) == 1 && allDigits(intPart) && (!hasDot || allDigits(frac))
}

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxValueLen {
		return s
	}
	r := []rune(s)
	return string(r[:maxValueLen]) + "…"
}

// readText reads the whole input, dropping a UTF-8 byte-order mark and
// converting UTF-16 (what Windows Notepad calls "Unicode") to UTF-8.
func readText(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading import file: %w", err)
	}
	return decodeText(data), nil
}

func decodeText(data []byte) []byte {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:]
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		return decodeUTF16(data[2:], false)
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return decodeUTF16(data[2:], true)
	}
	return data
}

func decodeUTF16(b []byte, bigEndian bool) []byte {
	units := make([]uint16, len(b)/2)
	for i := range units {
		if bigEndian {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			units[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	var out bytes.Buffer
	out.Grow(len(b))
	for _, r := range utf16.Decode(units) {
		out.WriteRune(r)
	}
	return out.Bytes()
}

// normHeader makes header names comparable: case, spaces, '_' and '-' are
// ignored, and a trailing unit such as "(元)" or "（元）" is dropped.
func normHeader(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, open := range []string{"(", "（"} {
		if i := strings.Index(s, open); i > 0 && (strings.HasSuffix(s, ")") || strings.HasSuffix(s, "）")) {
			s = s[:i]
		}
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func inHeaders(name string, candidates []string) bool {
	n := normHeader(name)
	for _, c := range candidates {
		if normHeader(c) == n {
			return true
		}
	}
	return false
}

// findColumn returns the index of the first header matching the earliest
// candidate, skipping columns already taken, or -1.
func findColumn(header []string, candidates []string, taken map[int]bool) int {
	for _, c := range candidates {
		want := normHeader(c)
		for i, h := range header {
			if !taken[i] && normHeader(h) == want {
				return i
			}
		}
	}
	return -1
}

// columns holds column indexes; -1 means absent.
type columns struct {
	code, secret, face, balance, expires, status int
}

func newCSVReader(data []byte) *csv.Reader {
	cr := csv.NewReader(bytes.NewReader(quoteExcelText(data)))
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = false
	return cr
}

// readHeader reads the first record; a file without one cannot be mapped.
func readHeader(cr *csv.Reader) ([]string, error) {
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("import file is empty: a header row is required")
	}
	if err != nil {
		return nil, fmt.Errorf("reading header row: %w", err)
	}
	header = slices.Clone(header)
	for i := range header {
		header[i] = strings.TrimSpace(strings.ToValidUTF8(header[i], "\uFFFD"))
	}
	return header, nil
}

func missingColumnError(what string, header []string) error {
	return fmt.Errorf("no %s column found; headers in file: %s", what, quoteList(header))
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", shorten(s))
	}
	return strings.Join(q, ", ")
}

// ParseCSV reads a CSV file with a header row. m names the columns; a field
// left empty in m is found by the usual header names (code, 卡号, 券码, …).
// A missing code column, or a named column that is not in the header, is an
// error; bad records are Problems.
func ParseCSV(r io.Reader, m Mapping) (*Result, error) {
	data, err := readText(r)
	if err != nil {
		return nil, err
	}
	cr := newCSVReader(data)
	header, err := readHeader(cr)
	if err != nil {
		return nil, err
	}
	cols := columns{code: -1, secret: -1, face: -1, balance: -1, expires: -1, status: -1}
	taken := map[int]bool{}
	pick := func(dst *int, named string, candidates []string, what string, required bool) error {
		if named != "" {
			for i, h := range header {
				if strings.EqualFold(h, strings.TrimSpace(named)) {
					*dst, taken[i] = i, true
					return nil
				}
			}
			return fmt.Errorf("column %q (%s) not found; headers in file: %s", named, what, quoteList(header))
		}
		if i := findColumn(header, candidates, taken); i >= 0 {
			*dst, taken[i] = i, true
			return nil
		}
		if required {
			return missingColumnError(what, header)
		}
		return nil
	}
	if err := pick(&cols.code, m.Code, codeHeaders, "code", true); err != nil {
		return nil, err
	}
	// "卡密" is listed as a code header for files whose only column it is,
	// but beside a 卡号 column it holds the secret, as the word says.
	if err := pick(&cols.secret, m.Secret, append(slices.Clone(secretHeaders), "卡密"), "secret", false); err != nil {
		return nil, err
	}
	if err := pick(&cols.face, m.Face, faceHeaders, "face value", false); err != nil {
		return nil, err
	}
	if err := pick(&cols.expires, m.Expires, expiresHeaders, "expiry", false); err != nil {
		return nil, err
	}
	return parseRecords(cr, cols, FormatCSV), nil
}

// ParseShopGiftCardCSV reads a gift-card export of the kind Chinese
// e-commerce platforms produce ("卡号","卡密","面值(元)","余额(元)","状态",
// "有效期至", or "礼品卡号","密码","面额","余额","到期时间"). The balance is
// used as Face when the file has one; cards that are void, expired or used up
// are reported as skipped_status.
func ParseShopGiftCardCSV(r io.Reader) (*Result, error) {
	data, err := readText(r)
	if err != nil {
		return nil, err
	}
	cr := newCSVReader(data)
	header, err := readHeader(cr)
	if err != nil {
		return nil, err
	}
	taken := map[int]bool{}
	find := func(candidates []string) int {
		i := findColumn(header, candidates, taken)
		if i >= 0 {
			taken[i] = true
		}
		return i
	}
	cols := columns{code: find(shopCodeHeaders)}
	if cols.code < 0 {
		return nil, missingColumnError("card number (卡号/礼品卡号)", header)
	}
	cols.secret = find(shopSecretHeaders)
	cols.balance = find(shopBalanceHeaders)
	cols.face = find(shopFaceHeaders)
	cols.status = find(shopStatusHeaders)
	cols.expires = find(shopExpiresHeaders)
	return parseRecords(cr, cols, FormatShopGiftCard), nil
}

// parseRecords turns the data records after the header into rows.
func parseRecords(cr *csv.Reader, cols columns, format string) *Result {
	c := newCollector(format)
	for {
		before := cr.InputOffset()
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			line := 0
			if errors.As(err, &pe) {
				line = pe.StartLine
				err = pe.Err
			}
			c.problem(max(line, 1), "record", ReasonBadFormat, "malformed CSV record: "+err.Error(), "")
			if cr.InputOffset() == before {
				break // no progress: stop rather than loop
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if allBlank(rec) {
			continue
		}
		if i := slices.IndexFunc(rec, func(s string) bool { return !utf8.ValidString(s) }); i >= 0 {
			c.problem(line, "record", ReasonBadEncoding,
				"record is not valid UTF-8 (GBK/GB18030 files must be saved as UTF-8 first)",
				strings.ToValidUTF8(strings.Join(rec, ","), "\uFFFD"))
			continue
		}
		if cols.code >= len(rec) {
			c.problem(line, "code", ReasonMissingColumn,
				fmt.Sprintf("record has %d fields; the code is in column %d", len(rec), cols.code+1),
				strings.Join(rec, ","))
			continue
		}
		if status := cell(rec, cols.status); skippedStatuses[status] {
			c.problem(line, "status", ReasonSkippedStatus,
				fmt.Sprintf("card %s is %s; not imported", cell(rec, cols.code), status), status)
			continue
		}
		face := cell(rec, cols.balance)
		if face == "" {
			face = cell(rec, cols.face)
		}
		c.add(Row{
			Line:    line,
			Code:    cell(rec, cols.code),
			Secret:  cell(rec, cols.secret),
			Face:    face,
			Expires: cell(rec, cols.expires),
		})
	}
	return c.result()
}

func allBlank(rec []string) bool {
	for _, s := range rec {
		if strings.TrimSpace(s) != "" {
			return false
		}
	}
	return true
}

// cell returns column i of rec, trimmed and unwrapped, or "" if absent.
func cell(rec []string, i int) string {
	if i < 0 || i >= len(rec) {
		return ""
	}
	return unwrap(rec[i])
}

// unwrap undoes the tricks spreadsheets and exporters use to keep long
// numbers as text: ="123456", a leading apostrophe, a leading tab.
func unwrap(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 3 && strings.HasPrefix(s, `="`) && strings.HasSuffix(s, `"`) {
		s = strings.ReplaceAll(s[2:len(s)-1], `""`, `"`)
	} else {
		s = strings.TrimPrefix(s, "'")
	}
	return strings.TrimSpace(s)
}

// quoteExcelText rewrites unquoted ="123456" fields (the formula trick that
// keeps Excel from turning codes into numbers) as "123456": encoding/csv
// would otherwise reject the inner quotes. Anything else is left alone. The
// rewrite only shortens fields and never adds or removes line breaks, so CSV
// line numbers stay those of the file.
func quoteExcelText(data []byte) []byte {
	if !bytes.Contains(data, []byte(`="`)) {
		return data
	}
	out := make([]byte, 0, len(data))
	fieldStart, inQuotes := true, false
	for i := 0; i < len(data); i++ {
		b := data[i]
		if fieldStart && !inQuotes && bytes.HasPrefix(data[i:], []byte(`="`)) {
			if end := bytes.IndexAny(data[i+2:], "\"\r\n"); end >= 0 && data[i+2+end] == '"' {
				close := i + 2 + end
				if close+1 == len(data) || bytes.IndexByte([]byte(",\r\n"), data[close+1]) >= 0 {
					out = append(out, '"')
					out = append(out, data[i+2:close+1]...)
					i = close
					fieldStart = false
					continue
				}
			}
		}
		switch {
		case inQuotes && b == '"':
			if i+1 < len(data) && data[i+1] == '"' { // escaped quote
				out = append(out, b, b)
				i++
				continue
			}
			inQuotes = false
		case inQuotes:
		case b == '"' && fieldStart:
			inQuotes = true
		case b == ',' || b == '\n':
			out = append(out, b)
			fieldStart = true
			continue
		}
		out = append(out, b)
		fieldStart = false
	}
	return out
}

// Detect sniffs the start of an import file: a header row naming a code
// column means "csv", or "shop_giftcard" when it also has status or balance
// columns (or a gift-card-only code column); anything else is "lines".
// The reader is returned to where it was.
func Detect(r io.ReadSeeker) (string, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", fmt.Errorf("reading import file: %w", err)
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	for _, raw := range lines(decodeText(buf[:n])) {
		s := strings.TrimSpace(raw)
		if s == "" || s[0] == '#' {
			continue
		}
		return classifyHeader(s), nil
	}
	return FormatLines, nil
}

func classifyHeader(line string) string {
	cr := csv.NewReader(strings.NewReader(line))
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		header = strings.Split(line, ",")
	}
	generic, shopOnly, shopCols := false, false, false
	for _, h := range header {
		switch {
		case inHeaders(h, codeHeaders):
			generic = true
		case inHeaders(h, shopCodeHeaders):
			shopOnly = true
		}
		if inHeaders(h, shopStatusHeaders) || inHeaders(h, shopBalanceHeaders) {
			shopCols = true
		}
	}
	switch {
	case (generic || shopOnly) && (shopCols || !generic):
		return FormatShopGiftCard
	case generic:
		return FormatCSV
	}
	return FormatLines
}

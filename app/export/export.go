// Package export writes tables (code lists, reports) as CSV or XLSX files
// that open correctly in Excel and WPS, including Chinese text and codes with
// leading zeros.
package export

import (
	"archive/zip"
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
)

// Writer receives one table: an optional header, then rows. Close must be
// called to finish the file; it does not close the underlying io.Writer.
type Writer interface {
	Header(cols []string) error
	Row(cells []string) error
	Close() error
}

var (
	errHeaderAfterRows = errors.New("export: header must be written before any row")
	errClosed          = errors.New("export: writer is closed")
)

// FormatFromPath picks the export format from a file name's extension.
func FormatFromPath(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv", nil
	case ".xlsx":
		return "xlsx", nil
	}
	return "", fmt.Errorf("cannot export to %q: the file name must end in .csv or .xlsx", path)
}

// csvWriter writes Excel-friendly CSV.
type csvWriter struct {
	cw      *csv.Writer
	rows    int
	closed  bool
	scratch []string
}

// NewCSV returns a Writer producing UTF-8 CSV with a byte-order mark (without
// it Excel reads Chinese as mojibake) and CRLF line ends. Cells that a
// spreadsheet would run as a formula get a leading apostrophe.
func NewCSV(w io.Writer) Writer {
	bw := bufio.NewWriter(w)
	_, _ = bw.WriteString("\uFEFF") // buffered; a write error surfaces at Close
	cw := csv.NewWriter(bw)         // reuses bw, so the mark comes first
	cw.UseCRLF = true
	return &csvWriter{cw: cw}
}

func (c *csvWriter) Header(cols []string) error {
	if c.rows > 0 {
		return errHeaderAfterRows
	}
	return c.write(cols)
}

func (c *csvWriter) Row(cells []string) error {
	if err := c.write(cells); err != nil {
		return err
	}
	c.rows++
	return nil
}

func (c *csvWriter) write(cells []string) error {
	if c.closed {
		return errClosed
	}
	c.scratch = c.scratch[:0]
	for _, s := range cells {
		c.scratch = append(c.scratch, guardFormula(s))
	}
	return c.cw.Write(c.scratch)
}

func (c *csvWriter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.cw.Flush()
	return c.cw.Error()
}

// guardFormula defuses CSV formula injection: a cell starting with = + - @
// tab or CR would be evaluated by Excel, so it gets a leading apostrophe.
// Plain numbers such as "-3.00" (refunds, negative balances) are left alone
// so they stay numbers in the sheet.
func guardFormula(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) || isPlainNumber(s) {
		return s
	}
	return "'" + s
}

// isPlainNumber matches an optional sign, digits and an optional decimal part.
func isPlainNumber(s string) bool {
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	return isDigits(intPart) && (!hasDot || isDigits(frac))
}

func isDigits(s string) bool {
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

// Column widths are chosen from the header and the first rows; the stream
// writer needs them before the first row is written.
const (
	widthSampleRows = 200
	minColWidth     = 8
	maxColWidth     = 60
)

// xlsxWriter streams rows to a temporary file via excelize, so memory stays
// flat however many rows are written.
type xlsxWriter struct {
	w       io.Writer
	f       *excelize.File
	sw      *excelize.StreamWriter
	bold    int
	header  []string
	pending [][]string // rows held back until the column widths are set
	started bool
	nextRow int // 1-based sheet row of the next write
	rows    int
	closed  bool
	err     error // first failure; every later call returns it
	values  []any
}

// NewXLSX returns a Writer producing an .xlsx workbook with one sheet. Every
// cell is text, so codes such as "000123" keep their zeros; the header row is
// bold and frozen. Close writes the workbook to w.
func NewXLSX(w io.Writer, sheet string) Writer {
	x := &xlsxWriter{w: w, f: excelize.NewFile(), nextRow: 1}
	name := sheetName(sheet)
	if name != "Sheet1" {
		x.err = x.f.SetSheetName("Sheet1", name)
	}
	if x.err == nil {
		x.sw, x.err = x.f.NewStreamWriter(name)
	}
	if x.err == nil {
		x.bold, x.err = x.f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	}
	return x
}

// sheetName makes any title acceptable to Excel: at most 31 characters, none
// of : \ / ? * [ ], and no apostrophe at either end.
func sheetName(s string) string {
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`:\/?*[]`, r) || r < ' ' {
			return '_'
		}
		return r
	}, strings.TrimSpace(s))
	s = strings.Trim(s, "'")
	// Excel counts UTF-16 units; characters outside the BMP count twice.
	units, cut := 0, len(s)
	for i, r := range s {
		n := 1
		if r > 0xFFFF {
			n = 2
		}
		if units+n > 31 {
			cut = i
			break
		}
		units += n
	}
	s = strings.Trim(s[:cut], "'")
	if s == "" {
		return "Sheet1"
	}
	return s
}

func (x *xlsxWriter) Header(cols []string) error {
	if err := x.check(); err != nil {
		return err
	}
	if x.header != nil || x.rows > 0 {
		return errHeaderAfterRows
	}
	x.header = append([]string{}, cols...)
	return nil
}

func (x *xlsxWriter) Row(cells []string) error {
	if err := x.check(); err != nil {
		return err
	}
	// One sheet holds 1,048,576 rows including the header.
	limit := excelize.TotalRows
	if x.header != nil {
		limit--
	}
	if x.rows >= limit {
		return fmt.Errorf("export: an XLSX sheet holds at most %d rows; use CSV for more", limit)
	}
	x.rows++
	if !x.started {
		x.pending = append(x.pending, append([]string{}, cells...))
		if len(x.pending) < widthSampleRows {
			return nil
		}
		return x.start()
	}
	return x.put(cells, 0)
}

func (x *xlsxWriter) check() error {
	if x.closed {
		return errClosed
	}
	return x.err
}

// start sets column widths and the frozen header, then writes what was held back.
func (x *xlsxWriter) start() error {
	x.started = true
	var widths []int
	measure := func(cells []string) {
		for i, s := range cells {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(s))
		}
	}
	measure(x.header)
	for _, r := range x.pending {
		measure(r)
	}
	for i, w := range widths {
		if err := x.sw.SetColWidth(i+1, i+1, float64(min(max(w+2, minColWidth), maxColWidth))); err != nil {
			return x.fail(err)
		}
	}
	if x.header != nil {
		err := x.sw.SetPanes(&excelize.Panes{
			Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft",
		})
		if err != nil {
			return x.fail(err)
		}
		if err := x.put(x.header, x.bold); err != nil {
			return err
		}
	}
	for _, r := range x.pending {
		if err := x.put(r, 0); err != nil {
			return err
		}
	}
	x.pending = nil
	return nil
}

// put writes one sheet row of string cells.
func (x *xlsxWriter) put(cells []string, style int) error {
	x.values = x.values[:0]
	for _, s := range cells {
		if style != 0 {
			x.values = append(x.values, excelize.Cell{StyleID: style, Value: s})
		} else {
			x.values = append(x.values, s)
		}
	}
	ref, err := excelize.CoordinatesToCellName(1, x.nextRow)
	if err != nil {
		return x.fail(err)
	}
	if err := x.sw.SetRow(ref, x.values); err != nil {
		return x.fail(err)
	}
	x.nextRow++
	return nil
}

func (x *xlsxWriter) fail(err error) error {
	if x.err == nil {
		x.err = err
	}
	return x.err
}

func (x *xlsxWriter) Close() error {
	if x.closed {
		return nil
	}
	defer func() {
		x.closed = true
		_ = x.f.Close() // removes excelize's temporary files
	}()
	if x.err != nil {
		return x.err
	}
	if !x.started {
		if err := x.start(); err != nil {
			return err
		}
	}
	if err := x.sw.Flush(); err != nil {
		return err
	}
	// excelize assembles the zip in a bytes.Buffer by default, which for a
	// million rows means tens of megabytes; write it straight to w instead.
	// (This skips excelize's zip64 local-header patch, needed only for a
	// part over 4 GB — far past what a sheet of codes reaches.)
	x.f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return zip.NewWriter(x.w) })
	return x.f.Write(x.w)
}

// displayWidth approximates the width of s in Excel column units: East Asian
// characters take two.
func displayWidth(s string) int {
	w := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		if isWide(r) {
			w += 2
		} else {
			w++
		}
	}
	return w
}

func isWide(r rune) bool {
	return r >= 0x1100 && (r <= 0x115F || // Hangul Jamo
		(r >= 0x2E80 && r <= 0xA4CF) || // CJK radicals … Yi
		(r >= 0xAC00 && r <= 0xD7A3) || // Hangul syllables
		(r >= 0xF900 && r <= 0xFAFF) || // CJK compatibility ideographs
		(r >= 0xFE30 && r <= 0xFE4F) || // CJK compatibility forms
		(r >= 0xFF00 && r <= 0xFF60) || // full-width forms
		(r >= 0xFFE0 && r <= 0xFFE6) ||
		(r >= 0x20000 && r <= 0x3FFFD))
}

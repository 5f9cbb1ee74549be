package app_test

// Process-level tests: the real kameng binary, run as separate operating-system
// processes against a real SQLite file in a temporary data directory. They check
// what only shows between processes: concurrent writers, a process killed mid-write,
// bytes at rest on disk, and a database file changed behind the program's back.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// kamengBin is the binary TestMain builds once for every test in this file.
var kamengBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kameng-process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "process tests: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	kamengBin = filepath.Join(dir, "kameng")
	if runtime.GOOS == "windows" {
		kamengBin += ".exe"
	}
	build := exec.Command(goTool, "build", "-tags", "nogui", "-o", kamengBin, "github.com/kameng/kameng")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "process tests: building kameng: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// procResult is what one kameng process did.
type procResult struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r procResult) String() string {
	return fmt.Sprintf("kameng %s → exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// kenv is the environment of a kameng process: the caller's, without anything that
// would pick the language, data directory, operator or key for it.
func kenv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "KAMENG_"), name == "LANG", name == "LANGUAGE", strings.HasPrefix(name, "LC_"),
			name == "DISPLAY", name == "WAYLAND_DISPLAY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// kdir is one data directory the tests drive through the binary.
type kdir struct {
	t   *testing.T
	dir string // the data directory
	pw  string // the owner's password file
}

func newKDir(t *testing.T) *kdir {
	t.Helper()
	root := t.TempDir()
	pw := filepath.Join(root, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &kdir{t: t, dir: filepath.Join(root, "data"), pw: pw}
}

func (k *kdir) db() string  { return filepath.Join(k.dir, "kameng.db") }
func (k *kdir) key() string { return filepath.Join(k.dir, "kameng.key") }

func (k *kdir) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, kamengBin, append([]string{"--data", k.dir}, args...)...)
	c.Env = kenv()
	c.Stdin = nil
	return c
}

// run runs one kameng process to its end.
func (k *kdir) run(args ...string) procResult {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return finish(k.t, k.cmd(ctx, args...), args)
}

func finish(t *testing.T, c *exec.Cmd, args []string) procResult {
	t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	return result(t, err, args, &out, &errb)
}

func result(t *testing.T, err error, args []string, out, errb *bytes.Buffer) procResult {
	t.Helper()
	r := procResult{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("kameng %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs a command that must exit 0.
func (k *kdir) ok(args ...string) procResult {
	k.t.Helper()
	r := k.run(args...)
	if r.code != 0 {
		k.t.Fatalf("want exit 0:\n%s", r)
	}
	return r
}

// okJSON runs a command with --json that must exit 0 and decodes its output.
func (k *kdir) okJSON(v any, args ...string) {
	k.t.Helper()
	r := k.ok(append(args, "--json")...)
	decode(k.t, r, v)
}

func decode(t *testing.T, r procResult, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("output is not the JSON expected (%v):\n%s", err, r)
	}
}

func (k *kdir) init() {
	k.t.Helper()
	k.ok("init", "--password-file", k.pw)
	if _, err := os.Stat(k.key()); err != nil {
		k.t.Fatalf("init wrote no key file: %v", err)
	}
}

// codeList is the --json form of `codes list`.
type codeList struct {
	Total int64 `json:"total"`
	Codes []struct {
		Code      string `json:"code"`
		Status    string `json:"status"`
		Uses      int    `json:"uses"`
		Balance   int64  `json:"balance"`
		HasSecret bool   `json:"has_secret"`
		Phone     string `json:"phone"`
	} `json:"codes"`
}

// codes lists a campaign's codes (up to limit).
func (k *kdir) codes(campaign string, limit int) codeList {
	k.t.Helper()
	var l codeList
	k.okJSON(&l, "codes", "list", campaign, "--limit", fmt.Sprint(limit))
	return l
}

func (k *kdir) codeStrings(campaign string, limit int) []string {
	k.t.Helper()
	var out []string
	for _, c := range k.codes(campaign, limit).Codes {
		out = append(out, c.Code)
	}
	return out
}

// redeemOut is the --json form of `redeem`.
type redeemOut struct {
	Verdict struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
		Code   string `json:"code"`
		Value  int64  `json:"value"`
	} `json:"verdict"`
	Redemption *struct {
		ID     string `json:"id"`
		Code   string `json:"code"`
		Value  int64  `json:"value"`
		Status string `json:"status"`
	} `json:"redemption"`
}

// doctorOut is the --json form of `doctor`.
type doctorOut struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

func (d doctorOut) check(t *testing.T, name string) (ok bool, detail string) {
	t.Helper()
	for _, c := range d.Checks {
		if c.Name == name {
			return c.OK, c.Detail
		}
	}
	t.Fatalf("doctor has no %q check: %+v", name, d.Checks)
	return false, ""
}

// sqlOpen opens the data directory's database directly, as a third party would.
func sqlOpen(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func queryInt(t *testing.T, db *sql.DB, q string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// concurrently starts one process per argument list at once and waits for all.
func (k *kdir) concurrently(argLists ...[]string) []procResult {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type running struct {
		c         *exec.Cmd
		out, errb bytes.Buffer
		err       error
	}
	procs := make([]*running, len(argLists))
	for i, args := range argLists {
		p := &running{c: k.cmd(ctx, args...)}
		p.c.Stdout, p.c.Stderr = &p.out, &p.errb
		procs[i] = p
	}
	// Start every process before waiting for any: they race for the database.
	gate := make(chan struct{})
	var started, done sync.WaitGroup
	for _, p := range procs {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			<-gate
			p.err = p.c.Run()
		}()
	}
	started.Wait()
	close(gate)
	done.Wait()
	out := make([]procResult, len(procs))
	for i, p := range procs {
		out[i] = result(k.t, p.err, argLists[i], &p.out, &p.errb)
	}
	return out
}

// 1. Four processes redeem one single-use code at the same instant: exactly one wins.
func TestFourProcessesRedeemOneCode(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "单次券", "--kind", "amount_off", "--amount-off", "5", "--uses", "1")
	k.ok("codes", "generate", "单次券", "--count", "1", "--json")
	codes := k.codeStrings("单次券", 10)
	if len(codes) != 1 {
		t.Fatalf("want 1 code, got %v", codes)
	}
	code := codes[0]

	var args [][]string
	for range 4 {
		args = append(args, []string{"redeem", code, "--json"})
	}
	results := k.concurrently(args...)
	winners, losers := 0, 0
	for _, r := range results {
		var out redeemOut
		decode(t, r, &out)
		switch r.code {
		case 0:
			winners++
			if !out.Verdict.OK || out.Verdict.Reason != "ok" || out.Redemption == nil || out.Redemption.Code != code {
				t.Errorf("exit 0 but not a redemption of %s:\n%s", code, r)
			}
		case 6:
			losers++
			if out.Verdict.OK || out.Verdict.Reason != "already_redeemed" || out.Redemption != nil {
				t.Errorf("exit 6 but reason %q (want already_redeemed):\n%s", out.Verdict.Reason, r)
			}
		default:
			t.Errorf("unexpected exit:\n%s", r)
		}
	}
	if winners != 1 || losers != 3 {
		t.Fatalf("want 1 winner and 3 already_redeemed, got %d and %d", winners, losers)
	}

	var rs []struct {
		Code   string `json:"code"`
		Status string `json:"status"`
	}
	k.okJSON(&rs, "redemptions")
	if len(rs) != 1 || rs[0].Code != code || rs[0].Status != "done" {
		t.Fatalf("want exactly one redemption of %s, got %+v", code, rs)
	}
	var show struct {
		Code struct {
			Uses int `json:"uses"`
		} `json:"code"`
	}
	k.okJSON(&show, "codes", "show", code)
	if show.Code.Uses != 1 {
		t.Fatalf("code uses = %d, want 1", show.Code.Uses)
	}
	k.ok("audit", "verify")
}

// 2. Eight processes each take ¥30 from a ¥100 gift card: three succeed, ¥10 is left.
func TestGiftCardConcurrentProcesses(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "礼品卡", "--kind", "gift_card", "--face-value", "100")
	k.ok("codes", "generate", "礼品卡", "--count", "1")
	codes := k.codeStrings("礼品卡", 10)
	if len(codes) != 1 {
		t.Fatalf("want 1 gift card, got %v", codes)
	}
	code := codes[0]

	var args [][]string
	for range 8 {
		args = append(args, []string{"redeem", code, "--amount", "30", "--json"})
	}
	ok := 0
	for _, r := range k.concurrently(args...) {
		var out redeemOut
		decode(t, r, &out)
		switch r.code {
		case 0:
			ok++
			if out.Redemption == nil || out.Redemption.Value != 3000 {
				t.Errorf("a successful debit must take 3000 fen:\n%s", r)
			}
		case 6:
			if out.Verdict.Reason != "insufficient_balance" {
				t.Errorf("refused debit: reason %q, want insufficient_balance:\n%s", out.Verdict.Reason, r)
			}
		default:
			t.Errorf("unexpected exit:\n%s", r)
		}
	}
	if ok != 3 {
		t.Fatalf("%d debits of 30 succeeded on a 100 card, want 3", ok)
	}

	var show struct {
		Code struct {
			Balance int64 `json:"balance"`
			Uses    int   `json:"uses"`
		} `json:"code"`
		Redemptions []struct {
			Value int64 `json:"value"`
		} `json:"redemptions"`
	}
	k.okJSON(&show, "codes", "show", code)
	if show.Code.Balance != 1000 || len(show.Redemptions) != 3 {
		t.Fatalf("balance %d with %d redemptions, want 1000 and 3", show.Code.Balance, len(show.Redemptions))
	}

	var doc doctorOut
	k.okJSON(&doc, "doctor")
	if good, detail := doc.check(t, "ledger"); !good {
		t.Fatalf("doctor's ledger check failed: %s", detail)
	}

	// The balance is the ledger's sum: one issue of 10000 and three debits of 3000.
	db := sqlOpen(t, k.db())
	defer db.Close()
	if s := queryInt(t, db, `SELECT sum(amount) FROM ledger WHERE code = '`+code+`'`); s != 1000 {
		t.Fatalf("ledger sum %d, want 1000", s)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM ledger WHERE code = '`+code+`' AND kind = 'debit' AND amount = -3000`); n != 3 {
		t.Fatalf("%d debit entries, want 3", n)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM code WHERE balance < 0`); n != 0 {
		t.Fatalf("%d negative balances", n)
	}
}

// 3. A process killed (SIGKILL) in the middle of generating a batch leaves nothing of it.
func TestKillDuringGenerate(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "大批量", "--kind", "amount_off", "--amount-off", "5")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gen := k.cmd(ctx, "codes", "generate", "大批量", "--count", "1000000", "--json")
	var out, errb bytes.Buffer
	gen.Stdout, gen.Stderr = &out, &errb
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- gen.Wait() }()

	// Wait until the transaction has spilled well into the WAL: mid-batch.
	const midBatch = 8 << 20
	wal := k.db() + "-wal"
	deadline := time.After(30 * time.Second)
	for {
		if st, err := os.Stat(wal); err == nil && st.Size() > midBatch {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("generate ended (%v) before the WAL reached %d bytes; stdout %s stderr %s", err, midBatch, &out, &errb)
		case <-deadline:
			t.Fatal("the WAL never grew past 8 MB")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := gen.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatalf("generate exited 0 although it was killed: %s", &out)
	}
	if st, err := os.Stat(wal); err != nil || st.Size() <= midBatch {
		t.Fatalf("the killed process should leave its WAL behind (%v)", err)
	}

	// The next process recovers the database: sound, and without a trace of the batch.
	var doc doctorOut
	k.okJSON(&doc, "doctor")
	if good, detail := doc.check(t, "integrity"); !good || detail != "ok" {
		t.Fatalf("integrity after kill: %v %s", good, detail)
	}
	var l codeList
	k.okJSON(&l, "codes", "list", "大批量")
	if l.Total != 0 || len(l.Codes) != 0 {
		t.Fatalf("after the kill the campaign has %d codes, want 0", l.Total)
	}
	var camp struct {
		Issued int64 `json:"issued"`
	}
	k.okJSON(&camp, "campaign", "show", "大批量")
	if camp.Issued != 0 {
		t.Fatalf("campaign issued = %d after the kill, want 0", camp.Issued)
	}

	db := sqlOpen(t, k.db())
	var ic string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("PRAGMA integrity_check = %q (%v)", ic, err)
	}
	for table, want := range map[string]int64{"code": 0, "batch": 0, "rollup": 0} {
		if n := queryInt(t, db, `SELECT count(*) FROM `+table); n != want {
			t.Errorf("%s has %d rows after the kill, want %d", table, n, want)
		}
	}
	if n := queryInt(t, db, `SELECT count(*) FROM audit WHERE action = 'codes.generate'`); n != 0 {
		t.Errorf("an audit entry of the killed batch survived (%d)", n)
	}
	db.Close()

	// And the database is usable.
	k.ok("codes", "generate", "大批量", "--count", "1000", "--json")
	l = k.codes("大批量", 1)
	if l.Total != 1000 {
		t.Fatalf("second generate: %d codes, want 1000", l.Total)
	}
	k.okJSON(&camp, "campaign", "show", "大批量")
	if camp.Issued != 1000 {
		t.Fatalf("campaign issued = %d, want 1000", camp.Issued)
	}
	k.ok("audit", "verify")
}

// The generate message reads right in both languages (no fmt verb mismatches).
func TestProcessGenerateMessage(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "消息", "--kind", "amount_off", "--amount-off", "5")
	for _, lang := range []string{"zh", "en"} {
		r := k.ok("--lang", lang, "codes", "generate", "消息", "--count", "3")
		if strings.Contains(r.stdout, "%!") {
			t.Errorf("--lang %s: broken message: %q", lang, r.stdout)
		}
		if !strings.Contains(r.stdout, "3") || !strings.Contains(r.stdout, "消息") {
			t.Errorf("--lang %s: the message should name the count and the campaign: %q", lang, r.stdout)
		}
	}
}

// auditLine is one line of `kameng audit export`.
type auditLine struct {
	Seq      json.Number     `json:"seq"`
	ID       string          `json:"id"`
	Time     json.Number     `json:"ts_ms"`
	Operator string          `json:"operator_id"`
	Device   string          `json:"device_id"`
	Action   string          `json:"action"`
	Entity   string          `json:"entity"`
	EntityID string          `json:"entity_id"`
	Detail   json.RawMessage `json:"detail"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Body     string          `json:"body"`
}

// 4. Changing one audit entry in the file is caught and named.
func TestAuditTamperNamed(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "审计", "--kind", "amount_off", "--amount-off", "5")
	k.ok("codes", "generate", "审计", "--count", "5")
	code := k.codeStrings("审计", 1)[0]
	var red redeemOut
	k.okJSON(&red, "redeem", code)
	if red.Redemption == nil {
		t.Fatal("no redemption")
	}
	k.ok("rollback", red.Redemption.ID, "--reason", "顾客退单")

	var res struct {
		Entries int64 `json:"entries"`
		OK      bool  `json:"ok"`
	}
	k.okJSON(&res, "audit", "verify")
	if !res.OK || res.Entries < 5 {
		t.Fatalf("untampered chain: %+v", res)
	}

	db := sqlOpen(t, k.db())
	var action string
	if err := db.QueryRow(`SELECT action FROM audit WHERE seq = 3`).Scan(&action); err != nil {
		t.Fatal(err)
	}
	if r, err := db.Exec(`UPDATE audit SET detail = '{"x":1}' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	} else if n, _ := r.RowsAffected(); n != 1 {
		t.Fatalf("tampered %d rows", n)
	}
	db.Close()

	r := k.run("audit", "verify", "--json")
	if r.code != 8 {
		t.Fatalf("verify of a tampered chain: want exit 8\n%s", r)
	}
	var broken struct {
		OK    bool `json:"ok"`
		Break *struct {
			Seq    int64  `json:"seq"`
			Action string `json:"action"`
			Why    string `json:"why"`
		} `json:"break"`
	}
	decode(t, r, &broken)
	if broken.OK || broken.Break == nil || broken.Break.Seq != 3 || broken.Break.Why != "hash" || broken.Break.Action != action {
		t.Fatalf("want the break at seq 3 (%s, hash), got %s", action, r.stdout)
	}
	r = k.run("--lang", "en", "audit", "verify")
	if r.code != 8 || !strings.Contains(r.stdout, "broken at entry 3 ") || !strings.Contains(r.stdout, action) {
		t.Fatalf("English output must name entry 3:\n%s", r)
	}
	r = k.run("--lang", "zh", "audit", "verify")
	if r.code != 8 || !strings.Contains(r.stdout, "第 3 条") {
		t.Fatalf("Chinese output must name entry 3:\n%s", r)
	}
	var doc doctorOut
	r = k.run("doctor", "--json")
	decode(t, r, &doc)
	if good, detail := doc.check(t, "audit"); r.code != 10 || good || !strings.Contains(detail, "3") {
		t.Fatalf("doctor must report the broken chain (exit 10):\n%s", r)
	}

	// The export as a third party checks it, with nothing but the documented format
	// and SHA-256: hash = hex(sha256(prev_hash || body)), where body is the compact
	// JSON object of the fields action, detail, device_id, entity, entity_id, id,
	// operator_id, seq, ts_ms in that (sorted) key order — the shell equivalent is
	// `printf '%s%s' "$prev_hash" "$body" | sha256sum`. Each prev_hash is the previous
	// line's hash; the first is 64 zeros.
	r = k.ok("audit", "export")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != int(res.Entries) {
		t.Fatalf("export has %d lines, verify counted %d entries", len(lines), res.Entries)
	}
	prev := strings.Repeat("0", 64)
	for i, raw := range lines {
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		var e auditLine
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, raw)
		}
		seq, _ := e.Seq.Int64()
		if seq != int64(i+1) {
			t.Fatalf("line %d has seq %d", i+1, seq)
		}
		if e.PrevHash != prev {
			t.Errorf("seq %d: prev_hash %s does not link to the previous hash %s", seq, e.PrevHash, prev)
		}
		// The body must be what the fields say, so a verifier need not trust it.
		rebuilt, err := json.Marshal(map[string]any{"action": e.Action, "detail": e.Detail, "device_id": e.Device,
			"entity": e.Entity, "entity_id": e.EntityID, "id": e.ID, "operator_id": e.Operator, "seq": e.Seq, "ts_ms": e.Time})
		if err != nil {
			t.Fatal(err)
		}
		if string(rebuilt) != e.Body {
			t.Errorf("seq %d: body %s is not the canonical JSON of its fields %s", seq, e.Body, rebuilt)
		}
		sum := sha256.Sum256([]byte(e.PrevHash + e.Body))
		matches := hex.EncodeToString(sum[:]) == e.Hash
		if seq == 3 && matches {
			t.Errorf("seq 3 was tampered with but its hash still matches")
		}
		if seq != 3 && !matches {
			t.Errorf("seq %d: sha256(prev_hash+body) = %x, stored hash %s", seq, sum, e.Hash)
		}
		prev = e.Hash
	}
}

// 5. Card-key secrets and phone numbers never reach the disk in plain text.
func TestNoPlaintextSecrets(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "话费卡", "--kind", "card_key", "--face-value", "25")
	k.ok("codes", "generate", "话费卡", "--count", "200")
	keys := k.codes("话费卡", 200)
	if keys.Total != 200 || len(keys.Codes) != 200 {
		t.Fatalf("want 200 card keys, got %d", keys.Total)
	}
	// Hold a connection open for the rest of the test, as a long-running screen would:
	// the last kameng process then cannot checkpoint and delete the WAL, so every frame
	// written below is still in kameng.db-wal when the bytes are scanned.
	holder := sqlOpen(t, k.db())
	defer holder.Close()
	if n := queryInt(t, holder, `SELECT count(*) FROM code`); n != 200 {
		t.Fatalf("%d codes in the file", n)
	}
	var secrets []string
	for _, c := range keys.Codes[:20] {
		if !c.HasSecret {
			t.Fatalf("card key %s has no secret", c.Code)
		}
		r := k.ok("codes", "reveal", c.Code)
		s := strings.TrimSpace(r.stdout)
		if len(s) < 8 {
			t.Fatalf("revealed secret %q of %s is too short to search for", s, c.Code)
		}
		if strings.Contains(r.stdout, "******") {
			t.Fatalf("reveal printed a masked secret: %q", r.stdout)
		}
		secrets = append(secrets, s)
	}

	k.ok("campaign", "create", "--name", "会员券", "--kind", "amount_off", "--amount-off", "5", "--per-member", "2")
	k.ok("codes", "generate", "会员券", "--count", "40")
	coupons := k.codeStrings("会员券", 30)
	var phones []string
	for i, c := range coupons {
		phone := fmt.Sprintf("139000000%02d", i+1)
		phones = append(phones, phone)
		var d struct {
			Distributed int `json:"distributed"`
		}
		k.okJSON(&d, "codes", "distribute", c, "--phone", phone)
		if d.Distributed != 1 {
			t.Fatalf("distribute %s: %+v", c, d)
		}
	}
	// A member may use two of these coupons; the third is refused.
	for i, c := range coupons[:3] {
		r := k.run("redeem", c, "--member", "13900000001", "--json")
		var out redeemOut
		decode(t, r, &out)
		want, reason := 0, "ok"
		if i == 2 {
			want, reason = 6, "per_member_limit"
		}
		if r.code != want || out.Verdict.Reason != reason {
			t.Fatalf("redeem #%d for the member: want exit %d %s\n%s", i+1, want, reason, r)
		}
	}

	list := k.codes("会员券", 30)
	for i, c := range list.Codes {
		want := fmt.Sprintf("139****00%02d", i+1)
		if c.Phone != want {
			t.Errorf("code %s lists phone %q, want masked %q", c.Code, c.Phone, want)
		}
	}

	// Every byte at rest: the database, its WAL and shared memory, and anything else.
	files, _ := filepath.Glob(filepath.Join(k.dir, "*"))
	var scanned []string
	control := false // the codes themselves are stored in clear: the scan must find them
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scanned = append(scanned, fmt.Sprintf("%s (%d bytes)", filepath.Base(f), len(b)))
		control = control || bytes.Contains(b, []byte(coupons[len(coupons)-1]))
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the card-key secret %s in plain text", filepath.Base(f), s)
			}
		}
		for _, p := range phones {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("%s holds the phone %s in plain text", filepath.Base(f), p)
			}
		}
	}
	if !control {
		t.Errorf("the scan did not find the code %s, which is stored in clear: it is not reading the data", coupons[len(coupons)-1])
	}
	for _, want := range []string{"kameng.db", "kameng.db-wal", "kameng.db-shm"} {
		if st, err := os.Stat(filepath.Join(k.dir, want)); err != nil || st.Size() == 0 {
			t.Errorf("%s was not there to scan (%v); scanned %v", want, err, scanned)
		}
	}
	t.Logf("scanned %s", strings.Join(scanned, ", "))
}

// 6. A database written by a newer Kameng is refused, not migrated down or damaged.
func TestNewerSchemaRefused(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "新版", "--kind", "amount_off", "--amount-off", "5")
	k.ok("codes", "generate", "新版", "--count", "1")
	code := k.codeStrings("新版", 1)[0]

	db := sqlOpen(t, k.db())
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, args := range [][]string{{"campaign", "list"}, {"check", code}, {"redeem", code}, {"doctor"}, {"audit", "verify"}} {
		en := k.run(append([]string{"--lang", "en"}, args...)...)
		if en.code != 7 || !strings.Contains(strings.ToLower(en.stderr), "upgrade") || !strings.Contains(en.stderr, "99") {
			t.Errorf("English: want exit 7 and an upgrade message naming version 99\n%s", en)
		}
		zh := k.run(args...) // Chinese is the default without a locale
		if zh.code != 7 || !strings.Contains(zh.stderr, "数据库版本不符") || !strings.Contains(zh.stderr, "99") {
			t.Errorf("Chinese: want exit 7 and 数据库版本不符 naming version 99\n%s", zh)
		}
	}
	r := k.run("--json", "campaign", "list")
	var je struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	decode(t, r, &je)
	if r.code != 7 || je.Error.Code != "schema" {
		t.Errorf("--json: want exit 7 and error code schema\n%s", r)
	}

	// Nothing was written: the file still says 99 and the code is unredeemed.
	db = sqlOpen(t, k.db())
	defer db.Close()
	if v := queryInt(t, db, `PRAGMA user_version`); v != 99 {
		t.Fatalf("user_version is %d after the refusals, want 99", v)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM redemption`); n != 0 {
		t.Fatalf("%d redemptions written to a refused database", n)
	}
}

// 7. Without the key file, secrets are out of reach but checking still works.
func TestMissingKeyFile(t *testing.T) {
	k := newKDir(t)
	k.init()
	k.ok("campaign", "create", "--name", "卡密", "--kind", "card_key", "--face-value", "25")
	k.ok("codes", "generate", "卡密", "--count", "5")
	codes := k.codeStrings("卡密", 5)
	k.ok("codes", "reveal", codes[0]) // works while the key is there

	if err := os.Remove(k.key()); err != nil {
		t.Fatal(err)
	}

	r := k.run("doctor", "--json")
	if r.code != 10 {
		t.Fatalf("doctor without the key: want exit 10\n%s", r)
	}
	var doc doctorOut
	decode(t, r, &doc)
	if good, detail := doc.check(t, "key"); good || doc.OK {
		t.Fatalf("doctor must report the key check failing, got ok (%s)", detail)
	}
	if good, _ := doc.check(t, "integrity"); !good {
		t.Fatalf("the database itself is sound:\n%s", r)
	}
	if r := k.run("--lang", "en", "doctor"); r.code != 10 || !strings.Contains(r.stdout, "LOCKED") {
		t.Fatalf("human doctor output must say the key is locked:\n%s", r)
	}

	r = k.run("--lang", "en", "codes", "reveal", codes[1])
	if r.code != 7 || !strings.Contains(r.stderr, "Key") {
		t.Fatalf("reveal without the key: want exit 7\n%s", r)
	}
	if strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("reveal without the key printed something: %q", r.stdout)
	}

	var v struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
		Code   string `json:"code"`
	}
	k.okJSON(&v, "check", codes[1])
	if !v.OK || v.Reason != "ok" || v.Code != codes[1] {
		t.Fatalf("check without the key: %+v", v)
	}
}

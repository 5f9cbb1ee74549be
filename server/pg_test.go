package server

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The PostgreSQL the tests use: KAMENG_TEST_POSTGRES (a postgres:// URL to an
// admin database), or else a throwaway cluster started from the installed binaries
// the first time a test asks, and removed by TestMain.
var testPG struct {
	once    sync.Once
	admin   string  // URL of the admin database
	db      *sql.DB // connection to it, for CREATE/DROP DATABASE
	skip    string  // why there is none
	stop    func()
	counter atomic.Int64

	// CREATE DATABASE takes a few hundred milliseconds: the next databases are
	// made while a test runs.
	ready    chan string
	quit     chan struct{}
	prefetch sync.WaitGroup
}

// postgresAdmin returns the admin database, starting the cluster on first use. It
// skips the test when there is none, or fails it under KAMENG_REQUIRE_POSTGRES=1.
func postgresAdmin(t testing.TB) *sql.DB {
	t.Helper()
	testPG.once.Do(func() {
		admin := os.Getenv("KAMENG_TEST_POSTGRES")
		if admin == "" {
			var err error
			admin, testPG.stop, err = startPostgres()
			if err != nil {
				testPG.skip = err.Error()
				return
			}
		}
		db, err := sql.Open("pgx", admin)
		if err == nil {
			err = db.Ping()
		}
		if err != nil {
			testPG.skip = fmt.Sprintf("cannot reach PostgreSQL at %s: %v", redact(admin), err)
			return
		}
		db.SetMaxOpenConns(4)
		testPG.admin, testPG.db = admin, db
		testPG.ready, testPG.quit = make(chan string, 2), make(chan struct{})
		testPG.prefetch.Add(1)
		go prefetchDatabases()
	})
	if testPG.db == nil {
		if os.Getenv("KAMENG_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL is required (KAMENG_REQUIRE_POSTGRES=1): %s", testPG.skip)
		}
		t.Skipf("PostgreSQL tests skipped: %s", testPG.skip)
	}
	return testPG.db
}

// newPostgresDatabase creates an empty database for one test and returns its URL;
// it is dropped when the test ends.
func newPostgresDatabase(t testing.TB) string {
	t.Helper()
	admin := postgresAdmin(t)
	var name string
	select {
	case name = <-testPG.ready:
	default:
		var err error
		if name, err = createDatabase(); err != nil {
			t.Fatalf("create database: %v", err)
		}
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(testPG.admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func createDatabase() (string, error) {
	name := fmt.Sprintf("kameng_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, testPG.counter.Add(1))
	_, err := testPG.db.Exec(`CREATE DATABASE ` + name)
	return name, err
}

func dropDatabase(name string) {
	testPG.db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
}

// prefetchDatabases keeps a couple of empty databases ready until the tests end.
func prefetchDatabases() {
	defer testPG.prefetch.Done()
	for {
		select {
		case <-testPG.quit:
			return
		default:
		}
		name, err := createDatabase()
		if err != nil {
			return // the tests create their own
		}
		select {
		case testPG.ready <- name:
		case <-testPG.quit:
			dropDatabase(name)
			return
		}
	}
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// findPostgres finds initdb and pg_ctl: on PATH, in /usr/local/bin, or in the
// newest /usr/lib/postgresql/*/bin.
func findPostgres() (initdb, pgctl string, err error) {
	dirs := []string{}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	dirs = append(dirs, "/usr/local/bin")
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return pgVersion(versions[i]) > pgVersion(versions[j]) })
	dirs = append(dirs, versions...)
	for _, d := range dirs {
		i, c := filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl")
		if isExec(i) && isExec(c) {
			return i, c, nil
		}
	}
	return "", "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) found on PATH, in /usr/local/bin or /usr/lib/postgresql/*/bin; set KAMENG_TEST_POSTGRES or install postgresql")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startPostgres starts a throwaway cluster: initdb into a temporary directory, trust
// authentication, a unix socket in that directory and 127.0.0.1 on a free port,
// durability switched off (nothing in it outlives the tests). PostgreSQL refuses to
// run as root, so as root it runs as the postgres user (or nobody).
func startPostgres() (dsn string, stop func(), err error) {
	initdb, pgctl, err := findPostgres()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "kameng-pg-")
	if err != nil {
		return "", nil, err
	}
	wrap, err := runAsNonRoot(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) error {
		argv := append(append(append([]string{}, wrap...), name), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v\n%s", filepath.Base(name), err, out.String())
		}
		return nil
	}
	if err := run(initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	for attempt := 0; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			os.RemoveAll(dir)
			return "", nil, perr
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB", port, dir)
		err = run(pgctl, "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			stop = func() {
				run(pgctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop")
				os.RemoveAll(dir)
			}
			return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), stop, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("%v\n%s", err, log)
		}
	}
}

// runAsNonRoot returns the command prefix that runs a program as an unprivileged
// user when the tests run as root, and hands dir to that user.
func runAsNonRoot(dir string) ([]string, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	for _, name := range []string{"postgres", "nobody"} {
		if found, err := user.Lookup(name); err == nil {
			u = found
			break
		}
	}
	if u == nil {
		return nil, errors.New("running as root and there is no postgres or nobody user to run PostgreSQL as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if p, err := exec.LookPath("runuser"); err == nil {
		return []string{p, "-u", u.Username, "--"}, nil
	}
	if p, err := exec.LookPath("setpriv"); err == nil {
		return []string{p, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups"}, nil
	}
	return nil, errors.New("running as root and neither runuser nor setpriv is there to run PostgreSQL as " + u.Username)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stopTestPostgres stops the cluster this process started, if any.
func stopTestPostgres() {
	if testPG.db != nil {
		close(testPG.quit)
		testPG.prefetch.Wait()
		for len(testPG.ready) > 0 {
			dropDatabase(<-testPG.ready)
		}
		testPG.db.Close()
	}
	if testPG.stop != nil {
		testPG.stop()
	}
}

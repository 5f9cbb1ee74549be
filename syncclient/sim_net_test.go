package syncclient_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// The simulation's network: every device has its own http.RoundTripper that hands
// the request to the server's handler in this goroutine (httptest.NewRecorder), so
// no socket and no scheduler takes part and every fault is a draw from the seed's
// generator.

// Fault rates of one request while faults are on.
const (
	pDropRequest  = 0.05 // lost on the way: the server never sees it
	pDropResponse = 0.05 // the server committed, the answer is lost
	pDuplicate    = 0.04 // delivered twice (repeatable requests only); the device sees the second answer
	pCrash        = 0.02 // the server answered, the device's process died before it could use the answer
	pKeep         = 0.30 // a repeatable request is kept for a late, stale replay
	keptMax       = 24
)

var (
	errNoLine  = errors.New("sim: no line (partitioned)")
	errDropped = errors.New("sim: connection dropped")
	errDead    = errors.New("sim: the process died")
)

// simCall is one request as it went on the wire, kept so it can be delivered again.
type simCall struct {
	dev    *simDev
	method string
	uri    string
	header http.Header
	body   []byte
}

// repeatable reports whether the client itself treats the call as safe to send
// again; only those are duplicated or replayed late (registration, allowance grants
// and case resolutions are never repeated by the client, and a network does not
// invent requests).
func repeatable(method, path string) bool {
	if method == http.MethodGet {
		return true
	}
	switch path {
	case "/v1/sync/push", "/v1/sync/pull", "/v1/codes/upload", "/v1/codes/check", "/v1/codes/redeem":
		return true
	}
	return false
}

// crashable are the answers whose loss, followed by a dead process, matters: a push
// committed but not acknowledged locally, a pulled page not applied, a code claimed
// online but not redeemed locally.
func crashable(path string) bool {
	return path == "/v1/sync/push" || path == "/v1/sync/pull" || path == "/v1/codes/redeem"
}

type simNet struct{ d *simDev }

func (n simNet) RoundTrip(req *http.Request) (*http.Response, error) {
	d, s := n.d, n.d.s
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	path := req.URL.Path
	c := &simCall{dev: d, method: req.Method, uri: req.URL.RequestURI(), header: req.Header.Clone(), body: body}
	short := shortPath(path)
	switch {
	case d.dead:
		return nil, errDead
	case d.partitioned():
		s.net("%s %s: no line", d.name, short)
		return nil, errNoLine
	}
	safe := repeatable(req.Method, path)
	if s.faults {
		if safe && s.rng.Float64() < pKeep {
			s.keep(c)
		}
		x := s.rng.Float64()
		switch {
		case x < pDropRequest:
			s.net("%s %s: request lost", d.name, short)
			return nil, errDropped
		case x < pDropRequest+pDropResponse:
			rec := s.serve(c)
			s.net("%s %s: answer %d lost", d.name, short, rec.Code)
			return nil, errDropped
		case x < pDropRequest+pDropResponse+pDuplicate && safe:
			first := s.serve(c)
			s.net("%s %s: delivered twice (first answer %d)", d.name, short, first.Code)
		case x < pDropRequest+pDropResponse+pDuplicate+pCrash && crashable(path):
			rec := s.serve(c)
			d.dead = true // the rest of this call chain fails; the simulation reopens the device
			s.net("%s %s: answered %d, then the device crashed", d.name, short, rec.Code)
			return nil, errDead
		}
	}
	rec := s.serve(c)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// serve hands one request to the server's handler.
func (s *sim) serve(c *simCall) *httptest.ResponseRecorder {
	r := httptest.NewRequest(c.method, c.uri, bytes.NewReader(c.body))
	r.Header = c.header.Clone()
	r.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, r)
	s.requests++
	if rec.Code >= 500 {
		s.violate("server answered %d to %s %s from %s: %s", rec.Code, c.method, c.uri, c.dev.name, strings.TrimSpace(rec.Body.String()))
	}
	return rec
}

// keep stores a request for a stale replay later.
func (s *sim) keep(c *simCall) {
	if len(s.kept) >= keptMax {
		i := s.rng.IntN(len(s.kept))
		s.kept[i] = c
		return
	}
	s.kept = append(s.kept, c)
}

// replayStale delivers one kept request again, long after it was sent: a request
// that a slow network overtook with later ones. Nobody waits for its answer.
func (s *sim) replayStale() {
	if len(s.kept) == 0 {
		return
	}
	c := s.kept[s.rng.IntN(len(s.kept))]
	rec := s.serve(c)
	path, _, _ := strings.Cut(c.uri, "?")
	s.net("stale %s %s of %s replayed: %d", c.method, shortPath(path), c.dev.name, rec.Code)
}

// shortPath names a route for the trace without the ids in it, so that a seed's
// trace reads the same on every run.
func shortPath(path string) string {
	p := strings.TrimPrefix(path, "/v1/")
	if strings.HasPrefix(p, "cases/") && strings.HasSuffix(p, "/resolve") {
		return "cases/…/resolve"
	}
	return p
}

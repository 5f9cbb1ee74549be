package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// loadSpec loads and validates server/openapi.yaml as the server embeds it.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3.0 document: %v", err)
	}
	return doc
}

// TestOpenAPIMatchesWireTypes checks every schema against the Go type it describes:
// the same JSON names, and required exactly when the field is always sent (no
// omitempty). A field added to core/wire without the spec fails here.
func TestOpenAPIMatchesWireTypes(t *testing.T) {
	doc := loadSpec(t)
	types := map[string]any{
		"Error": wire.Error{}, "Health": wire.Health{}, "RegisterRequest": wire.RegisterRequest{},
		"RegisterResponse": wire.RegisterResponse{}, "Mutation": wire.Mutation{}, "PushRequest": wire.PushRequest{},
		"Result": wire.Result{}, "PushResponse": wire.PushResponse{}, "Cursor": wire.Cursor{}, "PullRequest": wire.PullRequest{},
		"Change": wire.Change{}, "Page": wire.Page{}, "PullResponse": wire.PullResponse{}, "Code": wire.Code{},
		"CodesUpload": wire.CodesUpload{}, "CodesUploaded": wire.CodesUploaded{}, "RedeemRequest": wire.RedeemRequest{},
		"RedeemResponse": wire.RedeemResponse{}, "AllowanceRequest": wire.AllowanceRequest{}, "Allowance": wire.Allowance{},
		"Allowances": wire.Allowances{}, "Case": wire.Case{}, "Cases": wire.Cases{}, "ResolveRequest": wire.ResolveRequest{},
	}
	for name, v := range types {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Errorf("schema %s is missing", name)
			continue
		}
		sch := ref.Value
		if sch.AdditionalProperties.Has == nil || *sch.AdditionalProperties.Has {
			t.Errorf("%s: additionalProperties must be false, so the tests catch fields the spec does not name", name)
		}
		var fields, required []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			tag := rt.Field(i).Tag.Get("json")
			jname, opts, _ := strings.Cut(tag, ",")
			if jname == "-" || jname == "" {
				continue
			}
			fields = append(fields, jname)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, jname)
			}
		}
		var props []string
		for p := range sch.Properties {
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(props)
		sort.Strings(required)
		req := append([]string(nil), sch.Required...)
		sort.Strings(req)
		if fmt.Sprint(fields) != fmt.Sprint(props) {
			t.Errorf("%s: wire fields %v, spec properties %v", name, fields, props)
		}
		if fmt.Sprint(required) != fmt.Sprint(req) {
			t.Errorf("%s: always-sent fields %v, spec required %v", name, required, req)
		}
	}
	// The enums list the wire constants.
	enum := func(schema, prop string) []string {
		s := doc.Components.Schemas[schema].Value
		if prop != "" {
			s = s.Properties[prop].Value
		}
		var out []string
		for _, e := range s.Enum {
			out = append(out, e.(string))
		}
		sort.Strings(out)
		return out
	}
	for _, c := range []struct {
		schema, prop string
		want         []string
	}{
		{"Error", "code", []string{wire.ErrBadRequest, wire.ErrUnauthorized, wire.ErrForbidden, wire.ErrNotFound, wire.ErrConflict,
			wire.ErrMIDGap, wire.ErrEpoch, wire.ErrTooLarge, wire.ErrRateLimited, wire.ErrInternal}},
		{"ResultStatus", "", []string{wire.Applied, wire.Rejected, wire.Flagged}},
		{"Stream", "", []string{wire.StreamLog, wire.StreamCodes}},
		{"AccountKind", "", []string{wire.AccountWallet, wire.AccountGiftCard, wire.AccountPoints}},
		{"CaseAction", "", []string{wire.ActionAccept, wire.ActionReverse, wire.ActionFreeze, wire.ActionCharge, wire.ActionWriteOff}},
		{"Case", "kind", []string{wire.CaseDoubleRedemption, wire.CaseOverdraft, wire.CaseCampaignEdit, wire.CaseLateOffline, wire.CaseClockSkew}},
	} {
		want := append([]string(nil), c.want...)
		sort.Strings(want)
		if got := enum(c.schema, c.prop); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s.%s enum %v, want %v", c.schema, c.prop, got, want)
		}
	}
	if doc.Components.Schemas["Mutation"].Value.Properties["name"].Value.Pattern == "" {
		t.Error("Mutation.name has no pattern")
	}
	// The size limits in the description are the wire limits.
	if got := *doc.Components.Schemas["PushRequest"].Value.Properties["mutations"].Value.MaxItems; got != wire.MaxPushMutations {
		t.Errorf("PushRequest.mutations maxItems %d, want %d", got, wire.MaxPushMutations)
	}
	if got := *doc.Components.Schemas["CodesUpload"].Value.Properties["codes"].Value.MaxItems; got != wire.MaxCodesUpload {
		t.Errorf("CodesUpload.codes maxItems %d, want %d", got, wire.MaxCodesUpload)
	}
	if got := *doc.Components.Schemas["PullRequest"].Value.Properties["limit"].Value.Max; got != wire.MaxPullLimit {
		t.Errorf("PullRequest.limit maximum %v, want %d", got, wire.MaxPullLimit)
	}
}

// conformance sends real requests and checks each answer (status, headers, body)
// against the spec; any mismatch fails the test.
type conformance struct {
	t      *testing.T
	base   string
	router routers.Router
	seen   map[string]bool // "METHOD /path/{template} STATUS"
}

func newConformance(t *testing.T, doc *openapi3.T, base string) *conformance {
	t.Helper()
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &conformance{t: t, base: base, router: router, seen: map[string]bool{}}
}

// do sends the request and validates it (when checkRequest: a deliberately bad
// request is not expected to conform) and always its answer, which must have the
// wanted status. It returns the body.
func (c *conformance) do(method, path, token string, body any, want int, checkRequest bool) []byte {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, c.base+path, rd)
		if err != nil {
			c.t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req
	}
	vreq := newReq()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		c.t.Fatalf("%s %s is not in the spec: %v", method, path, err)
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if checkRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			c.t.Fatalf("%s %s: the request does not match the spec: %v", method, path, err)
		}
	}
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, out)
	}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(out)), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		c.t.Fatalf("%s %s → %d does not match the spec: %v\nbody: %s", method, path, resp.StatusCode, err, out)
	}
	c.seen[fmt.Sprintf("%s %s %d", method, route.Path, resp.StatusCode)] = true
	return out
}

func (c *conformance) json(b []byte, v any) {
	c.t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("%v: %s", err, b)
	}
}

// mutation builds one outbox row as a device sends it.
func mutation(mid int64, name string, args any, wall time.Time) wire.Mutation {
	b, err := json.Marshal(args)
	if err != nil {
		panic(err)
	}
	return wire.Mutation{MID: mid, UUID: uuid.NewString(), Name: name, Args: b, HLC: wall.UnixMilli() << 16, WallMS: wall.UnixMilli()}
}

// TestOpenAPIConformance drives a whole day between two tills and the server and
// checks every answer against server/openapi.yaml.
func TestOpenAPIConformance(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store) {
		doc := loadSpec(t)
		ts := apiServer(t, s, Options{MaxBody: 256 << 10, RateLimit: -1})
		c := newConformance(t, doc, ts.URL)
		now := time.Now()
		ms := now.UnixMilli()

		c.do("GET", "/v1/health", "", nil, 200, true)
		c.do("GET", "/v1/openapi.yaml", "", nil, 200, true)

		// Till A founds the merchant, till B joins it.
		merchant := "m-" + uuid.NewString()
		founding, err := s.CreateToken("", "first till", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		devA, devB := "d-"+uuid.NewString(), "d-"+uuid.NewString()
		var regA, regB wire.RegisterResponse
		c.json(c.do("POST", "/v1/devices", "", wire.RegisterRequest{Token: founding, DeviceID: devA, DeviceName: "前台 1",
			MerchantID: merchant, MerchantName: "测试商户", StoreID: "s-1"}, 201, true), &regA)
		joining, err := s.CreateToken(merchant, "second till", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		c.json(c.do("POST", "/v1/devices", "", wire.RegisterRequest{Token: joining, DeviceID: devB, DeviceName: "前台 2"}, 201, true), &regB)
		if regA.MerchantID != merchant || regB.MerchantID != merchant || regA.DeviceToken == regB.DeviceToken {
			t.Fatalf("registration: %+v %+v", regA, regB)
		}
		c.do("POST", "/v1/devices", "", wire.RegisterRequest{Token: "km_no-such-token", DeviceID: "d-x", DeviceName: "x"}, 401, true)
		a, b := regA.DeviceToken, regB.DeviceToken

		// A designs a campaign and generates codes: rows first, then the mutations.
		camp := core.Campaign{ID: "c-" + uuid.NewString(), MerchantID: merchant, Name: "满100减20", Kind: core.KindAmountOff,
			Status: core.StatusActive, Currency: "CNY", AmountOff: 2000, MinSpend: 10000,
			Rules: core.Rules{UsesPerCode: 1}, Created: ms, Updated: ms}
		batch := "b-" + uuid.NewString()
		codes := []wire.Code{}
		for _, code := range []string{"KMTEST0001", "KMTEST0002", "KMTEST0003"} {
			codes = append(codes, wire.Code{Code: code, CampaignID: camp.ID, BatchID: batch, MaxUses: 1, Status: "active", CreatedMS: ms})
		}
		var up wire.CodesUploaded
		c.json(c.do("POST", "/v1/codes/upload", a, wire.CodesUpload{BatchID: batch, Codes: codes}, 200, true), &up)
		if up.Inserted != 3 {
			t.Fatalf("inserted %d, want 3", up.Inserted)
		}
		c.json(c.do("POST", "/v1/codes/upload", a, wire.CodesUpload{BatchID: batch, Codes: codes}, 200, true), &up)
		if up.Inserted != 0 {
			t.Fatalf("a repeated upload inserted %d", up.Inserted)
		}

		redemption := func(id, code, device string, at time.Time) map[string]any {
			return map[string]any{"redemption": core.Redemption{ID: id, Code: code, CampaignID: camp.ID, StoreID: "s-1", DeviceID: device,
				OperatorID: "o-1", OrderRef: "POS-" + id, OrderAmount: 12000, Discount: 2000, Status: core.RedemptionDone,
				Created: at.UnixMilli(), IdemKey: "k-" + id}, "member_ix": 0}
		}
		topup := core.WalletEntry{ID: "w-" + uuid.NewString(), MemberID: "mem-1", Kind: "topup", Amount: 50000, StoreID: "s-1",
			OperatorID: "o-1", DeviceID: devA, Created: ms}
		var pushA wire.PushResponse
		c.json(c.do("POST", "/v1/sync/push", a, wire.PushRequest{Epoch: regA.Epoch, ClientMS: ms, Mutations: []wire.Mutation{
			mutation(1, "campaign.create@1", camp, now),
			mutation(2, "codes.generate@1", map[string]any{"batch": map[string]any{"id": batch}, "campaign_id": camp.ID, "count": 3}, now),
			mutation(3, "code.redeem@1", redemption("r-a", "KMTEST0001", devA, now), now),
			mutation(4, "wallet.topup@1", topup, now),
		}}, 200, true), &pushA)
		if pushA.LastMID != 4 || len(pushA.Results) != 4 {
			t.Fatalf("push A: %+v", pushA)
		}
		for _, r := range pushA.Results {
			if r.Status != wire.Applied {
				t.Fatalf("push A: mutation %d %s (%s %s)", r.MID, r.Status, r.Reason, r.Message)
			}
		}
		// B redeemed the same single-use code offline: it is flagged and a case opens.
		var pushB wire.PushResponse
		c.json(c.do("POST", "/v1/sync/push", b, wire.PushRequest{Epoch: regB.Epoch, ClientMS: ms, Mutations: []wire.Mutation{
			mutation(1, "code.redeem@1", redemption("r-b", "KMTEST0001", devB, now.Add(time.Second)), now.Add(time.Second)),
		}}, 200, true), &pushB)
		if len(pushB.Results) != 1 || pushB.Results[0].Status != wire.Flagged || pushB.Results[0].Reason != "already_redeemed" || pushB.Results[0].CaseID == "" {
			t.Fatalf("the double redemption: %+v", pushB.Results)
		}
		// A repeated mid returns the stored result; a gap is refused with the mid expected.
		var again wire.PushResponse
		c.json(c.do("POST", "/v1/sync/push", b, wire.PushRequest{Epoch: regB.Epoch, ClientMS: ms, Mutations: []wire.Mutation{
			mutation(1, "code.redeem@1", redemption("r-b", "KMTEST0001", devB, now.Add(time.Second)), now.Add(time.Second)),
		}}, 200, true), &again)
		if len(again.Results) != 1 || again.Results[0] != pushB.Results[0] {
			t.Fatalf("a repeated mid: %+v, first %+v", again.Results, pushB.Results)
		}
		var gap wire.Error
		c.json(c.do("POST", "/v1/sync/push", a, wire.PushRequest{Epoch: regA.Epoch, ClientMS: ms, Mutations: []wire.Mutation{
			mutation(9, "member.add@1", map[string]any{"id": "mem-9"}, now),
		}}, 409, true), &gap)
		if gap.Code != wire.ErrMIDGap || gap.ExpectedMID != 5 {
			t.Fatalf("gap: %+v", gap)
		}
		var stale wire.Error
		c.json(c.do("POST", "/v1/sync/push", a, wire.PushRequest{Epoch: regA.Epoch + 7, ClientMS: ms, Mutations: []wire.Mutation{
			mutation(5, "member.add@1", map[string]any{"id": "mem-5"}, now),
		}}, 409, true), &stale)
		if stale.Code != wire.ErrEpoch {
			t.Fatalf("stale epoch: %+v", stale)
		}

		// A pulls both streams: B's flagged redemption, the server's entries and the codes.
		var pull wire.PullResponse
		c.json(c.do("POST", "/v1/sync/pull", a, wire.PullRequest{Epoch: regA.Epoch, Cursors: []wire.Cursor{{Stream: wire.StreamLog}, {Stream: wire.StreamCodes}}}, 200, true), &pull)
		if len(pull.Pages) != 2 {
			t.Fatalf("pages: %+v", pull.Pages)
		}
		names := map[string]string{}
		for _, ch := range pull.Pages[0].Changes {
			if ch.DeviceID == devA {
				t.Errorf("A's own mutation came back: %+v", ch)
			}
			names[ch.Mutation.Name] = ch.Status
		}
		if names["code.redeem@1"] != wire.Flagged || names["case.open@1"] == "" || names["redemption.reverse@1"] == "" {
			t.Errorf("A's log page: %v", names)
		}
		if len(pull.Pages[1].Changes) != 3 || pull.Pages[1].Stream != wire.StreamCodes {
			t.Errorf("codes page: %+v", pull.Pages[1])
		}
		// B pages through the log one change at a time.
		var first wire.PullResponse
		c.json(c.do("POST", "/v1/sync/pull", b, wire.PullRequest{Epoch: regB.Epoch, Cursors: []wire.Cursor{{Stream: wire.StreamLog}}, Limit: 1}, 200, true), &first)
		if len(first.Pages) != 1 || len(first.Pages[0].Changes) != 1 || !first.Pages[0].More || first.Pages[0].Next == 0 {
			t.Fatalf("first page: %+v", first.Pages)
		}
		var second wire.PullResponse
		c.json(c.do("POST", "/v1/sync/pull", b, wire.PullRequest{Epoch: regB.Epoch, Cursors: []wire.Cursor{{Stream: wire.StreamLog, Seq: first.Pages[0].Next}}, Limit: 1}, 200, true), &second)
		if len(second.Pages[0].Changes) != 1 || second.Pages[0].Changes[0].Seq <= first.Pages[0].Next {
			t.Fatalf("second page: %+v", second.Pages)
		}
		// A different epoch (a restore) tells the device to start over.
		var reset wire.PullResponse
		c.json(c.do("POST", "/v1/sync/pull", b, wire.PullRequest{Epoch: regB.Epoch + 7, Cursors: []wire.Cursor{{Stream: wire.StreamLog, Seq: 3}}}, 200, true), &reset)
		if !reset.Reset || reset.Epoch != regB.Epoch {
			t.Fatalf("reset: %+v", reset)
		}

		// Online: check, claim, the same claim again, a used code, an unknown code.
		req := wire.RedeemRequest{Code: "KMTEST0002", IdemKey: "idem-" + uuid.NewString(), StoreID: "s-1", OperatorID: "o-1", OrderAmount: 15000}
		var v wire.RedeemResponse
		c.json(c.do("POST", "/v1/codes/check", b, req, 200, true), &v)
		if !v.OK || v.Reason != "ok" {
			t.Fatalf("check: %+v", v)
		}
		c.json(c.do("POST", "/v1/codes/redeem", b, req, 200, true), &v)
		if !v.OK || v.Uses != 1 || v.ClaimID == "" {
			t.Fatalf("redeem: %+v", v)
		}
		var v2 wire.RedeemResponse
		c.json(c.do("POST", "/v1/codes/redeem", b, req, 200, true), &v2)
		if v2 != v {
			t.Fatalf("the same key again: %+v, first %+v", v2, v)
		}
		other := req
		other.IdemKey = "idem-" + uuid.NewString()
		c.json(c.do("POST", "/v1/codes/redeem", a, other, 200, true), &v)
		if v.OK || v.Reason != "already_redeemed" {
			t.Fatalf("redeem of a used code: %+v", v)
		}
		other.Code = "NOSUCHCODE"
		c.json(c.do("POST", "/v1/codes/check", a, other, 200, true), &v)
		if v.OK || v.Reason != "not_found" {
			t.Fatalf("check of an unknown code: %+v", v)
		}

		// Allowances: B reserves part of the member's wallet for offline payments.
		var al wire.Allowance
		c.json(c.do("POST", "/v1/allowances", b, wire.AllowanceRequest{Kind: wire.AccountWallet, AccountID: "mem-1", Amount: 20000}, 200, true), &al)
		if al.Granted != 20000 || al.ExpiresMS <= ms {
			t.Fatalf("allowance: %+v", al)
		}
		var als wire.Allowances
		c.json(c.do("GET", "/v1/allowances", b, nil, 200, true), &als)
		if len(als.Allowances) != 1 || als.Allowances[0].Granted != 20000 {
			t.Fatalf("allowances: %+v", als)
		}
		c.json(c.do("GET", "/v1/allowances", a, nil, 200, true), &als)
		if len(als.Allowances) != 0 {
			t.Fatalf("A sees B's allowances: %+v", als)
		}

		// Cases: the double redemption, resolved once.
		var open wire.Cases
		c.json(c.do("GET", "/v1/cases?status=open", a, nil, 200, true), &open)
		if len(open.Cases) != 1 || open.Cases[0].Kind != wire.CaseDoubleRedemption || open.Cases[0].ID != pushB.Results[0].CaseID {
			t.Fatalf("open cases: %+v", open)
		}
		id := open.Cases[0].ID
		var done wire.Case
		c.json(c.do("POST", "/v1/cases/"+id+"/resolve", a, wire.ResolveRequest{Action: wire.ActionAccept, OperatorID: "o-1", Note: "顾客已补差价"}, 200, true), &done)
		if done.Status != "resolved" || done.Action != wire.ActionAccept || done.ResolvedMS == 0 {
			t.Fatalf("resolved: %+v", done)
		}
		c.do("POST", "/v1/cases/"+id+"/resolve", a, wire.ResolveRequest{Action: wire.ActionAccept, OperatorID: "o-1"}, 409, true)
		c.do("POST", "/v1/cases/no-such-case/resolve", a, wire.ResolveRequest{Action: wire.ActionAccept, OperatorID: "o-1"}, 404, true)
		var all wire.Cases
		c.json(c.do("GET", "/v1/cases?status=resolved", b, nil, 200, true), &all)
		if len(all.Cases) != 1 || all.Cases[0].ID != id {
			t.Fatalf("resolved cases: %+v", all)
		}
		c.do("GET", "/v1/cases", b, nil, 200, true)
		c.do("GET", "/v1/cases?status=all", b, nil, 200, true)

		// Refusals, each in the documented shape.
		c.do("GET", "/v1/cases?status=closed", a, nil, 400, false)
		c.do("POST", "/v1/sync/pull", a, `{"epoch":0,"cursors":[],"colour":"red"}`, 400, false)
		c.do("POST", "/v1/codes/check", a, `{"code":`, 400, false)
		c.do("POST", "/v1/sync/push", "", wire.PushRequest{Epoch: 1, Mutations: []wire.Mutation{}}, 401, true)
		c.do("GET", "/v1/allowances", "km_wrong", nil, 401, true)
		c.do("POST", "/v1/codes/upload", a, wire.CodesUpload{BatchID: strings.Repeat("x", 300<<10), Codes: []wire.Code{}}, 413, true)

		// A rate-limited answer and an internal failure, from servers set up for them.
		limited := newConformance(t, loadSpec(t), apiServer(t, s, Options{RateLimit: 0.001, Burst: 1}).URL)
		limited.do("GET", "/v1/cases", a, nil, 200, true)
		limited.do("GET", "/v1/cases", a, nil, 429, true)
		broken := newConformance(t, loadSpec(t), apiServer(t, failingStore{s}, Options{}).URL)
		broken.do("GET", "/v1/cases", a, nil, 500, true)

		// Every operation of the spec was exercised with its success status.
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				ok := false
				for status := range op.Responses.Map() {
					if strings.HasPrefix(status, "2") && c.seen[method+" "+path+" "+status] {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s %s was never answered with success in this test", method, path)
				}
			}
		}
	})
}

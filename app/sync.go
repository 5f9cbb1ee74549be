package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
	"github.com/kameng/kameng/syncclient"
)

// Sync with the hosted server: registering this device, sync rounds, the
// exceptions inbox, offline allowances, and the online-first paths of redeem and
// wallet payments. A device that is not registered behaves as it always did.

// onlineTimeout is how long the till waits for the server's verdict on a code
// before it falls back to the campaign's offline rules.
var onlineTimeout = 2 * time.Second

// downFor is how long a failed reachability probe is trusted: while the line is
// down, every payment need not wait for its own timeout.
var downFor = 15 * time.Second

// ErrUnreachable is the code of an error that means the server did not answer.
const ErrUnreachable = "unreachable"

// syncState is the sync machinery of one open database, shared by every App on it
// so that rounds never overlap (a manual sync waits for the loop's round).
type syncState struct {
	mu       sync.Mutex
	server   string
	syncer   *syncclient.Syncer
	loop     *syncclient.Loop
	cancel   context.CancelFunc
	loopDone chan struct{} // closed when the loop's Run returns
	progress func(stage string, done, total int64)
	downAt   time.Time
}

var syncStates sync.Map // *store.DB → *syncState

func (a *App) syncSt() *syncState {
	v, _ := syncStates.LoadOrStore(a.DB, &syncState{})
	return v.(*syncState)
}

// forgetSync drops the cached client (after registering anew).
func (a *App) forgetSync() {
	if v, ok := syncStates.Load(a.DB); ok {
		s := v.(*syncState)
		s.mu.Lock()
		s.syncer, s.server = nil, ""
		s.mu.Unlock()
	}
}

// syncer returns this database's Syncer, or ErrNotRegistered.
func (a *App) syncer() (*syncclient.Syncer, error) {
	server, err := a.DB.SyncServer()
	if err != nil {
		return nil, err
	}
	if server == "" {
		return nil, syncclient.ErrNotRegistered
	}
	s := a.syncSt()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncer != nil && s.server == server {
		return s.syncer, nil
	}
	tok, err := a.DB.DeviceToken()
	if err != nil {
		return nil, err
	}
	s.server = server
	s.syncer = &syncclient.Syncer{DB: a.DB, Client: newClient(server, tok), Now: a.Now,
		Progress: func(stage string, done, total int64) {
			s.mu.Lock()
			p := s.progress
			s.mu.Unlock()
			if p != nil {
				p(stage, done, total)
			}
		}}
	return s.syncer, nil
}

// clientOptions tune the sync client (tests shorten the retry waits).
var clientOptions = syncclient.Options{}

func newClient(server, token string) *syncclient.Client {
	o := clientOptions
	o.UserAgent = "kameng/" + storeVersion()
	return syncclient.New(server, token, o)
}

func storeVersion() string { return "schema-" + strconv.Itoa(storeSchema()) }

// registered reports whether this device syncs with a server.
func (a *App) registered() bool {
	server, err := a.DB.SyncServer()
	return err == nil && server != ""
}

// kickSync asks a running loop for a round after a local write.
func (a *App) kickSync() {
	if v, ok := syncStates.Load(a.DB); ok {
		s := v.(*syncState)
		s.mu.Lock()
		l := s.loop
		s.mu.Unlock()
		if l != nil {
			l.Kick()
		}
	}
}

// syncErr says a sync failure in the app's terms: the server's refusals as
// core errors with their codes, no answer as "unreachable".
func syncErr(server string, err error) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return errCancelled
	}
	if ae := syncclient.AsAPIError(err); ae != nil && !syncclient.Unreachable(err) {
		code := core.ErrConflict
		switch ae.Body.Code {
		case wire.ErrUnauthorized:
			code = core.ErrAuth
		case wire.ErrForbidden:
			code = core.ErrForbidden
		case wire.ErrNotFound:
			code = core.ErrNotFound
		case wire.ErrBadRequest, wire.ErrTooLarge:
			code = core.ErrInvalid
		}
		return &core.Error{Code: code, Field: "server", Message: "the sync server refused: " + ae.Body.Message,
			Params: map[string]string{"why": "server_refused", "server_code": ae.Body.Code, "server_message": ae.Body.Message, "server": server}}
	}
	return &core.Error{Code: ErrUnreachable, Field: "server", Message: "the sync server " + server + " did not answer: " + err.Error(),
		Params: map[string]string{"why": "unreachable", "server": server}}
}

// checkServerURL accepts http(s)://host[:port][/path].
func checkServerURL(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", core.Invalid("server", "https://sync.example.com or http://127.0.0.1:8080", s, "not a server address")
	}
	return s, nil
}

// Registration is the outcome of registering a device.
type Registration struct {
	Server     string             `json:"server"`
	MerchantID string             `json:"merchant_id"`
	DeviceID   string             `json:"device_id"`
	Epoch      int64              `json:"epoch"`
	LastMID    int64              `json:"last_mid"` // own mutations the server already had
	Joined     bool               `json:"joined"`   // an empty database joined the merchant
	Store      string             `json:"store,omitempty"`
	Report     *syncclient.Report `json:"report,omitempty"` // the first pull of a joining device
}

// RegisterDevice registers this (initialised) device with a sync server using an
// enrolment token: it founds the server's copy of the merchant or joins it, and
// keeps the device token (sealed) for later rounds. storeName, when set, names the
// store the server should file this device under.
func (a *App) RegisterDevice(server, token, storeName string) (*Registration, error) {
	if err := a.require(ActSyncSetup); err != nil {
		return nil, err
	}
	server, err := checkServerURL(server)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(token) == "" {
		return nil, core.Invalid("token", "the enrolment token from the server (km_…)", "", "no enrolment token given")
	}
	m, err := a.DB.Merchant()
	if err != nil {
		return nil, err
	}
	dev, err := a.DB.ThisDevice()
	if err != nil {
		return nil, err
	}
	storeID := dev.StoreID
	if storeName != "" {
		s, err := a.DB.FindStore(storeName)
		if err != nil {
			return nil, err
		}
		storeID = s.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := newClient(server, "").Register(ctx, wire.RegisterRequest{Token: strings.TrimSpace(token), DeviceID: dev.ID,
		DeviceName: dev.Name, MerchantID: m.ID, MerchantName: m.Name, StoreID: storeID})
	if err != nil {
		return nil, syncErr(server, err)
	}
	if resp.MerchantID != m.ID {
		return nil, core.Errorf(core.ErrConflict, "the server filed this device under merchant %s, not %s", resp.MerchantID, m.ID)
	}
	if err := a.DB.SetRegistration(server, resp.DeviceToken, resp.MerchantID, resp.Epoch, resp.LastMID); err != nil {
		return nil, err
	}
	a.forgetSync()
	return &Registration{Server: server, MerchantID: resp.MerchantID, DeviceID: dev.ID, Epoch: resp.Epoch, LastMID: resp.LastMID}, nil
}

// JoinOptions is what a new, empty device needs to join a merchant.
type JoinOptions struct {
	Server, Token string
	Store         string // the store this device works in (default: the merchant's first)
	Device        string // this device's name
	Passphrase    string // empty: a key file beside the database, as kameng init does
	Progress      func(stage string, done, total int64)
}

// Join makes an empty data directory a device of an existing merchant: it sets up
// the data key the way Init does, registers with the server, pulls everything
// (page by page; an interrupted first pull resumes when Join is run again, and
// then needs no token) and creates this device in its store.
func Join(ctx context.Context, dir string, o JoinOptions, clock core.Clock) (*App, *Registration, error) {
	if Exists(dir) {
		return resumeJoin(ctx, dir, o)
	}
	server, err := checkServerURL(o.Server)
	if err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(o.Token) == "" {
		return nil, nil, core.Invalid("token", "the enrolment token from the server (km_…)", "", "no enrolment token given")
	}
	if o.Device == "" {
		o.Device, _ = os.Hostname()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, &core.Error{Code: core.ErrInvalid, Field: "data", Message: err.Error()}
	}
	in := store.JoinInput{Device: o.Device, Store: o.Store}
	if in.KDF, in.Salt, in.KEK, err = newKeyEncryptionKey(dir, o.Passphrase); err != nil {
		return nil, nil, err
	}
	db, err := store.Open(DBPath(dir))
	if err != nil {
		return nil, nil, err
	}
	if clock != nil {
		db.Clock = clock
	}
	undo := func() {
		db.Close()
		for _, p := range []string{DBPath(dir), DBPath(dir) + "-wal", DBPath(dir) + "-shm", KeyPath(dir)} {
			os.Remove(p)
		}
	}
	if err := db.Join(in); err != nil {
		undo()
		return nil, nil, err
	}
	st, err := db.SyncState()
	if err != nil {
		undo()
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	resp, err := newClient(server, "").Register(rctx, wire.RegisterRequest{Token: strings.TrimSpace(o.Token), DeviceID: st.DeviceID, DeviceName: o.Device})
	cancel()
	if err != nil {
		// Nothing of the merchant came yet: leave the directory as it was.
		undo()
		return nil, nil, syncErr(server, err)
	}
	if err := db.SetRegistration(server, resp.DeviceToken, resp.MerchantID, resp.Epoch, resp.LastMID); err != nil {
		undo()
		return nil, nil, err
	}
	return joined(ctx, dir, db, o)
}

// joined pulls the merchant into a registered database and finishes the join.
func joined(ctx context.Context, dir string, db *store.DB, o JoinOptions) (*App, *Registration, error) {
	a := &App{DataDir: dir, DB: db, Clock: db.Clock}
	reg, err := a.finishJoin(ctx, o)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return a, reg, nil
}

// resumeJoin carries on a join whose first pull was interrupted.
func resumeJoin(ctx context.Context, dir string, o JoinOptions) (*App, *Registration, error) {
	db, err := OpenDB(dir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := db.ThisDevice(); err == nil {
		db.Close()
		return nil, nil, &core.Error{Code: core.ErrConflict, Field: "data", Message: "a database already exists in " + dir + ": open it and run kameng device register there",
			Params: map[string]string{"value": dir}}
	}
	st, err := db.SyncState()
	if err != nil || st.Server == "" {
		db.Close()
		if err == nil {
			err = &core.Error{Code: core.ErrConflict, Field: "data", Message: "the data directory " + dir + " holds an unfinished database; move it away and register again",
				Params: map[string]string{"value": dir}}
		}
		return nil, nil, err
	}
	return joined(ctx, dir, db, o)
}

// finishJoin pulls until the device is up to date, then creates this device in
// its store and signs in as the owner.
func (a *App) finishJoin(ctx context.Context, o JoinOptions) (*Registration, error) {
	st, err := a.DB.SyncState()
	if err != nil {
		return nil, err
	}
	rep, err := a.runSync(ctx, o.Progress)
	if err != nil {
		return nil, err
	}
	dev, err := a.DB.FinishJoin()
	if err != nil {
		return nil, err
	}
	if err := a.SignIn("", ""); err != nil {
		return nil, err
	}
	// Tell the server about this device now (device.add@1); should the line drop
	// here, the next round does it.
	if more, err := a.runSync(ctx, nil); err == nil {
		rep.Pushed += more.Pushed
	}
	st2, _ := a.DB.SyncState()
	if st2 != nil {
		st = st2
	}
	return &Registration{Server: st.Server, MerchantID: st.MerchantID, DeviceID: dev.ID, Epoch: st.Epoch, LastMID: st.AckedMID,
		Joined: true, Store: a.Actor.Store.Name, Report: rep}, nil
}

// joinUnfinished reports whether db joined a merchant but has no device row yet.
func joinUnfinished(db *store.DB) bool {
	_, err := db.ThisDevice()
	return err != nil && (errors.Is(err, sql.ErrNoRows) || core.ErrorCode(err) == core.ErrNotFound)
}

// Sync runs one round now: push the outbox, pull what changed, refresh the
// offline allowances. progress hears the stages (push, upload, codes, log).
func (a *App) Sync(ctx context.Context, progress func(stage string, done, total int64)) (*syncclient.Report, error) {
	if err := a.require(ActSync); err != nil {
		return nil, err
	}
	return a.runSync(ctx, progress)
}

func (a *App) runSync(ctx context.Context, progress func(stage string, done, total int64)) (*syncclient.Report, error) {
	s, err := a.syncer()
	if err != nil {
		return nil, err
	}
	st := a.syncSt()
	st.mu.Lock()
	st.progress = progress
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.progress = nil
		st.mu.Unlock()
	}()
	rep, err := s.Once(ctx)
	if err == nil {
		st.mu.Lock()
		st.downAt = time.Time{}
		st.mu.Unlock()
	}
	return rep, syncErr(s.Client.BaseURL, err)
}

// SyncLoop returns this database's background loop, starting it on first use; it
// stops when ctx ends. onRound (optional) hears every round.
func (a *App) SyncLoop(ctx context.Context, interval time.Duration, onRound func(*syncclient.Report, error)) (*syncclient.Loop, error) {
	if err := a.require(ActSync); err != nil {
		return nil, err
	}
	s, err := a.syncer()
	if err != nil {
		return nil, err
	}
	st := a.syncSt()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.loop != nil {
		return st.loop, nil
	}
	l := syncclient.NewLoop(s)
	l.Interval, l.OnRound = interval, onRound
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	st.loop, st.cancel, st.loopDone = l, cancel, done
	go func() {
		defer close(done)
		l.Run(lctx)
		st.mu.Lock()
		if st.loop == l {
			st.loop, st.cancel, st.loopDone = nil, nil, nil
		}
		st.mu.Unlock()
	}()
	return l, nil
}

// StopSyncLoop stops the background loop, if one runs, and waits for its round to
// end (the database may be closed next).
func (a *App) StopSyncLoop() {
	v, ok := syncStates.Load(a.DB)
	if !ok {
		return // no sync machinery was ever made for this database
	}
	st := v.(*syncState)
	st.mu.Lock()
	cancel, done := st.cancel, st.loopDone
	st.loop, st.cancel, st.loopDone = nil, nil, nil
	st.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// SyncStatus is the stored sync state, with the background loop's when one runs.
func (a *App) SyncStatus() (*syncclient.Status, error) {
	if err := a.require(ActSync); err != nil {
		return nil, err
	}
	st := a.syncSt()
	st.mu.Lock()
	l := st.loop
	st.mu.Unlock()
	if l != nil {
		return l.Status()
	}
	state, err := a.DB.SyncState()
	if err != nil {
		return nil, err
	}
	return &syncclient.Status{State: state}, nil
}

// Cases lists the exception cases replicated from the server: open, resolved or all.
func (a *App) Cases(status string) ([]wire.Case, error) {
	if err := a.require(ActCasesView); err != nil {
		return nil, err
	}
	switch status {
	case "":
		status = "open"
	case "open", "resolved", "all":
	default:
		return nil, core.Invalid("status", "open|resolved|all", status, "unknown case status")
	}
	cs, err := a.DB.Cases(status)
	if cs == nil && err == nil {
		cs = []wire.Case{}
	}
	return cs, err
}

// Case shows one case.
func (a *App) Case(id string) (*wire.Case, error) {
	if err := a.require(ActCasesView); err != nil {
		return nil, err
	}
	return a.DB.Case(strings.TrimSpace(id))
}

// caseActions are what a person may decide about a case.
var caseActions = []string{wire.ActionAccept, wire.ActionReverse, wire.ActionFreeze, wire.ActionCharge, wire.ActionWriteOff}

// ResolveCase settles a case; the decision travels to the server with the next
// round and from there to every device.
func (a *App) ResolveCase(id, action, note string) (*wire.Case, error) {
	if err := a.require(ActCasesResolve); err != nil {
		return nil, err
	}
	action = strings.TrimSpace(action)
	ok := false
	for _, x := range caseActions {
		ok = ok || x == action
	}
	if !ok {
		return nil, core.Invalid("action", strings.Join(caseActions, "|"), action, "unknown action")
	}
	c, err := a.DB.ResolveCase(a.Actor, strings.TrimSpace(id), action, strings.TrimSpace(note))
	if err == nil {
		a.kickSync()
	}
	return c, err
}

// RequestAllowance asks the server to reserve part of a wallet's or gift card's
// balance for this device to spend while offline. kind is wire.AccountWallet
// (account: member id or phone) or wire.AccountGiftCard (account: the card's code).
func (a *App) RequestAllowance(kind, account, amount string) (*wire.Allowance, error) {
	if err := a.require(ActAllowance); err != nil {
		return nil, err
	}
	amt, err := positiveAmountArg("amount", amount)
	if err != nil {
		return nil, err
	}
	id, err := a.accountID(kind, account)
	if err != nil {
		return nil, err
	}
	s, err := a.syncer()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	al, err := s.Client.GrantAllowance(ctx, wire.AllowanceRequest{Kind: kind, AccountID: id, Amount: int64(amt)})
	if err != nil {
		return nil, syncErr(s.Client.BaseURL, err)
	}
	if list, err := s.Client.Allowances(ctx); err == nil {
		if err := a.DB.SetAllowances(list.Allowances); err != nil {
			return nil, err
		}
	}
	return al, nil
}

// Allowances lists what this device may spend offline, as last granted.
func (a *App) Allowances() ([]wire.Allowance, error) {
	if err := a.require(ActAllowance); err != nil {
		return nil, err
	}
	l, err := a.DB.Allowances()
	if l == nil && err == nil {
		l = []wire.Allowance{}
	}
	return l, err
}

// accountID names a ledger account the way the server does: a member's id, or a
// gift card's code as stored.
func (a *App) accountID(kind, account string) (string, error) {
	account = strings.TrimSpace(account)
	switch kind {
	case wire.AccountWallet:
		if account == "" {
			return "", core.Invalid("member", "a member's id or phone", "", "which member? give the id or phone")
		}
		m, err := a.DB.Member(account, 1)
		if err != nil {
			return "", err
		}
		return m.ID, nil
	case wire.AccountGiftCard:
		if account == "" {
			return "", core.Invalid("code", "the gift card's code", "", "no code given")
		}
		k, err := a.DB.FindCode(account, false)
		if err != nil {
			return "", err
		}
		return k.Code, nil
	}
	return "", core.Invalid("kind", "wallet|gift_card", kind, "unknown account kind")
}

// serverDown reports whether the server cannot be reached now: a quick health
// probe, whose failure is remembered for a little while.
func (a *App) serverDown() bool {
	s, err := a.syncer()
	if err != nil {
		return false
	}
	if a.recentlyDown() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), onlineTimeout)
	defer cancel()
	_, err = s.Client.Health(ctx)
	if err != nil && syncclient.Unreachable(err) {
		a.markDown()
		return true
	}
	return false
}

// markDown remembers that the server did not answer just now (by the wall clock:
// this is about the network, not the business day).
func (a *App) markDown() {
	st := a.syncSt()
	st.mu.Lock()
	st.downAt = time.Now()
	st.mu.Unlock()
}

// recentlyDown reports whether the server failed to answer within downFor.
func (a *App) recentlyDown() bool {
	st := a.syncSt()
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.downAt.IsZero() && time.Since(st.downAt) < downFor
}

// redeemOnline is Redeem on a registered device: the server decides single-use
// codes centrally while it answers. It returns nil, nil when the device is not
// registered (the local redemption goes ahead as it always did).
func (a *App) redeemOnline(raw string, ord core.Order, idemKey string) (*store.RedeemResult, error) {
	if !a.registered() {
		return nil, nil
	}
	k, err := a.DB.FindCode(raw, false)
	if err != nil {
		return nil, nil // unknown here: the local path gives its verdict (and counts the failure)
	}
	if idemKey != "" {
		if _, err := a.DB.RedemptionByKey(idemKey); err == nil {
			// A repeat: the store answers with the first result (or refuses a key
			// reused for another code), and the server is not asked again.
			return a.DB.Redeem(a.Actor, raw, ord, idemKey)
		}
	}
	// The local rules first (store, hours, minimum spend…): a claim on the server for
	// a sale the till then refuses would burn the code.
	v, err := a.DB.Check(a.Actor, raw, ord)
	if err != nil {
		return nil, err
	}
	if !v.OK {
		return &store.RedeemResult{Verdict: v}, nil
	}
	if idemKey == "" {
		idemKey = core.NewID()
	}
	if a.recentlyDown() {
		return a.redeemOffline(v, raw, ord, idemKey)
	}
	s, err := a.syncer()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), onlineTimeout)
	defer cancel()
	ans, err := s.Client.Redeem(ctx, wire.RedeemRequest{Code: k.Code, IdemKey: idemKey, StoreID: a.Actor.Store.ID,
		OperatorID: a.Actor.Operator.ID, OrderAmount: int64(ord.Amount), Amount: int64(v.Value)})
	switch {
	case err == nil && !ans.OK && ans.Reason == core.ReasonNotFound:
		// The code was made here and has not gone up yet: no other till can have
		// it, so this one decides (the push still catches a double).
		res, err := a.DB.Redeem(a.Actor, raw, ord, idemKey)
		if err == nil {
			a.kickSync()
		}
		return res, err
	case err == nil && !ans.OK:
		// The server's verdict stands, said like a local refusal.
		v.OK, v.Reason, v.Discount, v.Value, v.Payable = false, ans.Reason, 0, 0, 0
		if ans.Reason == "" {
			v.Reason = core.ReasonAlreadyRedeemed
		}
		return &store.RedeemResult{Verdict: v}, nil
	case err == nil:
		res, err := a.DB.Redeem(a.Actor, raw, ord, idemKey)
		if err == nil {
			a.kickSync()
		}
		return res, err
	case !syncclient.Unreachable(err):
		return nil, syncErr(s.Client.BaseURL, err)
	}
	a.markDown()
	return a.redeemOffline(v, raw, ord, idemKey)
}

// redeemOffline redeems without the server: the campaign's offline rules (and,
// for a gift card, this device's allowance) decide inside the redemption's
// transaction, and the redemption waits in the outbox for the server.
func (a *App) redeemOffline(v core.Verdict, raw string, ord core.Order, idemKey string) (*store.RedeemResult, error) {
	off := *a.Actor
	off.Offline = true
	res, err := a.DB.Redeem(&off, raw, ord, idemKey)
	if err != nil {
		return offlineRefusal(v, err)
	}
	return res, nil
}

// payOnlineFirst pays from a wallet; while the server is unreachable the payment
// must fit in this device's allowance (the store checks and counts it).
func (a *App) payOnlineFirst(ac *store.Actor, member string, amt core.Amount, ref, key string) (*store.WalletResult, error) {
	if a.registered() && a.serverDown() {
		off := *ac
		off.Offline = true
		return a.DB.Pay(&off, member, amt, ref, key)
	}
	res, err := a.DB.Pay(ac, member, amt, ref, key)
	if err == nil {
		a.kickSync()
	}
	return res, err
}

// offlineRefusal turns an offline-policy refusal with a reason into a verdict the
// till shows like any other; other errors pass.
func offlineRefusal(v core.Verdict, err error) (*store.RedeemResult, error) {
	var ce *core.Error
	if errors.As(err, &ce) {
		reason := ce.Params["reason"]
		if reason == "" {
			reason = ce.Params["why"]
		}
		if reason != "" {
			v.OK, v.Reason, v.Discount, v.Value, v.Payable = false, reason, 0, 0, 0
			return &store.RedeemResult{Verdict: v}, nil
		}
	}
	return nil, err
}

// CaseParty is one side of a case (the redemption that stood, the one that did not),
// ready to show: names instead of ids where this device knows them.
type CaseParty struct {
	Role         string      `json:"role"` // winner | loser
	Time         string      `json:"time"`
	Device       string      `json:"device"`
	Operator     string      `json:"operator"`
	Store        string      `json:"store"`
	OrderAmount  core.Amount `json:"order_amount"`
	RedemptionID string      `json:"redemption_id"`
}

// CaseParties reads the two sides of a DOUBLE_REDEMPTION (or any case whose detail
// names a winner and a loser): both devices, cashiers, stores, orders and times.
func (a *App) CaseParties(x *wire.Case) ([]CaseParty, error) {
	var d map[string]json.RawMessage
	if json.Unmarshal(x.Detail, &d) != nil {
		return nil, nil
	}
	type side struct {
		Created     int64       `json:"created_ms"`
		DeviceID    string      `json:"device_id"`
		OperatorID  string      `json:"operator_id"`
		StoreID     string      `json:"store_id"`
		OrderAmount core.Amount `json:"order_amount"`
		Redemption  string      `json:"redemption_id"`
	}
	var sides []side
	var roles []string
	for _, role := range []string{"winner", "loser"} {
		var s side
		if raw, ok := d[role]; ok && json.Unmarshal(raw, &s) == nil {
			sides, roles = append(sides, s), append(roles, role)
		}
	}
	var ids []string
	for _, s := range sides {
		ids = append(ids, s.DeviceID, s.OperatorID, s.StoreID)
	}
	names, err := a.DB.Names(ids)
	if err != nil {
		return nil, err
	}
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	var out []CaseParty
	for i, s := range sides {
		out = append(out, CaseParty{Role: roles[i], Time: a.FormatTime(s.Created), Device: name(s.DeviceID),
			Operator: name(s.OperatorID), Store: name(s.StoreID), OrderAmount: s.OrderAmount, RedemptionID: s.Redemption})
	}
	return out, nil
}

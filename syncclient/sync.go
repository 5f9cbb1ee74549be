package syncclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
	"github.com/kameng/kameng/core/wire"
)

// Progress stages.
const (
	StagePush   = "push"   // outbox mutations acknowledged
	StageUpload = "upload" // code rows of a generated or imported batch sent
	StageCodes  = "codes"  // code rows pulled
	StageLog    = "log"    // other devices' and the server's changes pulled
)

// Syncer runs one device's sync rounds: push the outbox, then pull what changed.
// Rounds of one Syncer never overlap (a manual sync waits for the loop's round).
type Syncer struct {
	DB       *store.DB
	Client   *Client
	Now      func() time.Time
	Progress func(stage string, done, total int64)
	// PullLimit is the changes asked for per page (default wire.MaxPullLimit).
	PullLimit int

	mu       sync.Mutex
	uploaded map[string]bool // batches whose codes went up during this process
}

// Report says what one round did.
type Report struct {
	Pushed      int64 `json:"pushed"` // own mutations the server acknowledged
	Applied     int64 `json:"applied"`
	Rejected    int64 `json:"rejected"`
	Flagged     int64 `json:"flagged"`
	Uploaded    int64 `json:"uploaded_codes"` // code rows the server did not have yet
	PulledLog   int64 `json:"pulled_log"`
	PulledCodes int64 `json:"pulled_codes"`
	Pages       int   `json:"pages"`
	Resets      int   `json:"resets"`   // the server's epoch changed: pulled from the start
	MIDGaps     int   `json:"mid_gaps"` // the server expected another mid: resent from there
	Allowances  int   `json:"allowances"`
	Epoch       int64 `json:"epoch"`
	ServerMS    int64 `json:"server_ms"`
	StartedMS   int64 `json:"started_ms"`
	TookMS      int64 `json:"took_ms"`
}

// Attempts bound the repairs one round makes before it gives up and lets the
// next round (after a backoff) try again: a server that keeps answering the same
// way must not spin the device.
const (
	maxGapRepairs = 3
	maxResets     = 2
)

// ErrNotRegistered is returned by a round on a device without a server.
var ErrNotRegistered = &core.Error{Code: core.ErrConflict, Field: "server",
	Message: "this device is not registered with a sync server: run kameng device register",
	Params:  map[string]string{"why": "not_registered"}}

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Syncer) progress(stage string, done, total int64) {
	if s.Progress != nil {
		s.Progress(stage, done, total)
	}
}

func (s *Syncer) pullLimit() int {
	if s.PullLimit <= 0 || s.PullLimit > wire.MaxPullLimit {
		return wire.MaxPullLimit
	}
	return s.PullLimit
}

// Once runs one round: push the outbox in batches, pull the codes and log streams
// page by page (each page applied in one local transaction together with its
// cursor, so an interrupted round resumes where it stopped), then refresh the
// offline allowances. The outcome is recorded for SyncState either way.
func (s *Syncer) Once(ctx context.Context) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := &Report{StartedMS: s.now().UnixMilli()}
	err := s.round(ctx, rep)
	rep.TookMS = s.now().UnixMilli() - rep.StartedMS
	if !errors.Is(err, ErrNotRegistered) {
		if rerr := s.DB.RecordSyncError(err, s.now()); rerr != nil && err == nil {
			err = rerr
		}
	}
	return rep, err
}

func (s *Syncer) round(ctx context.Context, rep *Report) error {
	st, err := s.DB.SyncState()
	if err != nil {
		return err
	}
	if st.Server == "" {
		return ErrNotRegistered
	}
	if err := s.push(ctx, rep); err != nil {
		if !IsCode(err, wire.ErrEpoch) {
			return err
		}
		// The server was restored: pull from the start under the new epoch (the
		// outbox stays), then push again.
		if err := s.pull(ctx, rep); err != nil {
			return err
		}
		if err := s.push(ctx, rep); err != nil {
			return err
		}
	}
	if err := s.pull(ctx, rep); err != nil {
		return err
	}
	al, err := s.Client.Allowances(ctx)
	if err != nil {
		return err
	}
	rep.Allowances = len(al.Allowances)
	return s.DB.SetAllowances(al.Allowances)
}

// push sends the outbox in mid order, in batches of at most wire.MaxPushMutations
// mutations and wire.MaxPushBytes of arguments, acknowledging each answer locally.
func (s *Syncer) push(ctx context.Context, rep *Report) error {
	st, err := s.DB.SyncState()
	if err != nil {
		return err
	}
	total, done := st.Pending, int64(0)
	acked := st.AckedMID
	gaps := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		muts, err := s.DB.PendingMutations(wire.MaxPushMutations, wire.MaxPushBytes)
		if err != nil {
			return err
		}
		if len(muts) == 0 {
			if total > 0 {
				s.progress(StagePush, done, done)
			}
			return nil
		}
		// A batch's code rows reach the server before the mutation that made them.
		for _, m := range muts {
			if isCodesBatch(m.Name) {
				if err := s.upload(ctx, m, rep); err != nil {
					return err
				}
			}
		}
		resp, err := s.Client.Push(ctx, wire.PushRequest{Epoch: st.Epoch, ClientMS: s.now().UnixMilli(), Mutations: muts})
		if ae := AsAPIError(err); ae != nil && ae.Body.Code == wire.ErrMIDGap && ae.Body.ExpectedMID > 0 {
			// The server has everything before ExpectedMID (it kept more than we
			// thought, or lost what we thought it had): carry on from there.
			if gaps++; gaps > maxGapRepairs {
				return err
			}
			rep.MIDGaps++
			if err := s.DB.Ack(&wire.PushResponse{LastMID: ae.Body.ExpectedMID - 1, ServerMS: s.now().UnixMilli()}); err != nil {
				return err
			}
			acked = ae.Body.ExpectedMID - 1
			continue
		}
		if err != nil {
			return err
		}
		if err := s.DB.Ack(resp); err != nil {
			return err
		}
		rep.ServerMS = resp.ServerMS
		for _, r := range resp.Results {
			switch r.Status {
			case wire.Applied:
				rep.Applied++
			case wire.Rejected:
				rep.Rejected++
			case wire.Flagged:
				rep.Flagged++
			}
		}
		if resp.LastMID <= acked {
			return core.Errorf(core.ErrInternal, "the server acknowledged nothing of mutations %d–%d", muts[0].MID, muts[len(muts)-1].MID)
		}
		n := resp.LastMID - acked
		acked = resp.LastMID
		rep.Pushed += n
		done += n
		s.progress(StagePush, done, max(total, done))
	}
}

func isCodesBatch(name string) bool {
	return name == "codes.generate@1" || name == "codes.import@1"
}

// upload sends the code rows of the batch a codes.generate@1 or codes.import@1
// mutation made, in pages of wire.MaxCodesUpload. Repeating it is harmless (the
// server ignores rows it has); within one process a batch goes up once.
func (s *Syncer) upload(ctx context.Context, m wire.Mutation, rep *Report) error {
	var args struct {
		Batch struct {
			ID    string `json:"id"`
			Count int64  `json:"count"`
		} `json:"batch"`
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal(m.Args, &args); err != nil || args.Batch.ID == "" {
		return core.Errorf(core.ErrInternal, "mutation %d (%s) names no batch", m.MID, m.Name)
	}
	id := args.Batch.ID
	if s.uploaded[id] {
		return nil
	}
	total := max(args.Count, args.Batch.Count)
	var sent int64
	after := ""
	for {
		codes, err := s.DB.BatchCodes(id, after, wire.MaxCodesUpload)
		if err != nil {
			return err
		}
		if len(codes) == 0 {
			break
		}
		res, err := s.Client.UploadCodes(ctx, wire.CodesUpload{BatchID: id, Codes: codes})
		if err != nil {
			return err
		}
		rep.Uploaded += res.Inserted
		sent += int64(len(codes))
		after = codes[len(codes)-1].Code
		s.progress(StageUpload, sent, max(total, sent))
		if len(codes) < wire.MaxCodesUpload {
			break
		}
	}
	if s.uploaded == nil {
		s.uploaded = map[string]bool{}
	}
	s.uploaded[id] = true
	return nil
}

// errReset ends a pass of pull when the server's epoch changed.
var errReset = errors.New("epoch changed")

// pull brings the codes stream up to date, then the log page by page. When the
// server's epoch changed it drops the cursors and starts over.
func (s *Syncer) pull(ctx context.Context, rep *Report) error {
	for resets := 0; ; resets++ {
		err := s.pullAll(ctx, rep)
		if !errors.Is(err, errReset) {
			return err
		}
		if resets >= maxResets {
			return core.Errorf(core.ErrConflict, "the server's epoch keeps changing; try again later")
		}
	}
}

// puller walks one pass of both streams from the stored cursors.
type puller struct {
	s       *Syncer
	rep     *Report
	epoch   int64
	cursors map[string]int64
	done    map[string]int64
}

func (s *Syncer) pullAll(ctx context.Context, rep *Report) error {
	st, err := s.DB.SyncState()
	if err != nil {
		return err
	}
	p := &puller{s: s, rep: rep, epoch: st.Epoch, cursors: map[string]int64{}, done: map[string]int64{}}
	for k, v := range st.Cursors {
		p.cursors[k] = v
	}
	if err := p.drain(ctx, wire.StreamCodes); err != nil {
		return err
	}
	for {
		page, err := p.page(ctx, wire.StreamLog)
		if err != nil {
			return err
		}
		// Codes a batch mutation names came up before it: fetch them before going on.
		if hasCodesBatch(page) {
			if err := p.drain(ctx, wire.StreamCodes); err != nil {
				return err
			}
		}
		if !page.More {
			return nil
		}
	}
}

func hasCodesBatch(p *wire.Page) bool {
	for _, c := range p.Changes {
		if c.Mutation != nil && isCodesBatch(c.Mutation.Name) {
			return true
		}
	}
	return false
}

// drain pulls one stream until the server has no more.
func (p *puller) drain(ctx context.Context, stream string) error {
	for {
		page, err := p.page(ctx, stream)
		if err != nil {
			return err
		}
		if !page.More {
			return nil
		}
	}
}

// page pulls and applies one page of one stream.
func (p *puller) page(ctx context.Context, stream string) (*wire.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := p.s
	resp, err := s.Client.Pull(ctx, wire.PullRequest{Epoch: p.epoch,
		Cursors: []wire.Cursor{{Stream: stream, Seq: p.cursors[stream]}}, Limit: s.pullLimit()})
	if err != nil {
		return nil, err
	}
	if resp.Reset {
		p.rep.Resets++
		if err := s.DB.ResetSync(resp.Epoch); err != nil {
			return nil, err
		}
		return nil, errReset
	}
	p.epoch = resp.Epoch
	p.rep.Epoch, p.rep.ServerMS = resp.Epoch, resp.ServerMS
	var page *wire.Page
	for i := range resp.Pages {
		if resp.Pages[i].Stream == stream {
			page = &resp.Pages[i]
		}
	}
	if page == nil {
		return &wire.Page{Stream: stream, Next: p.cursors[stream]}, nil
	}
	if page.Next < p.cursors[stream] {
		return nil, core.Errorf(core.ErrInternal, "the server's %s stream went back from %d to %d", stream, p.cursors[stream], page.Next)
	}
	if len(page.Changes) == 0 && page.More {
		return nil, core.Errorf(core.ErrInternal, "the server sent an empty %s page that says there is more", stream)
	}
	if err := s.DB.ApplyPage(resp.Epoch, resp.ServerMS, page); err != nil {
		return nil, fmt.Errorf("apply %s page after %d: %w", stream, p.cursors[stream], err)
	}
	p.cursors[stream] = page.Next
	p.rep.Pages++
	n := int64(len(page.Changes))
	if stream == wire.StreamCodes {
		p.rep.PulledCodes += n
	} else {
		p.rep.PulledLog += n
	}
	p.done[stream] += n
	done, total := p.done[stream], max(page.Total, p.done[stream])
	if !page.More {
		done = total // a resumed pull fetched only the rest
	}
	if total > 0 {
		s.progress(stream, done, total)
	}
	return page, nil
}

package server

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/wire"
)

// campaignRow is the server's copy of a campaign: its JSON body, and for each field
// the HLC and device of its last change (field-level last-writer-wins).
type campaignRow struct {
	id    string
	c     core.Campaign
	body  map[string]json.RawMessage
	rules map[string]json.RawMessage
	clock map[string]fieldClock
}

type fieldClock struct {
	HLC    int64  `json:"h"`
	Device string `json:"d"`
}

// after is the one order of campaign changes, the devices' as well (fieldStamp.after
// in core/store/campaign.go): the higher HLC, and between equal HLCs — devices that
// observed the same clock running ahead issue the same next one — the greater device
// id. A field takes a change that comes after the one it holds, so the server and
// every device end with the value of the last change in this order, whatever order
// the changes arrived in.
func (c fieldClock) after(o fieldClock) bool {
	return c.HLC > o.HLC || c.HLC == o.HLC && c.Device > o.Device
}

// valueFields are the fields whose concurrent edits are not settled by the clock:
// the server keeps its value and a person decides (CAMPAIGN_EDIT).
var valueFields = map[string]bool{
	"kind": true, "currency": true, "amount_off": true, "percent_off_bp": true, "max_discount": true,
	"min_spend": true, "face_value": true,
	"rules.budget_count": true, "rules.budget_amount": true, "rules.uses_per_code": true, "rules.per_member_limit": true,
	"rules.valid_from_ms": true, "rules.valid_to_ms": true, "rules.valid_days": true,
}

// serverFields are never taken from an edit: the server or the devices count them,
// and the status changes by campaign.status@1 alone.
var serverFields = map[string]bool{
	"id": true, "merchant_id": true, "created_ms": true, "updated_ms": true, "issued": true, "redeemed": true, "spent": true,
	"status": true,
}

// campaign loads a campaign of the transaction's merchant (nil when unknown),
// once per transaction.
func (t *tx) campaign(id string) (*campaignRow, error) {
	if id == "" {
		return nil, nil
	}
	if c, ok := t.campaigns[id]; ok {
		return c, nil
	}
	var body, clock string
	err := t.queryRow(`SELECT body, clock FROM campaign WHERE merchant_id = ? AND id = ?`, t.merchant, id).Scan(&body, &clock)
	if errors.Is(err, sql.ErrNoRows) {
		t.cacheCampaign(id, nil)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	row, err := parseCampaign(id, []byte(body), []byte(clock))
	if err != nil {
		return nil, err
	}
	t.cacheCampaign(id, row)
	return row, nil
}

func (t *tx) cacheCampaign(id string, row *campaignRow) {
	if t.campaigns == nil {
		t.campaigns = map[string]*campaignRow{}
	}
	t.campaigns[id] = row
}

func parseCampaign(id string, body, clock []byte) (*campaignRow, error) {
	row := &campaignRow{id: id, clock: map[string]fieldClock{}}
	if err := json.Unmarshal(body, &row.body); err != nil {
		return nil, err
	}
	if row.body == nil {
		row.body = map[string]json.RawMessage{}
	}
	if raw, ok := row.body["rules"]; ok {
		json.Unmarshal(raw, &row.rules)
	}
	if row.rules == nil {
		row.rules = map[string]json.RawMessage{}
	}
	if len(clock) > 0 {
		if err := json.Unmarshal(clock, &row.clock); err != nil {
			return nil, err
		}
	}
	return row, row.decode()
}

// decode refreshes the typed copy from the JSON body.
func (row *campaignRow) decode() error {
	b, err := row.encodeBody()
	if err != nil {
		return err
	}
	row.c = core.Campaign{}
	return json.Unmarshal(b, &row.c)
}

func (row *campaignRow) encodeBody() ([]byte, error) {
	if len(row.rules) > 0 {
		r, err := json.Marshal(row.rules)
		if err != nil {
			return nil, err
		}
		row.body["rules"] = r
	}
	return json.Marshal(row.body)
}

func (t *tx) saveCampaign(row *campaignRow) error {
	body, err := row.encodeBody()
	if err != nil {
		return err
	}
	clock, err := json.Marshal(row.clock)
	if err != nil {
		return err
	}
	_, err = t.exec(`UPDATE campaign SET body = ?, clock = ? WHERE merchant_id = ? AND id = ?`, string(body), string(clock), t.merchant, row.id)
	if err != nil {
		return err
	}
	return row.decode()
}

// canon is a JSON value in a form two encodings of the same value share.
func canon(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(bytes.TrimSpace(raw))
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (t *tx) applyCampaignCreate(m *wire.Mutation, res *wire.Result) error {
	var c core.Campaign
	if err := json.Unmarshal(m.Args, &c); err != nil || c.ID == "" {
		reject(res, reasonBadArgs, "campaign.create@1 needs a campaign with an id")
		return nil
	}
	row, err := parseCampaign(c.ID, m.Args, nil)
	if err != nil {
		reject(res, reasonBadArgs, "campaign.create@1: "+err.Error())
		return nil
	}
	row.body["merchant_id"], _ = json.Marshal(t.merchant)
	for k := range row.body {
		if k != "rules" {
			row.clock[k] = fieldClock{m.HLC, t.device}
		}
	}
	for k := range row.rules {
		row.clock["rules."+k] = fieldClock{m.HLC, t.device}
	}
	body, err := row.encodeBody()
	if err != nil {
		return err
	}
	clock, err := json.Marshal(row.clock)
	if err != nil {
		return err
	}
	n, err := t.affected(`INSERT INTO campaign(merchant_id, id, body, clock) VALUES (?,?,?,?) ON CONFLICT DO NOTHING`,
		t.merchant, c.ID, string(body), string(clock))
	if err != nil {
		return err
	}
	if n == 0 {
		res.Message = "the campaign exists already"
		return nil
	}
	delete(t.campaigns, c.ID) // it may be cached as unknown
	return nil
}

// editConflict is one value field an edit could not change.
type editConflict struct {
	Field        string          `json:"field"`
	Kept         json.RawMessage `json:"kept"`
	Proposed     json.RawMessage `json:"proposed"`
	KeptHLC      int64           `json:"kept_hlc"`
	KeptDevice   string          `json:"kept_device"`
	ProposedHLC  int64           `json:"proposed_hlc"`
	ProposedFrom string          `json:"proposed_device"`
}

// applyCampaignEdit merges an edit field by field, and rule by rule: a field whose
// value was set by a change that comes after this one (fieldClock.after) keeps it;
// for value, budget and date fields changed by another device that is a conflict a
// person settles. Devices send only the rules they changed ("rules" is a partial
// object), so an edit of one rule never restores a stale copy of another.
func (t *tx) applyCampaignEdit(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		ID      string                     `json:"id"`
		Changes map[string]json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil || a.ID == "" {
		reject(res, reasonBadArgs, "campaign.edit@1 needs an id and changes")
		return nil
	}
	row, err := t.campaign(a.ID)
	if err != nil {
		return err
	}
	if row == nil {
		reject(res, reasonNotFound, "no campaign "+a.ID)
		return nil
	}
	var rulesChanges map[string]json.RawMessage
	if raw, ok := a.Changes["rules"]; ok {
		if err := json.Unmarshal(raw, &rulesChanges); err != nil {
			reject(res, reasonBadArgs, "campaign.edit@1: rules is not an object")
			return nil
		}
	}
	var conflicts []editConflict
	mine := fieldClock{m.HLC, t.device}
	// set applies one field unless a later change holds it. A value equal to the one
	// held still takes the clock, as on the devices: the field then holds the value
	// of the last change in the one order, which a change between the two must not
	// overwrite.
	set := func(field string, cur json.RawMessage, proposed json.RawMessage, put func()) {
		if fc := row.clock[field]; !mine.after(fc) {
			if valueFields[field] && fc.Device != t.device && canon(cur) != canon(proposed) {
				conflicts = append(conflicts, editConflict{Field: field, Kept: cur, Proposed: proposed, KeptHLC: fc.HLC,
					KeptDevice: fc.Device, ProposedHLC: m.HLC, ProposedFrom: t.device})
			}
			return
		}
		put()
		row.clock[field] = mine
	}
	keys := make([]string, 0, len(a.Changes))
	for k := range a.Changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "rules" || serverFields[k] || strings.Contains(k, ".") {
			continue
		}
		v := a.Changes[k]
		set(k, row.body[k], v, func() { row.body[k] = v })
	}
	rkeys := make([]string, 0, len(rulesChanges))
	for k := range rulesChanges {
		rkeys = append(rkeys, k)
	}
	sort.Strings(rkeys)
	for _, k := range rkeys {
		v := rulesChanges[k]
		set("rules."+k, row.rules[k], v, func() { row.rules[k] = v })
	}
	if err := t.saveCampaign(row); err != nil {
		return err
	}
	if len(conflicts) > 0 {
		c, err := t.openCase(wire.CaseCampaignEdit, a.ID, map[string]any{"campaign_id": a.ID, "device_id": t.device, "fields": conflicts})
		if err != nil {
			return err
		}
		flag(res, reasonCampaignEdit, c.ID)
	}
	return nil
}

func (t *tx) applyCampaignStatus(m *wire.Mutation, res *wire.Result) error {
	var a struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(m.Args, &a); err != nil || a.ID == "" || a.Status == "" {
		reject(res, reasonBadArgs, "campaign.status@1 needs an id and a status")
		return nil
	}
	switch core.CampaignStatus(a.Status) {
	case core.StatusActive, core.StatusPaused, core.StatusArchived:
	default:
		reject(res, reasonBadArgs, "unknown campaign status "+a.Status)
		return nil
	}
	row, err := t.campaign(a.ID)
	if err != nil {
		return err
	}
	if row == nil {
		reject(res, reasonNotFound, "no campaign "+a.ID)
		return nil
	}
	// Archiving is final: a later resume from a device that had not seen it loses.
	if row.c.Status == core.StatusArchived {
		res.Message = "the campaign is archived"
		return nil
	}
	mine := fieldClock{m.HLC, t.device}
	if !mine.after(row.clock["status"]) && a.Status != string(core.StatusArchived) {
		res.Message = "a later status change stands"
		return nil
	}
	row.body["status"], _ = json.Marshal(a.Status)
	row.clock["status"] = mine
	return t.saveCampaign(row)
}

package syncclient_test

import (
	"database/sql"
	"fmt"
	"strings"
)

// dump shows the server's log and the devices' field clocks with the simulation's
// labels for ids (c3, r5, m0, pos-2): what a failing seed replayed with -v prints
// after its trace.
func (s *sim) dump() string {
	var b strings.Builder
	db, err := sql.Open("sqlite", "file:"+s.srvPath+"?_pragma=query_only(1)")
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	names := map[string]string{}
	for _, d := range s.devs {
		if st, err := d.db.SyncState(); err == nil {
			names[st.DeviceID] = d.name
		}
	}
	relabel := func(x string) string {
		for id, l := range s.label {
			x = strings.ReplaceAll(x, id, l)
		}
		for id, n := range names {
			x = strings.ReplaceAll(x, id, n)
		}
		return x
	}
	b.WriteString("server log (seq device/mid name status reason hlc args):\n")
	rows, err := db.Query(`SELECT seq, device_id, mid, name, status, reason, hlc, substr(args, 1, 240) FROM log WHERE merchant_id = ? ORDER BY seq`, s.merchantID)
	if err != nil {
		return err.Error()
	}
	for rows.Next() {
		var seq, mid, hlc int64
		var dev, name, st, reason, args string
		if err := rows.Scan(&seq, &dev, &mid, &name, &st, &reason, &hlc, &args); err != nil {
			break
		}
		fmt.Fprintf(&b, "%5d %s/%d %s %s %s %d %s\n", seq, relabel(dev), mid, name, st, reason, hlc, relabel(args))
	}
	rows.Close()
	for _, d := range s.devs {
		rows, err := d.db.Raw().Query(`SELECT entity, id, field, hlc, device FROM field_clock ORDER BY entity, id, field`)
		if err != nil {
			continue
		}
		for rows.Next() {
			var e, id, f, dev string
			var h int64
			if rows.Scan(&e, &id, &f, &h, &dev) == nil {
				fmt.Fprintf(&b, "%s field clock %s %s %s %d %s\n", d.name, e, relabel(id), f, h, relabel(dev))
			}
		}
		rows.Close()
	}
	return b.String()
}

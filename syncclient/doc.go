// Package syncclient speaks the hosted sync API for a device: it registers the
// device, pushes the local outbox of mutations in order and in batches, pulls
// the changes of other shops and devices page by page, and retries with
// backoff and jitter while the line is down. It shares its wire types with
// package server so the two cannot drift.
package syncclient

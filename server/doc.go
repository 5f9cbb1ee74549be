// Package server implements the hosted sync API behind kameng serve: it
// authenticates devices by token, re-executes pushed mutations
// authoritatively and idempotently, serves changes per stream to pulling
// devices, and opens exception cases for conflicts found between shops. It
// stores its data in embedded SQLite by default or in PostgreSQL, and scopes
// every query by merchant.
package server

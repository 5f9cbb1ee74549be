// Package tui is the terminal front end: the screens a cashier or technician
// uses with the keyboard alone, from a local terminal or over SSH, down to
// 80×24. It lays out the view state that package app provides and maps keys
// to its use cases; it holds no business rules of its own.
package tui

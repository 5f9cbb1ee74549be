// Package gui is the desktop front end for the shop owner: campaign design,
// code export and printing, checking and redeeming at the counter, and the
// numbers. It lays out the view state that package app provides and maps
// input to its use cases; it holds no business rules of its own.
package gui

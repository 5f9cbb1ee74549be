// Package assets embeds the files the front ends ship inside the binary:
// the application icon, and the fonts and images the screens need.
package assets

package assets

import _ "embed"

// Icon is the application icon as SVG (256×256).
//
//go:embed icon.svg
var Icon []byte

// IconPNG is the application icon rendered to a 256×256 PNG, for places that
// need a raster image (window icons, FyneApp.toml).
//
//go:embed icon.png
var IconPNG []byte

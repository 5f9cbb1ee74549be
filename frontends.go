package main

import "github.com/kameng/kameng/app"

// frontends are the screens compiled into this binary; the terminal and desktop apps
// register themselves here as they arrive.
var frontends = app.Frontends{}

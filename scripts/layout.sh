#!/usr/bin/env bash
# layout.sh enforces the dependency rule between Kameng's packages
# (DESIGN §4):
#
#   core/...         no UI, no HTTP, no PostgreSQL, no XLSX; only core/store
#                    may hold the SQLite driver; nothing from app, gui, tui,
#                    syncclient or server
#   app/...          never imports gui or tui (main.go passes them in)
#   gui/..., tui/... never import core/store or syncclient, nor each other
#   main (nogui)     CGO_ENABLED=0 go build -tags nogui must succeed and the
#                    result must not contain Fyne or OpenGL
#
# A violation is reported with the import chain that pulled it in. Packages
# that do not exist yet are skipped.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO="${GO:-go}"

MOD="$($GO list -m)"
MODRE="$(printf '%s' "$MOD" | sed 's/[.]/\\./g')"

failures=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

say() { printf 'layout: %s\n' "$*"; }

# patterns DIR...: prints ./DIR/... for each DIR that holds Go files.
patterns() {
	local d
	for d in "$@"; do
		if [ -d "$d" ] && [ -n "$(find "$d" -name '*.go' -not -path '*/testdata/*' -print -quit)" ]; then
			printf './%s/...\n' "$d"
		fi
	done
}

# forbid RULE REGEX PKG...: fails when any dependency of the packages PKG
# (import paths or patterns) matches the extended regular expression REGEX.
# For each offending package it prints the shortest import chain from one of
# PKG, stopping at the first forbidden package on the chain. Extra go list
# flags come from the LISTFLAGS array.
forbid() {
	local rule="$1" re="$2"
	shift 2
	if [ "$#" -eq 0 ]; then
		say "skip: $rule (no packages yet)"
		return 0
	fi
	# -e: report what can be listed even while a package does not compile.
	$GO list -e "${LISTFLAGS[@]}" -f '{{.ImportPath}}' "$@" >"$tmp/roots" 2>"$tmp/err" || true
	$GO list -e "${LISTFLAGS[@]}" -deps -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' "$@" >"$tmp/graph" 2>>"$tmp/err" || true
	if [ ! -s "$tmp/roots" ]; then
		say "skip: $rule (no packages yet)"
		return 0
	fi
	if ! awk -v re="$re" '
		FNR == NR { if ($1 != "") { root[$1] = 1; queue[++qn] = $1; seen[$1] = 1 }; next }
		{ n = split($0, f, " "); for (i = 2; i <= n; i++) kids[f[1]] = kids[f[1]] " " f[i] }
		END {
			# Breadth-first from the roots, so each chain is a shortest one.
			for (qi = 1; qi <= qn; qi++) {
				p = queue[qi]
				if (p ~ re) { bad[++bn] = p; continue }  # do not look past a forbidden package
				m = split(kids[p], k, " ")
				for (j = 1; j <= m; j++) if (!(k[j] in seen)) { seen[k[j]] = 1; parent[k[j]] = p; queue[++qn] = k[j] }
			}
			for (b = 1; b <= bn; b++) {
				chain = bad[b]; p = bad[b]
				while (p in parent) { p = parent[p]; chain = p " -> " chain }
				printf "    %s\n", chain
			}
			exit bn > 0
		}' "$tmp/roots" "$tmp/graph" >"$tmp/out"; then
		say "FAIL: $rule"
		cat "$tmp/out"
		failures=$((failures + 1))
	else
		say "ok: $rule"
	fi
}

LISTFLAGS=()

# core: the domain stays free of screens, HTTP and heavy drivers.
mapfile -t core < <(patterns core)
forbid "core must not depend on UI, HTTP, PostgreSQL or XLSX packages" \
	"^(fyne\\.io/|charm\\.land/|github\\.com/charmbracelet/|github\\.com/go-resty/|github\\.com/jackc/pgx|github\\.com/xuri/excelize|net/http(/|\$))" \
	"${core[@]}"
forbid "core must not import app, gui, tui, syncclient or server" \
	"^${MODRE}/(app|gui|tui|syncclient|server)(/|\$)" \
	"${core[@]}"
core_domain=()
if [ "${#core[@]}" -gt 0 ]; then
	mapfile -t core_domain < <($GO list -e -f '{{.ImportPath}}' ./core/... 2>/dev/null | grep -Ev "^${MODRE}/core/store(/|\$)" || true)
fi
forbid "core (outside core/store) must not import a database driver" \
	"^(modernc\\.org/sqlite|github\\.com/mattn/go-sqlite3|github\\.com/jackc/pgx|${MODRE}/core/store)(/|\$)" \
	"${core_domain[@]}"

# app never imports the front ends.
mapfile -t app < <(patterns app)
forbid "app must not import gui or tui" "^${MODRE}/(gui|tui)(/|\$)" "${app[@]}"

# gui and tui only lay out what app gives them.
mapfile -t gui < <(patterns gui)
mapfile -t tui < <(patterns tui)
forbid "gui and tui must not import core/store or syncclient" \
	"^${MODRE}/(core/store|syncclient)(/|\$)" \
	"${gui[@]}" "${tui[@]}"
forbid "gui must not import tui" "^${MODRE}/tui(/|\$)" "${gui[@]}"
forbid "tui must not import gui" "^${MODRE}/gui(/|\$)" "${tui[@]}"

# The headless build: pure Go, no Fyne.
if [ -n "$(find . -maxdepth 1 -name '*.go' -print -quit)" ]; then
	if CGO_ENABLED=0 $GO build -tags nogui -o /dev/null . 2>"$tmp/build"; then
		say "ok: CGO_ENABLED=0 go build -tags nogui ."
	else
		say "FAIL: CGO_ENABLED=0 go build -tags nogui . does not build"
		sed 's/^/    /' "$tmp/build"
		failures=$((failures + 1))
	fi
	export CGO_ENABLED=0
	LISTFLAGS=(-tags nogui)
	forbid "the nogui build must not contain Fyne or OpenGL" \
		"^(fyne\\.io/|github\\.com/go-gl/)" .
	unset CGO_ENABLED
	LISTFLAGS=()
else
	say "skip: CGO_ENABLED=0 go build -tags nogui . (no main package yet)"
fi

if [ "$failures" -gt 0 ]; then
	say "$failures rule(s) broken"
	exit 1
fi
say "all rules hold"

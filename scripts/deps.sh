#!/usr/bin/env bash
# deps.sh checks what building and testing Kameng needs and installs the
# missing system packages where it can.
#
# Usage: scripts/deps.sh [debian-package ...]
#
# Go itself is only checked, never installed: it must be on PATH (or in
# /usr/local/go/bin) at version GO_MIN or newer. Each named package is checked
# with dpkg; the missing ones are installed with apt-get when running as root,
# with sudo -n when passwordless sudo works, and otherwise the exact command to
# run is printed and the script fails.
set -euo pipefail

GO_MIN="${GO_MIN:-1.26.8}"
export PATH="$PATH:/usr/local/go/bin"

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# version_ge A B: true when version A >= version B (dotted numbers).
version_ge() {
	[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]
}

check_go() {
	if ! command -v go >/dev/null 2>&1; then
		die "go not found on PATH (also looked in /usr/local/go/bin).
    Install Go ${GO_MIN} or newer, e.g. unpacked into /usr/local/go, then run make deps again."
	fi
	local raw ver
	# GOTOOLCHAIN=local: report the installed toolchain, never fetch another.
	raw="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)"
	ver="${raw#go}"
	ver="${ver%%[!0-9.]*}"
	if [ -z "$ver" ]; then
		die "could not read the Go version from '$(command -v go)' (got '${raw}')"
	fi
	if ! version_ge "$ver" "$GO_MIN"; then
		die "Go ${GO_MIN} or newer is required; $(command -v go) is ${raw}.
    Install a newer Go (e.g. into /usr/local/go) and put it first on PATH."
	fi
	say "go ${ver} at $(command -v go) (need >= ${GO_MIN}): ok"
}

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

check_packages() {
	if [ "$#" -eq 0 ]; then
		say "no system packages required"
		return 0
	fi
	if ! command -v dpkg-query >/dev/null 2>&1; then
		say "warning: not a Debian-like system; cannot check system packages."
		say "warning: make sure these (or your system's equivalents) are installed: $*"
		return 0
	fi

	local missing=() p
	for p in "$@"; do
		if installed "$p"; then
			say "package ${p}: ok"
		else
			say "package ${p}: missing"
			missing+=("$p")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi

	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
	if [ "$(id -u)" -eq 0 ]; then
		:
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		apt=(sudo -n env DEBIAN_FRONTEND=noninteractive apt-get)
	else
		printf 'deps: error: missing system packages: %s\n' "${missing[*]}" >&2
		printf 'deps: install them with:\n    sudo apt-get update && sudo apt-get install -y %s\n' "${missing[*]}" >&2
		exit 1
	fi

	say "installing: ${missing[*]}"
	"${apt[@]}" update -qq </dev/null
	"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" </dev/null

	for p in "${missing[@]}"; do
		installed "$p" || die "package ${p} is still not installed after apt-get install"
	done
	say "installed: ${missing[*]}"
}

# has_postgres: the PostgreSQL server binaries the server's tests start a
# throwaway cluster from (scripts/with-postgres.sh).
has_postgres() {
	local d
	for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/local/bin /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			return 0
		fi
	done
	return 1
}

pkgs=("$@")
if has_postgres; then
	say "postgresql server binaries (initdb, pg_ctl): ok"
else
	say "postgresql server binaries (initdb, pg_ctl): missing"
	pkgs+=(postgresql)
fi

check_go
check_packages "${pkgs[@]}"

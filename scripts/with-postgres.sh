#!/usr/bin/env bash
# with-postgres.sh runs a command with a throwaway PostgreSQL cluster:
#
#   scripts/with-postgres.sh go test ./...
#
# It finds initdb and pg_ctl (on PATH, /usr/local/bin, /usr/lib/postgresql/*/bin;
# as root it installs the postgresql package when there are none), initialises a
# cluster in a temporary directory (trust authentication, a unix socket there and
# 127.0.0.1 on a free port, durability off: nothing in it outlives the command),
# exports KAMENG_TEST_POSTGRES (a URL to its admin database) and
# KAMENG_REQUIRE_POSTGRES=1, runs the command, and always stops and removes the
# cluster. PostgreSQL refuses to run as root, so as root the server runs as the
# postgres user (or nobody). The command's exit status is the script's.
set -euo pipefail

say() { printf 'with-postgres: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$#" -gt 0 ] || die "usage: $0 COMMAND [ARG...]"

find_bin() {
	local d
	for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/local/bin \
		$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	return 1
}

bindir="$(find_bin || true)"
if [ -z "$bindir" ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "no PostgreSQL server binaries; installing postgresql"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql </dev/null
		bindir="$(find_bin || true)"
	fi
	[ -n "$bindir" ] || die "no PostgreSQL server binaries (initdb, pg_ctl) found; install postgresql (make deps) or set KAMENG_TEST_POSTGRES"
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/kameng-pg-XXXXXX")"
as=()
if [ "$(id -u)" -eq 0 ]; then
	user=postgres
	id -u "$user" >/dev/null 2>&1 || user=nobody
	chown "$user" "$dir"
	if command -v runuser >/dev/null 2>&1; then
		as=(runuser -u "$user" --)
	elif command -v setpriv >/dev/null 2>&1; then
		as=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups)
	else
		rm -rf "$dir"
		die "running as root and neither runuser nor setpriv is available"
	fi
fi

started=""
cleanup() {
	if [ -n "$started" ]; then
		"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; die "initdb failed"; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

for attempt in 1 2 3; do
	port="$(free_port)"
	if "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB" \
		start >/dev/null 2>&1; then
		started=1
		break
	fi
done
[ -n "$started" ] || { cat "$dir/server.log" >&2 || true; die "the PostgreSQL server did not start"; }

say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
export KAMENG_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
export KAMENG_REQUIRE_POSTGRES=1
set +e
"$@"
status=$?
set -e
exit "$status"

# A private, throwaway PostgreSQL cluster for the test suite: Debian's
# `postgresql` package (installed when missing), a cluster in a temporary
# folder on a free loopback port, run as a non-root user, stopped on exit.
#
# Source it, then call `postgres_start`: it exports
#   MAILROOM_TEST_POSTGRES_URL      a superuser URL (database `postgres`)
#   MAILROOM_TEST_POSTGRES_RESTART  a command that restarts the server
# and registers `postgres_stop` to run when the calling shell exits.

# The server's binaries (a machine with only the client has the folder,
# without initdb).
postgres_bin() {
    local initdb
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
    [ -n "$initdb" ] && dirname "$initdb"
}

postgres_install() {
    if [ -n "$(postgres_bin)" ] && id postgres >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "scripts/test: PostgreSQL is not installed; run as root once, or: sudo apt-get install postgresql" >&2
        exit 1
    fi
    echo "scripts/test: installing PostgreSQL (Debian's postgresql package)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# Starts a cluster and sets MAILROOM_TEST_POSTGRES_DIR, _URL, _RESTART and
# POSTGRES_STOP (a command), without arranging for it to stop.
postgres_create() {
    postgres_install
    local bin dir port as
    bin=$(postgres_bin)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mailroom-pg.XXXXXX")
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as=()
    if [ "$(id -u)" = 0 ]; then
        # The server refuses to run as root.
        chown postgres "$dir"
        as=(runuser -u postgres --)
    fi
    printf '%s\n' mailroom-test > "$dir/password"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U mailroom --pwfile="$dir/password" \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # fsync off: a test cluster need not survive a power cut, and the suite
    # runs several times faster without the syncs (benchmarks turn it on).
    local options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${MAILROOM_TEST_POSTGRES_FSYNC:-off} -c max_connections=400"
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -o "$options" -l "$dir/server.log" -w start >/dev/null
    MAILROOM_TEST_POSTGRES_DIR=$dir
    export MAILROOM_TEST_POSTGRES_URL="postgres://mailroom:mailroom-test@127.0.0.1:$port/postgres"
    export MAILROOM_TEST_POSTGRES_RESTART="${as[*]} $bin/pg_ctl -D $dir/data -o '$options' -l $dir/server.log -w -m fast restart"
    POSTGRES_STOP="${as[*]} $bin/pg_ctl -D $dir/data -w -m immediate stop; rm -rf $dir"
}

postgres_start() {
    postgres_create
    trap postgres_stop EXIT
}

postgres_stop() {
    if [ -n "${POSTGRES_STOP:-}" ]; then
        eval "$POSTGRES_STOP" >/dev/null 2>&1 || true
        POSTGRES_STOP=
    fi
}

# Run as a command, it starts a cluster of its own for one test (which may
# restart or stop it without disturbing the others) and prints how to use
# it, one `name=value` line each: url, restart, stop.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ "${1:-}" = start ] || { echo "usage: $0 start" >&2; exit 2; }
    postgres_create
    printf 'url=%s\nrestart=%s\nstop=%s\n' "$MAILROOM_TEST_POSTGRES_URL" \
        "$MAILROOM_TEST_POSTGRES_RESTART" "$POSTGRES_STOP"
fi

#!/usr/bin/env bash
# A throwaway PostgreSQL server for the storage tests, listening only on 127.0.0.1.
#
#   eval "$(.ci/postgres.sh)"          # start; exports FLOWERBOT_TEST_POSTGRES_URL and
#                                      # FLOWERBOT_TEST_POSTGRES_DIR
#   .ci/postgres.sh start ENV_FILE     # the same, also written to ENV_FILE for `source`
#   .ci/postgres.sh stop               # stops the server in $FLOWERBOT_TEST_POSTGRES_DIR, deletes it
#
# Installs Debian's postgresql package when no server binaries are found (needs root). Run as
# root, the server runs as the postgres user; otherwise as the calling user. Only the export
# lines go to stdout; progress goes to stderr.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

# The newest server's bin folder (Debian keeps it off PATH), or nothing.
server_bin() {
    local found=(/usr/lib/postgresql/*/bin/initdb) initdb
    if [[ -x ${found[0]} ]]; then
        initdb=$(printf '%s\n' "${found[@]}" | sort -V | tail -n 1)
    else
        initdb=$(command -v initdb || true)
    fi
    if [[ -n $initdb ]]; then dirname "$initdb"; fi
}

install_if_missing() {
    [[ -n $(server_bin) ]] && return
    [[ $EUID -eq 0 ]] || { log "PostgreSQL is not installed and installing needs root"; exit 1; }
    log "installing PostgreSQL from Debian packages"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# Runs a server command as the cluster's owner (from /, which that user can always enter).
as_owner() {
    if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local env_file=${1:-}
    install_if_missing
    local bin dir port password url
    bin=$(server_bin)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/flowerbot-postgres.XXXXXX")
    [[ $EUID -eq 0 ]] && chown postgres: "$dir"
    port=$(free_port)
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    # The superuser logs in only through the socket in $dir, which only its owner can reach;
    # over TCP every role needs its password.
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions >&2
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c fsync=off" >&2
    # CREATEDB: the tests make a fresh database for each test.
    as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q >&2 <<SQL
CREATE ROLE flowerbot LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE flowerbot_test OWNER flowerbot;
SQL
    url="postgresql+psycopg://flowerbot:$password@127.0.0.1:$port/flowerbot_test"
    local exports="export FLOWERBOT_TEST_POSTGRES_URL='$url'
export FLOWERBOT_TEST_POSTGRES_DIR='$dir'"
    [[ -n $env_file ]] && echo "$exports" >"$env_file"
    log "server on 127.0.0.1:$port, data and log in $dir"
    echo "$exports"
}

stop() {
    local dir=${FLOWERBOT_TEST_POSTGRES_DIR:?"set by start; nothing to stop"}
    as_owner "$(server_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    rm -rf "$dir"
}

case ${1:-start} in
    start) start "${2:-}" ;;
    stop) stop ;;
    *) log "usage: $0 [start [ENV_FILE] | stop]"; exit 2 ;;
esac

#!/usr/bin/env bash
# The Docker daemon for tests/test_docker.py.
#
#   eval "$(.ci/dockerd.sh)"   # start dockerd when `docker info` fails; exports
#                              # FLOWERBOT_CI_DOCKERD_PID (empty when it was already running)
#   .ci/dockerd.sh stop        # stops the daemon this script started, if any
#
# Never fails the run: where the daemon cannot start (no privileges), the Docker test skips
# and says why. Only the export line goes to stdout; progress goes to stderr.
set -uo pipefail

log() { echo "dockerd.sh: $*" >&2; }

start() {
    if docker info >/dev/null 2>&1; then
        log "the Docker daemon is already running"
        echo "export FLOWERBOT_CI_DOCKERD_PID=''"
        return
    fi
    local log_file pid
    log_file=$(mktemp "${TMPDIR:-/tmp}/flowerbot-dockerd.XXXXXX.log")
    dockerd >"$log_file" 2>&1 &
    pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if docker info >/dev/null 2>&1; then
        log "started dockerd (pid $pid, log $log_file)"
    else
        log "dockerd did not start (log $log_file); the Docker test will skip"
        tail -n 5 "$log_file" >&2
    fi
    echo "export FLOWERBOT_CI_DOCKERD_PID='$pid'"
}

stop() {
    local pid=${FLOWERBOT_CI_DOCKERD_PID:-}
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    # dockerd stops its containers first; give it the time it needs.
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
    log "dockerd (pid $pid) still running after 30 s"
}

case ${1:-start} in
    start) start ;;
    stop) stop ;;
    *) log "usage: $0 [start | stop]"; exit 2 ;;
esac

#!/usr/bin/env bash
# Soak test of the daemon with the real CLI against the fake upstream, on
# loopback: concurrent clients mixing normal, streaming, disconnecting and
# bad requests for a bounded time and count; prints counts, latency, worker
# RSS, and fails on errors or leaked processes. Not part of scripts/test.sh.
#
#   scripts/soak.sh                              # 60 s, 8 clients, pool 2
#   SOAK_SECS=600 SOAK_CLIENTS=16 scripts/soak.sh
#
# Settings (see benches/soak/main.rs): SOAK_SECS, SOAK_CLIENTS, SOAK_MAX_REQUESTS,
# SOAK_POOL, SOAK_MAX_QUEUE, SOAK_SEED, SOAK_FAULT_PERCENT (upstream faults:
# broken streams, dropped connections, slow first bytes; every answer is then
# checked against what the upstream finally sent).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-claude-cli.sh
exec cargo bench --locked --bench soak

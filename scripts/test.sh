#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests drive (the pinned Claude
# CLI from npm into .tools/, bubblewrap for the agent sandbox, HAProxy for
# tests/integration/real_cli/cluster/, systemd-analyze for the unit check), then
# `cargo test`. End-to-end tests start real CLI processes (~200 MiB each), so
# test threads are limited.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-claude-cli.sh
./scripts/ensure-apt-package.sh bwrap bubblewrap
./scripts/ensure-apt-package.sh systemd-analyze systemd
# tests/integration/real_cli/dashboard_browser.rs drives the dashboard in headless Chromium.
./scripts/ensure-apt-package.sh chromium chromium
./scripts/ensure-apt-package.sh chromedriver chromium-driver
./scripts/install-python-sdks.sh
./scripts/install-haproxy.sh
./scripts/install-node-clients.sh
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-2}" "$@"

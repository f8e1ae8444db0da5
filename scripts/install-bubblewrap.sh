#!/usr/bin/env bash
# Makes sure bubblewrap (`bwrap`) is installed: agent workers run in its
# sandbox, and the agent end-to-end tests drive it. Idempotent: does nothing
# when bwrap is on PATH. Installs the distribution's package with apt-get as
# root; otherwise says what to run.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  echo "bwrap already installed at $(command -v bwrap) ($(bwrap --version))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bubblewrap is needed: install it (Debian/Ubuntu: sudo apt-get install -y bubblewrap; Fedora: sudo dnf install -y bubblewrap)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq bubblewrap
bwrap --version

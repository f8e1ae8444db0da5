#!/usr/bin/env bash
# Makes sure `systemd-analyze` is installed: tests/systemd.rs checks the
# shipped unit with it. Idempotent: does nothing when it is on PATH. Installs
# the distribution's `systemd` package with apt-get as root; otherwise says
# what to run.
set -euo pipefail
if command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze already installed ($(systemd-analyze --version | head -n 1))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "systemd-analyze is needed: install it (Debian/Ubuntu: sudo apt-get install -y systemd; Fedora: sudo dnf install -y systemd)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq systemd
systemd-analyze --version | head -n 1

#!/usr/bin/env bash
# Usage: ensure-apt-package.sh COMMAND PACKAGE
# Makes sure COMMAND is on PATH, installing the distribution's PACKAGE with
# apt-get when it is missing and this runs as root; otherwise says what to
# install. Idempotent: does nothing when COMMAND is already there. Used by
# scripts/test.sh for bwrap (bubblewrap: agent sandbox tests) and
# systemd-analyze (systemd: tests/integration/systemd/unit_file.rs checks the shipped unit), and
# chromium with chromedriver (chromium-driver: the dashboard's browser test).
set -euo pipefail
command_name="$1"
package="$2"
if command -v "$command_name" >/dev/null 2>&1; then
  echo "$command_name already installed at $(command -v "$command_name")"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "$command_name is needed: install it (Debian/Ubuntu: sudo apt-get install -y $package; Fedora: sudo dnf install -y $package)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$package"
command -v "$command_name"

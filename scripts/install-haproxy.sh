#!/usr/bin/env bash
# Installs HAProxy, which tests/integration/real_cli/cluster/ runs in front of several daemons
# with deploy/haproxy/haproxy.cfg. It is a system package (Debian/Ubuntu
# `haproxy`), installed with apt-get when missing and this runs as root.
# Idempotent: an HAProxy of at least the required version already on PATH
# (or in /usr/sbin) is left alone.
set -euo pipefail
HAPROXY_MIN_VERSION="${HAPROXY_MIN_VERSION:-2.6}"

found() {
  local bin version
  bin="$(command -v haproxy || echo /usr/sbin/haproxy)"
  [ -x "$bin" ] || return 1
  version="$("$bin" -v 2>/dev/null | sed -n 's/^HAProxy version \([0-9]*\.[0-9]*\).*/\1/p')"
  [ -n "$version" ] || return 1
  # sort -V puts the smaller version first: ours must not be it.
  [ "$(printf '%s\n%s\n' "$HAPROXY_MIN_VERSION" "$version" | sort -V | head -1)" = "$HAPROXY_MIN_VERSION" ] || return 1
  echo "haproxy $version already installed at $bin"
}

found && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: tests/integration/real_cli/cluster/ needs HAProxy >= $HAPROXY_MIN_VERSION; install it" >&2
  echo "       (Debian/Ubuntu, as root: apt-get install haproxy) and run $0 again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Only the binary is wanted: the package's own service is not started.
RUNLEVEL=1 apt-get install -y -qq --no-install-recommends haproxy
command -v systemctl >/dev/null 2>&1 && systemctl disable --now haproxy >/dev/null 2>&1 || true
found

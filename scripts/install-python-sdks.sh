#!/usr/bin/env bash
# Installs the official Anthropic and OpenAI Python SDKs, pinned, into a
# git-ignored virtualenv (.tools/pyenv) for tests/integration/real_cli/sdk_compat.rs. Idempotent:
# a second run with the right versions already present does nothing.
# Needs python3 with the venv module (Debian: apt-get install python3-venv).
set -euo pipefail
ANTHROPIC_SDK_VERSION="${ANTHROPIC_SDK_VERSION:-2.14.0}"
OPENAI_SDK_VERSION="${OPENAI_SDK_VERSION:-3.57.0}"
# The openai SDK's responses.connect() and tests/responses_ws.py's plain client.
WEBSOCKETS_VERSION="${WEBSOCKETS_VERSION:-15.0.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.tools/pyenv"
py="$venv/bin/python"

installed() {
  "$py" - "$ANTHROPIC_SDK_VERSION" "$OPENAI_SDK_VERSION" "$WEBSOCKETS_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
wanted = tuple(sys.argv[1:4])
sys.exit(0 if (version("anthropic"), version("openai"), version("websockets")) == wanted else 1)
PY
}

if [ -x "$py" ] && installed; then
  echo "anthropic $ANTHROPIC_SDK_VERSION and openai $OPENAI_SDK_VERSION already installed in $venv"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "error: python3 with the venv module is needed to install the SDKs for tests/integration/real_cli/sdk_compat.rs;" >&2
  echo "       install it (Debian/Ubuntu: apt-get install python3 python3-venv) and run $0 again" >&2
  exit 1
fi
# A half-made venv (no pip, wrong interpreter) is rebuilt from scratch.
[ -x "$py" ] && "$py" -m pip --version >/dev/null 2>&1 || { rm -rf "$venv"; python3 -m venv "$venv"; }
"$py" -m pip install --quiet --disable-pip-version-check \
  "anthropic==$ANTHROPIC_SDK_VERSION" "openai==$OPENAI_SDK_VERSION" "websockets==$WEBSOCKETS_VERSION"
installed
echo "installed anthropic $ANTHROPIC_SDK_VERSION and openai $OPENAI_SDK_VERSION in $venv"

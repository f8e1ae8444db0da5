#!/usr/bin/env bash
# Installs the pinned Claude Code CLI that the end-to-end tests drive, into a
# git-ignored folder of the repository (.tools/claude). Idempotent: a second
# run with the right version already present does nothing.
set -euo pipefail
CLAUDE_CLI_VERSION="${CLAUDE_CLI_VERSION:-2.1.197}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/claude"
bin="$dest/node_modules/.bin/claude"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^$CLAUDE_CLI_VERSION"; then
  echo "claude $CLAUDE_CLI_VERSION already installed at $bin"
  exit 0
fi
mkdir -p "$dest"
cd "$dest"
[ -f package.json ] || echo '{"name":"claude-pool-test-tools","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$CLAUDE_CLI_VERSION"
"$bin" --version

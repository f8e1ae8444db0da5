#!/usr/bin/env bash
# Installs the Node clients the Responses API tests drive, pinned, into a
# git-ignored folder of the repository (.tools/node): Codex CLI, the official
# `openai` TypeScript SDK, and the Vercel AI SDK with its OpenAI provider.
# Idempotent: a second run with the right versions present does nothing.
set -euo pipefail
CODEX_VERSION="${CODEX_VERSION:-0.171.0}"
OPENAI_JS_VERSION="${OPENAI_JS_VERSION:-7.59.0}"
AI_SDK_VERSION="${AI_SDK_VERSION:-7.0.173}"
AI_SDK_OPENAI_VERSION="${AI_SDK_OPENAI_VERSION:-4.0.118}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/node"
wanted=(
  "@openai/codex@$CODEX_VERSION"
  "openai@$OPENAI_JS_VERSION"
  "ai@$AI_SDK_VERSION"
  "@ai-sdk/openai@$AI_SDK_OPENAI_VERSION"
)

installed() {
  local spec name version
  for spec in "${wanted[@]}"; do
    name="${spec%@*}"
    version="${spec##*@}"
    node -e 'const [f, v] = process.argv.slice(1); process.exit(require(f).version === v ? 0 : 1)' \
      "$dest/node_modules/$name/package.json" "$version" 2>/dev/null || return 1
  done
  [ -x "$dest/node_modules/.bin/codex" ] && "$dest/node_modules/.bin/codex" --version >/dev/null 2>&1
}

if installed; then
  echo "node clients already installed in $dest: ${wanted[*]}"
  exit 0
fi
mkdir -p "$dest"
cd "$dest"
[ -f package.json ] || echo '{"name":"claude-pool-node-clients","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error "${wanted[@]}"
installed
"$dest/node_modules/.bin/codex" --version

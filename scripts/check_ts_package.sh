#!/usr/bin/env bash
# frontend-types as its users get it (issue 13): `npm pack` the package, install the tarball
# into an empty project, compile an application that imports it by name (examples/consumer.ts)
# with `tsc --strict`, and run that application against a real `marketcast serve`.
#
# Needs `make setup` (the .venv and frontend-types/node_modules); no network: the package is
# packed from a copy of frontend-types/ (the working tree's build/ is left alone), installed
# with `npm install --offline` (it has no dependencies), and the consumer's compiler and
# @types/node are frontend-types' own. Every step is bounded; the whole check takes ~15 s.
#
# Prints `consumer summary: {...}` (the consumer's JSON summary) and exits 0 on success.
# Settings: CHECK_TS_CLOSED_BARS (closed bars the consumer waits for, default 3); CHECK_TS_TSC
# (the consumer's compiler, default frontend-types' own: e.g. another TypeScript version's tsc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$ROOT/frontend-types"
TSC="${CHECK_TS_TSC:-$PKG/node_modules/.bin/tsc}"
PY="$ROOT/.venv/bin/python"
CLOSED_BARS="${CHECK_TS_CLOSED_BARS:-3}"

# No registry traffic from npm itself (update check, audit, funding notices).
export npm_config_update_notifier=false npm_config_audit=false npm_config_fund=false

say() { echo "check_ts_package: $*"; }
die() {
  echo "check_ts_package: FAILED: $*" >&2
  exit 1
}

command -v node >/dev/null || die "node is not on PATH"
command -v npm >/dev/null || die "npm is not on PATH"
[[ -x $TSC ]] || die "$TSC is missing: run \`make setup\` at the repository root"
[[ -x $PY ]] || die "$PY is missing: run \`make setup\` at the repository root"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-ts-package.XXXXXX")"
SERVER_PID=""
CHILD=""

# `bounded SECONDS COMMAND...`: COMMAND under `timeout`, in the background so that a signal to
# this script is handled at once (bash runs traps only between foreground commands).
bounded() {
  local limit=$1 status=0
  shift
  timeout "$limit" "$@" &
  CHILD=$!
  wait "$CHILD" || status=$?
  CHILD=""
  return "$status"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [[ -z $CHILD ]] || kill -TERM "$CHILD" 2>/dev/null || true
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do # up to 10 s for a graceful shutdown, then SIGKILL
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if ((status != 0)) && [[ -s $WORK/server.log ]]; then
    echo "check_ts_package: the server's last output:" >&2
    tail -n 30 "$WORK/server.log" >&2
  fi
  cd /
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- pack ---------------------------------------------------------------------------------------
say "npm pack (prepack compiles the package with tsc)"
mkdir "$WORK/pkg"
tar -C "$PKG" --exclude=./node_modules --exclude=./build --exclude=./dist -cf - . |
  tar -C "$WORK/pkg" -xf -
ln -s "$PKG/node_modules" "$WORK/pkg/node_modules"
cd "$WORK/pkg"
bounded 120 npm pack --offline --silent --pack-destination "$WORK" >/dev/null || die "npm pack failed"
shopt -s nullglob
tarballs=("$WORK"/*.tgz)
shopt -u nullglob
((${#tarballs[@]} == 1)) || die "expected one tarball from npm pack, got ${#tarballs[@]}"
TARBALL="${tarballs[0]}"
say "packed $(basename "$TARBALL") ($(wc -c <"$TARBALL") bytes)"

# What users need, and nothing else: the compiled JavaScript and declarations, README, LICENSE.
tar -tzf "$TARBALL" | sed 's|^package/||' | sort >"$WORK/contents"
for required in package.json README.md LICENSE build/src/index.js build/src/index.d.ts \
  build/src/client.js build/src/client.d.ts build/src/generated/messages.d.ts; do
  grep -qxF "$required" "$WORK/contents" || die "the tarball lacks $required"
done
if grep -vE '^(package\.json|README\.md|LICENSE|build/src/.+\.(js|d\.ts))$' "$WORK/contents"; then
  die "the tarball holds the files above, which users do not need"
fi

# -- install into an empty project --------------------------------------------------------------
say "npm install of the tarball into an empty project"
APP="$WORK/app"
mkdir "$APP"
cat >"$APP/package.json" <<'EOF'
{ "name": "marketcast-consumer-check", "version": "0.0.0", "private": true, "type": "module" }
EOF
cd "$APP"
bounded 120 npm install --offline --no-audit --no-fund --loglevel=error "$TARBALL" >/dev/null ||
  die "npm install of the tarball failed"
# The consumer's own dev dependency, as an application would have it: @types/node (from
# frontend-types, so nothing is downloaded; its undici-types resolves next to it there).
mkdir -p "$APP/node_modules/@types"
ln -s "$PKG/node_modules/@types/node" "$APP/node_modules/@types/node"

# -- compile the consumer -----------------------------------------------------------------------
cp "$PKG/examples/consumer.ts" "$APP/consumer.ts"
cat >"$APP/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "strict": true,
    "target": "es2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "types": ["node"],
    "skipLibCheck": false,
    "outDir": "out"
  },
  "files": ["consumer.ts"]
}
EOF
say "tsc --strict, TypeScript $("$TSC" --version | sed 's/^Version //') (module nodenext; the package's .d.ts checked too)"
bounded 120 "$TSC" -p tsconfig.json --strict || die "the consumer does not compile"
# A bundler's view of the same package (Vite, esbuild, webpack: the `exports` conditions).
say "tsc --strict (moduleResolution bundler)"
bounded 120 "$TSC" -p tsconfig.json --strict --noEmit --module esnext --moduleResolution bundler ||
  die "the consumer does not compile with moduleResolution bundler"

# -- a real server ------------------------------------------------------------------------------
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
# Only the settings below: none inherited from the caller's environment.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^MARKETCAST_' || true)
say "starting marketcast serve on 127.0.0.1:$PORT (simulator, 60x time)"
cd "$ROOT" # the server runs from the repository, as `make run` does
MARKETCAST_HOST=127.0.0.1 MARKETCAST_PORT="$PORT" MARKETCAST_SIM_SPEED=60 \
  "$PY" -m marketcast.cli serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ready=""
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up"
  if "$PY" -c 'import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).close()
except Exception:
    sys.exit(1)' "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
[[ -n $ready ]] || die "http://127.0.0.1:$PORT/readyz did not answer 200 within 30 s"

# -- run the consumer ---------------------------------------------------------------------------
# Node 22+ has a global WebSocket; Node 20 has it behind --experimental-websocket.
node_flags=()
if (($(node -p 'Number(process.versions.node.split(".")[0])') < 22)); then
  node_flags=(--experimental-websocket)
fi
say "running the consumer on node $(node --version) ${node_flags[*]:-}"
cd "$APP"
consumer_status=0
bounded 60 node ${node_flags[@]+"${node_flags[@]}"} out/consumer.js \
  "ws://127.0.0.1:$PORT/api/v1/ws" "$CLOSED_BARS" 30000 >"$WORK/consumer.out" ||
  consumer_status=$?
cat "$WORK/consumer.out"
((consumer_status == 0)) || die "the consumer exited with status $consumer_status"
grep -q '^consumer summary: ' "$WORK/consumer.out" || die "the consumer printed no summary"
say "OK"

#!/usr/bin/env bash
# Try hexr-pid-mapper with a real SPIRE on one Linux host, in a temp dir,
# on loopback and unix sockets only:
#
#   spire-server 1.13.3   scripts/spire/server.conf (SQLite, memory keys, join_token)
#   our daemon            flat layout: markers in $WORK/context
#   spire-agent 1.13.3    scripts/spire/agent.conf + the WorkloadAttestor "hexr"
#                         block of daemonset/spire-agent-hexr.conf
#   entries               from `hexr-pid-mapper registrations` for content-crew
#
# then runs `spire-agent api fetch x509` as the researcher and as the writer
# (through `hexr-pid-mapper run-as`, which writes the role marker) and prints
# the SPIFFE ID of each certificate. Everything is stopped and removed at the
# end; HEXR_TRY_KEEP=1 leaves it running and prints how to use and stop it.
#
# Needs: Linux, Node >= 20.19 with `npm ci` done, Go >= 1.25 (SPIRE is built
# once into ~/.cache/hexr, several minutes the first time), gcc.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
say() { printf '\n==> %s\n' "$*"; }

bin="$(scripts/build-spire.sh | tail -1)"
npm run build --silent
node=$(command -v node)
main="$repo/dist/main.js"

work="$(mktemp -d "${TMPDIR:-/tmp}/hexr-try.XXXXXX")"
pids=()
cleanup() {
  local rc=$?
  if [ "${HEXR_TRY_KEEP:-}" = 1 ] && [ "$rc" = 0 ]; then return; fi
  if [ "$rc" != 0 ]; then
    for f in server daemon agent; do
      [ -f "$work/$f.log" ] && { echo "--- last lines of $f.log"; tail -15 "$work/$f.log"; }
    done >&2
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

export HEXR_SPIRE_SERVER_DIR="$work/server" HEXR_SPIRE_AGENT_DIR="$work/agent" HEXR_SPIRE_SOCKET_DIR="$work/sockets"
export HEXR_SPIRE_BUNDLE="$work/bundle.pem"
HEXR_SPIRE_SERVER_PORT=$("$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export HEXR_SPIRE_SERVER_PORT
mkdir -p "$HEXR_SPIRE_SERVER_DIR/data" "$HEXR_SPIRE_AGENT_DIR" "$HEXR_SPIRE_SOCKET_DIR" "$work/context" "$work/hexr"
server_sock="$HEXR_SPIRE_SERVER_DIR/api.sock"
agent_sock="$HEXR_SPIRE_SOCKET_DIR/agent.sock"
wait_for() { # $1 = what, then a command that succeeds when ready
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out waiting for $what" >&2; exit 1
}

say "spire-server on 127.0.0.1:$HEXR_SPIRE_SERVER_PORT"
"$bin/spire-server" run -config scripts/spire/server.conf -expandEnv >"$work/server.log" 2>&1 &
pids+=($!)
wait_for spire-server "$bin/spire-server" healthcheck -socketPath "$server_sock"
"$bin/spire-server" bundle show -socketPath "$server_sock" >"$HEXR_SPIRE_BUNDLE"
token=$("$bin/spire-server" token generate -socketPath "$server_sock" -spiffeID spiffe://example.org/ns/spire/sa/spire-agent | awk '/Token:/ {print $2}')

say "hexr-pid-mapper daemon (flat layout, markers in $work/context)"
"$node" --optimize-for-size "$main" daemon --layout flat --context-root "$work/context" --container-context-dir "$work/context" --state-dir "$work/state" \
  --socket "$work/hexr/pid-mapper.sock" --debug-addr 127.0.0.1:0 --metrics-addr off >"$work/daemon.log" 2>&1 &
pids+=($!)
wait_for "the daemon" test -S "$work/hexr/pid-mapper.sock"

# The shipped hexr block, with what differs on a plain host: the daemon socket,
# and plugin_cmd = this node running dist/main.js plugin (no /opt/hexr here);
# plugin_checksum is then the sha256 of the node binary.
block=$(sed -n '/^plugins {/,/^}/p' daemonset/spire-agent-hexr.conf | sed '1d;$d' \
  | sed -e "s|^\(\s*plugin_cmd\s*=\s*\).*|\1\"$node\"|" \
        -e "s|^\(\s*plugin_args\s*=\s*\).*|\1[\"$main\", \"plugin\"]|" \
        -e "s|^\(\s*plugin_checksum\s*=\s*\).*|\1\"$(sha256sum "$node" | cut -d' ' -f1)\"|" \
        -e "s|^\(\s*daemon_socket\s*=\s*\).*|\1\"$work/hexr/pid-mapper.sock\"|")
awk -v block="$block" '$0 ~ /^[[:space:]]*# hexr-attestor[[:space:]]*$/ { print block; next } { print }' \
  scripts/spire/agent.conf >"$work/agent.conf"
"$bin/spire-agent" validate -config "$work/agent.conf" -expandEnv

say "registration entries (hexr-pid-mapper registrations), scoped to unix:uid:$(id -u)"
# No Kubernetes here: the k8s:ns + k8s:sa scope becomes the user that runs the
# roles (the flat layout has no pod scope; see README "Trust model").
"$node" "$main" registrations --format entries daemonset/registrations/contexts/*.json \
  | sed -n 's/^spire-server entry create \(.*\) -selector k8s:ns:[^ ]* -selector k8s:sa:[^ ]* \(.*\)$/\1 -selector unix:uid:'"$(id -u)"' \2/p' \
  | while read -r args; do
      # shellcheck disable=SC2086 # the generated arguments are shell-safe words
      "$bin/spire-server" entry create -socketPath "$server_sock" $args | awk '/SPIFFE ID/ {print "  " $0}'
    done

say "spire-agent with WorkloadAttestor \"unix\" and \"hexr\" (Workload API: $agent_sock)"
"$bin/spire-agent" run -config "$work/agent.conf" -expandEnv -joinToken "$token" >"$work/agent.log" 2>&1 &
pids+=($!)
wait_for spire-agent "$bin/spire-agent" healthcheck -socketPath "$agent_sock"

fetch_as() { # role: run-as writes the marker for the shell, which then becomes spire-agent api fetch
  local role=$1 out="$work/svid-$1"
  mkdir -p "$out"
  for _ in $(seq 1 20); do # entries reach a new agent at its first sync (5 s)
    if "$node" "$main" run-as --context-dir "$work/context" --agent content-crew --tenant acme --role "$role" -- \
         sh -c "sleep 0.5; exec '$bin/spire-agent' api fetch x509 -socketPath '$agent_sock' -write '$out' >/dev/null" 2>/dev/null; then
      printf '%-10s %s\n' "$role" "$("$node" -e 'console.log(new (require("crypto").X509Certificate)(require("fs").readFileSync(process.argv[1])).subjectAltName)' "$out/svid.0.pem")"
      return 0
    fi
    sleep 1
  done
  echo "$role: no SVID" >&2; return 1
}
say "X.509-SVIDs fetched by the role processes themselves"
fetch_as researcher
fetch_as writer
printf '%-10s ' "no marker"
"$bin/spire-agent" api fetch x509 -socketPath "$agent_sock" -silent 2>&1 | tail -1 || true

if [ "${HEXR_TRY_KEEP:-}" = 1 ]; then
  say "still running (logs and configs in $work)"
  cat <<EOF
  fetch as a role:  node $main run-as --context-dir $work/context --agent content-crew --tenant acme --role editor -- \\
                      sh -c "sleep 0.5; exec $bin/spire-agent api fetch x509 -socketPath $agent_sock"
  the PID map:      node $main pidmap --addr \$(grep -o '"debug_addr":"[^"]*"' $work/daemon.log | cut -d'"' -f4)
  stop:             kill ${pids[*]}; rm -rf $work
EOF
fi

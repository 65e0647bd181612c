#!/usr/bin/env bash
# Builds the real spire-server and spire-agent pinned by test/go/go.mod into a
# versioned cache directory, and the Go test programs of test/go (the
# go-plugin host, the Workload API clients) next to them.
#
#   scripts/build-spire.sh          # prints the bin directory on its last line
#
#   HEXR_SPIRE_BIN    bin directory (default: ${XDG_CACHE_HOME:-~/.cache}/hexr/spire-v<version>/bin)
#   HEXR_GO           the go command (default: /usr/local/go/bin/go if present, else go on PATH)
#
# SPIRE is built only when the binaries of that version are missing (each one
# is asked for its --version); the first build on a fresh machine downloads
# about 2 GB of modules and compiles for several minutes, the next ones take
# a second. The test programs are always rebuilt (a few seconds with a warm
# Go build cache; go build skips what has not changed). GOCACHE and GOMODCACHE
# are Go's defaults (~/.cache/go-build, ~/go/pkg/mod): cache those in CI.
# Concurrent runs (parallel test files) serialize on a lock in the cache dir.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
mod="$here/test/go"

go_cmd="${HEXR_GO:-}"
if [ -z "$go_cmd" ]; then
  if [ -x /usr/local/go/bin/go ]; then go_cmd=/usr/local/go/bin/go; else go_cmd="$(command -v go || true)"; fi
fi
[ -n "$go_cmd" ] || { echo "build-spire: no Go toolchain (install Go >= 1.25 at /usr/local/go)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GO111MODULE=on CGO_ENABLED=1

version="$(cd "$mod" && "$go_cmd" list -m -f '{{.Version}}' github.com/spiffe/spire)"
version="${version#v}"
bin="${HEXR_SPIRE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/hexr/spire-v$version/bin}"
mkdir -p "$bin"

# One build at a time per bin dir.
exec 9>"$bin/.lock"
flock 9

say() { printf 'build-spire: %s\n' "$*" >&2; }

has_version() { # $1 = binary; SPIRE prints its version on stderr
  [ -x "$bin/$1" ] && [ "$("$bin/$1" --version 2>&1 | tr -d '[:space:]')" = "$version" ]
}

if has_version spire-server && has_version spire-agent; then
  say "SPIRE $version already built in $bin"
else
  say "building SPIRE $version (spire-server, spire-agent) into $bin with $("$go_cmd" version)"
  say "first build on a fresh machine: module download + compile takes several minutes"
  t0=$(date +%s)
  log="$bin/build.log"
  say "downloading modules (go mod download; GOMODCACHE=$("$go_cmd" env GOMODCACHE))"
  (cd "$mod" && "$go_cmd" mod download) || { say "go mod download failed"; exit 1; }
  say "modules ready after $(( $(date +%s) - t0 )) s; compiling (progress every 250 packages; full log in $log)"
  # As SPIRE's Makefile builds releases: -s -w and the version stamped in.
  if ! (cd "$mod" && "$go_cmd" build -v -trimpath \
      -ldflags "-s -w -X github.com/spiffe/spire/pkg/common/version.gittag=$version" \
      -o "$bin/.new/" github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent) 2>&1 \
      | tee "$log" | awk '{ n++ } n % 250 == 0 { printf "build-spire: %d packages compiled (%s)\n", n, $0 > "/dev/stderr" }'; then
    say "go build failed; last lines of $log:"; tail -30 "$log" >&2; exit 1
  fi
  mv -f "$bin/.new/spire-server" "$bin/spire-server"
  mv -f "$bin/.new/spire-agent" "$bin/spire-agent"
  rmdir "$bin/.new"
  has_version spire-server && has_version spire-agent || { say "built binaries do not report version $version"; exit 1; }
  say "SPIRE $version built in $(( $(date +%s) - t0 )) s"
fi

# Test programs of the same module: exactly SPIRE's go-plugin, grpc, protobuf
# and hclog versions.
t0=$(date +%s)
(cd "$mod" && "$go_cmd" build -trimpath -o "$bin/" ./cmd/...)
say "test programs (./cmd/...) built in $(( $(date +%s) - t0 )) s"
echo "$bin"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Go binding tests (bindings/go): `go test -race` against build/, offline
# (GOPROXY=off: standard library only); then examples/grpc-go (grpc-go from
# golang-google-grpc-dev over the binding) against `meshctl grpc serve`.  Run by scripts/test after `make`;
# prints "go: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$top/build}  # another build dir, e.g. build-asan
lib="$build/libmesh/.libs"
if [ ! -e "$lib/libmesh.so" ]; then
  echo "go.sh: $lib/libmesh.so missing: build first (make -C build)" >&2
  echo "go: 0 passed, 1 failed"
  exit 1
fi
if ! command -v go >/dev/null; then
  echo "go.sh: go not installed (apt-get install golang-go)" >&2
  echo "go: 0 passed, 1 failed"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-go.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
export GOCACHE="${MESH_GOCACHE:-$build/go-cache}"
export GOPATH="$tmp/gopath"
export CGO_ENABLED=1
export CGO_CFLAGS="-I$top/include -O2 -g"
export CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib"
# mesh.go says `#cgo pkg-config: mesh`: the build tree's mesh.pc answers it
# (its -I/-L name the prefix; the flags above find the tree first).
export PKG_CONFIG_PATH="$build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export MESH_TOP="$top"
cd "$top/bindings/go" || exit 1
out="$tmp/go-test.out"
go vet ./... >"$tmp/vet.out" 2>&1
vet=$?
timeout -k 5 300 go test -race -count=1 -timeout 120s -v ./... "$@" >"$out" 2>&1
rc=$?
p=$(grep -cE '^\s*--- PASS' "$out")
f=$(grep -cE '^\s*--- FAIL' "$out")
if [ $vet -ne 0 ]; then
  echo "FAIL: go vet"; sed 's/^/    /' "$tmp/vet.out" | head -40
  f=$((f + 1))
else
  p=$((p + 1))
fi
if [ $rc -ne 0 ]; then
  grep -E '^(\s*--- FAIL|FAIL|panic|WARNING: DATA RACE)' "$out" | head -20
  tail -60 "$out"
  [ "$f" -eq 0 ] && f=1  # build failure, race or timeout: still a failure
fi
if [ -n "${VERBOSE:-}" ]; then cat "$out"; fi

# The Go examples of docs/bindings.md: built in a scratch module that
# points at this one, run, and their output compared with the page.
docrc=0
n=$(python3 "$top/bindings/docblocks.py" "$top/docs/bindings.md" go "$tmp/doc")
if [ "${n:-0}" -lt 1 ]; then
  echo "FAIL: no tested Go example in docs/bindings.md"; f=$((f + 1)); docrc=1
fi
for i in $(seq 1 "${n:-0}"); do
  ex="$tmp/example$i"
  mkdir -p "$ex"
  cp "$tmp/doc/$i.code" "$ex/main.go"
  printf 'module example\n\ngo 1.19\n\nrequire libmesh.dev/mesh v0.0.0\n\nreplace libmesh.dev/mesh => %s\n' \
    "$top/bindings/go" >"$ex/go.mod"
  if (cd "$ex" && timeout -k 5 120 go run . >"$ex/stdout" 2>"$ex/stderr") &&
     cmp -s "$ex/stdout" "$tmp/doc/$i.out"; then
    p=$((p + 1))
  else
    echo "FAIL: docs/bindings.md Go example $i"
    diff "$tmp/doc/$i.out" "$ex/stdout" | sed 's/^/    /' | head -20
    sed 's/^/    /' "$ex/stderr" | head -20
    f=$((f + 1)); docrc=1
  fi
done
# grpc-go (Debian golang-google-grpc-dev, GOPATH mode, offline) over the
# binding's DialContext, against `meshctl grpc serve`.
exrc=0
if bash "$top/examples/grpc-go/run.sh" "$build"; then
  p=$((p + 1))
else
  echo "FAIL: examples/grpc-go"; f=$((f + 1)); exrc=1
fi
echo "go: $p passed, $f failed"
[ $rc -eq 0 ] && [ $vet -eq 0 ] && [ $docrc -eq 0 ] && [ $exrc -eq 0 ]

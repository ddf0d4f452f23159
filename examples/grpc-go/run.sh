#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build examples/grpc-go offline against Debian's golang-google-grpc-dev
# (GOPATH mode: /usr/share/gocode, no module proxy) and the Go binding,
# start `meshctl grpc serve` with a fresh development CA, run the example
# against it and compare its output.  Used by scripts/test.d/go.sh; exit
# status 0 when the output is the expected one.
#   run.sh BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build}
meshctl="$build/tools/meshctl"
gocode=/usr/share/gocode
if [ ! -d "$gocode/src/google.golang.org/grpc" ]; then
  echo "grpc-go example: $gocode/src/google.golang.org/grpc missing" \
       "(apt-get install golang-google-grpc-dev)" >&2
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-grpc-go.XXXXXX")
srv=
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
# GOPATH: the example and the binding (import path libmesh.dev/mesh) in a
# scratch tree, then Debian's sources
mkdir -p "$tmp/gopath/src/libmesh.dev" "$tmp/gopath/src/example"
ln -s "$top/bindings/go" "$tmp/gopath/src/libmesh.dev/mesh"
cp "$here/main.go" "$tmp/gopath/src/example/"
lib="$build/libmesh/.libs"
export GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local
export GOPATH="$tmp/gopath:$gocode"
export GOCACHE="${MESH_GOCACHE:-$build/go-cache}"
export CGO_ENABLED=1 CGO_CFLAGS="-I$top/include -O2 -g"
export CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib"
export PKG_CONFIG_PATH="$build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
if ! (cd "$tmp/gopath/src/example" &&
      timeout -k 5 600 go build -o "$tmp/grpc-go-example" .) \
      >"$tmp/build.log" 2>&1; then
  echo "grpc-go example: build failed" >&2
  sed 's/^/    /' "$tmp/build.log" | head -30 >&2
  exit 1
fi
cd "$tmp" || exit 1
"$meshctl" ca init --td example.org >/dev/null &&
"$meshctl" ca issue --id spiffe://example.org/ns/default/sa/echo \
  --out-cert srv.crt --out-key srv.key >/dev/null &&
"$meshctl" ca issue --id spiffe://example.org/ns/default/sa/grpc-go \
  --out-cert cli.crt --out-key cli.key >/dev/null || exit 1
for n in srv cli; do
  printf '{"identity": {"cert": "%s/%s.crt", "key": "%s/%s.key", "bundle": "%s/ca.crt"}, "tls": {"alpn": ["h2"]}}\n' \
    "$tmp" "$n" "$tmp" "$n" "$tmp" >"$n.json"
done
"$meshctl" grpc serve --config srv.json --listen 127.0.0.1:0 \
  >serve.out 2>serve.err &
srv=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' serve.out)
  [ -n "$port" ] && break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "grpc-go example: meshctl grpc serve did not start" >&2
  cat serve.err >&2
  exit 1
fi
timeout -k 5 60 "$tmp/grpc-go-example" -config cli.json \
  -to "127.0.0.1:$port" >out.txt 2>err.txt
rc=$?
cat >want.txt <<'WANT'
Echo: hello from grpc-go
Stream: one two three
Nope: Unimplemented
server: spiffe://example.org/ns/default/sa/echo
WANT
if [ $rc -ne 0 ] || ! cmp -s want.txt out.txt; then
  echo "grpc-go example: exit $rc, output differs" >&2
  diff want.txt out.txt | sed 's/^/    /' >&2
  sed 's/^/    /' err.txt serve.err | head -20 >&2
  exit 1
fi
# the server saw grpc-go's calls from the client's SPIFFE ID
grep -q 'sa/grpc-go' serve.err || { echo "grpc-go example: server log:" >&2;
  cat serve.err >&2; exit 1; }
exit 0

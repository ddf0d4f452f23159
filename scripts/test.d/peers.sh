#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A suite whose outside peer is missing reports SKIP (exit 77) and names
# the Debian package to install; with the peer present it runs.  Each
# binary is run with PATH stripped of its peer (a directory of links to
# every other program).  Prints "peers: N passed, M failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$top/build}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-peers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
p=0; f=0
# stripped DIR PROG...: DIR gets links to every program in PATH but PROGs.
stripped() {
  local dir=$1; shift
  mkdir -p "$dir"
  local IFS=:
  for d in $PATH; do
    for x in "$d"/*; do
      local b=${x##*/}
      case " $* " in *" $b "*) continue ;; esac
      [ -e "$dir/$b" ] || ln -s "$x" "$dir/$b" 2>/dev/null
    done
  done
}
# case BINARY PEER PACKAGE: SKIP without PEER, naming PACKAGE.
case_() {
  local bin=$1 peer=$2 pkg=$3 dir="$tmp/path-$2"
  [ -d "$dir" ] || stripped "$dir" "$peer"
  (cd "$build" && PATH="$dir" timeout -k 5 300 "tests/$bin" >"$tmp/$bin-$peer.out" 2>&1)
  local rc=$?
  if [ $rc -eq 77 ] && grep -q "SKIP: $peer not installed (apt-get install $pkg)" "$tmp/$bin-$peer.out"; then
    p=$((p + 1))
  else
    echo "FAIL: $bin without $peer: exit $rc, expected 77 naming $pkg"
    tail -20 "$tmp/$bin-$peer.out" | sed 's/^/    /'
    f=$((f + 1))
  fi
}
case_ test_metrics promtool prometheus
case_ test_discovery_dns dnsmasq dnsmasq-base
case_ test_tls_interop openssl openssl
case_ test_tls_interop haproxy haproxy
case_ test_export protoc protobuf-compiler
case_ test_admin chromium chromium
# With every peer present the same binary runs and passes (exit 0).
if (cd "$build" && timeout -k 5 300 tests/test_metrics >"$tmp/full.out" 2>&1); then
  p=$((p + 1))
else
  echo "FAIL: test_metrics with its peers installed"; tail -20 "$tmp/full.out"; f=$((f + 1))
fi
echo "peers: $p passed, $f failed"
[ "$f" -eq 0 ]

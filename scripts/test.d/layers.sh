#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The layering rule of libmesh/ (scripts/check-layers: direction per the
# layer table, no two-way pair, no cycle, one surface header per part, no
# library .c over 600 lines, no comment naming a missing file), first proven
# to catch violations on small synthetic trees, then run on this tree.
# Prints "layers: N passed, M failed" (the tree's checks plus the self-tests).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
self_ok=0; self_ko=0
# expect NAME CHECK: check-layers on $tmp/NAME must fail, naming CHECK.
expect() {
  if MESH_PROJECT="$tmp/$1" python3 "$top/scripts/check-layers" >"$tmp/$1.out" 2>&1; then
    echo "FAIL: self-test $1: check-layers passed a tree that breaks '$2'"; self_ko=$((self_ko+1))
  elif grep -q "^FAIL: $2\$" "$tmp/$1.out"; then
    self_ok=$((self_ok+1))
  else
    echo "FAIL: self-test $1: no 'FAIL: $2' in:"; sed 's/^/    /' "$tmp/$1.out"; self_ko=$((self_ko+1))
  fi
}
part() { # part TREE NAME [C-SOURCE]
  mkdir -p "$tmp/$1/libmesh/$2"
  printf '#ifndef X_%s\n#define X_%s\nint mesh__%s_fn(void);\n#endif\n' "$2" "$2" "$2" >"$tmp/$1/libmesh/$2/$2.h"
  printf '#include "%s/%s.h"\n%s\nint mesh__%s_fn(void) {\n  return 0;\n}\n' "$2" "$2" "${3:-}" "$2" \
    >"$tmp/$1/libmesh/$2/$2.c"
}
part up core '#include "tls/tls.h"'; part up tls;                    expect up direction
part call core 'int f(void) { return mesh__tls_fn(); }'; part call tls; expect call direction
part pair tls '#include "discovery/discovery.h"'; part pair discovery '#include "tls/tls.h"'
expect pair two-way
part new core; part new frobnicate;                                  expect new table
part surf tls; part surf identity; echo 'int x;' >"$tmp/surf/libmesh/identity/pem.h"
printf '#include "identity/pem.h"\n' >>"$tmp/surf/libmesh/tls/tls.c";   expect surf surface
part long core; seq 1 601 | sed 's|^|// line |' >>"$tmp/long/libmesh/core/core.c"; expect long length
part ref core '/* see core/nothere.c */';                             expect ref refs
echo "layers-selftest: $self_ok passed, $self_ko failed"
python3 "$top/scripts/check-layers"
rc=$?
[ "$self_ko" -eq 0 ] && [ $rc -eq 0 ]

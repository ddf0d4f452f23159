# SPDX-License-Identifier: Apache-2.0
# The whole CUnit suite again against the OpenSSL 3 TLS backend
# (./configure --with-tls=openssl, TLS 1.3 on by default), then the
# cross-backend interop test: this tree's libmesh against the default
# (mbedTLS) tree's meshctl, and the default tree's libmesh against this
# tree's meshctl, TLS 1.2 and 1.3, full and resumed.  And libmesh.so of
# the OpenSSL tree has nothing of mbedTLS in it.
set -uo pipefail
. scripts/lib.sh
build_tree build-openssl --with-tls=openssl || exit 1
bash scripts/check-tree build-openssl
rc=$?
# An OpenSSL build is OpenSSL only (curl's model): no mbedTLS symbol in
# libmesh.so, defined or wanted, and no libmbed* among its libraries.
so=build-openssl/libmesh/.libs/libmesh.so
syms=$( { nm -D "$so"; nm "$so"; } 2>/dev/null | grep -i 'mbedtls' | sort -u)
libs=$(ldd "$so" | grep -i 'libmbed')
if [ -f "$so" ] && [ -z "$syms" ] && [ -z "$libs" ]; then
  echo "tls-openssl(no mbedTLS in libmesh.so): 1 passed, 0 failed"
else
  echo "tls-openssl(no mbedTLS in libmesh.so): 0 passed, 1 failed"
  echo "---- mbedTLS in $so:"; echo "$syms" | head -20; echo "$libs"
  rc=1
fi
# The default tree (mbedTLS): built by the check stage already; build it
# here too so that this stage also runs alone.
build_tree build || exit 1
make -C build-openssl -j"$(nproc)" -s tests/test_tls_cross >/dev/null &&
  make -C build -j"$(nproc)" -s tests/test_tls_cross >/dev/null || exit 1
for pair in "build-openssl build" "build build-openssl"; do
  set -- $pair
  log="$1/tests/test_tls_cross.cross.log"
  MESH_PEER_MESHCTL="$PWD/$2/tools/meshctl" "$1/tests/test_tls_cross" >"$log" 2>&1
  r=$?
  grep -h " passed, [0-9]* failed$" "$log" | sed "s/^test_tls_cross/test_tls_cross($1 vs $2)/" ||
    echo "test_tls_cross($1 vs $2): 0 passed, 1 failed"
  if [ $r -ne 0 ]; then echo "---- $log"; tail -40 "$log"; rc=1; fi
done
exit $rc

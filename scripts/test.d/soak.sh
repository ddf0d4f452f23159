# SPDX-License-Identifier: Apache-2.0
# The bounded soak (tests/test_soak.c) for MESH_SOAK_SECONDS (default 60)
# on the normal build: continuous calls with endpoint churn and SVID
# rotation; memory and descriptors must stay bounded, no call may fail.
# make check runs the same binary for 5 s.  Prints the per-second samples
# and one "soak: ..." line of figures (kept in build/soak.log; quoted in
# docs/reliability.md).
set -uo pipefail
. scripts/lib.sh
secs=${MESH_SOAK_SECONDS:-60}
make -C build -s tests/test_soak >/dev/null || { echo "test_soak: 0 passed, 1 failed"; exit 1; }
# Bounded even if something hangs: the soak, then a minute for teardown.
(cd build && MESH_SOAK_SECONDS=$secs timeout -k 10 $((secs + 60)) \
  ./tests/test_soak > soak.log 2>&1)
rc=$?
grep -E "^  t=|^soak:|first failure|test_soak: " build/soak.log
[ $rc -eq 0 ] || { tail -40 build/soak.log; grep -q "test_soak: " build/soak.log || echo "test_soak: 0 passed, 1 failed (exit $rc)"; }
exit $rc

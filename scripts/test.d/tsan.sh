# SPDX-License-Identifier: Apache-2.0
# The concurrency tests (listed in tests/tsan.list) under ThreadSanitizer.
set -uo pipefail
. scripts/lib.sh
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
build_tree build-tsan --enable-sanitizers=thread || exit 1
rc=0
while read -r t; do
  case "$t" in ''|\#*) continue ;; esac
  make -C build-tsan -s "tests/$t" >/dev/null || { echo "$t: 0 passed, 1 failed"; rc=1; continue; }
  (cd build-tsan && "./tests/$t" > "tests/$t.tsan.log" 2>&1) || { rc=1; tail -40 "build-tsan/tests/$t.tsan.log"; }
  grep -h " passed, [0-9]* failed$" "build-tsan/tests/$t.tsan.log" | sed 's/^/tsan /' || echo "tsan $t: 0 passed, 1 failed"
done < tests/tsan.list
exit $rc

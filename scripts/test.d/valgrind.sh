# SPDX-License-Identifier: Apache-2.0
# A valgrind memcheck pass over the tests listed in tests/valgrind.list:
# no invalid access, no definite or indirect leak.
set -uo pipefail
. scripts/lib.sh
rc=0
while read -r t; do
  case "$t" in ''|\#*) continue ;; esac
  make -C build -s "tests/$t" >/dev/null || { echo "valgrind $t: 0 passed, 1 failed"; rc=1; continue; }
  log="build/tests/$t.vg.log"
  (cd build && valgrind --quiet --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
      --trace-children=no "./tests/$t" > "tests/$t.vg.log" 2>&1)
  r=$?
  [ $r -ne 0 ] && { rc=1; tail -40 "$log"; }
  grep -h " passed, [0-9]* failed$" "$log" | sed 's/^/valgrind /' || echo "valgrind $t: 0 passed, 1 failed"
  [ $r -eq 99 ] && echo "valgrind $t: 0 passed, 1 failed (memcheck errors)"
done < tests/valgrind.list
exit $rc

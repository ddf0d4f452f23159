# SPDX-License-Identifier: Apache-2.0
# A valgrind memcheck pass over the tests listed in tests/valgrind.list:
# no invalid access, no definite or indirect leak.
set -uo pipefail
. scripts/lib.sh
rc=0
flaky=0
vg() { # vg TEST: memcheck it; exit 99 on a memcheck error
  (cd build && valgrind --quiet --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
      --trace-children=no "./tests/$1" > "tests/$1.vg.log" 2>&1)
}
while read -r t; do
  case "$t" in ''|\#*) continue ;; esac
  make -C build -s "tests/$t" >/dev/null || { echo "valgrind $t: 0 passed, 1 failed"; rc=1; continue; }
  log="build/tests/$t.vg.log"
  vg "$t"
  r=$?
  # A test that failed without a memcheck error is run once more, as
  # scripts/check-tree does: passing then, it is reported FLAKY.
  if [ $r -ne 0 ] && [ $r -ne 99 ] && [ "$flaky" -lt "${MESH_FLAKY_MAX:-2}" ]; then
    mv "$log" "$log.first"
    vg "$t"
    r=$?
    if [ $r -eq 0 ]; then
      flaky=$((flaky+1))
      echo "FLAKY: valgrind $t failed, then passed when run again; the first run's log ends:"
      tail -20 "$log.first" | sed -e 's/^/    | /' -e 's/ failed$/ failed (first run)/'
    fi
  fi
  [ $r -ne 0 ] && { rc=1; tail -40 "$log"; }
  grep -h " passed, [0-9]* failed$" "$log" | sed 's/^/valgrind /' || echo "valgrind $t: 0 passed, 1 failed"
  [ $r -eq 99 ] && echo "valgrind $t: 0 passed, 1 failed (memcheck errors)"
done < tests/valgrind.list
exit $rc

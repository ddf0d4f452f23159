#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# C++: every public header compiles on its own as C++ (and as C) with no
# warnings, every declaration has C linkage, and examples/cpp (the RAII
# wrapper, its tests and the example) builds and runs against build/.
# Prints "cpp: N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$top/build}  # another build dir, e.g. build-asan
lib="$build/libmesh/.libs"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-cpp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CXX=${CXX:-g++}
CC=${CC:-gcc}
CXXWARN="-Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast -Wzero-as-null-pointer-constant -Werror"
CWARN="-Wall -Wextra -Wpedantic -Wstrict-prototypes -Wshadow -Werror"
passed=0; failed=0
ok() { passed=$((passed+1)); [ -n "${VERBOSE:-}" ] && echo "ok: $1"; return 0; }
ko() { failed=$((failed+1)); echo "FAIL: $1"; [ -f "$tmp/out" ] && sed 's/^/    /' "$tmp/out" | head -40; return 0; }
run() { # run NAME CMD...: one check
  local name=$1; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$name"; else ko "$name"; fi
}

headers=$(cd "$top/include" && ls mesh/*.h)
for h in $headers; do
  printf '#include <%s>\nint main(void) { return 0; }\n' "$h" >"$tmp/one.cpp"
  cp "$tmp/one.cpp" "$tmp/one.c"
  for std in c++11 c++17 c++20; do
    run "$h as $std" $CXX -std=$std $CXXWARN -I"$top/include" -c "$tmp/one.cpp" -o "$tmp/one.o"
  done
  run "$h as c11" $CC -std=c11 $CWARN -I"$top/include" -c "$tmp/one.c" -o "$tmp/one.o"
done

# C linkage: take the address of every MESH_EXTERN function from C++; the
# object file must reference only unmangled mesh_ names.
# The preprocessor strips comments; with BUILDING_LIBMESH, MESH_EXTERN
# expands to a visibility attribute that marks each public function.
funcs=$(for h in $headers; do echo "#include <$h>"; done |
  $CC -E -P -DBUILDING_LIBMESH -I"$top/include" -x c - | tr '\n' ' ' |
  grep -oE 'visibility *\( *"default" *\) *\) *\) *[^;(]*\(' |
  grep -oE 'mesh_[A-Za-z0-9_]+ *\($' | tr -d ' (' | sort -u)
{
  echo '#include <mesh/mesh.h>'
  for h in $headers; do echo "#include <$h>"; done
  echo 'void *mesh_cpp_refs[] = {'
  for f in $funcs; do echo "  reinterpret_cast<void *>(&$f),"; done
  echo '};'
} >"$tmp/refs.cpp"
check_linkage() {
  $CXX -std=c++17 -Wall -Wextra -Werror -I"$top/include" -c "$tmp/refs.cpp" -o "$tmp/refs.o" || return 1
  local n; n=$(echo "$funcs" | wc -w)
  [ "$n" -ge 10 ] || { echo "only $n functions found in the headers"; return 1; }
  if nm -u "$tmp/refs.o" | grep -q ' _Z'; then
    echo "C++-mangled references (missing extern \"C\"):"; nm -uC "$tmp/refs.o" | grep -v ' mesh_'
    return 1
  fi
  local got; got=$(nm -u "$tmp/refs.o" | grep -c ' mesh_')
  [ "$got" -eq "$n" ] || { echo "$got of $n functions referenced"; return 1; }
}
run "C linkage of every public function" check_linkage

# examples/cpp: the wrapper's tests and the example program.
if [ ! -e "$lib/libmesh.so" ]; then
  ko "libmesh.so missing in $lib: build first"
else
  CXXFLAGS="-std=c++17 $CXXWARN -I$top/include -I$top/examples/cpp -pthread"
  LDFLAGS="-L$lib -Wl,-rpath,$lib -lmesh"
  for prog in test_mesh_hpp example call_example; do
    if ! $CXX $CXXFLAGS -o "$tmp/$prog" "$top/examples/cpp/$prog.cpp" $LDFLAGS >"$tmp/out" 2>&1; then
      ko "build examples/cpp/$prog.cpp"; continue
    fi
    ok "build examples/cpp/$prog.cpp"
    mkdir -p "$tmp/run-$prog"
    timeout -k 5 60 "$tmp/$prog" "$tmp/run-$prog" >"$tmp/out" 2>&1
    rc=$?
    # test_mesh_hpp counts its own checks: fold them in.
    counts=$(sed -n 's/^test_mesh_hpp: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$tmp/out")
    if [ -n "$counts" ]; then
      passed=$((passed + ${counts% *})); failed=$((failed + ${counts#* }))
      [ "${counts#* }" -eq 0 ] || sed 's/^/    /' "$tmp/out" | head -40
    fi
    if [ $rc -ne 0 ]; then ko "run examples/cpp/$prog (exit $rc)"; fi
    if [ -n "${VERBOSE:-}" ]; then cat "$tmp/out"; fi
  done
fi
# docs/bindings.md: each C++ example is a file of the tree, verbatim, and
# prints what the page says (the example ran above).
n=$(python3 "$top/bindings/docblocks.py" "$top/docs/bindings.md" cpp "$tmp/doc")
[ "${n:-0}" -ge 1 ] || ko "no tested C++ example in docs/bindings.md"
for i in $(seq 1 "${n:-0}"); do
  file=$(cat "$tmp/doc/$i.file" 2>/dev/null)
  # The file carries its SPDX line; the page shows the code without it.
  sed '1,3{/SPDX-License-Identifier/d}' "$top/$file" >"$tmp/doc/$i.file.code"
  run "docs/bindings.md C++ example $i is $file" diff -u "$tmp/doc/$i.file.code" "$tmp/doc/$i.code"
  prog=$(basename "$file" .cpp)
  if [ -x "$tmp/$prog" ]; then
    run "docs/bindings.md C++ example $i output" sh -c \
      "'$tmp/$prog' '$tmp/doc' | diff -u '$tmp/doc/$i.out' -"
  fi
done
echo "cpp: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

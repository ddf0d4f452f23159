#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Python binding tests (bindings/python, unittest) against the shared
# library in build/.  Run by scripts/test after `make`; prints
# "python: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$top/build}  # another build dir, e.g. build-asan
lib="$build/libmesh/.libs"
if [ ! -e "$lib/libmesh.so" ]; then
  echo "python.sh: $lib/libmesh.so missing: build first (make -C build)" >&2
  echo "python: 0 passed, 1 failed"
  exit 1
fi
export LIBMESH_PATH="$lib"
export PYTHONDONTWRITEBYTECODE=1
export MESH_TOP="$top"
cd "$top/bindings/python" || exit 1
# Bound the run: the suite takes seconds; a hang must not eat CI's budget.
timeout -k 5 180 python3 tests/run.py "$@"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
  echo "python.sh: timed out" >&2
  echo "python: 0 passed, 1 failed"
fi
exit $rc

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# License stage: LICENSE holds the Apache-2.0 text, NEWS and the bug-report
# address exist, and every source file carries an SPDX identifier
# (scripts/spdx --check names each one that does not).  Prints
# "license: N passed, M failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
p=0; f=0
ok() { p=$((p + 1)); }
ko() { echo "FAIL: $*"; f=$((f + 1)); }
if grep -q "Apache License" "$top/LICENSE" 2>/dev/null &&
   grep -q "END OF TERMS AND CONDITIONS" "$top/LICENSE"; then ok
else ko "LICENSE is not the full Apache-2.0 text"; fi
if grep -q "release $(sed -n 's/^AC_INIT(\[libmesh\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")" "$top/NEWS" 2>/dev/null
then ok; else ko "NEWS has no section for the version in configure.ac"; fi
if grep -qE '^AC_INIT\(\[libmesh\], \[[^]]+\], \[[^]]+\]' "$top/configure.ac"
then ok; else ko "AC_INIT has no bug-report address"; fi
if python3 "$top/scripts/spdx" --check; then ok; else ko "source files without SPDX-License-Identifier (run scripts/spdx)"; fi
echo "license: $p passed, $f failed"
[ "$f" -eq 0 ]

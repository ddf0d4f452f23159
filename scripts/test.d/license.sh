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
# scripts/spdx itself, on samples of each comment syntax: the right first
# lines, idempotent, data files untouched.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-spdx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf 'int x;\n' >"$tmp/a.c"
printf '// Package p does things.\npackage p\n' >"$tmp/b.go"
printf '#!/usr/bin/env python3\n"""doc"""\n' >"$tmp/c.py"
printf '#!/bin/sh\necho hi\n' >"$tmp/run"
printf 'x = 1\n' >"$tmp/Makefile.am"
printf 'plain data\n' >"$tmp/notes.txt"
python3 "$top/scripts/spdx" "$tmp"/* >/dev/null && python3 "$top/scripts/spdx" "$tmp"/* >/dev/null
if [ "$(head -1 "$tmp/a.c")" = "/* SPDX-License-Identifier: Apache-2.0 */" ] &&
   [ "$(sed -n 1,3p "$tmp/b.go" | tr '\n' '|')" = "// SPDX-License-Identifier: Apache-2.0||// Package p does things.|" ] &&
   [ "$(sed -n 2p "$tmp/c.py")" = "# SPDX-License-Identifier: Apache-2.0" ] &&
   [ "$(sed -n 2p "$tmp/run")" = "# SPDX-License-Identifier: Apache-2.0" ] &&
   [ "$(head -1 "$tmp/Makefile.am")" = "# SPDX-License-Identifier: Apache-2.0" ] &&
   [ "$(cat "$tmp/notes.txt")" = "plain data" ] &&
   [ "$(grep -c SPDX "$tmp/a.c")" = 1 ] &&
   python3 "$top/scripts/spdx" --check "$tmp"/* >/dev/null; then ok
else ko "scripts/spdx on sample files (syntax or idempotence)"; fi
if python3 "$top/scripts/spdx" --check; then ok; else ko "source files without SPDX-License-Identifier (run scripts/spdx)"; fi
echo "license: $p passed, $f failed"
[ "$f" -eq 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every ```json block in README.md and docs/ is a complete configuration
# document that `meshctl check-config` accepts.  JSON that is not a config
# (a request body, an API answer) is marked on the line before its fence:
#   <!-- json: not a config (what it is) -->
# Alternatives go in separate blocks.  Prints "docs: N passed, M failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${MESH_BUILD:-$top/build}
meshctl="$build/tools/meshctl"
if [ ! -x "$meshctl" ]; then
  echo "docs.sh: $meshctl missing: build first" >&2
  echo "docs: 0 passed, 1 failed"; exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mesh-docs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$top" "$tmp" <<'PY'
import glob, os, re, sys
top, tmp = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(os.path.join(top, "docs", "**", "*.md"), recursive=True))
files.append(os.path.join(top, "README.md"))
n = 0
with open(os.path.join(tmp, "index"), "w") as idx:
    for f in files:
        s = open(f).read()
        for m in re.finditer(r"^```json[ \t]*\n(.*?)^```", s, re.S | re.M):
            before = s[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            if re.match(r"<!-- json: not a config", before):
                continue
            n += 1
            path = os.path.join(tmp, "%03d.json" % n)
            open(path, "w").write(m.group(1))
            line = s[:m.start()].count("\n") + 1
            idx.write("%s %s:%d\n" % (path, os.path.relpath(f, top), line))
PY
p=0; f=0
count=$(wc -l <"$tmp/index")
if [ "$count" -ge 10 ]; then p=$((p + 1))
else echo "FAIL: only $count JSON config blocks found in docs/ (expected 10 or more)"; f=$((f + 1)); fi
while read -r json where; do
  if "$meshctl" check-config "$json" >"$tmp/out" 2>&1; then
    p=$((p + 1))
  else
    echo "FAIL: $where: meshctl check-config rejects this block"
    sed 's/^/    /' "$tmp/out" | head -10
    f=$((f + 1))
  fi
done <"$tmp/index"
# The check does reject a fragment (the form the docs used to have).
printf '"tls": {"min_version": "1.2"}\n' >"$tmp/fragment.json"
if "$meshctl" check-config "$tmp/fragment.json" >/dev/null 2>&1; then
  echo "FAIL: check-config accepted a fragment"; f=$((f + 1))
else p=$((p + 1)); fi
echo "docs: $p passed, $f failed"
[ "$f" -eq 0 ]

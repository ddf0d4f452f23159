#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Extract the tested examples of docs/bindings.md.

A code block preceded by "<!-- test: LANG [FILE] -->" is an example; the
next fenced block after an "Output:" line is its expected output.

Usage: docblocks.py DOC LANG OUTDIR
Writes OUTDIR/N.code, OUTDIR/N.out (expected output, may be empty) and
OUTDIR/N.file (the FILE named in the marker, if any); prints the count.
"""

import os
import re
import sys

MARK = re.compile(r"^<!-- test: (\S+)(?: (\S+))? -->$")


def blocks(text):
    """Yield (lang, file, code, expected_output) for each tested block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i].strip())
        i += 1
        if not m:
            continue
        code, i = fence(lines, i)
        out = ""
        j = i
        while j < len(lines) and not MARK.match(lines[j].strip()):
            if lines[j].strip() == "Output:":
                out, _ = fence(lines, j + 1)
                break
            if lines[j].startswith("## "):
                break
            j += 1
        yield m.group(1), m.group(2), code, out


def fence(lines, i):
    """The body of the next fenced block at or after line i."""
    while i < len(lines) and not lines[i].startswith("```"):
        i += 1
    i += 1
    body = []
    while i < len(lines) and not lines[i].startswith("```"):
        body.append(lines[i])
        i += 1
    return "\n".join(body) + "\n", i + 1


def main():
    doc, lang, outdir = sys.argv[1:4]
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for blang, bfile, code, out in blocks(text):
        if blang != lang:
            continue
        n += 1
        with open(os.path.join(outdir, "%d.code" % n), "w") as f:
            f.write(code)
        with open(os.path.join(outdir, "%d.out" % n), "w") as f:
            f.write(out)
        if bfile:
            with open(os.path.join(outdir, "%d.file" % n), "w") as f:
                f.write(bfile + "\n")
    print(n)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: Apache-2.0
"""The Python examples of docs/bindings.md run and print what the page
says they print."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DOC = os.path.join(TOP, "docs", "bindings.md")
sys.path.insert(0, os.path.join(TOP, "bindings"))
import docblocks  # noqa: E402


class TestDocExamples(unittest.TestCase):
    def test_python_examples_run(self):
        with open(DOC, encoding="utf-8") as f:
            found = [b for b in docblocks.blocks(f.read()) if b[0] == "python"]
        self.assertGreaterEqual(len(found), 3, "tested Python examples missing")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.join(TOP, "bindings", "python")
        for i, (_, _, code, want) in enumerate(found, 1):
            with self.subTest(example=i), tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "example%d.py" % i)
                with open(path, "w") as f:
                    f.write(code)
                r = subprocess.run([sys.executable, path], env=env, cwd=d,
                                   capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, want, r.stderr)


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""Ctrl-C: SIGINT during each blocking call of the binding ends the
program with KeyboardInterrupt promptly (each call would otherwise block
for minutes: no timeout, 120 s timeouts, 60 s retry backoffs).  Each case
runs interrupt_child.py in its own process."""

import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# The interrupt must land within ~100 ms; the bound is generous so that a
# loaded machine or valgrind cannot fail it, and still far below the 60 s
# and 120 s the calls would block for.
BOUND = 10.0

CASES = ["accept", "accept_timeout", "serve_forever", "library_serve_forever",
         "dial", "recv", "call_do", "request"]


class TestInterrupt(unittest.TestCase):
    def run_case(self, case):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "interrupt_child.py"), case],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            line = p.stdout.readline()
            self.assertEqual(line.strip(), "READY", p.stderr.read() if not line else line)
            time.sleep(0.3)  # inside the blocking call by now
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            try:
                out, err = p.communicate(timeout=BOUND)
            except subprocess.TimeoutExpired:
                self.fail("%s: no exit %.0f s after SIGINT" % (case, BOUND))
            took = time.monotonic() - t0
            self.assertIn("INTERRUPTED", out, "%s: %s %s" % (case, out, err))
            self.assertNotIn("RETURNED", out)
            self.assertEqual(p.returncode, 130, err)
            sys.stderr.write("[%s: exit %.0f ms after SIGINT] " % (case, took * 1000))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_cases(self):
        for case in CASES:
            with self.subTest(case=case):
                self.run_case(case)


class TestShutdown(unittest.TestCase):
    """serve_forever() in the main thread returns when another thread
    calls shutdown(), for both server classes."""

    def test_shutdown_from_another_thread(self):
        import threading
        import libmesh
        import libmesh.http
        import meshtest
        td = meshtest.TrustDomain("example.org")
        try:
            with libmesh.Mesh(meshtest.config(td, "api")) as m:
                for make in (
                        lambda: libmesh.http.HTTPServer(
                            m.listen("127.0.0.1:0"), object),
                        lambda: libmesh.http.Server(
                            m, m.listen("127.0.0.1:0"),
                            lambda req: (200, {}, b""))):
                    srv = make()
                    threading.Timer(0.2, srv.shutdown).start()
                    t0 = time.monotonic()
                    srv.serve_forever()
                    self.assertLess(time.monotonic() - t0, BOUND)
        finally:
            td.cleanup()


class TestConfigReadTimeout(unittest.TestCase):
    """A main-thread read waits in slices, yet still ends at the config's
    tls.read_timeout_ms when settimeout() was never called."""

    def test_config_read_timeout_applies(self):
        import threading
        import libmesh
        import meshtest
        td = meshtest.TrustDomain("example.org")
        try:
            with libmesh.Mesh(meshtest.config(td, "api")) as s, \
                    libmesh.Mesh(meshtest.config(
                        td, "web", tls={"read_timeout_ms": 300})) as c:
                ln = s.listen("127.0.0.1:0")
                held = []
                t = threading.Thread(target=lambda: held.append(ln.accept()))
                t.start()
                conn = c.dial("127.0.0.1:%d" % ln.port)
                t.join()
                t0 = time.monotonic()
                with self.assertRaises(libmesh.MeshTimeout):
                    conn.recv(1)  # the server never writes
                self.assertLess(time.monotonic() - t0, BOUND)
                conn.settimeout(None)  # explicit: forever, not the config's
                self.assertEqual(conn._read_ms(), -1)
                conn.close()
                held[0].close()
        finally:
            td.cleanup()


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""Span hooks and trace parents of dials and calls, on real connections."""

import threading
import time
import unittest

import libmesh
from libmesh import call, trace
import meshtest
from meshtest import EchoServer, TrustDomain

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class Recorder:
    """Collects spans from hooks (called on any thread)."""

    def __init__(self):
        self.started, self.ended = [], []
        self.lock = threading.Lock()

    def on_start(self, span):
        with self.lock:
            self.started.append(span)

    def on_end(self, span):
        with self.lock:
            self.ended.append(span)

    def named(self, name, timeout=5.0):
        """Ended spans called name, waiting (bounded) for the first."""
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [s for s in self.ended if s.name == name]
            if got or time.monotonic() > end:
                return got
            time.sleep(0.01)


class TestSpans(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")
        cls.server_mesh = libmesh.Mesh(meshtest.config(cls.td, "api"))
        cls.server = EchoServer(cls.server_mesh)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.server_mesh.close()
        cls.td.cleanup()

    def client(self, **extra):
        m = libmesh.Mesh(meshtest.config(self.td, "web", services={
            "api": {"peers": ["spiffe://example.org/api"],
                    "discovery": {"type": "static", "endpoints": [
                        {"address": "127.0.0.1",
                         "port": self.server.port}]}}}, **extra))
        self.addCleanup(m.close)
        rec = Recorder()
        m.set_span_hooks(rec.on_start, rec.on_end)
        return m, rec

    def test_dial_under_trace_parent(self):
        m, rec = self.client()
        parent = trace.TraceContext.from_traceparent(TP)
        with m.dial(self.server.addr, timeout=5, trace_parent=parent) as c:
            c.sendall(b"x")
            c.recv(1)
        dial = rec.named("mesh.dial")
        self.assertEqual(len(dial), 1)
        d = dial[0]
        self.assertEqual((d.trace_id, d.parent_span_id), (TRACE_ID, PARENT))
        self.assertEqual(d.kind, "client")
        self.assertEqual(d.status, "unset")
        self.assertEqual(d.attributes.get("server.port"), self.server.port)
        self.assertEqual(d.attributes.get("mesh.peer.spiffe_id"),
                         "spiffe://example.org/api")
        self.assertGreater(d.end_ns, d.start_ns)
        self.assertGreater(d.duration, 0)
        hs = rec.named("mesh.handshake")
        self.assertEqual([(h.trace_id, h.parent_span_id) for h in hs],
                         [(TRACE_ID, d.span_id)])
        # on_start saw the same span, running.
        starts = [s for s in rec.started if s.span_id == d.span_id]
        self.assertEqual(len(starts), 1)
        self.assertEqual(starts[0].end_ns, 0)
        self.assertIsNone(starts[0].duration)

    def test_unsampled_parent_records_nothing(self):
        m, rec = self.client()
        unsampled = trace.TraceContext.from_traceparent(TP[:-2] + "00")
        with m.dial(self.server.addr, timeout=5, trace_parent=unsampled):
            pass
        with m.dial(self.server.addr, timeout=5):  # a new, sampled trace
            pass
        dials = rec.named("mesh.dial")
        self.assertEqual(len(dials), 1)
        self.assertNotEqual(dials[0].trace_id, TRACE_ID)
        self.assertEqual(dials[0].parent_span_id, "")

    def test_call_spans(self):
        m, rec = self.client()
        parent = trace.TraceContext.from_traceparent(TP)
        with m.call("api", deadline=5, trace_parent=parent) as c:
            sent = c.trace_context()
            c.conn.sendall(b"ping")
            c.conn.recv(4)
            c.end(call.OK, 200)
        calls, tries = rec.named("mesh.call"), rec.named("mesh.try")
        self.assertEqual(len(calls), 1)
        self.assertEqual((calls[0].trace_id, calls[0].parent_span_id),
                         (TRACE_ID, PARENT))
        self.assertEqual(len(tries), 1)
        self.assertEqual(tries[0].parent_span_id, calls[0].span_id)
        self.assertEqual((sent.trace_id, sent.span_id),
                         (TRACE_ID, tries[0].span_id))
        self.assertEqual(tries[0].attributes.get("mesh.status_code"), 200)

        # call_do: each try's conn knows its span.
        seen = []

        def one(conn):
            seen.append((conn.endpoint, conn.attempt,
                         conn.trace_context().span_id))
            conn.sendall(b"p")
            conn.recv(1)
            return call.OK, 200

        m.call_do("api", one, deadline=5, trace_parent=parent)
        self.assertEqual(seen[0][:2], (self.server.addr, 0))
        self.assertIn(seen[0][2], [t.span_id for t in rec.named("mesh.try")])

    def test_remove_and_replace_hooks(self):
        m, rec = self.client()
        m.set_span_hooks()  # removed
        with m.dial(self.server.addr, timeout=5):
            pass
        time.sleep(0.05)
        self.assertEqual(rec.ended, [])

        def bad(span):
            raise RuntimeError("hook bug")  # swallowed, never reaches C

        other = Recorder()
        m.set_span_hooks(bad, other.on_end)
        with m.dial(self.server.addr, timeout=5) as c:
            c.sendall(b"x")
            self.assertEqual(c.recv(1), b"x")
        self.assertEqual(len(other.named("mesh.dial")), 1)
        self.assertEqual(rec.ended, [])

    def test_trace_parent_type_checked(self):
        m, _ = self.client()
        with self.assertRaises(TypeError):
            m.dial(self.server.addr, trace_parent=TP)


if __name__ == "__main__":
    unittest.main()

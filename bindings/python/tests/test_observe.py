# SPDX-License-Identifier: Apache-2.0
"""Trace context propagation and metrics through the binding."""

import http.client
import http.server
import threading
import unittest
import urllib.request

import libmesh
from libmesh import errors, trace

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class TestTraceContext(unittest.TestCase):
    def test_traceparent_round_trip(self):
        ctx = trace.TraceContext.from_traceparent(TP)
        self.assertEqual(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(ctx.span_id, "00f067aa0ba902b7")
        self.assertTrue(ctx.sampled)
        self.assertEqual(ctx.sampling, "accept")
        self.assertEqual(ctx.traceparent(), TP)

    def test_invalid_traceparent(self):
        for bad in ["", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                    TP.upper(), "ff" + TP[2:], TP[:-1]]:
            with self.subTest(bad=bad):
                with self.assertRaises(libmesh.MeshError) as cm:
                    trace.TraceContext.from_traceparent(bad)
                self.assertEqual(cm.exception.code, errors.ERR_PARSE)

    def test_b3(self):
        ctx = trace.TraceContext.from_b3(
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
        self.assertEqual(ctx.trace_id, "80f198ee56343ba864fe8b2a57d3eff7")
        self.assertEqual(ctx.parent_span_id, "05e3ac9a4f6e3b90")
        self.assertTrue(ctx.sampled)
        self.assertEqual(ctx.b3(),
                         "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1"
                         "-1-05e3ac9a4f6e3b90")

    def test_extract_inject_through_headers(self):
        incoming = http.client.HTTPMessage()
        incoming["Traceparent"] = TP  # any case of header names
        incoming["tracestate"] = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"
        ctx = trace.extract(incoming)
        self.assertEqual(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(ctx.tracestate,
                         "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        out = trace.inject(ctx, {}, trace.TRACECONTEXT | trace.B3)
        self.assertEqual(out["traceparent"], TP)
        self.assertEqual(out["tracestate"], ctx.tracestate)
        self.assertTrue(out["b3"].startswith(
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"))
        again = trace.extract(out, trace.B3)
        self.assertEqual((again.trace_id, again.span_id),
                         (ctx.trace_id, ctx.span_id))

    def test_extract_joins_repeated_fields(self):
        msg = http.client.HTTPMessage()
        msg["traceparent"] = TP
        msg["tracestate"] = "congo=t61rcWkgMzE"
        msg["TraceState"] = "rojo=00f067aa0ba902b7, congo=second"
        ctx = trace.extract(msg)
        # both fields, in order; the repeated key keeps its first member
        self.assertEqual(ctx.tracestate,
                         "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        # a plain mapping with a list of values, and names differing in case
        ctx = trace.extract({"traceparent": TP, "tracestate": ["a=1", "b=2"],
                             "TRACESTATE": "c=3"})
        self.assertEqual(ctx.tracestate, "a=1,b=2,c=3")
        # two traceparent fields: invalid as one value, the trace restarts
        msg = http.client.HTTPMessage()
        msg["traceparent"] = TP
        msg["traceparent"] = TP[:-2] + "00"
        self.assertIsNone(trace.extract(msg))
        with self.assertRaises(libmesh.MeshError) as cm:
            trace.extract(msg, trace.TRACECONTEXT, strict=True)
        self.assertEqual(cm.exception.code, errors.ERR_PARSE)

    def test_extract_from_http_server_request(self):
        """Repeated fields sent by http.client reach http.server's
        handler; extract sees all of them."""
        seen = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ctx = trace.extract(self.headers)
                seen["ctx"] = ctx
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        th = threading.Thread(target=srv.handle_request, daemon=True)
        th.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1",
                                              srv.server_address[1],
                                              timeout=10)
            conn.putrequest("GET", "/")
            conn.putheader("traceparent", TP)
            conn.putheader("tracestate", "rojo=00f067aa0ba902b7")
            conn.putheader("tracestate", "congo=t61rcWkgMzE,rojo=later")
            conn.endheaders()
            resp = conn.getresponse()
            resp.read()
            conn.close()
            self.assertEqual(resp.status, 204)
        finally:
            th.join(10)
            srv.server_close()
        self.assertFalse(th.is_alive())
        ctx = seen["ctx"]
        self.assertEqual(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(ctx.tracestate,
                         "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")

    def test_extract_missing_and_invalid(self):
        self.assertIsNone(trace.extract({}))
        self.assertIsNone(trace.extract({"traceparent": "garbage"}))
        with self.assertRaises(libmesh.MeshError) as cm:
            trace.extract({"traceparent": "garbage"}, strict=True)
        self.assertEqual(cm.exception.code, errors.ERR_PARSE)

    def test_tracestate_normalize(self):
        self.assertEqual(trace.tracestate_normalize(" a=1 ,, b=2 "), "a=1,b=2")
        # a repeated key keeps its first member (W3C test suite)
        self.assertEqual(trace.tracestate_normalize("a=1,b=2,a=3"), "a=1,b=2")
        with self.assertRaises(libmesh.MeshError):
            trace.tracestate_normalize("a=1,A=2")

    def test_random_flag_level2(self):
        ctx = trace.TraceContext.from_traceparent(TP[:-2] + "03")
        self.assertTrue(ctx.random)
        self.assertTrue(ctx.sampled)
        self.assertEqual(ctx.traceparent(), TP[:-2] + "03")
        # a Level 1 peer's flags come back as they were
        self.assertFalse(trace.TraceContext.from_traceparent(TP).random)
        # bits no level defines are not propagated
        self.assertEqual(trace.TraceContext.from_traceparent(
            TP[:-2] + "ff").traceparent(), TP[:-2] + "03")

    def test_formats_from_config(self):
        cfg = {"tracing": {"propagation": ["tracecontext", "b3"]}}
        with libmesh.Mesh(cfg) as m:
            self.assertEqual(m.trace_formats(), trace.TRACECONTEXT | trace.B3)
        with libmesh.Mesh() as m:
            self.assertEqual(m.trace_formats(), trace.TRACECONTEXT)


class TestMetrics(unittest.TestCase):
    def test_metrics_text_and_admin(self):
        cfg = {"log": {"level": "error"},
               "admin": {"listen": "127.0.0.1:0"}}
        with libmesh.Mesh(cfg) as m:
            text = m.metrics_text()
            self.assertIn("# TYPE mesh_", text)
            port = m.admin_port
            self.assertGreater(port, 0)
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                served = r.read().decode()
            names = lambda t: {l.split()[2] for l in t.splitlines()
                               if l.startswith("# TYPE")}
            self.assertEqual(names(text), names(served))
        with libmesh.Mesh() as m:
            self.assertIsNone(m.admin_port)


if __name__ == "__main__":
    unittest.main()

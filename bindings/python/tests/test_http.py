# SPDX-License-Identifier: Apache-2.0
"""http.client and http.server over the mesh, unchanged but for the
transport."""

import http.server
import json
import threading
import time
import unittest

import libmesh
import libmesh.http
import meshtest
from meshtest import TrustDomain


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per conn

    def do_GET(self):
        body = json.dumps({"path": self.path,
                           "caller": self.connection.peer_id}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers["Content-Length"])
        data = self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[::-1])

    def log_message(self, *args):
        pass


class TestHTTP(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")
        cls.server_mesh = libmesh.Mesh(meshtest.config(cls.td, "api"))
        cls.client_mesh = libmesh.Mesh(meshtest.config(cls.td, "web"))
        cls.srv = libmesh.http.HTTPServer(
            cls.server_mesh.listen("127.0.0.1:0"), Handler)
        cls.thread = threading.Thread(target=cls.srv.serve_forever,
                                      daemon=True)
        cls.thread.start()
        cls.target = "127.0.0.1:%d" % cls.srv.server_port

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.thread.join(5)
        cls.client_mesh.close()
        cls.server_mesh.close()
        cls.td.cleanup()

    def test_get_keepalive_and_identities(self):
        conn = libmesh.http.HTTPConnection(
            self.client_mesh, self.target, timeout=5,
            peers=["spiffe://example.org/api"])
        try:
            for i in range(3):
                conn.request("GET", "/item/%d" % i)
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                doc = json.loads(resp.read())
                self.assertEqual(doc["path"], "/item/%d" % i)
                self.assertEqual(doc["caller"], "spiffe://example.org/web")
            self.assertEqual(conn.sock.peer_id, "spiffe://example.org/api")
        finally:
            conn.close()

    def test_post_body(self):
        conn = libmesh.http.HTTPConnection(self.client_mesh, self.target,
                                           timeout=5)
        try:
            body = b"0123456789" * 20000
            conn.request("POST", "/echo", body=body)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), body[::-1])
        finally:
            conn.close()

    def test_wrong_server_identity_fails_request(self):
        conn = libmesh.http.HTTPConnection(
            self.client_mesh, self.target, timeout=5,
            peers=["spiffe://example.org/not-api"])
        with self.assertRaises(libmesh.IdentityError):
            conn.request("GET", "/")
        conn.close()


class TestMeshHTTP(unittest.TestCase):
    """The library's HTTP layer: mesh_http_call through routes and the call
    layer, mesh_http_serve with per-request authorization."""

    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")
        cls.hits = []
        cls.lock = threading.Lock()
        cls.flaky = [0]  # 503s still to give on /flaky
        cls.server_mesh = libmesh.Mesh(meshtest.config(
            cls.td, "api", authz={"policies": [
                {"name": "no-admin", "action": "DENY", "rules": [
                    {"to": [{"operation": {"paths": ["/admin*"]}}]}]},
                {"name": "no-mallory", "action": "DENY", "rules": [
                    {"when": [{"key": "request.headers[x-user]",
                               "values": ["mallory"]}]}]}]}))
        cls.srv = libmesh.http.Server(
            cls.server_mesh, cls.server_mesh.listen("127.0.0.1:0"),
            cls.handle)
        cls.thread = threading.Thread(target=cls.srv.serve_forever,
                                      daemon=True)
        cls.thread.start()
        cls.client = libmesh.Mesh(meshtest.config(cls.td, "web", services={
            "api": {"peers": ["spiffe://example.org/api"],
                    "retry": {"retry_on": ["5xx"], "num_retries": 2,
                              "base_interval_ms": 1},
                    "discovery": {"type": "static", "endpoints": [
                        {"address": "127.0.0.1",
                         "port": cls.srv.server_port}]}}},
            http={"routes": [{"name": "teapot", "hosts": ["api"],
                              "match": {"path": {"prefix": "/tea"}},
                              "service": "api",
                              "fault": {"abort": {"http_status": 418}}}]}))

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.thread.join(5)
        cls.client.close()
        cls.server_mesh.close()
        cls.td.cleanup()

    @classmethod
    def handle(cls, req):
        with cls.lock:
            cls.hits.append((req.method, req.target))
        if req.path == "/boom":
            raise ValueError("handler bug")
        if req.path == "/flaky":
            with cls.lock:
                if cls.flaky[0] > 0:
                    cls.flaky[0] -= 1
                    return 503, b"try again"
        if req.path == "/tuple2":
            return 201, "created"
        doc = {"method": req.method, "target": req.target,
               "path": req.path, "original": req.original_target,
               "x-user": req.header("X-User"),
               "x-user-all": req.header_values("x-user"),
               "caller": req.peer_id, "x-a": req.header_values("x-a"),
               "body": req.body.decode(),
               "traceparent": req.header("TraceParent")}
        return libmesh.http.Response(
            200, [("Content-Type", "application/json"), ("X-Served", "1")],
            json.dumps(doc))

    def test_call_and_serve(self):
        resp = self.client.http_call(
            "api", "POST", "/echo?q=1", headers=[("X-A", "1"), ("x-a", "2")],
            body=b"payload", timeout=5)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("content-type"), "application/json")
        self.assertEqual(resp.header("x-served"), "1")
        self.assertIn(("X-Served", "1"), resp.headers)
        doc = json.loads(resp.body)
        self.assertEqual(doc["method"], "POST")
        self.assertEqual(doc["target"], "/echo?q=1")
        self.assertEqual(doc["caller"], "spiffe://example.org/web")
        self.assertEqual(doc["x-a"], ["1", "2"])
        self.assertEqual(doc["body"], "payload")
        # The server handler sees its own span as traceparent.
        # flags: sampled (0x01) and, on traces the library starts, random (0x02)
        self.assertRegex(doc["traceparent"], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$")
        r2 = self.client.http_call("api", "GET", "/tuple2", timeout=5)
        self.assertEqual((r2.status, r2.body), (201, b"created"))

    def test_denied_request_never_reaches_handler(self):
        with self.lock:
            before = len(self.hits)
        resp = self.client.http_call("api", "GET", "/admin/users", timeout=5)
        self.assertEqual(resp.status, 403)
        self.assertEqual(resp.body, b"RBAC: access denied")
        with self.lock:
            self.assertNotIn(("GET", "/admin/users"), self.hits[before:])
        self.assertGreaterEqual(self.server_mesh.authz_counter("deny"), 1)

    def test_handler_sees_what_the_policy_saw(self):
        # one normalized path: every spelling of /admin is denied
        for t in ("//admin/users", "/x/../admin/users", "/%61dmin/users",
                  "/./admin/users"):
            resp = self.client.http_call("api", "GET", t, timeout=5)
            self.assertEqual(resp.status, 403, t)
        resp = self.client.http_call("api", "GET", "/a/./b//c?q=/../x",
                                     timeout=5)
        doc = json.loads(resp.body)
        self.assertEqual(doc["path"], "/a/b/c")
        self.assertEqual(doc["target"], "/a/b/c?q=/../x")
        self.assertEqual(doc["original"], "/a/./b//c?q=/../x")
        # a repeated header is one joined value for the policy and handler
        resp = self.client.http_call(
            "api", "GET", "/u", timeout=5, headers=[("X-User", "mallory")])
        self.assertEqual(resp.status, 403)
        resp = self.client.http_call(
            "api", "GET", "/u", timeout=5,
            headers=[("X-User", "mallory"), ("x-user", "bob")])
        doc = json.loads(resp.body)
        self.assertEqual(doc["x-user"], "mallory,bob")
        self.assertEqual(doc["x-user-all"], ["mallory", "bob"])
        resp = self.client.http_call(
            "api", "GET", "/u", timeout=5,
            headers=[("X-User", "mallory"), ("x-user", "")])
        doc = json.loads(resp.body)
        self.assertEqual(doc["x-user"], "mallory,")
        self.assertEqual(doc["x-user-all"], ["mallory", ""])
        # the same normalizer for http.server handlers
        self.assertEqual(
            libmesh.http.normalize_path(self.server_mesh, "//a/./b\\c?q"),
            "/a/b/c")
        self.assertEqual(libmesh.http.normalize_path(None, "/%61/../b"), "/b")
        with self.assertRaises(libmesh.MeshError) as cm:
            libmesh.http.normalize_path(None, "/a%00")
        self.assertEqual(cm.exception.code, libmesh.errors.ERR_HTTP_PARSE)

    def test_handler_exception_is_500(self):
        resp = self.client.http_call("api", "GET", "/boom", timeout=5)
        self.assertEqual(resp.status, 500)  # 5xx: retried, then final
        deadline = time.monotonic() + 5
        while not self.srv.handler_errors and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertIsInstance(self.srv.handler_errors[0], ValueError)

    def test_retry_on_5xx_and_fault_route(self):
        with self.lock:
            self.flaky[0] = 2
            before = len(self.hits)
        resp = self.client.http_call("api", "GET", "/flaky", timeout=5)
        self.assertEqual(resp.status, 200)
        with self.lock:
            self.assertEqual(self.hits[before:], [("GET", "/flaky")] * 3)
        tea = self.client.http_call("api", "GET", "/tea/pot", timeout=5)
        self.assertEqual((tea.status, tea.body),
                         (418, b"fault filter abort"))

    def test_errors(self):
        with self.assertRaises(libmesh.Unavailable) as cm:
            self.client.http_call("nope", "GET", "/")
        self.assertEqual(cm.exception.code, libmesh.errors.ERR_UNKNOWN_SERVICE)
        with self.assertRaises(libmesh.InvalidArgument):
            self.client.http_call("api", "GET", "/", headers={"Host": "x"})
        with self.assertRaises(libmesh.InvalidArgument):
            self.client.http_call("api", "GET WRONG", "/")
        with self.assertRaises(TypeError):
            libmesh.http._as_response(object())

    def test_exchange_keepalive_over_a_dial(self):
        with self.client.dial("127.0.0.1:%d" % self.srv.server_port,
                              timeout=5) as c:
            for i in range(2):
                resp, keep = libmesh.http.exchange(c, "GET", "/k/%d" % i,
                                                   host="api", timeout=5)
                self.assertEqual(resp.status, 200)
                self.assertTrue(keep)
                self.assertEqual(json.loads(resp.body)["target"], "/k/%d" % i)

    def test_trace_continues_through_http_call(self):
        spans = []
        self.client.set_span_hooks(on_end=spans.append)
        try:
            parent = libmesh.trace.TraceContext.from_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            headers = libmesh.trace.inject(parent, {})
            resp = self.client.http_call("api", "GET", "/t", headers=headers,
                                         timeout=5)
        finally:
            self.client.set_span_hooks()
        got = json.loads(resp.body)["traceparent"]
        self.assertEqual(got.split("-")[1], parent.trace_id)
        req = [s for s in spans if s.name == "mesh.request"]
        self.assertEqual(len(req), 1)
        self.assertEqual((req[0].trace_id, req[0].parent_span_id,
                          req[0].kind),
                         (parent.trace_id, parent.span_id, "client"))
        self.assertEqual(req[0].attributes["http.response.status_code"], 200)


if __name__ == "__main__":
    unittest.main()

"""http.client and http.server over the mesh, unchanged but for the
transport."""

import http.server
import json
import threading
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


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""gRPC with bytes through the binding: a libmesh.grpc.Server and the
client calls, over mutual TLS (ALPN h2)."""

import threading
import unittest

import libmesh
import libmesh.grpc as g
import meshtest
from meshtest import TrustDomain


def echo(call):
    for m in call:
        call.send(m)


def collect(call):
    call.send(b"".join(call))


def fail(call):
    md = dict(call.metadata)
    call.add_trailers([("x-why-bin", b"\x00\x01")])
    raise g.RpcError(int(md.get("x-code", "13")), "no: %s" % call.peer_id)


def crash(call):
    raise ValueError("boom")


class TestGrpc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")
        cls.server_mesh = libmesh.Mesh(meshtest.config(
            cls.td, "api", tls={"alpn": ["h2"]}))
        cls.client_mesh = libmesh.Mesh(meshtest.config(cls.td, "web"))
        cls.listener = cls.server_mesh.listen("127.0.0.1:0")
        cls.srv = g.Server(cls.server_mesh, cls.listener, {
            "/t.v1.S/Echo": echo, "/t.v1.S/Stream": echo,
            "/t.v1.S/Collect": collect, "/t.v1.S/Fail": fail,
            "/t.v1.S/Crash": crash})
        cls.thread = threading.Thread(target=cls.srv.serve_forever,
                                      daemon=True)
        cls.thread.start()
        cls.target = "127.0.0.1:%d" % cls.listener.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.thread.join(10)
        cls.srv.close()
        cls.listener.close()
        cls.client_mesh.close()
        cls.server_mesh.close()
        cls.td.cleanup()

    def test_unary(self):
        r = g.unary(self.client_mesh, self.target, "/t.v1.S/Echo", b"\x00hi",
                    timeout=5)
        self.assertEqual(r, b"\x00hi")

    def test_streaming(self):
        with g.start(self.client_mesh, self.target, "/t.v1.S/Stream",
                     timeout=5) as call:
            for i in range(5):
                call.send(b"m%d" % i)
                self.assertEqual(call.recv(), b"m%d" % i)
            call.close_send()
            self.assertIsNone(call.recv())
            call.finish()
            self.assertEqual(call.peer_id, "spiffe://example.org/api")
        with g.start(self.client_mesh, self.target, "/t.v1.S/Collect") as c:
            for p in (b"a", b"", b"bc"):
                c.send(p)
            c.close_send()
            self.assertEqual(list(c), [b"abc"])
            c.finish()

    def test_status_errors(self):
        with self.assertRaises(g.RpcError) as cm:
            g.unary(self.client_mesh, self.target, "/t.v1.S/Fail", b"x",
                    metadata=[("x-code", "5")])
        e = cm.exception
        self.assertEqual((e.status, e.status_name), (5, "NOT_FOUND"))
        self.assertEqual(e.details, "no: spiffe://example.org/web")
        self.assertIn(("x-why-bin", b"\x00\x01"), e.trailers)
        self.assertEqual(e.code, libmesh.errors.ERR_GRPC_STATUS)
        with self.assertRaises(g.RpcError) as cm:
            g.unary(self.client_mesh, self.target, "/t.v1.S/Crash", b"x")
        self.assertEqual(cm.exception.status, g.UNKNOWN)
        self.assertIn("ValueError: boom", cm.exception.details)
        with self.assertRaises(g.RpcError) as cm:
            g.unary(self.client_mesh, self.target, "/t.v1.S/Nope", b"x")
        self.assertEqual(cm.exception.status, g.UNIMPLEMENTED)

    def test_bad_input(self):
        with self.assertRaises(libmesh.InvalidArgument):
            g.unary(self.client_mesh, self.target, "not/a/method", b"x")
        with self.assertRaises(libmesh.InvalidArgument):
            g.unary(self.client_mesh, self.target, "/t.v1.S/Echo", b"x",
                    metadata=[("Upper", "x")])


if __name__ == "__main__":
    unittest.main()

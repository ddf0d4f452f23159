# SPDX-License-Identifier: Apache-2.0
"""The call API through the binding: a configured service with static
discovery pointing at an in-process mesh echo server."""

import unittest

import libmesh
from libmesh import call, errors
import meshtest
from meshtest import EchoServer, TrustDomain


class TestCall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")
        cls.server_mesh = libmesh.Mesh(meshtest.config(cls.td, "api"))
        cls.server = EchoServer(cls.server_mesh)
        cls.client = libmesh.Mesh(meshtest.config(cls.td, "web", services={
            "api": {"peers": ["spiffe://example.org/api"],
                    "retry": {"retry_on": ["gateway-error"], "num_retries": 2,
                              "base_interval_ms": 1},
                    "discovery": {"type": "static", "endpoints": [
                        {"address": "127.0.0.1", "port": cls.server.port}]}},
        }))
        cls.client.wait_discovery("api", 5)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.close()
        cls.server_mesh.close()
        cls.td.cleanup()

    def test_one_try(self):
        with self.client.call("api", deadline=5) as c:
            self.assertEqual(c.endpoint, self.server.addr)
            self.assertEqual(c.attempt, 0)
            self.assertEqual(c.conn.peer_id, "spiffe://example.org/api")
            self.assertGreater(c.remaining(), 0)
            c.conn.sendall(b"ping")
            self.assertEqual(c.conn.recv(4), b"ping")
            c.end(call.OK, 200)
        with self.assertRaises(libmesh.Closed):
            c.conn.recv(1)

    def test_call_do(self):
        tries = []

        def one(conn):
            tries.append(conn.peer_id)
            conn.sendall(b"hello")
            got = b""
            while len(got) < 5:
                got += conn.recv(5 - len(got))
            return call.OK, 200

        self.client.call_do("api", one, deadline=5)
        self.assertEqual(tries, ["spiffe://example.org/api"])

    def test_call_do_upstream_error_after_retries(self):
        tries = []

        def one(conn):
            tries.append(1)
            conn.sendall(b"x")
            conn.recv(1)
            return call.OK, 503

        with self.assertRaises(libmesh.Unavailable) as cm:
            self.client.call_do("api", one, deadline=5)
        self.assertEqual(cm.exception.code, errors.ERR_UPSTREAM)
        self.assertEqual(len(tries), 3)  # first try + num_retries

    def test_call_do_python_exception_propagates(self):
        def one(conn):
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            self.client.call_do("api", one, deadline=5)

    def test_request(self):
        req = b"GET-ish request\n"

        def frame(data):  # the echo is complete once it is as long
            return (len(req), 200) if len(data) >= len(req) else (0, 0)

        resp, status = self.client.request("api", req, frame, deadline=5)
        self.assertEqual((resp, status), (req, 200))

    def test_unknown_service(self):
        with self.assertRaises(libmesh.Unavailable) as cm:
            self.client.call("nope")
        self.assertEqual(cm.exception.code, errors.ERR_UNKNOWN_SERVICE)


class TestSubset(unittest.TestCase):
    """mesh_call_opts_set_subset: a named subset bypasses the split."""

    def test_subset_bypasses_split(self):
        td = TrustDomain("example.org")
        self.addCleanup(td.cleanup)
        servers = {}
        for v in ("v1", "v2"):
            m = libmesh.Mesh(meshtest.config(td, "api-" + v))
            self.addCleanup(m.close)
            srv = EchoServer(m)
            self.addCleanup(srv.close)
            servers[v] = srv
        client = libmesh.Mesh(meshtest.config(td, "web", services={
            "api": {"peers": ["spiffe://example.org/api-*"],
                    "subsets": {"v1": {"version": "v1"},
                                "v2": {"version": "v2"}},
                    "split": [{"subset": "v1", "weight": 100},
                              {"subset": "v2", "weight": 0}],
                    "discovery": {"type": "static", "endpoints": [
                        {"address": "127.0.0.1", "port": servers[v].port,
                         "labels": {"version": v}} for v in servers]}}}))
        self.addCleanup(client.close)
        client.wait_discovery("api", 5)

        def who(**opts):
            with client.call("api", deadline=5, **opts) as c:
                return c.conn.peer_id

        for _ in range(3):
            self.assertEqual(who(), "spiffe://example.org/api-v1")
            self.assertEqual(who(subset="v2"), "spiffe://example.org/api-v2")
        with self.assertRaises(libmesh.MeshError) as cm:
            who(subset="v3")
        self.assertEqual(cm.exception.code, errors.ERR_NOT_FOUND)


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""mTLS connections through the binding: a server thread in-process on
loopback, certificates minted with the binding's dev CA."""

import os
import socket
import threading
import time
import unittest

import libmesh
from libmesh import errors
import meshtest
from meshtest import EchoServer, TrustDomain

SERVER_ID = "spiffe://example.org/server"
CLIENT_ID = "spiffe://example.org/client"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ConnTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")
        cls.server_mesh = libmesh.Mesh(meshtest.config(cls.td, "server"))
        cls.client_mesh = libmesh.Mesh(meshtest.config(cls.td, "client"))

    @classmethod
    def tearDownClass(cls):
        cls.client_mesh.close()
        cls.server_mesh.close()
        cls.td.cleanup()

    def setUp(self):
        self.server = EchoServer(self.server_mesh)

    def tearDown(self):
        self.server.close()


class TestEcho(ConnTestCase):
    def test_dial_echo_and_identities(self):
        with self.client_mesh.dial(self.server.addr, timeout=5,
                                   peers=[SERVER_ID]) as c:
            c.sendall(b"hello mesh")
            got = b""
            while len(got) < 10:
                chunk = c.recv(100)
                self.assertTrue(chunk, "EOF before the echo")
                got += chunk
            self.assertEqual(got, b"hello mesh")
            self.assertEqual(c.peer_id, SERVER_ID)
            self.assertTrue(c.is_tls)
            self.assertTrue(c.cipher)
            self.assertTrue(c.tls_version.startswith("TLS"))
            self.assertGreaterEqual(c.fileno(), 0)
            self.assertEqual(c.getpeername(), ("127.0.0.1", self.server.port))
            self.assertIn("BEGIN CERTIFICATE", c.peer_chain_pem())
        self.assertTrue(c.closed)
        with self.assertRaises(libmesh.Closed):
            c.recv(1)
        self.assertEqual(self.server.peers, [CLIENT_ID])

    def test_large_transfer_and_send(self):
        payload = bytes(range(256)) * 4096  # 1 MiB
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            t = threading.Thread(target=c.sendall, args=(payload,))
            t.start()
            buf = bytearray(len(payload))
            view = memoryview(buf)
            n = 0
            while n < len(payload):
                r = c.recv_into(view[n:], 65536)
                self.assertGreater(r, 0)
                n += r
            t.join(10)
            self.assertEqual(bytes(buf), payload)
            self.assertGreater(c.send(b"x"), 0)
            self.assertEqual(c.recv(10), b"x")

    def test_shutdown_gives_peer_eof(self):
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            c.sendall(b"last words")
            c.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = c.recv(100)
                if not chunk:
                    break
                got += chunk
            self.assertEqual(got, b"last words")  # echo, then EOF

    def test_makefile_lines(self):
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            w = c.makefile("wb")
            r = c.makefile("r", encoding="utf-8")
            w.write(b"line one\nline two\n")
            w.flush()
            self.assertEqual(r.readline(), "line one\n")
            self.assertEqual(r.readline(), "line two\n")
            c.close()  # deferred: files still open
            self.assertFalse(c._life.closed)
            w.close()
            r.close()
            self.assertTrue(c._life.closed)

    def test_session_resumption(self):
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            c.sendall(b"1")
            self.assertEqual(c.recv(1), b"1")
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            c.sendall(b"2")
            self.assertEqual(c.recv(1), b"2")
            self.assertTrue(c.resumed)


class TestFailures(ConnTestCase):
    def test_wrong_peer_id(self):
        with self.assertRaises(libmesh.IdentityError) as cm:
            self.client_mesh.dial(self.server.addr, timeout=5,
                                  peers=["spiffe://example.org/other"])
        e = cm.exception
        self.assertEqual(e.code, errors.ERR_PEER_ID)
        self.assertEqual(e.name, "MESH_ERR_PEER_ID")
        self.assertIn(SERVER_ID, e.message)
        self.assertIsInstance(e, ConnectionError)

    def test_untrusted_ca(self):
        other = TrustDomain("example.org")  # same name, another CA
        try:
            with libmesh.Mesh(meshtest.config(other, "client")) as m:
                with self.assertRaises(libmesh.IdentityError) as cm:
                    m.dial(self.server.addr, timeout=5)
                self.assertEqual(cm.exception.code, errors.ERR_CERT_UNTRUSTED)
        finally:
            other.cleanup()

    def test_connect_refused(self):
        with self.assertRaises(libmesh.ConnectError) as cm:
            self.client_mesh.dial("127.0.0.1:%d" % free_port(), timeout=2)
        self.assertEqual(cm.exception.code, errors.ERR_CONNECT)

    def test_unknown_service(self):
        with self.assertRaises(libmesh.Unavailable) as cm:
            self.client_mesh.dial("nosuchservice")
        self.assertEqual(cm.exception.code, errors.ERR_UNKNOWN_SERVICE)
        self.assertIn("nosuchservice", cm.exception.message)

    def test_plaintext_client_refused(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), 5)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(5)
        try:
            self.assertEqual(s.recv(100)[:1] in (b"", b"\x15"), True)
        except ConnectionResetError:
            pass
        s.close()
        deadline = time.monotonic() + 5
        while not self.server.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(self.server.errors)
        self.assertEqual(self.server.errors[0].code,
                         errors.ERR_PLAINTEXT_PEER)


class TestPermissivePlaintextPeer(unittest.TestCase):
    """Issue 12, item 1: a PERMISSIVE listener recording spans served a
    plaintext peer by reading the identity it does not have (SIGSEGV).
    Through the binding: the plaintext peer is served with an empty
    identity, no certificate chain, an accept span without a peer ID, and
    an mTLS client is served after it."""

    def test_plaintext_peer_with_span_hooks(self):
        td = TrustDomain("example.org")
        spans = []
        try:
            sm = libmesh.Mesh(meshtest.config(
                td, "server", inbound={"mode": "PERMISSIVE"}))
            cm = libmesh.Mesh(meshtest.config(td, "client"))
            sm.set_span_hooks(on_end=spans.append)
            seen = []

            def handler(conn):
                seen.append((conn.peer_id, conn.is_tls, conn.cipher))
                if not conn.is_tls:
                    with self.assertRaises(libmesh.MeshError) as cm_:
                        conn.peer_chain_pem()
                    seen.append(cm_.exception.code)
                EchoServer.echo(conn)

            srv = EchoServer(sm, handler)
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), 5)
                s.settimeout(5)
                s.sendall(b"hello plain")
                got = b""
                while len(got) < 11:
                    chunk = s.recv(100)
                    self.assertTrue(chunk, "EOF before the echo")
                    got += chunk
                s.close()
                self.assertEqual(got, b"hello plain")
                with cm.dial(srv.addr, timeout=5) as c:
                    c.sendall(b"mtls")
                    self.assertEqual(c.recv(4), b"mtls")
                deadline = time.monotonic() + 60
                while len(seen) < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                srv.close()
            self.assertEqual(seen[0], ("", False, ""))
            self.assertEqual(seen[1], errors.ERR_NOT_FOUND)
            self.assertEqual(seen[2][0:2], (CLIENT_ID, True))
            accepts = [sp for sp in spans if sp.name == "mesh.accept"]
            self.assertEqual(len(accepts), 2)
            self.assertNotIn("mesh.peer.spiffe_id", accepts[0].attributes)
            self.assertIs(accepts[0].attributes.get("mesh.plaintext"), True)
            self.assertEqual(accepts[1].attributes.get("mesh.peer.spiffe_id"),
                             CLIENT_ID)
            cm.close()
            sm.close()
        finally:
            td.cleanup()


class TestTimeoutsAndClose(ConnTestCase):
    def test_recv_timeout(self):
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            c.settimeout(0.2)
            self.assertEqual(c.gettimeout(), 0.2)
            t0 = time.monotonic()
            with self.assertRaises(socket.timeout) as cm:
                c.recv(10)
            took = time.monotonic() - t0
            self.assertIsInstance(cm.exception, libmesh.MeshTimeout)
            self.assertGreaterEqual(took, 0.15)
            self.assertLess(took, 2)
            # not sticky: the connection still works
            c.sendall(b"ok")
            self.assertEqual(c.recv(2), b"ok")

    def test_zero_timeout_fails_fast(self):
        with self.client_mesh.dial(self.server.addr, timeout=5) as c:
            c.settimeout(0)
            t0 = time.monotonic()
            with self.assertRaises(TimeoutError):
                c.recv(1)
            self.assertLess(time.monotonic() - t0, 1)

    def test_accept_timeout(self):
        with self.server_mesh.listen("127.0.0.1:0") as ln:
            t0 = time.monotonic()
            with self.assertRaises(libmesh.MeshTimeout):
                ln.accept(timeout=0.1)
            self.assertLess(time.monotonic() - t0, 2)

    def test_close_from_other_thread_wakes_recv(self):
        c = self.client_mesh.dial(self.server.addr, timeout=5)
        result = []

        def reader():
            try:
                result.append(c.recv(10))
            except libmesh.MeshError as e:
                result.append(e)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        c.close()
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertLess(time.monotonic() - t0, 2)
        self.assertTrue(result == [b""] or isinstance(result[0],
                                                      libmesh.MeshError))

    def test_close_listener_wakes_accept(self):
        ln = self.server_mesh.listen("127.0.0.1:0")
        result = []

        def acceptor():
            try:
                ln.accept()
            except libmesh.MeshError as e:
                result.append(e)

        t = threading.Thread(target=acceptor)
        t.start()
        time.sleep(0.1)
        ln.close()
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(result[0], libmesh.Closed)

    def test_mesh_close_closes_children(self):
        m = libmesh.Mesh(meshtest.config(self.td, "client2"))
        c = m.dial(self.server.addr, timeout=5)
        f = c.makefile("rb")  # would defer a plain close()
        ln = m.listen("127.0.0.1:0")
        m.close()
        self.assertTrue(c._life.closed)
        with self.assertRaises(libmesh.Closed):
            f.read(1)
        self.assertTrue(ln.closed)
        with self.assertRaises(libmesh.Closed):
            m.dial(self.server.addr)


class TestLog(ConnTestCase):
    def test_log_callback_gets_lines(self):
        lines = []
        m = libmesh.Mesh(meshtest.config(self.td, "logger"),
                         log=lambda lv, line: lines.append((lv, line)),
                         log_level="debug")
        with m:
            m.listen("127.0.0.1:0").close()
        self.assertTrue(any("event=listen" in l for _, l in lines), lines)
        self.assertTrue(all(0 <= lv <= 4 for lv, _ in lines))


if __name__ == "__main__":
    unittest.main()


class TestSelfIdentity(unittest.TestCase):
    def test_self_id_expiry_reload(self):
        td = TrustDomain("example.org")
        try:
            with libmesh.Mesh(meshtest.config(td, "self")) as m:
                self.assertEqual(m.self_id, "spiffe://example.org/self")
                left = m.svid_expires_in()
                self.assertTrue(3000 < left <= 3660, left)
                m.reload_identity()  # unchanged files: fine
                with open(os.path.join(td.dir, "self.crt"), "w") as f:
                    f.write("not PEM")
                with self.assertRaises(libmesh.MeshError):
                    m.reload_identity()
                self.assertEqual(m.self_id, "spiffe://example.org/self")
            with libmesh.Mesh() as plain:
                self.assertIsNone(plain.self_id)
                self.assertIsNone(plain.svid_expires_in())
        finally:
            td.cleanup()

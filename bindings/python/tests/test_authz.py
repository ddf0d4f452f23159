# SPDX-License-Identifier: Apache-2.0
"""Authorization through the binding: checks, reloads, the callback
authorizer and counters, and enforcement at accept on real connections."""

import threading
import unittest

import libmesh
from libmesh import authz, errors
import meshtest
from meshtest import EchoServer, TrustDomain

POLICIES = {"policies": [
    {"name": "deny-dev-post", "action": "DENY",
     "rules": [{"from": [{"source": {"namespaces": ["dev"]}}],
                "to": [{"operation": {"methods": ["POST"]}}]}]},
    {"name": "shop-read", "action": "ALLOW",
     "rules": [{"from": [{"source": {"principals": [
         "example.org/ns/shop/*", "example.org/ns/dev/*"]}}],
                "to": [{"operation": {"paths": ["/items*"]}}]}]},
]}

WEB = "spiffe://example.org/ns/shop/sa/web"
DEV = "spiffe://example.org/ns/dev/sa/tool"


class TestAuthzCheck(unittest.TestCase):
    def setUp(self):
        self.m = libmesh.Mesh({"log": {"level": "error"}, "authz": POLICIES})

    def tearDown(self):
        self.m.close()

    def test_decisions_table(self):
        cases = [  # principal, method, path, allowed, policy in the message
            (WEB, "GET", "/items/1", True, None),
            (WEB, "POST", "/items", True, None),
            (DEV, "GET", "/items", True, None),
            (DEV, "POST", "/items", False, "deny-dev-post"),
            (WEB, "GET", "/admin", False, None),
            ("spiffe://example.org/ns/other/sa/x", "GET", "/items", False,
             None),
            (WEB, "GET", "/x/../items/%31", True, None),  # normalized
        ]
        for principal, method, path, allowed, policy in cases:
            with self.subTest(principal=principal, method=method, path=path):
                if allowed:
                    self.assertIsNone(self.m.authz_check(
                        principal=principal, method=method, path=path))
                    continue
                with self.assertRaises(libmesh.Denied) as cm:
                    self.m.authz_check(principal=principal, method=method,
                                       path=path)
                self.assertEqual(cm.exception.code, errors.ERR_DENIED)
                self.assertIsInstance(cm.exception, PermissionError)
                if policy:
                    self.assertIn(policy, cm.exception.message)
        self.assertEqual(self.m.authz_counter("allow"), 4)
        self.assertEqual(self.m.authz_counter("deny"), 3)

    def test_request_object_reads_back(self):
        with authz.Request(principal=DEV, source_ip="10.0.0.7", port=8443,
                           method="GET", path="/a//b/../c?q=1", host="api",
                           headers=[("X-Tenant", "acme")]) as r:
            self.assertEqual(r.principal, DEV)
            self.assertEqual(r.namespace, "dev")
            self.assertEqual(r.source_ip, "10.0.0.7")
            self.assertEqual(r.port, 8443)
            self.assertEqual((r.method, r.path, r.host), ("GET", "/a/c",
                                                          "api"))
            self.assertEqual(r.header("x-tenant"), "acme")
            self.assertIsNone(r.header("x-other"))
            with self.assertRaises(libmesh.Denied):  # /a/c is not /items*
                self.m.authz_check(r)
        tcp = authz.Request(principal=WEB)
        self.assertIsNone(tcp.method)
        self.assertIsNone(tcp.port)
        tcp.free()
        with self.assertRaises(libmesh.Closed):
            tcp.principal

    def test_bad_attributes(self):
        with self.assertRaises(libmesh.InvalidArgument):
            self.m.authz_check(source_ip="not-an-ip")
        with self.assertRaises(libmesh.InvalidArgument):
            self.m.authz_check(port=70000)
        with self.assertRaises(libmesh.MeshError) as cm:
            self.m.authz_check(method="GET", path="no-slash")
        self.assertEqual(cm.exception.code, errors.ERR_HTTP_PARSE)
        with self.assertRaises(libmesh.MeshError):
            self.m.authz_counter("nope")

    def test_reload(self):
        with self.assertRaises(libmesh.Denied):
            self.m.authz_check(principal=WEB, method="GET", path="/admin")
        bad = {"policies": [{"name": "x", "action": "ALLOW", "rules": [
            {"to": [{"operation": {"paths": ["admin"]}}]}]}]}
        with self.assertRaises(libmesh.ConfigError) as cm:
            self.m.authz_reload(bad)
        self.assertIn("policies[0].rules[0].to[0]", cm.exception.message)
        self.assertEqual(self.m.authz_counter("reload_error"), 1)
        # The old set is still in force.
        with self.assertRaises(libmesh.Denied):
            self.m.authz_check(principal=WEB, method="GET", path="/admin")
        self.m.authz_reload('{"policies": []}')  # JSON text works too
        self.assertIsNone(self.m.authz_check(principal=WEB, method="GET",
                                             path="/admin"))
        self.assertEqual(self.m.authz_counter("reload"), 1)

    def test_dry_run(self):
        self.m.authz_reload(dict(POLICIES, dry_run=True))
        self.assertIsNone(self.m.authz_check(principal=DEV, method="POST",
                                             path="/items"))
        self.assertEqual(self.m.authz_counter("dry_run_deny"), 1)


class TestAuthorizer(unittest.TestCase):
    CUSTOM = {"policies": [{"name": "tenant", "action": "CUSTOM",
                            "provider": "callback", "rules": [{}]}]}

    def setUp(self):
        self.m = libmesh.Mesh({"log": {"level": "error"},
                               "authz": self.CUSTOM})

    def tearDown(self):
        self.m.close()

    def test_callback_decides(self):
        seen = []

        def decide(req, policy):
            seen.append((policy, req.principal, req.method, req.path,
                         req.header("X-Tenant")))
            return req.header("x-tenant") == "acme"

        self.m.set_authorizer(decide)
        self.assertIsNone(self.m.authz_check(
            principal=WEB, method="GET", path="/p",
            headers={"x-tenant": "acme"}))
        with self.assertRaises(libmesh.Denied) as cm:
            self.m.authz_check(principal=WEB, method="GET", path="/p",
                               headers={"x-tenant": "evil"})
        self.assertIn("tenant", cm.exception.message)
        self.assertEqual(seen, [("tenant", WEB, "GET", "/p", "acme"),
                                ("tenant", WEB, "GET", "/p", "evil")])
        self.assertEqual(self.m.authz_counter("custom_deny"), 1)

    def test_view_is_only_valid_during_the_call(self):
        kept = []
        self.m.set_authorizer(lambda req, policy: kept.append(req) or True)
        self.assertIsNone(self.m.authz_check(principal=WEB))
        # The view outlived its call: reading it is an error, not a crash.
        with self.assertRaises(libmesh.Closed):
            kept[0].principal
        # Only True allows: a truthy non-bool is not a decision.
        self.m.set_authorizer(lambda req, policy: "yes")
        with self.assertRaises(libmesh.Denied):
            self.m.authz_check(principal=WEB)

    def test_exception_and_removal_deny(self):
        def boom(req, policy):
            raise RuntimeError("authorizer bug")

        self.m.set_authorizer(boom)
        with self.assertRaises(libmesh.Denied):
            self.m.authz_check(principal=WEB)
        self.m.set_authorizer(lambda req, policy: True)
        self.assertIsNone(self.m.authz_check(principal=WEB))
        self.m.set_authorizer(None)  # no callback: CUSTOM callback denies
        with self.assertRaises(libmesh.Denied):
            self.m.authz_check(principal=WEB)

    def test_concurrent_checks(self):
        n = [0]
        lock = threading.Lock()

        def count(req, policy):
            with lock:
                n[0] += 1
            return True

        self.m.set_authorizer(count)
        errs = []

        def worker():
            try:
                for _ in range(50):
                    self.m.authz_check(principal=WEB, method="GET", path="/")
            except Exception as e:  # pragma: no cover - reported below
                errs.append(e)

        ts = [threading.Thread(target=worker) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(errs, [])
        self.assertEqual(n[0], 200)
        self.assertEqual(self.m.authz_counter("allow"), 200)


class TestEnforcedAtAccept(unittest.TestCase):
    """Real mTLS peers: connection-level policies (TCP semantics) decided
    inside the accept, by the policy set and by a Python authorizer."""

    @classmethod
    def setUpClass(cls):
        cls.td = TrustDomain("example.org")

    @classmethod
    def tearDownClass(cls):
        cls.td.cleanup()

    def serve(self, policies, authorizer=None):
        m = libmesh.Mesh(meshtest.config(
            self.td, "api", authz=dict(policies, protocol="tcp")))
        self.addCleanup(m.close)
        if authorizer:
            m.set_authorizer(authorizer)
        srv = EchoServer(m)
        self.addCleanup(srv.close)
        return m, srv

    def client(self, name):
        m = libmesh.Mesh(meshtest.config(self.td, name))
        self.addCleanup(m.close)
        return m

    def echo(self, client, srv):
        with client.dial(srv.addr, timeout=5) as c:
            c.sendall(b"ping")
            return c.recv(4)

    def test_policy_refuses_unlisted_principal(self):
        m, srv = self.serve({"policies": [{"name": "web-only",
                                           "action": "ALLOW", "rules": [
            {"from": [{"source": {"principals": ["example.org/web"]}}]}]}]})
        self.assertEqual(self.echo(self.client("web"), srv), b"ping")
        with self.assertRaises(libmesh.MeshError):
            self.echo(self.client("intruder"), srv)
        self.assertEqual(m.authz_counter("conn_deny"), 1)
        self.assertEqual(m.authz_counter("allow"), 1)

    def test_authorizer_at_accept(self):
        calls = []

        def decide(req, policy):
            calls.append((req.principal, req.port, req.source_ip))
            return req.principal.endswith("/web")

        m, srv = self.serve(TestAuthorizer.CUSTOM, decide)
        self.assertEqual(self.echo(self.client("web"), srv), b"ping")
        with self.assertRaises(libmesh.MeshError):
            self.echo(self.client("intruder"), srv)
        self.assertEqual(
            calls[0], ("spiffe://example.org/web", srv.port, "127.0.0.1"))
        self.assertEqual(calls[1][0], "spiffe://example.org/intruder")
        self.assertEqual(m.authz_counter("custom_deny"), 1)

    def test_request_from_accepted_conn(self):
        m = libmesh.Mesh(meshtest.config(self.td, "api"))  # no policies
        self.addCleanup(m.close)
        ln = m.listen("127.0.0.1:0")
        self.addCleanup(ln.close)
        got = []

        def serve():
            with ln.accept(timeout=5) as c:
                got.append(authz.Request(conn=c))
                c.sendall(b"x")

        t = threading.Thread(target=serve)
        t.start()
        with self.client("web").dial("127.0.0.1:%d" % ln.port,
                                     timeout=5) as c:
            c.recv(1)
        t.join(5)
        r = got[0]
        self.assertEqual((r.principal, r.port, r.source_ip),
                         ("spiffe://example.org/web", ln.port, "127.0.0.1"))
        self.assertIsNone(m.authz_check(r))
        m.authz_reload({"policies": [{"name": "web", "rules": [
            {"from": [{"source": {"principals": ["example.org/web"]}}],
             "to": [{"operation": {"ports": [1]}}]}]}]})
        with self.assertRaises(libmesh.Denied):  # port 1 only
            m.authz_check(r)
        m.authz_reload({"policies": [{"name": "web", "rules": [
            {"from": [{"source": {"principals": ["example.org/web"]}}],
             "to": [{"operation": {"ports": [ln.port]}}]}]}]})
        self.assertIsNone(m.authz_check(r))
        r.free()


if __name__ == "__main__":
    unittest.main()

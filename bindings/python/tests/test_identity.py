# SPDX-License-Identifier: Apache-2.0
"""Identity: SPIFFE IDs and the development CA through the binding."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

import libmesh
from libmesh import errors
from meshtest import TrustDomain


class TestSpiffeId(unittest.TestCase):
    VALID = [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/ns/default/sa/web", "example.org",
         "/ns/default/sa/web"),
    ]
    INVALID = [
        "http://example.org/x", "spiffe://", "spiffe://Example.org/x",
        "spiffe://example.org/", "spiffe://example.org/a/../b",
        "spiffe://example.org/a%20b", "spiffe://example.org:8080/x",
        "spiffe://user@example.org/x", "spiffe://example.org/x?q=1",
        "spiffe://example.org//x",
    ]

    def test_validate_and_parse_valid(self):
        for sid, td, path in self.VALID:
            with self.subTest(sid=sid):
                libmesh.spiffe_id_validate(sid)
                self.assertEqual(libmesh.spiffe_id_parse(sid), (td, path))

    def test_validate_invalid_raises_with_reason(self):
        for sid in self.INVALID:
            with self.subTest(sid=sid):
                with self.assertRaises(libmesh.CredentialError) as cm:
                    libmesh.spiffe_id_validate(sid)
                self.assertEqual(cm.exception.code, errors.ERR_SPIFFE_ID)
                self.assertTrue(cm.exception.message)
                with self.assertRaises(libmesh.CredentialError):
                    libmesh.spiffe_id_parse(sid)

    def test_match(self):
        table = [
            ("*", "spiffe://a.org/x", True),
            ("spiffe://a.org/x", "spiffe://a.org/x", True),
            ("spiffe://a.org/x", "spiffe://a.org/y", False),
            ("a.org/ns/default/sa/*", "spiffe://a.org/ns/default/sa/web",
             True),
            ("a.org/ns/default/sa/*", "spiffe://a.org/ns/prod/sa/web", False),
            ("spiffe://a.org", "spiffe://a.org/anything", True),
            ("spiffe://a.org", "spiffe://b.org/anything", False),
        ]
        for pattern, sid, want in table:
            with self.subTest(pattern=pattern, sid=sid):
                self.assertIs(libmesh.spiffe_match(pattern, sid), want)


class TestDevCA(unittest.TestCase):
    def setUp(self):
        self.td = TrustDomain("example.org")

    def tearDown(self):
        self.td.cleanup()

    def test_ca_init_writes_pem_and_private_key(self):
        with open(self.td.ca_cert) as f:
            self.assertIn("BEGIN CERTIFICATE", f.read())
        mode = stat.S_IMODE(os.stat(self.td.ca_key).st_mode)
        self.assertEqual(mode, 0o600)

    def test_ca_issue_svid_has_uri_san(self):
        crt, key = self.td.svid("web", "spiffe://example.org/ns/default/web")
        with open(crt) as f:
            self.assertIn("BEGIN CERTIFICATE", f.read())
        self.assertTrue(os.path.getsize(key) > 0)
        if shutil.which("openssl"):
            out = subprocess.run(["openssl", "x509", "-in", crt, "-noout",
                                  "-ext", "subjectAltName"],
                                 capture_output=True, text=True, check=True)
            self.assertIn("URI:spiffe://example.org/ns/default/web",
                          out.stdout)
            ver = subprocess.run(["openssl", "verify", "-CAfile",
                                  self.td.ca_cert, crt],
                                 capture_output=True, text=True)
            self.assertEqual(ver.returncode, 0, ver.stdout + ver.stderr)

    def test_ca_issue_validity_window(self):
        now = int(time.time())
        crt, _ = self.td.svid("old", not_before=now - 7200,
                              not_after=now - 3600)
        if shutil.which("openssl"):
            out = subprocess.run(["openssl", "x509", "-in", crt, "-noout",
                                  "-checkend", "0"],
                                 capture_output=True, text=True)
            self.assertNotEqual(out.returncode, 0, "expired cert is valid")

    def test_ca_issue_errors(self):
        with self.assertRaises(libmesh.CredentialError) as cm:
            self.td.svid("bad", "not-a-spiffe-id")
        self.assertEqual(cm.exception.code, errors.ERR_SPIFFE_ID)
        missing = os.path.join(self.td.dir, "missing-ca.crt")
        with self.assertRaises(libmesh.MeshError) as cm:
            libmesh.ca_issue(missing, self.td.ca_key,
                             "spiffe://example.org/x",
                             os.path.join(self.td.dir, "x.crt"),
                             os.path.join(self.td.dir, "x.key"))
        self.assertIn(cm.exception.code, (errors.ERR_IO, errors.ERR_PEM))
        self.assertIn("missing-ca.crt", cm.exception.message)

    def test_ca_init_bad_trust_domain(self):
        with self.assertRaises(libmesh.CredentialError):
            libmesh.ca_init("Bad Domain", os.path.join(self.td.dir, "b.crt"),
                            os.path.join(self.td.dir, "b.key"))


if __name__ == "__main__":
    unittest.main()


class TestValidateJWTSVID(unittest.TestCase):
    """Mesh.validate_jwt_svid against the tests' Workload API agent
    (tests/wl_agent.py on Debian's python3-grpcio, tokens by PyJWT)."""

    def setUp(self):
        top = os.environ.get("MESH_TOP") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
        self.dir = tempfile.mkdtemp(prefix="wl-py")
        self.addCleanup(shutil.rmtree, self.dir, True)
        with open(os.path.join(self.dir, "control.json"), "w") as f:
            json.dump({"ids": [["spiffe://example.org/a", "a"]]}, f)
        self.sock = os.path.join(self.dir, "agent.sock")
        # Debian's interpreter: the one with grpcio (PATH may hold another)
        self.agent = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(top, "tests", "wl_agent.py"),
             "--socket", self.sock, "--dir", self.dir],
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(self._stop)
        line = self.agent.stdout.readline()
        self.assertTrue(line.startswith("ready"), line)

    def _stop(self):
        self.agent.kill()
        self.agent.wait()
        self.agent.stdout.close()

    def test_validate(self):
        cfg = {"identity": {"source": "workload_api",
                            "endpoint": "unix://" + self.sock,
                            "wait_ms": 30000}}
        with libmesh.Mesh(cfg) as m:
            tok = m.jwt_svid("aud1")
            sid, claims = m.validate_jwt_svid(tok, "aud1")
            self.assertEqual(sid, "spiffe://example.org/a")
            self.assertEqual(claims["sub"], sid)
            self.assertIn(claims["aud"], ("aud1", ["aud1"]))
            self.assertIsInstance(claims["exp"], (int, float))
            h, p, s = tok.split(".")
            bad = "%s.%s.%s%s" % (h, p, s[:3], "B" if s[3] == "A" else "A") \
                + s[4:]
            for t, aud in ((tok, "other"), (bad, "aud1")):
                with self.subTest(aud=aud):
                    with self.assertRaises(errors.Denied) as cm:
                        m.validate_jwt_svid(t, aud)
                    self.assertTrue(cm.exception.message)
        with libmesh.Mesh({}) as plain:
            with self.assertRaises(errors.MeshError) as cm:
                plain.validate_jwt_svid(tok, "aud1")
            self.assertEqual(cm.exception.code, errors.ERR_NOT_FOUND)

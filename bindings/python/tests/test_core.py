# SPDX-License-Identifier: Apache-2.0
"""Core: version, errors, config validation, context lifetime, external
loop."""

import json
import os
import select
import tempfile
import unittest

import libmesh
from libmesh import errors


class TestVersion(unittest.TestCase):
    def test_version(self):
        v = libmesh.version()
        parts = [int(x) for x in v.split(".")]
        self.assertEqual(len(parts), 3)
        self.assertEqual(libmesh.version_num(),
                         (parts[0] << 16) | (parts[1] << 8) | parts[2])


class TestErrors(unittest.TestCase):
    def test_constants_match_library_names(self):
        # Every ERR_* constant here must carry the library's name for it,
        # so a renumbering on either side is caught.
        names = {k: v for k, v in vars(errors).items()
                 if k.startswith("ERR_")}
        self.assertGreaterEqual(len(names), 39)
        for k, v in names.items():
            self.assertEqual(libmesh.code_name(v), "MESH_" + k)
        # and the library has no code we lack
        self.assertEqual(libmesh.code_name(min(names.values()) - 1),
                         "MESH_ERR_UNKNOWN")

    def test_error_for_classes(self):
        table = [
            (errors.ERR_TIMEOUT, libmesh.MeshTimeout, TimeoutError),
            (errors.ERR_DEADLINE, libmesh.MeshTimeout, TimeoutError),
            (errors.ERR_CONFIG, libmesh.ConfigError, ValueError),
            (errors.ERR_RESET, libmesh.ConnectionReset, ConnectionResetError),
            (errors.ERR_CONNECT, libmesh.ConnectError, ConnectionError),
            (errors.ERR_PEER_ID, libmesh.IdentityError, ConnectionError),
            (errors.ERR_CERT_EXPIRED, libmesh.IdentityError, ConnectionError),
            (errors.ERR_PEM, libmesh.CredentialError, ValueError),
            (errors.ERR_DENIED, libmesh.Denied, PermissionError),
            (errors.ERR_NO_ENDPOINTS, libmesh.Unavailable, ConnectionError),
            (errors.ERR_UNSUPPORTED, libmesh.Unsupported,
             NotImplementedError),
            (errors.ERR_WANT_READ, libmesh.WouldBlock, BlockingIOError),
            (errors.ERR_INTERNAL, libmesh.MeshError, Exception),
        ]
        for code, cls, builtin in table:
            e = errors.error_for(code, "detail %d" % code)
            self.assertIs(type(e), cls)
            self.assertIsInstance(e, libmesh.MeshError)
            self.assertIsInstance(e, builtin)
            self.assertEqual(e.code, code)
            self.assertEqual(e.name, libmesh.code_name(code))
            self.assertEqual(e.message, "detail %d" % code)
            self.assertEqual(str(e), "%s: detail %d" % (e.name, code))

    def test_error_without_detail_uses_strerror(self):
        e = errors.error_for(errors.ERR_TIMEOUT)
        self.assertEqual(e.message, libmesh.strerror(errors.ERR_TIMEOUT))
        self.assertEqual(libmesh.strerror(errors.ERR_TIMEOUT), "timed out")

    def test_error_pickles(self):
        import pickle
        e = pickle.loads(pickle.dumps(errors.error_for(errors.ERR_PEER_ID,
                                                       "x")))
        self.assertIsInstance(e, libmesh.IdentityError)
        self.assertEqual((e.code, e.message), (errors.ERR_PEER_ID, "x"))


class TestConfig(unittest.TestCase):
    CASES = [
        ({"nmae": "x"}, "nmae: unknown key"),
        ({"log": {"level": "loud"}}, "log.level: unknown value \"loud\""),
        ({"services": {"payments": {"peers": []}}},
         "services.payments.peers: must list at least one pattern"),
        ('{\n "name": "x",\n oops\n}', "JSON syntax error at line 3"),
    ]

    def test_mesh_new_errors_carry_json_path(self):
        for cfg, want in self.CASES:
            with self.subTest(cfg=cfg):
                with self.assertRaises(libmesh.ConfigError) as cm:
                    libmesh.Mesh(cfg)
                self.assertEqual(cm.exception.code, errors.ERR_CONFIG)
                self.assertEqual(cm.exception.name, "MESH_ERR_CONFIG")
                self.assertIn(want, cm.exception.message)

    def test_config_check_reports_every_error(self):
        found = libmesh.config_check({"name": "a", "nmae": 1,
                                      "log": {"lvl": 1}})
        self.assertEqual(len(found), 2, found)
        self.assertTrue(any(f.startswith("nmae:") for f in found), found)
        self.assertTrue(any(f.startswith("log.lvl:") for f in found), found)
        self.assertEqual(libmesh.config_check('{"name": "ok"}'), [])

    def test_config_type_error(self):
        with self.assertRaises(TypeError):
            libmesh.Mesh(42)

    def test_from_file(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "mesh.json")
            with open(p, "w") as f:
                json.dump({"name": "filecfg"}, f)
            with libmesh.Mesh.from_file(p) as m:
                self.assertFalse(m.closed)
            with self.assertRaises(libmesh.MeshError) as cm:
                libmesh.Mesh.from_file(os.path.join(d, "missing.json"))
            self.assertEqual(cm.exception.code, errors.ERR_IO)
            self.assertIn("missing.json", cm.exception.message)


class TestLifetime(unittest.TestCase):
    def test_context_manager_closes(self):
        with libmesh.Mesh({"name": "t"}) as m:
            self.assertFalse(m.closed)
        self.assertTrue(m.closed)
        m.close()  # idempotent
        with self.assertRaises(libmesh.Closed):
            m.backend_fd()

    def test_set_log_rejects_unknown_level(self):
        with libmesh.Mesh() as m:
            with self.assertRaises(ValueError):
                m.set_log(lambda lv, line: None, "loud")
            m.set_log(lambda lv, line: None, "debug")
            m.set_log(None)


class TestExternalLoop(unittest.TestCase):
    def test_backend_fd_external_mode(self):
        with libmesh.Mesh({"worker": {"mode": "external"}}) as m:
            fd = m.backend_fd()
            self.assertGreaterEqual(fd, 0)
            t = m.backend_timeout()
            self.assertGreaterEqual(t, -1)
            select.select([fd], [], [], 0)
            m.process()

    def test_thread_mode_has_no_backend(self):
        with libmesh.Mesh() as m:
            self.assertEqual(m.backend_fd(), -1)
            with self.assertRaises(libmesh.InvalidArgument):
                m.process()


if __name__ == "__main__":
    unittest.main()

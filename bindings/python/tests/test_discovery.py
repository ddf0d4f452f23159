# SPDX-License-Identifier: Apache-2.0
"""Discovery through the binding: static endpoints, wait, watch."""

import threading
import unittest

import libmesh
from libmesh import errors

CONFIG = {
    "log": {"level": "error"},
    "services": {
        "api": {"discovery": {"type": "static", "endpoints": [
            {"address": "127.0.0.2", "port": 8443, "health": "draining"},
            {"address": "127.0.0.1", "port": 8443, "weight": 3,
             "priority": 1,
             "locality": {"region": "eu-west", "zone": "a", "subzone": "r1"},
             "labels": {"version": "v1", "tier": "gold"}},
        ]}},
        "empty": {},
    },
}


class TestDiscovery(unittest.TestCase):
    def test_static_endpoints(self):
        with libmesh.Mesh(CONFIG) as m:
            m.wait_discovery("api", timeout=5)
            eps = m.endpoints("api")
            self.assertIsInstance(eps, libmesh.Endpoints)
            self.assertGreater(eps.version, 0)
            self.assertEqual(len(eps), 2)
            a, b = eps  # ordered by address
            self.assertEqual((a.address, a.port, a.weight, a.priority),
                             ("127.0.0.1", 8443, 3, 1))
            self.assertEqual((a.region, a.zone, a.subzone),
                             ("eu-west", "a", "r1"))
            self.assertEqual(a.labels, {"version": "v1", "tier": "gold"})
            self.assertIn(a.health, ("unknown", "healthy"))
            self.assertEqual(b.address, "127.0.0.2")
            self.assertEqual(b.health, "draining")
            self.assertEqual((b.weight, b.labels, b.region), (1, {}, ""))

    def test_unknown_service(self):
        with libmesh.Mesh(CONFIG) as m:
            with self.assertRaises(libmesh.Unavailable) as cm:
                m.endpoints("nope")
            self.assertEqual(cm.exception.code, errors.ERR_UNKNOWN_SERVICE)
            with self.assertRaises(libmesh.Unavailable):
                m.wait_discovery("nope", 0.1)

    def test_config_error_path(self):
        bad = {"services": {"api": {"discovery": {
            "type": "static", "endpoints": [{"address": "x", "port": 0}]}}}}
        errs = libmesh.config_check(bad)
        self.assertTrue(errs)
        self.assertTrue(all(e.startswith("services.api.discovery")
                            for e in errs), errs)

    def test_watch_called_with_current_set(self):
        got = []
        called = threading.Event()

        def on_change(service, eps):
            got.append((service, [(e.address, e.port) for e in eps],
                        threading.get_ident()))
            called.set()

        with libmesh.Mesh(CONFIG) as m:
            m.wait_discovery("api", timeout=5)
            wid = m.watch("api", on_change)
            self.assertGreater(wid, 0)
            self.assertTrue(called.wait(5), "watch callback never ran")
            m.unwatch(wid)
            with self.assertRaises(libmesh.MeshError) as cm:
                m.unwatch(wid)
            self.assertEqual(cm.exception.code, errors.ERR_NOT_FOUND)
        service, pairs, _ = got[0]
        self.assertEqual(service, "api")
        self.assertEqual(pairs, [("127.0.0.1", 8443), ("127.0.0.2", 8443)])


if __name__ == "__main__":
    unittest.main()

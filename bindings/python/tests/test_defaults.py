# SPDX-License-Identifier: Apache-2.0
"""Defaults agree across the C library, meshctl and the bindings: the CA
lifetime (10 years), the log level (warn)."""

import inspect
import os
import re
import subprocess
import unittest

import libmesh
from libmesh import identity

TOP = os.environ.get("MESH_TOP") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class TestDefaults(unittest.TestCase):
    def test_ca_lifetime_matches_c_and_meshctl(self):
        with open(os.path.join(TOP, "include", "mesh", "identity.h")) as f:
            c = int(re.search(r"#define MESH_CA_LIFETIME_DEFAULT_S (\d+)",
                              f.read()).group(1))
        self.assertEqual(identity.CA_LIFETIME_DEFAULT, c)
        self.assertEqual(
            inspect.signature(libmesh.ca_init).parameters["lifetime"].default,
            c)
        meshctl = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(libmesh.library_path()))), "..", "tools",
            "meshctl")
        if os.path.exists(meshctl):
            out = subprocess.run([meshctl, "ca", "--help"],
                                 capture_output=True, text=True).stdout
            out += subprocess.run([meshctl, "ca", "init", "--help"],
                                  capture_output=True, text=True).stdout
            self.assertIn("default %dh" % (c // 3600), out)

    def test_log_level_default_is_warn(self):
        self.assertEqual(inspect.signature(libmesh.Mesh).parameters[
            "log_level"].default, "warn")

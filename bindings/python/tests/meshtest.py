"""Shared test helpers: a temporary trust domain with SVIDs minted through
the binding's own dev-CA functions."""

import os
import shutil
import tempfile

import libmesh


class TrustDomain:
    """A dev CA for `td` in a temp dir; svid(name, id) issues cert+key."""

    def __init__(self, td="example.org", root=None):
        self.td = td
        self.dir = root or tempfile.mkdtemp(prefix="libmesh-py-")
        self._own = root is None
        self.ca_cert = os.path.join(self.dir, td + "-ca.crt")
        self.ca_key = os.path.join(self.dir, td + "-ca.key")
        libmesh.ca_init(td, self.ca_cert, self.ca_key, lifetime=3600)

    def svid(self, name, spiffe_id=None, **kw):
        """Issue an SVID; returns (cert_path, key_path)."""
        spiffe_id = spiffe_id or "spiffe://%s/%s" % (self.td, name)
        crt = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        libmesh.ca_issue(self.ca_cert, self.ca_key, spiffe_id, crt, key, **kw)
        return crt, key

    def cleanup(self):
        if self._own:
            shutil.rmtree(self.dir, ignore_errors=True)

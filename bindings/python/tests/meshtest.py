# SPDX-License-Identifier: Apache-2.0
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


def config(td, name, spiffe_id=None, **extra):
    """A Mesh config dict with an SVID for `name` issued by td, trusting
    td's CA.  extra: more top-level keys (tls, inbound, services...)."""
    crt, key = td.svid(name, spiffe_id)
    cfg = {
        "name": name,
        "log": {"level": "error"},  # tests that want lines set_log()
        "identity": {"cert": crt, "key": key, "bundle": td.ca_cert},
    }
    cfg.update(extra)
    return cfg


class EchoServer:
    """A mesh listener on loopback answering each connection in a thread:
    echoes what it reads until EOF.  Records accepted peer IDs and accept
    errors."""

    def __init__(self, mesh, handler=None):
        import threading
        self.mesh = mesh
        self.listener = mesh.listen("127.0.0.1:0")
        self.port = self.listener.port
        self.addr = "127.0.0.1:%d" % self.port
        self.peers = []
        self.errors = []
        self._handler = handler or self.echo
        self._threads = []
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    @staticmethod
    def echo(conn):
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)

    def _run(self):
        import threading
        while True:
            try:
                conn = self.listener.accept()
            except libmesh.Closed:
                return
            except libmesh.MeshError as e:
                if self.listener.closed:
                    return
                self.errors.append(e)
                continue
            self.peers.append(conn.peer_id)
            t = threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn):
        try:
            with conn:
                self._handler(conn)
        except libmesh.MeshError:
            pass

    def close(self):
        self.listener.close()
        self._t.join(5)
        for t in self._threads:
            t.join(5)

# SPDX-License-Identifier: Apache-2.0
"""libmesh for Python: a proxyless service mesh (mutual TLS with SPIFFE
identities, discovery, load balancing) through ctypes.

    import libmesh
    with libmesh.Mesh(config) as mesh:
        with mesh.dial("payments", timeout=5) as conn:
            conn.sendall(b"ping")
            print(conn.recv(100), conn.peer_id)

Beyond connections: ``mesh.call_do()`` / ``mesh.call()`` / ``mesh.request()``
(the call API, libmesh.call), ``mesh.http_call()`` and
``libmesh.http.Server`` (the library's HTTP layer), ``mesh.authz_check()``
and ``mesh.set_authorizer()`` (libmesh.authz), ``mesh.set_span_hooks()`` and
trace propagation (libmesh.trace), ``mesh.endpoints()`` / ``mesh.watch()``.

The shared library is taken from $LIBMESH_PATH (file or directory), the
libdir of ``pkg-config mesh``, the libdir ``make install`` recorded, or the
loader's search path (see _lib.py).  Errors are MeshError subclasses (see errors.py).
"""

__version__ = "0.1.0"  # the C library's version (configure.ac AC_INIT)

from .errors import (MeshError, ConfigError, InvalidArgument, MeshTimeout,
                     ConnectError, ConnectionReset, Closed, IdentityError,
                     CredentialError, Denied, Unavailable, Unsupported,
                     WouldBlock, strerror, code_name)
from .mesh import Mesh, config_check, version, version_num, LOG_LEVELS
from .conn import Conn, Listener
from .discovery import Endpoint, Endpoints
from .identity import (ca_init, ca_issue, spiffe_id_validate,
                       spiffe_id_parse, spiffe_match, ISSUE_DEFAULT,
                       ISSUE_AS_CA, ISSUE_NO_URI, ISSUE_TWO_URIS,
                       ISSUE_CHAIN)
from . import authz, call, errors, http, trace
from ._lib import has as has_function, path as library_path

__all__ = [
    "Mesh", "Conn", "Listener", "config_check", "version", "version_num",
    "MeshError", "ConfigError", "InvalidArgument", "MeshTimeout",
    "ConnectError", "ConnectionReset", "Closed", "IdentityError",
    "CredentialError", "Denied", "Unavailable", "Unsupported", "WouldBlock",
    "strerror", "code_name", "ca_init", "ca_issue", "spiffe_id_validate",
    "spiffe_id_parse", "spiffe_match", "authz", "call", "errors", "http",
    "trace", "has_function",
    "library_path", "Endpoint", "Endpoints", "__version__",
]

# SPDX-License-Identifier: Apache-2.0
"""Error codes of include/mesh/error.h as Python exceptions.

Every failure raises a MeshError carrying the library's code (``.code``,
negative), its symbolic name (``.name``, e.g. "MESH_ERR_TIMEOUT") and the
detail the library wrote into mesh_status_t (``.message``).  Families of
codes get subclasses that also derive from the matching built-in exception,
so code written for sockets keeps working: a mesh timeout is a TimeoutError
(``socket.timeout``), a reset a ConnectionResetError, and so on.
"""

OK = 0
ERR_INVALID_ARG = -1
ERR_NOMEM = -2
ERR_CONFIG = -3
ERR_IO = -4
ERR_CLOSED = -5
ERR_WANT_READ = -6
ERR_WANT_WRITE = -7
ERR_TIMEOUT = -8
ERR_CONNECT = -9
ERR_TLS = -10
ERR_PLAINTEXT_PEER = -11
ERR_CERT_UNTRUSTED = -12
ERR_CERT_EXPIRED = -13
ERR_CERT_NOT_YET_VALID = -14
ERR_PEER_ID = -15
ERR_TRUST_DOMAIN = -16
ERR_NO_PEER_CERT = -17
ERR_KEY_MISMATCH = -18
ERR_PEM = -19
ERR_SVID = -20
ERR_SPIFFE_ID = -21
ERR_PEER_CLOSED = -22
ERR_RESET = -23
ERR_NO_ENDPOINTS = -24
ERR_UNKNOWN_SERVICE = -25
ERR_CIRCUIT_OPEN = -26
ERR_RETRY_BUDGET = -27
ERR_DEADLINE = -28
ERR_DENIED = -29
ERR_HTTP_PARSE = -30
ERR_HTTP_TOO_LARGE = -31
ERR_DISCOVERY = -32
ERR_NOT_FOUND = -33
ERR_UNSUPPORTED = -34
ERR_INTERNAL = -35
ERR_PARSE = -36
ERR_FD_LIMIT = -37
ERR_BUFFER = -38
ERR_UPSTREAM = -39
ERR_GRPC_STATUS = -40
ERR_MSG_TOO_LARGE = -41
ERR_CANCELLED = -42
ERR_GRPC_PROTOCOL = -43


class MeshError(Exception):
    """A libmesh error: ``code`` (negative int), ``name``, ``message``."""

    def __init__(self, code, message=""):
        self.code = code
        self.name = code_name(code)
        self.message = message or strerror(code)
        super().__init__(self.message)

    def __str__(self):
        return "%s: %s" % (self.name, self.message)

    def __reduce__(self):
        return (type(self), (self.code, self.message))


class ConfigError(MeshError, ValueError):
    """MESH_ERR_CONFIG: the message names the JSON path and the reason."""


class InvalidArgument(MeshError, ValueError):
    """MESH_ERR_INVALID_ARG."""


class MeshTimeout(MeshError, TimeoutError):
    """MESH_ERR_TIMEOUT and MESH_ERR_DEADLINE (also socket.timeout)."""


class ConnectError(MeshError, ConnectionError):
    """MESH_ERR_CONNECT: TCP connect refused or unreachable."""


class ConnectionReset(MeshError, ConnectionResetError):
    """MESH_ERR_RESET, MESH_ERR_PEER_CLOSED."""


class Closed(MeshError, OSError):
    """MESH_ERR_CLOSED: the handle is closed or shut down."""


class IdentityError(MeshError, ConnectionError):
    """The peer failed mTLS or identity checks: CERT_*, PEER_ID,
    TRUST_DOMAIN, NO_PEER_CERT, SVID, PLAINTEXT_PEER, TLS."""


class CredentialError(MeshError, ValueError):
    """Our own credentials or input are malformed: PEM, KEY_MISMATCH,
    SPIFFE_ID."""


class Denied(MeshError, PermissionError):
    """MESH_ERR_DENIED: refused by an authorization policy."""


class Unavailable(MeshError, ConnectionError):
    """No way to reach the service: NO_ENDPOINTS, UNKNOWN_SERVICE,
    CIRCUIT_OPEN, RETRY_BUDGET, DISCOVERY, UPSTREAM."""


class Unsupported(MeshError, NotImplementedError):
    """MESH_ERR_UNSUPPORTED: not in this build of the library."""


class WouldBlock(MeshError, BlockingIOError):
    """MESH_ERR_WANT_READ / MESH_ERR_WANT_WRITE (non-blocking use)."""


_CLASSES = {
    ERR_CONFIG: ConfigError,
    ERR_INVALID_ARG: InvalidArgument,
    ERR_TIMEOUT: MeshTimeout,
    ERR_DEADLINE: MeshTimeout,
    ERR_CONNECT: ConnectError,
    ERR_RESET: ConnectionReset,
    ERR_PEER_CLOSED: ConnectionReset,
    ERR_CLOSED: Closed,
    ERR_DENIED: Denied,
    ERR_UNSUPPORTED: Unsupported,
    ERR_WANT_READ: WouldBlock,
    ERR_WANT_WRITE: WouldBlock,
}
for _c in (ERR_TLS, ERR_PLAINTEXT_PEER, ERR_CERT_UNTRUSTED, ERR_CERT_EXPIRED,
           ERR_CERT_NOT_YET_VALID, ERR_PEER_ID, ERR_TRUST_DOMAIN,
           ERR_NO_PEER_CERT, ERR_SVID):
    _CLASSES[_c] = IdentityError
for _c in (ERR_PEM, ERR_KEY_MISMATCH, ERR_SPIFFE_ID):
    _CLASSES[_c] = CredentialError
for _c in (ERR_NO_ENDPOINTS, ERR_UNKNOWN_SERVICE, ERR_CIRCUIT_OPEN,
           ERR_RETRY_BUDGET, ERR_DISCOVERY, ERR_UPSTREAM):
    _CLASSES[_c] = Unavailable


def error_for(code, message=""):
    """The MeshError (subclass) instance for a negative code."""
    return _CLASSES.get(code, MeshError)(code, message)


def strerror(code):
    """mesh_strerror(code)."""
    from . import _lib
    return _lib.dec(_lib.fn("mesh_strerror")(code))


def code_name(code):
    """mesh_code_name(code), e.g. "MESH_ERR_TIMEOUT"."""
    from . import _lib
    return _lib.dec(_lib.fn("mesh_code_name")(code))

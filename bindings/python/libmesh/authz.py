# SPDX-License-Identifier: Apache-2.0
"""Authorization (include/mesh/authz.h): Istio AuthorizationPolicy
semantics evaluated by the library, an application authorizer for CUSTOM
policies, reloads and decision counters.

    m.authz_reload({"policies": [{"name": "ro", "action": "ALLOW",
        "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}]})
    m.authz_check(principal="spiffe://example.org/web", method="POST",
                  path="/x")                     # raises libmesh.Denied

    def authorizer(req, policy):                 # CUSTOM, provider callback
        return req.header("x-tenant") == "acme"
    m.set_authorizer(authorizer)

The library itself enforces the policies at accept and per request in
mesh_http_serve(); authz_check() is for protocols of your own.
"""

import ctypes

from . import _lib, errors

ALLOW = 0
DENY = 1

COUNTERS = ("allow", "deny", "conn_deny", "dry_run_deny", "custom_deny",
            "opa_error", "opa_cache_hit", "audit", "reload", "reload_error")

_H = _lib.Handle
_c = ctypes
AUTHZ_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                            ctypes.c_void_p)
_lib.PROTOTYPES.update({
    "mesh_authz_request_new": (_H, []),
    "mesh_authz_request_free": (None, [_H]),
    "mesh_authz_request_set_conn": (_c.c_int, [_H, _H]),
    "mesh_authz_request_set_principal": (_c.c_int, [_H, _c.c_char_p]),
    "mesh_authz_request_set_source_ip": (_c.c_int, [_H, _c.c_char_p]),
    "mesh_authz_request_set_port": (_c.c_int, [_H, _c.c_int]),
    "mesh_authz_request_set_http": (_c.c_int, [_H, _c.c_char_p,
                                               _c.c_char_p, _c.c_char_p]),
    "mesh_authz_request_add_header": (_c.c_int, [_H, _c.c_char_p,
                                                 _c.c_char_p]),
    "mesh_authz_request_principal": (_c.c_char_p, [_H]),
    "mesh_authz_request_namespace": (_c.c_char_p, [_H]),
    "mesh_authz_request_source_ip": (_c.c_int, [_H, _c.c_char_p,
                                                _c.c_size_t]),
    "mesh_authz_request_port": (_c.c_int, [_H]),
    "mesh_authz_request_method": (_c.c_char_p, [_H]),
    "mesh_authz_request_path": (_c.c_char_p, [_H]),
    "mesh_authz_request_host": (_c.c_char_p, [_H]),
    "mesh_authz_request_header": (_c.c_char_p, [_H, _c.c_char_p]),
    "mesh_authz_set_callback": (_c.c_int, [_H, AUTHZ_FN, _c.c_void_p]),
    "mesh_authz_check": (_c.c_int, [_H, _H, _lib.StatusP]),
    "mesh_authz_reload": (_c.c_int, [_H, _c.c_char_p, _lib.StatusP]),
    "mesh_authz_counter": (_c.c_int, [_H, _c.c_char_p,
                                      _c.POINTER(_c.c_uint64)]),
})


def _opt(b):
    """A nullable const char * result: None for NULL."""
    return None if b is None else _lib.dec(b)


class _Reader:
    """Reading the attributes of a mesh_authz_request_t (self._h)."""

    def _handle(self):
        if not self._h:
            raise errors.error_for(errors.ERR_CLOSED,
                                   "authorization request is gone")
        return self._h

    @property
    def principal(self):
        """Peer SPIFFE ID ("" when none)."""
        return _lib.dec(_lib.fn("mesh_authz_request_principal")(
            self._handle()))

    @property
    def namespace(self):
        """Namespace from the SPIFFE ID's /ns/<namespace>/ path ("")."""
        return _lib.dec(_lib.fn("mesh_authz_request_namespace")(
            self._handle()))

    @property
    def source_ip(self):
        """Peer IP ("" when unknown)."""
        buf = ctypes.create_string_buffer(64)
        _lib.check(_lib.fn("mesh_authz_request_source_ip")(
            self._handle(), buf, len(buf)), prefix="source_ip")
        return _lib.dec(buf.value)

    @property
    def port(self):
        """Destination (local) port, None when unknown."""
        p = _lib.fn("mesh_authz_request_port")(self._handle())
        return None if p < 0 else p

    @property
    def method(self):
        """HTTP method; None for a non-HTTP request."""
        return _opt(_lib.fn("mesh_authz_request_method")(self._handle()))

    @property
    def path(self):
        """Normalized HTTP path without the query; None for non-HTTP."""
        return _opt(_lib.fn("mesh_authz_request_path")(self._handle()))

    @property
    def host(self):
        """HTTP host; None for non-HTTP."""
        return _opt(_lib.fn("mesh_authz_request_host")(self._handle()))

    def header(self, name):
        """First value of a header (any case), None when absent."""
        return _opt(_lib.fn("mesh_authz_request_header")(
            self._handle(), _lib.enc(name)))


class Request(_Reader):
    """The attributes of one request to check with Mesh.authz_check().

    conn: an accepted libmesh Conn (takes its peer ID, address and local
    port); principal, source_ip, port set or override them; method, path
    (request target, query allowed) and host make it an HTTP request;
    headers: a dict or (name, value) pairs (repeat a name for repeated
    fields).  Read back through the same attribute names (path
    normalized)."""

    def __init__(self, conn=None, principal=None, source_ip=None, port=None,
                 method=None, path=None, host=None, headers=None):
        self._h = _lib.fn("mesh_authz_request_new")()
        if not self._h:
            raise MemoryError("mesh_authz_request_new")
        try:
            self._fill(conn, principal, source_ip, port, method, path, host,
                       headers)
        except BaseException:
            self.free()
            raise

    def _fill(self, conn, principal, source_ip, port, method, path, host,
              headers):
        f = _lib.fn
        if conn is not None:
            ch = conn._enter()
            try:
                _lib.check(f("mesh_authz_request_set_conn")(self._h, ch),
                           prefix="conn")
            finally:
                conn._leave()
        if principal is not None:
            _lib.check(f("mesh_authz_request_set_principal")(
                self._h, _lib.enc(principal)), prefix="principal")
        if source_ip is not None:
            _lib.check(f("mesh_authz_request_set_source_ip")(
                self._h, _lib.enc(source_ip)),
                prefix="source_ip %r" % (source_ip,))
        if port is not None:
            _lib.check(f("mesh_authz_request_set_port")(self._h, int(port)),
                       prefix="port %r" % (port,))
        if method is not None or path is not None or host is not None:
            _lib.check(f("mesh_authz_request_set_http")(
                self._h, _lib.enc(method or "GET"), _lib.enc(path or "/"),
                _lib.enc(host or "")), prefix="http")
        if headers:
            items = headers.items() if hasattr(headers, "items") else headers
            for name, value in items:
                _lib.check(f("mesh_authz_request_add_header")(
                    self._h, _lib.enc(name), _lib.enc(value)),
                    prefix="header %r" % (name,))

    def free(self):
        if self._h:
            _lib.fn("mesh_authz_request_free")(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass


class RequestView(_Reader):
    """The request handed to an authorizer: the same read-only attributes
    as Request, valid only while the authorizer runs."""

    def __init__(self, handle):
        self._h = handle


def check(mesh, request, attrs):
    own = request is None
    if own:
        request = Request(**attrs)
    elif attrs:
        raise TypeError("authz_check: give a Request or attributes, not both")
    st = _lib.Status()
    try:
        h = mesh._enter()
        try:
            rc = _lib.fn("mesh_authz_check")(h, request._handle(),
                                             ctypes.byref(st))
        finally:
            mesh._leave()
    finally:
        if own:
            request.free()
    _lib.check(rc, st)


def reload(mesh, text):
    st = _lib.Status()
    h = mesh._enter()
    try:
        rc = _lib.fn("mesh_authz_reload")(h, _lib.enc(text), ctypes.byref(st))
    finally:
        mesh._leave()
    _lib.check(rc, st)


def set_callback(mesh, fn):
    if fn is None:
        cb = AUTHZ_FN()
    else:
        def decide(req, policy, _user):
            view = RequestView(req)
            try:
                return ALLOW if fn(view, _lib.dec(policy)) is True else DENY
            except Exception:  # never unwind into C: fail closed
                return DENY
            finally:
                view._h = None
        cb = AUTHZ_FN(decide)
    h = mesh._enter()
    try:
        mesh._keep.append(cb)  # a check in flight may still call the old one
        _lib.check(_lib.fn("mesh_authz_set_callback")(h, cb, None),
                   prefix="authorizer")
    finally:
        mesh._leave()


def counter(mesh, name):
    v = ctypes.c_uint64(0)
    h = mesh._enter()
    try:
        rc = _lib.fn("mesh_authz_counter")(h, _lib.enc(name), ctypes.byref(v))
    finally:
        mesh._leave()
    _lib.check(rc, prefix="authz counter %r" % (name,))
    return v.value

# SPDX-License-Identifier: Apache-2.0
"""gRPC over the mesh with bytes (include/mesh/grpc.h).

Messages are bytes, so protobuf messages work with SerializeToString() /
FromString().  Client::

    reply = libmesh.grpc.unary(mesh, "payments", "/pay.v1.Pay/Charge",
                               req.SerializeToString(), timeout=2)
    with libmesh.grpc.start(mesh, "127.0.0.1:8443", "/x.v1.S/Chat") as call:
        call.send(b"hi"); call.close_send()
        for msg in call: ...
        call.finish()                       # raises RpcError unless OK

Server (one thread per call, run by the library)::

    def echo(call):                         # a ServerCall
        for msg in call:
            call.send(msg)
    srv = libmesh.grpc.Server(mesh, mesh.listen("127.0.0.1:0"),
                              {"/mesh.v1.Echo/Stream": echo})
    threading.Thread(target=srv.serve_forever).start()

A handler returns None (OK) or raises RpcError(code, details); any other
exception ends the call UNKNOWN.  Failures raise RpcError (a MeshError with
``.status``, ``.details``, ``.trailers``) when the server answered, and
the usual MeshError subclasses when no server did.
"""

import ctypes

from . import _lib, errors

_H = _lib.Handle
_c = ctypes
_SZ = _c.POINTER(_c.c_size_t)
_VP = _c.POINTER(_c.c_void_p)
HANDLER_FN = _c.CFUNCTYPE(_c.c_int, _c.c_void_p, _c.c_void_p)
_lib.PROTOTYPES.update({
    "mesh_grpc_status_name": (_c.c_char_p, [_c.c_int]),
    "mesh_grpc_free": (None, [_c.c_void_p]),
    "mesh_grpc_metadata_new": (_H, []),
    "mesh_grpc_metadata_free": (None, [_H]),
    "mesh_grpc_metadata_add": (_c.c_int, [_H, _c.c_char_p, _c.c_char_p,
                                          _lib.StatusP]),
    "mesh_grpc_metadata_add_bin": (_c.c_int, [_H, _c.c_char_p, _c.c_char_p,
                                              _c.c_size_t, _lib.StatusP]),
    "mesh_grpc_metadata_count": (_c.c_size_t, [_H]),
    "mesh_grpc_metadata_at": (_c.c_int, [_H, _c.c_size_t,
                                         _c.POINTER(_c.c_char_p), _VP, _SZ]),
    "mesh_grpc_call_opts_new": (_H, []),
    "mesh_grpc_call_opts_free": (None, [_H]),
    "mesh_grpc_call_opts_set_timeout": (_c.c_int, [_H, _c.c_int]),
    "mesh_grpc_call_opts_set_metadata": (_c.c_int, [_H, _H]),
    "mesh_grpc_call_opts_set_retry": (_c.c_int, [_H, _c.c_int]),
    "mesh_grpc_unary": (_c.c_int, [_H, _c.c_char_p, _c.c_char_p, _H,
                                   _c.c_char_p, _c.c_size_t, _VP, _SZ,
                                   _lib.HandleP, _lib.StatusP]),
    "mesh_grpc_call_start": (_c.c_int, [_H, _c.c_char_p, _c.c_char_p, _H,
                                        _lib.HandleP, _lib.StatusP]),
    "mesh_grpc_call_send": (_c.c_int, [_H, _c.c_char_p, _c.c_size_t,
                                       _lib.StatusP]),
    "mesh_grpc_call_close_send": (_c.c_int, [_H, _lib.StatusP]),
    "mesh_grpc_call_recv": (_c.c_int, [_H, _VP, _SZ, _lib.StatusP]),
    "mesh_grpc_call_finish": (_c.c_int, [_H, _lib.StatusP]),
    "mesh_grpc_call_cancel": (None, [_H]),
    "mesh_grpc_call_free": (None, [_H]),
    "mesh_grpc_call_status": (_c.c_int, [_H]),
    "mesh_grpc_call_status_message": (_c.c_char_p, [_H]),
    "mesh_grpc_call_headers": (_H, [_H]),
    "mesh_grpc_call_trailers": (_H, [_H]),
    "mesh_grpc_call_peer_id": (_c.c_char_p, [_H]),
    "mesh_grpc_call_attempts": (_c.c_int, [_H]),
    "mesh_grpc_server_new": (_c.c_int, [_H, _lib.HandleP, _lib.StatusP]),
    "mesh_grpc_server_add_method": (_c.c_int, [_H, _c.c_char_p, HANDLER_FN,
                                               _c.c_void_p, _lib.StatusP]),
    "mesh_grpc_server_serve": (_c.c_int, [_H, _H, _lib.StatusP]),
    "mesh_grpc_server_shutdown": (None, [_H]),
    "mesh_grpc_server_free": (None, [_H]),
    "mesh_grpc_server_call_method": (_c.c_char_p, [_H]),
    "mesh_grpc_server_call_peer_id": (_c.c_char_p, [_H]),
    "mesh_grpc_server_call_metadata": (_H, [_H]),
    "mesh_grpc_server_call_recv": (_c.c_int, [_H, _VP, _SZ, _lib.StatusP]),
    "mesh_grpc_server_call_send": (_c.c_int, [_H, _c.c_char_p, _c.c_size_t,
                                              _lib.StatusP]),
    "mesh_grpc_server_call_add_trailers": (_c.c_int, [_H, _H, _lib.StatusP]),
    "mesh_grpc_server_call_set_message": (_c.c_int, [_H, _c.c_char_p]),
})

OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 2, 3, 4
NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 5, 6, 7, 8
FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED = 9, 10, 11, 12
INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED = 13, 14, 15, 16


def status_name(code):
    """'UNAVAILABLE' for 14."""
    return _lib.dec(_lib.fn("mesh_grpc_status_name")(code))


class RpcError(errors.MeshError):
    """The call ended with a non-OK gRPC status: ``status`` (int),
    ``status_name``, ``details`` (str), ``trailers`` (list of (key,
    value); bytes for -bin keys)."""

    def __init__(self, status, details="", trailers=None):
        self.status = status
        self.status_name = status_name(status)
        self.details = details
        self.trailers = trailers or []
        super().__init__(errors.ERR_GRPC_STATUS,
                         "%s: %s" % (self.status_name, details))


def _md_list(h):
    """A C metadata list (borrowed) as [(key, str | bytes)]."""
    out = []
    if not h:
        return out
    f = _lib.fn
    for i in range(f("mesh_grpc_metadata_count")(h)):
        k, v, n = _c.c_char_p(), _c.c_void_p(), _c.c_size_t()
        f("mesh_grpc_metadata_at")(h, i, _c.byref(k), _c.byref(v),
                                    _c.byref(n))
        key = _lib.dec(k.value)
        raw = _c.string_at(v.value, n.value) if n.value else b""
        out.append((key, raw if key.endswith("-bin") else raw.decode()))
    return out


def _md_new(items):
    """[(key, str | bytes)] -> a C list (caller frees), or None."""
    if not items:
        return None
    f = _lib.fn
    h = f("mesh_grpc_metadata_new")()
    st = _lib.Status()
    try:
        for k, v in (items.items() if isinstance(items, dict) else items):
            if k.endswith("-bin"):
                b = v if isinstance(v, bytes) else _lib.enc(v)
                rc = f("mesh_grpc_metadata_add_bin")(h, _lib.enc(k), b, len(b),
                                                     _c.byref(st))
            else:
                rc = f("mesh_grpc_metadata_add")(h, _lib.enc(k), _lib.enc(v),
                                                 _c.byref(st))
            _lib.check(rc, st)
    except BaseException:
        f("mesh_grpc_metadata_free")(h)
        raise
    return h


def _opts(timeout, metadata, retry):
    f = _lib.fn
    o = f("mesh_grpc_call_opts_new")()
    md = _md_new(metadata)
    try:
        if timeout is not None:
            ms = max(1, int(round(float(timeout) * 1000)))
            _lib.check(f("mesh_grpc_call_opts_set_timeout")(o, ms))
        if md:
            _lib.check(f("mesh_grpc_call_opts_set_metadata")(o, md))
        f("mesh_grpc_call_opts_set_retry")(o, 1 if retry else 0)
    except BaseException:
        f("mesh_grpc_call_opts_free")(o)
        raise
    finally:
        f("mesh_grpc_metadata_free")(md)
    return o


def _take(ptr, n):
    try:
        return _c.string_at(ptr.value, n.value) if n.value else b""
    finally:
        _lib.fn("mesh_grpc_free")(ptr)


def _status_error(call):
    f = _lib.fn
    return RpcError(f("mesh_grpc_call_status")(call),
                    _lib.dec(f("mesh_grpc_call_status_message")(call)),
                    _md_list(f("mesh_grpc_call_trailers")(call)))


def unary(mesh, target, method, request, timeout=None, metadata=None,
          retry=True):
    """One request, one response (bytes), under the method's retryPolicy.
    Raises RpcError for a non-OK status."""
    f = _lib.fn
    o = _opts(timeout, metadata, retry)
    resp, n, call, st = _c.c_void_p(), _c.c_size_t(), _H(), _lib.Status()
    req = bytes(request)
    try:
        h = mesh._enter()
        try:
            rc = f("mesh_grpc_unary")(h, _lib.enc(target), _lib.enc(method),
                                      o, req, len(req), _c.byref(resp),
                                      _c.byref(n), _c.byref(call),
                                      _c.byref(st))
        finally:
            mesh._leave()
    finally:
        f("mesh_grpc_call_opts_free")(o)
    try:
        if rc == errors.ERR_GRPC_STATUS:
            raise _status_error(call)
        _lib.check(rc, st)
        return _take(resp, n)
    finally:
        f("mesh_grpc_call_free")(call)


class Call:
    """A streaming call (any shape).  Not thread-safe, except cancel()."""

    def __init__(self, handle):
        self._h = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def close(self):
        """Free the call (cancels it when not finished)."""
        if self._h:
            _lib.fn("mesh_grpc_call_free")(self._h)
            self._h = None

    def send(self, msg):
        st = _lib.Status()
        b = bytes(msg)
        _lib.check(_lib.fn("mesh_grpc_call_send")(self._h, b, len(b),
                                                   _c.byref(st)), st)

    def close_send(self):
        st = _lib.Status()
        _lib.check(_lib.fn("mesh_grpc_call_close_send")(self._h,
                                                         _c.byref(st)), st)

    def recv(self):
        """The next message, or None when the server ended the stream."""
        p, n, st = _c.c_void_p(), _c.c_size_t(), _lib.Status()
        rc = _lib.fn("mesh_grpc_call_recv")(self._h, _c.byref(p),
                                            _c.byref(n), _c.byref(st))
        _lib.check(rc, st)
        return _take(p, n) if rc == 1 else None

    def __iter__(self):
        while True:
            m = self.recv()
            if m is None:
                return
            yield m

    def finish(self):
        """Wait for the status; RpcError unless OK."""
        st = _lib.Status()
        rc = _lib.fn("mesh_grpc_call_finish")(self._h, _c.byref(st))
        if rc == errors.ERR_GRPC_STATUS:
            raise _status_error(self._h)
        _lib.check(rc, st)

    def cancel(self):
        """Cancel (any thread)."""
        if self._h:
            _lib.fn("mesh_grpc_call_cancel")(self._h)

    @property
    def peer_id(self):
        return _lib.dec(_lib.fn("mesh_grpc_call_peer_id")(self._h))

    @property
    def headers(self):
        return _md_list(_lib.fn("mesh_grpc_call_headers")(self._h))

    @property
    def trailers(self):
        return _md_list(_lib.fn("mesh_grpc_call_trailers")(self._h))


def start(mesh, target, method, timeout=None, metadata=None):
    """Start a streaming call; returns a Call."""
    f = _lib.fn
    o = _opts(timeout, metadata, True)
    out, st = _H(), _lib.Status()
    try:
        h = mesh._enter()
        try:
            rc = f("mesh_grpc_call_start")(h, _lib.enc(target),
                                           _lib.enc(method), o,
                                           _c.byref(out), _c.byref(st))
        finally:
            mesh._leave()
    finally:
        f("mesh_grpc_call_opts_free")(o)
    _lib.check(rc, st)
    return Call(out.value)


# ---- server --------------------------------------------------------------------


class ServerCall:
    """One call inside a handler (valid during the handler only)."""

    def __init__(self, h):
        self._h = h

    @property
    def method(self):
        return _lib.dec(_lib.fn("mesh_grpc_server_call_method")(self._h))

    @property
    def peer_id(self):
        return _lib.dec(_lib.fn("mesh_grpc_server_call_peer_id")(self._h))

    @property
    def metadata(self):
        return _md_list(_lib.fn("mesh_grpc_server_call_metadata")(self._h))

    def recv(self):
        """The next request message, or None when the client half-closed."""
        p, n, st = _c.c_void_p(), _c.c_size_t(), _lib.Status()
        rc = _lib.fn("mesh_grpc_server_call_recv")(self._h, _c.byref(p),
                                                   _c.byref(n), _c.byref(st))
        _lib.check(rc, st)
        return _take(p, n) if rc == 1 else None

    def __iter__(self):
        while True:
            m = self.recv()
            if m is None:
                return
            yield m

    def send(self, msg):
        st = _lib.Status()
        b = bytes(msg)
        _lib.check(_lib.fn("mesh_grpc_server_call_send")(
            self._h, b, len(b), _c.byref(st)), st)

    def add_trailers(self, items):
        md = _md_new(items)
        st = _lib.Status()
        try:
            _lib.check(_lib.fn("mesh_grpc_server_call_add_trailers")(
                self._h, md, _c.byref(st)), st)
        finally:
            _lib.fn("mesh_grpc_metadata_free")(md)


class Server:
    """Serve handlers {"/pkg.Svc/Method": fn(ServerCall)} on a mesh
    Listener.  serve_forever() blocks until shutdown()."""

    def __init__(self, mesh, listener, handlers):
        self._mesh = mesh
        self._listener = listener
        self._cbs = []
        self.errors = []
        st, out = _lib.Status(), _H()
        h = mesh._enter()
        try:
            _lib.check(_lib.fn("mesh_grpc_server_new")(h, _c.byref(out),
                                                       _c.byref(st)), st)
        finally:
            mesh._leave()
        self._h = out.value
        for name, fn in handlers.items():
            cb = HANDLER_FN(self._wrap(fn))
            self._cbs.append(cb)  # kept alive as long as the server
            _lib.check(_lib.fn("mesh_grpc_server_add_method")(
                self._h, _lib.enc(name), cb, None, _c.byref(st)), st)

    def _wrap(self, fn):
        def run(call, _user):
            sc = ServerCall(call)
            try:
                fn(sc)
                return OK
            except RpcError as e:  # never unwind into C
                _lib.fn("mesh_grpc_server_call_set_message")(
                    call, _lib.enc(e.details))
                return e.status
            except BaseException as e:
                self.errors.append(e)
                _lib.fn("mesh_grpc_server_call_set_message")(
                    call, _lib.enc("%s: %s" % (type(e).__name__, e)))
                return UNKNOWN
        return run

    def serve_forever(self):
        st = _lib.Status()
        rc = _lib.fn("mesh_grpc_server_serve")(self._h, self._listener._h,
                                               _c.byref(st))
        _lib.check(rc, st)

    def shutdown(self):
        """Stop accepting; calls in flight finish (any thread)."""
        if self._h:
            _lib.fn("mesh_grpc_server_shutdown")(self._h)

    def close(self):
        """Shut down, wait for every call, free.  After serve_forever()
        returned."""
        if self._h:
            _lib.fn("mesh_grpc_server_free")(self._h)
            self._h = None

# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 over the mesh, two ways.

1. The library's own HTTP layer (include/mesh/http.h): routes, faults,
   retries on 5xx, trace headers and per-request authorization are done in
   C::

    resp = mesh.http_call("payments", "GET", "/balance", timeout=2)
    print(resp.status, resp.header("content-type"), resp.body)

    def handler(req):                       # a libmesh.http.Request
        return 200, {"Content-Type": "text/plain"}, b"hi " + req.peer_id.encode()
    srv = libmesh.http.Server(mesh, mesh.listen("127.0.0.1:0"), handler)
    threading.Thread(target=srv.serve_forever).start()

2. The standard library's http.client and http.server over mesh
   connections: only the transport changes.

Client::

    conn = libmesh.http.HTTPConnection(mesh, "payments", timeout=5)
    conn.request("GET", "/balance")
    print(conn.getresponse().read(), conn.sock.peer_id)

Server (any http.server.BaseHTTPRequestHandler subclass; the handler's
``self.connection`` is the mesh Conn, so ``self.connection.peer_id`` names
the caller)::

    srv = libmesh.http.HTTPServer(mesh.listen("127.0.0.1:0"), Handler)
    threading.Thread(target=srv.serve_forever).start()
    ...
    srv.shutdown()
"""

import ctypes
import http.client
import socket
import threading

from . import _lib, errors

_H = _lib.Handle
_c = ctypes
HANDLER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p)
_lib.PROTOTYPES.update({
    "mesh_http_request_new": (_H, [_c.c_char_p, _c.c_char_p]),
    "mesh_http_request_free": (None, [_H]),
    "mesh_http_request_add_header": (_c.c_int, [_H, _c.c_char_p,
                                                _c.c_char_p]),
    "mesh_http_request_set_body": (_c.c_int, [_H, _c.c_char_p, _c.c_size_t]),
    "mesh_http_request_set_timeout": (_c.c_int, [_H, _c.c_int]),
    "mesh_http_request_method": (_c.c_char_p, [_H]),
    "mesh_http_request_target": (_c.c_char_p, [_H]),
    "mesh_http_request_original_target": (_c.c_char_p, [_H]),
    "mesh_http_request_path": (_c.c_char_p, [_H]),
    "mesh_http_request_header": (_c.c_char_p, [_H, _c.c_char_p]),
    "mesh_http_path_normalize": (_c.c_int, [_H, _c.c_char_p, _c.c_char_p,
                                            _c.c_size_t]),
    "mesh_http_request_header_values": (_c.c_size_t, [
        _H, _c.c_char_p, _c.POINTER(_c.c_char_p), _c.c_size_t]),
    "mesh_http_request_header_count": (_c.c_size_t, [_H]),
    "mesh_http_request_header_at": (_c.c_int, [
        _H, _c.c_size_t, _c.POINTER(_c.c_char_p), _c.POINTER(_c.c_char_p)]),
    "mesh_http_request_body": (_c.c_void_p, [_H, _c.POINTER(_c.c_size_t)]),
    "mesh_http_request_peer_id": (_c.c_char_p, [_H]),
    "mesh_http_response_new": (_H, []),
    "mesh_http_response_free": (None, [_H]),
    "mesh_http_response_set_status": (_c.c_int, [_H, _c.c_int]),
    "mesh_http_response_add_header": (_c.c_int, [_H, _c.c_char_p,
                                                 _c.c_char_p]),
    "mesh_http_response_set_body": (_c.c_int, [_H, _c.c_char_p,
                                               _c.c_size_t]),
    "mesh_http_response_status": (_c.c_int, [_H]),
    "mesh_http_response_header_count": (_c.c_size_t, [_H]),
    "mesh_http_response_header_at": (_c.c_int, [
        _H, _c.c_size_t, _c.POINTER(_c.c_char_p), _c.POINTER(_c.c_char_p)]),
    "mesh_http_response_body": (_c.c_void_p, [_H, _c.POINTER(_c.c_size_t)]),
    "mesh_http_exchange": (_c.c_int, [_H, _c.c_char_p, _H, _lib.HandleP,
                                      _c.POINTER(_c.c_int), _lib.StatusP]),
    "mesh_http_call": (_c.c_int, [_H, _c.c_char_p, _H, _lib.HandleP,
                                  _lib.StatusP]),
    "mesh_http_serve": (_c.c_int, [_H, _H, HANDLER_FN, _c.c_void_p,
                                   _lib.StatusP]),
})


# ---- the library's HTTP layer ------------------------------------------------

class _Headers:
    """Header fields in order, with case-insensitive lookup."""

    def header(self, name, default=None):
        """First value of a header field (any case of name)."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_values(self, name):
        """Every value of a header field, in order."""
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]


def _items(headers):
    if not headers:
        return ()
    return headers.items() if hasattr(headers, "items") else headers


def _read_headers(count_fn, at_fn, h):
    out = []
    name, value = ctypes.c_char_p(), ctypes.c_char_p()
    for i in range(_lib.fn(count_fn)(h)):
        if _lib.fn(at_fn)(h, i, ctypes.byref(name), ctypes.byref(value)) == 0:
            out.append((_lib.dec(name.value), _lib.dec(value.value)))
    return out


def _read_body(fn, h):
    n = ctypes.c_size_t(0)
    p = _lib.fn(fn)(h, ctypes.byref(n))
    return ctypes.string_at(p, n.value) if p and n.value else b""


class Response(_Headers):
    """An HTTP response: status (int), headers (list of (name, value)),
    body (bytes); header(name) looks one up.  Handlers may return one."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status=200, headers=None, body=b""):
        self.status = int(status)
        self.headers = list(_items(headers))
        if body is None:
            body = b""
        self.body = body.encode() if isinstance(body, str) else bytes(body)

    def __repr__(self):
        return "<libmesh.http.Response %d, %d bytes>" % (self.status,
                                                         len(self.body))

    @classmethod
    def _from_c(cls, h):
        r = cls(_lib.fn("mesh_http_response_status")(h))
        r.headers = _read_headers("mesh_http_response_header_count",
                                  "mesh_http_response_header_at", h)
        r.body = _read_body("mesh_http_response_body", h)
        return r

    def _to_c(self, h):
        f = _lib.fn
        _lib.check(f("mesh_http_response_set_status")(h, self.status),
                   prefix="status %d" % self.status)
        for k, v in self.headers:
            _lib.check(f("mesh_http_response_add_header")(
                h, _lib.enc(k), _lib.enc(str(v))), prefix="header %r" % (k,))
        if self.body:
            _lib.check(f("mesh_http_response_set_body")(h, self.body,
                                                        len(self.body)),
                       prefix="body")


def _header_values(h, name):
    """Every value of a header through mesh_http_request_header_values."""
    fn = _lib.fn("mesh_http_request_header_values")
    n = fn(h, name, None, 0)
    if not n:
        return []
    arr = (ctypes.c_char_p * n)()
    fn(h, name, arr, n)
    return [_lib.dec(v) for v in arr]


class Request(_Headers):
    """A request a handler received, as the authorization policies saw it:
    method; target (the normalized path and the query as sent, what an
    Envoy sidecar forwards); path (the normalized path: what policies and
    routes matched); original_target (exactly as sent); headers (list of
    (name, value) in order); body (bytes); peer_id (the caller's SPIFFE
    ID, "" for a plaintext peer).  header() gives the value a policy saw:
    a repeated field's values joined with ","; header_values() every
    value.  A "traceparent" header carries the server span of this
    request: copy it into outgoing requests to continue the trace."""

    __slots__ = ("method", "target", "original_target", "path", "headers",
                 "body", "peer_id", "_joined", "_values")

    def __init__(self, h):
        # Everything is copied now: h is valid only during the handler.
        f = _lib.fn
        self.method = _lib.dec(f("mesh_http_request_method")(h))
        self.target = _lib.dec(f("mesh_http_request_target")(h))
        self.original_target = _lib.dec(
            f("mesh_http_request_original_target")(h))
        self.path = _lib.dec(f("mesh_http_request_path")(h))
        self.headers = _read_headers("mesh_http_request_header_count",
                                     "mesh_http_request_header_at", h)
        self.body = _read_body("mesh_http_request_body", h)
        self.peer_id = _lib.dec(f("mesh_http_request_peer_id")(h))
        self._joined, self._values = {}, {}
        for k in {k.lower() for k, _ in self.headers}:
            e = _lib.enc(k)
            self._joined[k] = _lib.dec(f("mesh_http_request_header")(h, e))
            self._values[k] = _header_values(h, e)

    def header(self, name, default=None):
        """The value of a header field (any case of name) as policies and
        routes matched it: several copies joined with "," in order."""
        v = self._joined.get(name.lower())
        return default if v is None else v

    def header_values(self, name):
        """Every value of a header field, one per field line, in order."""
        return list(self._values.get(name.lower(), ()))

    def __repr__(self):
        return "<libmesh.http.Request %s %s from %s>" % (
            self.method, self.target, self.peer_id or "-")


def normalize_path(mesh, target):
    """The path of a request target normalized as the mesh's own HTTP
    server does before its policies see it (authz.path_normalization; with
    mesh None, MERGE_SLASHES): for http.server handlers that want the path
    the policy judged.  The query is dropped.  Raises libmesh.MeshError
    (ERR_HTTP_PARSE: answer 400) for %00, a bad escape or a non-path."""
    t = _lib.enc(target)
    buf = ctypes.create_string_buffer(len(t) + 2)
    h = mesh._enter() if mesh is not None else None
    try:
        _lib.check(_lib.fn("mesh_http_path_normalize")(h, t, buf, len(buf)),
                   prefix="normalize %r" % (target,))
    finally:
        if mesh is not None:
            mesh._leave()
    return _lib.dec(buf.value)


def _new_request(method, target, headers, body, timeout):
    f = _lib.fn
    h = f("mesh_http_request_new")(_lib.enc(method), _lib.enc(target))
    if not h:
        raise errors.error_for(errors.ERR_INVALID_ARG,
                               "bad method %r or target %r" % (method,
                                                               target))
    try:
        for k, v in _items(headers):
            _lib.check(f("mesh_http_request_add_header")(
                h, _lib.enc(k), _lib.enc(str(v))), prefix="header %r" % (k,))
        if body:
            b = body.encode() if isinstance(body, str) else bytes(body)
            _lib.check(f("mesh_http_request_set_body")(h, b, len(b)),
                       prefix="body")
        if timeout is not None:
            ms = max(1, int(round(float(timeout) * 1000)))
            _lib.check(f("mesh_http_request_set_timeout")(h, ms),
                       prefix="timeout")
    except BaseException:
        f("mesh_http_request_free")(h)
        raise
    return h


def _take_response(out):
    try:
        return Response._from_c(out)
    finally:
        _lib.fn("mesh_http_response_free")(out)


def call(mesh, service, method, target, headers, body, timeout):
    req = _new_request(method, target, headers, body, timeout)
    st = _lib.Status()
    out = _lib.Handle()

    def work():
        try:
            h = mesh._enter()
            try:
                return _lib.fn("mesh_http_call")(h, _lib.enc(service), req,
                                                 ctypes.byref(out),
                                                 ctypes.byref(st))
            finally:
                mesh._leave()
        finally:
            _lib.fn("mesh_http_request_free")(req)

    def late(rc):  # interrupted: free the response nobody reads
        if rc >= 0 and out:
            _lib.fn("mesh_http_response_free")(out)
    rc = _lib.interruptible(work, late=late)
    _lib.check(rc, st)
    return _take_response(out)


def exchange(conn, method="GET", target="/", headers=None, body=None,
             host=None, timeout=None):
    """One request/response over a connection you hold (a Mesh.dial()
    Conn, or a call's conn).  Returns (Response, keep_alive): keep_alive
    is True when the connection may carry another request."""
    req = _new_request(method, target, headers, body, timeout)
    st = _lib.Status()
    out = _lib.Handle()
    keep = ctypes.c_int(0)
    try:
        ch = conn._enter()
        try:
            rc = _lib.fn("mesh_http_exchange")(ch, _lib.enc(host), req,
                                               ctypes.byref(out),
                                               ctypes.byref(keep),
                                               ctypes.byref(st))
        finally:
            conn._leave()
    finally:
        _lib.fn("mesh_http_request_free")(req)
    _lib.check(rc, st)
    return _take_response(out), bool(keep.value)


def _as_response(r):
    if isinstance(r, Response):
        return r
    if isinstance(r, tuple) and len(r) == 3:
        return Response(*r)
    if isinstance(r, tuple) and len(r) == 2:
        return Response(r[0], None, r[1])
    raise TypeError("handler must return a Response, (status, headers, "
                    "body) or (status, body), not %s" % type(r).__name__)


def serve(mesh, conn, handler, on_error=None):
    """Serve requests on conn until the peer is done (see
    Mesh.http_serve).  A handler that raises gets a 500 sent; the
    exception goes to on_error(exc) at once, or without on_error the first
    one is re-raised once serving ends."""
    raised = []

    def on_request(req, resp, _user):
        try:
            _as_response(handler(Request(req)))._to_c(resp)
            return 0
        except BaseException as e:  # never unwind into C: answer 500
            if on_error is not None:
                try:
                    on_error(e)
                except Exception:
                    pass
            elif not raised:
                raised.append(e)
            return 1

    cb = HANDLER_FN(on_request)
    st = _lib.Status()
    h = mesh._enter()
    try:
        ch = conn._enter()
        try:
            rc = _lib.fn("mesh_http_serve")(h, ch, cb, None,
                                            ctypes.byref(st))
        finally:
            conn._leave()
    finally:
        mesh._leave()
    if raised:
        raise raised[0]
    _lib.check(rc, st)


class Server:
    """Serve a handler(Request) -> Response function with the library's
    HTTP layer on a mesh Listener, one thread per connection, with the
    authorization policies enforced per request.  serve_forever() until
    shutdown().  Handshake failures and connection errors are kept in
    .errors (bounded); handler exceptions in .handler_errors."""

    def __init__(self, mesh, listener, handler, max_errors=1000):
        self.mesh = mesh
        self.listener = listener
        self.handler = handler
        self.server_port = listener.port
        self.errors = []
        self.handler_errors = []
        self._max = max_errors
        self._conns = set()
        self._threads = []
        self._lock = threading.Lock()

    def _note(self, where, e):
        with self._lock:
            if len(where) < self._max:
                where.append(e)

    def serve_forever(self):
        while not self.listener.closed:
            try:
                conn = self.listener.accept()
            except errors.Closed:
                break
            except errors.MeshError as e:
                if self.listener.closed:
                    break
                self._note(self.errors, e)
                continue
            t = threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True)
            with self._lock:
                self._conns.add(conn)
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, conn):
        try:
            serve(self.mesh, conn, self.handler,
                  lambda e: self._note(self.handler_errors, e))
        except errors.MeshError as e:
            if not conn.closed:
                self._note(self.errors, e)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def shutdown(self, timeout=5.0):
        """Stop accepting, close open connections (waking their serving
        threads) and wait for them, bounded by timeout seconds each."""
        self.listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for c in conns:
            c.close()
        for t in threads:
            t.join(timeout)


class HTTPConnection(http.client.HTTPConnection):
    """http.client.HTTPConnection whose connect() dials over the mesh.

    target: a configured service name or "host:port"; it is also the Host
    header unless `host` is given.  peers: SPIFFE ID patterns the server
    must match.  After connect(), ``self.sock`` is the mesh Conn."""

    def __init__(self, mesh, target, timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
                 peers=None, host=None, blocksize=8192):
        super().__init__(host or target, timeout=timeout,
                         blocksize=blocksize)
        self._mesh = mesh
        self._target = target
        self._peers = peers

    def connect(self):
        timeout = self.timeout
        if timeout is socket._GLOBAL_DEFAULT_TIMEOUT:
            timeout = socket.getdefaulttimeout()
        self.sock = self._mesh.dial(self._target, timeout=timeout,
                                    peers=self._peers)


class HTTPServer:
    """Serve a BaseHTTPRequestHandler class on a mesh Listener, one thread
    per connection (like socketserver.ThreadingMixIn)."""

    def __init__(self, listener, handler_class):
        self.listener = listener
        self.RequestHandlerClass = handler_class
        self.server_address = ("mesh", listener.port)
        self.server_name = "mesh"
        self.server_port = listener.port
        self.errors = []  # handshake/identity failures of refused peers
        self._threads = []
        self._lock = threading.Lock()

    def serve_forever(self, max_errors=1000):
        """Accept until shutdown(); failed peers are recorded in .errors."""
        while not self.listener.closed:
            try:
                conn = self.listener.accept()
            except errors.Closed:
                break
            except errors.MeshError as e:
                if self.listener.closed:
                    break
                with self._lock:
                    if len(self.errors) < max_errors:
                        self.errors.append(e)
                continue
            t = threading.Thread(target=self._handle, args=(conn,),
                                 daemon=True)
            t.start()  # before shutdown() can see it: join needs a start
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _handle(self, conn):
        try:
            self.RequestHandlerClass(conn, conn.getpeername(), self)
        except Exception:
            pass
        finally:
            conn.close()

    def shutdown(self, timeout=5.0):
        """Stop accepting and wait (bounded) for running handlers."""
        self.listener.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)

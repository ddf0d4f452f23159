# SPDX-License-Identifier: Apache-2.0
"""The call API (include/mesh/call.h): one logical request to a configured
service, with endpoint picking, pooled connections, retries, deadlines and
hedging done by the library.

    with mesh.call("api", deadline=2.0) as call:       # one try
        call.conn.sendall(request)
        reply = call.conn.recv(4096)
        call.end(libmesh.call.OK, status=200)          # else ended for you

    mesh.call_do("api", try_fn)                       # retries around try_fn
    reply, status = mesh.request("api", req, frame)   # the library does I/O

Ctrl-C: made from the main thread, these calls run in C on a helper
thread (call_do's try function too) while the main thread waits in short
slices, so KeyboardInterrupt is raised within ~50 ms; a cancel token then
stops the library's retries and ends a backoff at once, and the helper
releases what the interrupted call leaves behind.
"""

import ctypes
import threading

from . import _lib, errors, trace
from .conn import Conn

# mesh_call_outcome_t
OK = 0
OK_CLOSE = 1
CONNECT_FAILURE = 2
RESET = 3
TIMEOUT = 4
PROTOCOL_ERROR = 5
CANCELLED = 6

_TRY_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.POINTER(ctypes.c_int), ctypes.c_void_p)
_FRAME_FN = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_int), ctypes.c_void_p)
_H = _lib.Handle
_lib.PROTOTYPES.update({
    "mesh_call_opts_new": (_H, []),
    "mesh_call_opts_free": (None, [_H]),
    "mesh_call_opts_set_hash_key": (ctypes.c_int, [_H, ctypes.c_char_p,
                                                   ctypes.c_size_t]),
    "mesh_call_opts_set_deadline": (ctypes.c_int, [_H, ctypes.c_int]),
    "mesh_call_opts_set_per_try_timeout": (ctypes.c_int, [_H, ctypes.c_int]),
    "mesh_call_opts_set_connect_timeout": (ctypes.c_int, [_H, ctypes.c_int]),
    "mesh_call_opts_set_max_retries": (ctypes.c_int, [_H, ctypes.c_int]),
    "mesh_call_opts_set_hedging": (ctypes.c_int, [_H, ctypes.c_int]),
    "mesh_call_opts_set_alpn": (ctypes.c_int, [_H, ctypes.c_char_p]),
    "mesh_call_opts_set_subset": (ctypes.c_int, [_H, ctypes.c_char_p]),
    "mesh_call_opts_set_cancel": (ctypes.c_int, [_H, _H]),
    "mesh_call_begin": (ctypes.c_int, [_H, ctypes.c_char_p, _H, _lib.HandleP,
                                       _lib.StatusP]),
    "mesh_call_conn": (_H, [_H]),
    "mesh_call_remaining_ms": (ctypes.c_int, [_H]),
    "mesh_call_endpoint": (ctypes.c_char_p, [_H]),
    "mesh_call_attempt": (ctypes.c_int, [_H]),
    "mesh_call_end": (ctypes.c_int, [_H, ctypes.c_int, ctypes.c_int]),
    "mesh_call_do": (ctypes.c_int, [_H, ctypes.c_char_p, _H, _TRY_FN,
                                    ctypes.c_void_p, _lib.StatusP]),
    "mesh_call_request": (ctypes.c_int, [
        _H, ctypes.c_char_p, _H, ctypes.c_char_p, ctypes.c_size_t, _FRAME_FN,
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_int),
        _lib.StatusP]),
})


def _ms(seconds):
    return max(1, int(round(float(seconds) * 1000)))


class CallOptions:
    """mesh_call_opts_t for one call (None when all default).  Durations in
    seconds.  subset: a configured subset of the service (bypasses the
    split); trace_parent: the TraceContext the call's span is opened
    under."""

    def __init__(self, deadline=None, per_try_timeout=None,
                 connect_timeout=None, max_retries=None, hedging=None,
                 hash_key=None, alpn=None, subset=None, trace_parent=None):
        self.h = None
        args = (deadline, per_try_timeout, connect_timeout, max_retries,
                hedging, hash_key, alpn, subset, trace_parent)
        if all(a is None for a in args):
            return
        f = _lib.fn
        self.h = f("mesh_call_opts_new")()
        if not self.h:
            raise MemoryError("mesh_call_opts_new")
        try:
            for name, val, conv in (
                    ("deadline", deadline, _ms),
                    ("per_try_timeout", per_try_timeout, _ms),
                    ("connect_timeout", connect_timeout, _ms),
                    ("max_retries", max_retries, int),
                    ("hedging", hedging, lambda v: 1 if v else 0)):
                if val is not None:
                    _lib.check(f("mesh_call_opts_set_" + name)(self.h,
                                                               conv(val)),
                               prefix=name)
            if hash_key is not None:
                k = _lib.enc(hash_key)
                _lib.check(f("mesh_call_opts_set_hash_key")(self.h, k,
                                                            len(k)),
                           prefix="hash_key")
            if alpn is not None:
                if not isinstance(alpn, (str, bytes)):
                    alpn = ",".join(alpn)
                _lib.check(f("mesh_call_opts_set_alpn")(self.h,
                                                        _lib.enc(alpn)),
                           prefix="alpn")
            if subset is not None:
                _lib.check(f("mesh_call_opts_set_subset")(self.h,
                                                          _lib.enc(subset)),
                           prefix="subset")
            if trace_parent is not None:
                _lib.check(f("mesh_call_opts_set_trace_parent")(
                    self.h, trace.ctx_ptr(trace_parent)),
                    prefix="trace_parent")
        except BaseException:
            self.free()
            raise

    def free(self):
        if self.h:
            _lib.fn("mesh_call_opts_free")(self.h)
            self.h = None


class _BorrowedConn(Conn):
    """The connection of a call: usable like a Conn until the call ends;
    closing it is the call's business (close() here does nothing).  Also
    says where the try went: endpoint ("ip:port"), attempt (0 for the
    first try) and trace_context() (the try's span, to send along)."""

    _sliced = False  # reads keep the per-try timeout the library set

    def __init__(self, handle, mesh, call=None):  # noqa: no adoption
        self._h = handle
        self._mesh = mesh
        from ._life import Life
        self._life = Life("call connection")
        self._timeout = None
        self._io_refs = 0
        self._closing = False
        self._call = call
        self.endpoint = _lib.dec(_lib.fn("mesh_call_endpoint")(call)) \
            if call else ""
        self.attempt = _lib.fn("mesh_call_attempt")(call) if call else 0

    def trace_context(self):
        """The TraceContext of this try's span (mesh.try)."""
        if not self._call or self._life.closed:
            raise errors.error_for(errors.ERR_CLOSED, "the try has ended")
        return _trace_context(self._call)

    def close(self):
        pass

    def _real_close(self):
        pass

    def _detach(self):
        self._life.begin_close()
        self._closing = True
        self._life.wait_idle()
        self._h = None
        self._call = None

    def __del__(self):
        pass


def _trace_context(call_handle):
    c = trace._Ctx()
    _lib.check(_lib.fn("mesh_call_trace_context")(call_handle, c),
               prefix="call trace context")
    return trace.TraceContext(c)


class Call:
    """One try of a call (mesh_call_begin).  Use as a context manager: on
    exit without end(), the outcome is OK (no exception), TIMEOUT (a
    timeout) or RESET (any other error)."""

    def __init__(self, handle, mesh):
        self._h = handle
        self.conn = _BorrowedConn(_lib.fn("mesh_call_conn")(handle), mesh,
                                  handle)
        self.endpoint = self.conn.endpoint
        self.attempt = self.conn.attempt

    def trace_context(self):
        """The TraceContext of this try's span (mesh.try), to send with the
        request (trace.inject(call.trace_context(), headers))."""
        if not self._h:
            raise errors.error_for(errors.ERR_CLOSED, "call has ended")
        return _trace_context(self._h)

    def remaining(self):
        """Seconds left in this try (None: no timeout)."""
        if not self._h:
            return None
        ms = _lib.fn("mesh_call_remaining_ms")(self._h)
        return None if ms < 0 else ms / 1000.0

    def end(self, outcome=OK, status=0):
        """Report how the try went (an outcome constant, your protocol's
        status code, HTTP-like) and release the connection."""
        if not self._h:
            return
        self.conn._detach()
        h, self._h = self._h, None
        _lib.check(_lib.fn("mesh_call_end")(h, int(outcome), int(status)))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.end(OK)
        elif issubclass(exc_type, TimeoutError):
            self.end(TIMEOUT)
        else:
            self.end(RESET)

    def __del__(self):
        if getattr(self, "_h", None):
            try:
                self.end(CANCELLED)
            except Exception:
                pass


class _Token:
    """A C cancel token (include/mesh/cancel.h) set on a call's options
    when the call is made from the main thread: Ctrl-C fires it, which ends
    a retry backoff sleeping in C at once.  fire() and free() may race (the
    call finishes on a helper thread), hence the lock."""

    def __init__(self, opts, use=True):
        self.h = None
        self._lock = threading.Lock()
        if not use or not _lib.in_main_thread() or \
                not _lib.has("mesh_cancel_new"):
            return
        out = _lib.Handle()
        if _lib.fn("mesh_cancel_new")(ctypes.byref(out)) != 0:
            return
        if not opts.h:
            opts.h = _lib.fn("mesh_call_opts_new")()
            if not opts.h:
                _lib.fn("mesh_cancel_free")(out)
                raise MemoryError("mesh_call_opts_new")
        self.h = out
        _lib.fn("mesh_call_opts_set_cancel")(opts.h, self.h)

    def fire(self):
        with self._lock:
            if self.h:
                _lib.fn("mesh_cancel_fire")(self.h)

    def free(self):
        with self._lock:
            if self.h:
                _lib.fn("mesh_cancel_free")(self.h)
                self.h = None


def _run(mesh, opts, c_call, token=True):
    """c_call(mesh handle) under the mesh's lifetime, interruptible by
    Ctrl-C (see _lib.interruptible); frees opts and the token after.  No
    token for mesh_call_begin: its call outlives the C function."""
    tok = _Token(opts, token)

    def work():
        try:
            h = mesh._enter()
            try:
                return c_call(h)
            finally:
                mesh._leave()
        finally:
            opts.free()
            tok.free()
    return work, tok


def begin(mesh, service, opts):
    st = _lib.Status()
    out = _lib.Handle()
    work, tok = _run(mesh, opts, lambda h: _lib.fn("mesh_call_begin")(
        h, _lib.enc(service), opts.h, ctypes.byref(out), ctypes.byref(st)),
        token=False)

    def late(rc):  # interrupted: nobody will end this call
        if rc >= 0 and out:
            _lib.fn("mesh_call_end")(out, CANCELLED, 0)
    rc = _lib.interruptible(work, late=late, cancel=tok.fire)
    _lib.check(rc, st)
    return Call(out, mesh)


def do(mesh, service, fn, opts):
    """mesh_call_do with a Python try function fn(conn) -> (outcome,
    status); conn also has .endpoint, .attempt and .trace_context().  A
    MeshError from the connection is handed to the library as
    its code (resets and timeouts are retried per policy); any other
    exception stops the call and is raised."""
    raised = []

    def one_try(call, conn, status_p, _user):
        c = _BorrowedConn(conn, mesh, call)
        try:
            outcome, status = fn(c)
            status_p[0] = int(status)
            return int(outcome)
        except errors.MeshError as e:
            return e.code
        except BaseException as e:  # stop: no retry, re-raised below
            raised.append(e)
            return errors.ERR_INTERNAL
        finally:
            c._detach()

    cb = _TRY_FN(one_try)
    st = _lib.Status()
    work, tok = _run(mesh, opts, lambda h: _lib.fn("mesh_call_do")(
        h, _lib.enc(service), opts.h, cb, None, ctypes.byref(st)))
    rc = _lib.interruptible(work, cancel=tok.fire)
    if raised:
        raise raised[0]
    _lib.check(rc, st)


def request(mesh, service, req, frame, opts, max_response):
    """mesh_call_request: frame(data: bytes) -> (n, status) with n = 0 for
    "need more", n > 0 complete (the first n bytes), n < 0 malformed.
    Returns (response bytes, status)."""
    def on_frame(buf, length, status_p, _user):
        try:
            n, status = frame(ctypes.string_at(buf, length))
            if n > 0:
                status_p[0] = int(status)
            return int(n)
        except Exception:
            return -1

    cb = _FRAME_FN(on_frame)
    req = bytes(req)
    resp = ctypes.create_string_buffer(max_response)
    resp_len = ctypes.c_size_t(0)
    status = ctypes.c_int(0)
    st = _lib.Status()
    work, tok = _run(mesh, opts, lambda h: _lib.fn("mesh_call_request")(
        h, _lib.enc(service), opts.h, req, len(req), cb, None, resp,
        max_response, ctypes.byref(resp_len), ctypes.byref(status),
        ctypes.byref(st)))
    rc = _lib.interruptible(work, cancel=tok.fire)
    if rc == errors.ERR_UPSTREAM:
        e = errors.error_for(rc, st.text())
        e.response, e.status = resp.raw[:resp_len.value], status.value
        raise e
    _lib.check(rc, st)
    return resp.raw[:resp_len.value], status.value

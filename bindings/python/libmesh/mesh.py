# SPDX-License-Identifier: Apache-2.0
"""The mesh context (mesh_t) and module-level helpers of mesh.h."""

import ctypes
import json
import os
import weakref

from . import _lib, errors
from ._life import Life

LOG_LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3, "trace": 4}


def version():
    """Runtime library version string, e.g. "0.1.0"."""
    return _lib.dec(_lib.fn("mesh_version")())


def version_num():
    """Runtime version as 0xMMmmpp."""
    return _lib.fn("mesh_version_num")()


def _config_text(config):
    if isinstance(config, (dict, list)):
        return json.dumps(config)
    if isinstance(config, (str, bytes)):
        return config
    raise TypeError("config must be a dict or a JSON string, not %s"
                    % type(config).__name__)


def _io_timeouts(config, path):
    """(read_ms, write_ms) of the config's `tls` section; -1 when unset or
    unreadable (mesh_new reports a bad config itself)."""
    try:
        if path is not None:
            with open(path, "rb") as f:
                config = f.read()
        doc = json.loads(config) if isinstance(config, (str, bytes)) \
            else (config or {})
        tls = doc.get("tls") or {}
        return (int(tls.get("read_timeout_ms", -1)),
                int(tls.get("write_timeout_ms", -1)))
    except (OSError, ValueError, TypeError, AttributeError):
        return (-1, -1)


def config_check(config):
    """Validate a configuration (dict or JSON text) without creating a
    context.  Returns every error as "json.path: reason"; [] when valid."""
    found = []

    def on_error(text, _user):
        found.append(_lib.dec(text))

    cb = _lib.CONFIG_ERROR_FN(on_error)
    rc = _lib.fn("mesh_config_check")(_lib.enc(_config_text(config)), cb,
                                      None)
    _lib.check(rc)
    return found


def _level(level):
    if isinstance(level, str):
        try:
            return LOG_LEVELS[level]
        except KeyError:
            raise ValueError("unknown log level %r (expected one of %s)"
                             % (level, ", ".join(LOG_LEVELS))) from None
    return int(level)


class Mesh:
    """A libmesh context.

    ``Mesh(config)`` takes the configuration as a dict or as JSON text;
    ``Mesh.from_file(path)`` reads it from a file.  Use it as a context
    manager, or call close().  A Mesh may be shared between threads;
    closing it closes every connection and listener it made first.

    ``log``: optional callable(level: int, line: str), called from the
    library's worker thread or the calling thread; exceptions it raises are
    swallowed.  ``log_level``: "error".."trace" or 0..4 (default "warn",
    the library's own default).
    """

    def __init__(self, config=None, *, log=None, log_level="warn",
                 _file=None):
        self._h = None
        self._life = Life("mesh")
        self._children = weakref.WeakSet()
        self._log_cbs = []  # every callback ever set: the worker may be in one
        self._watches = {}  # watch id -> callback, alive until mesh_free
        # Callbacks C may still be running (span hooks, the authorizer):
        # replaced ones too, kept until mesh_free.
        self._keep = []
        st = _lib.Status()
        out = _lib.Handle()
        # The config's tls read/write timeouts (ms, <= 0: none): a Conn
        # without settimeout() keeps them when its reads wait in slices.
        self._io_ms = _io_timeouts(config, _file)
        if _file is not None:
            rc = _lib.fn("mesh_new_from_file")(_lib.enc(_file),
                                               ctypes.byref(out),
                                               ctypes.byref(st))
        else:
            text = _config_text({} if config is None else config)
            rc = _lib.fn("mesh_new")(_lib.enc(text), ctypes.byref(out),
                                     ctypes.byref(st))
        _lib.check(rc, st)
        self._h = out
        if log is not None:
            self.set_log(log, log_level)

    @classmethod
    def from_file(cls, path, **kw):
        """Create a context from a JSON configuration file."""
        return cls(_file=os.fspath(path), **kw)

    # -- lifetime --------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self):
        return self._life.closed

    def close(self):
        """Close every connection and listener of this context, then free
        it.  Idempotent."""
        first, _ = self._life.begin_close()
        if not first or self._h is None:
            return
        for child in list(self._children):
            # Really close, even a Conn whose makefile() files are open.
            getattr(child, "_real_close", child.close)()
        self._life.wait_idle()
        _lib.fn("mesh_free")(self._h)
        self._h = None
        self._log_cbs = []  # only now: the worker has stopped
        self._watches = {}
        self._keep = []

    def _enter(self):
        self._life.enter()
        return self._h

    def _leave(self):
        self._life.leave()

    def _adopt(self, child):
        self._children.add(child)

    # -- logging ---------------------------------------------------------

    def set_log(self, fn, level="warn"):
        """Route log lines at or below `level` to fn(level, line); fn=None
        restores stderr."""
        lv = _level(level)
        if fn is None:
            cb = _lib.LOG_FN()
        else:
            def on_log(lvl, line, _user):
                try:
                    fn(lvl, _lib.dec(line))
                except Exception:  # never unwind into C
                    pass
            cb = _lib.LOG_FN(on_log)
        h = self._enter()
        try:
            self._log_cbs.append(cb)
            _lib.fn("mesh_set_log")(h, lv, cb, None)
        finally:
            self._leave()

    # -- identity ----------------------------------------------------------

    @property
    def self_id(self):
        """This context's SPIFFE ID, or None with no SVID loaded."""
        buf = ctypes.create_string_buffer(2049)
        h = self._enter()
        try:
            rc = _lib.fn("mesh_self_id")(h, buf, len(buf))
        finally:
            self._leave()
        if rc == errors.ERR_NOT_FOUND:
            return None
        _lib.check(rc)
        return _lib.dec(buf.value)

    def jwt_svid(self, audience):
        """A JWT-SVID for `audience` from the SPIFFE Workload API (config
        identity.source "workload_api"), cached until near expiry: send it
        as "Authorization: Bearer <token>"."""
        buf = ctypes.create_string_buffer(16384)
        st = _lib.Status()
        h = self._enter()
        try:
            rc = _lib.fn("mesh_jwt_svid")(h, _lib.enc(audience), buf,
                                          len(buf), ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(rc, st)
        return _lib.dec(buf.value)

    def validate_jwt_svid(self, token, audience):
        """Have the SPIFFE Workload API agent validate a JWT-SVID for
        `audience` (ValidateJWTSVID): returns (spiffe_id, claims dict);
        raises (MESH_ERR_DENIED with the agent's reason) when refused."""
        sid = ctypes.create_string_buffer(2100)
        claims = ctypes.create_string_buffer(65536)
        st = _lib.Status()
        h = self._enter()
        try:
            rc = _lib.fn("mesh_validate_jwt_svid")(
                h, _lib.enc(token), _lib.enc(audience), sid, len(sid), claims,
                len(claims), ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(rc, st)
        return _lib.dec(sid.value), json.loads(_lib.dec(claims.value))

    def svid_expires_in(self):
        """Seconds until this context's SVID expires (negative once expired);
        None with no SVID loaded."""
        h = self._enter()
        try:
            v = _lib.fn("mesh_svid_expires_in")(h)
        finally:
            self._leave()
        return None if v == -(2 ** 63) else v

    def reload_identity(self):
        """Re-read SVID and bundle files now; on failure the old identity
        stays and the error is raised."""
        st = _lib.Status()
        h = self._enter()
        try:
            rc = _lib.fn("mesh_identity_reload")(h, ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(rc, st)

    # -- connections -------------------------------------------------------

    def dial(self, target, timeout=None, peers=None, alpn=None,
             hash_key=None, trace_parent=None):
        """Dial a configured service by name, or "host:port" / "[v6]:port",
        over mutual TLS.  Returns a Conn (socket-like).

        timeout: seconds for connect + handshake (None: the config's); it
        also becomes the connection's I/O timeout, as with
        socket.create_connection().  peers: SPIFFE ID patterns the server
        must match (replaces the service's configured peers).  alpn: list of
        protocols or a comma-separated string.  hash_key: bytes/str for
        ring_hash / maglev balancing.  trace_parent: a
        libmesh.trace.TraceContext (e.g. from trace.extract() of the request
        being served) under which the dial's spans are opened."""
        from .conn import Conn
        opts = _DialOpts(timeout, peers, alpn, hash_key, trace_parent)
        st = _lib.Status()
        out = _lib.Handle()

        def work():  # on a helper thread when called from the main one
            try:
                h = self._enter()
                try:
                    return _lib.fn("mesh_dial")(h, _lib.enc(target), opts.h,
                                                ctypes.byref(out),
                                                ctypes.byref(st))
                finally:
                    self._leave()
            finally:
                opts.free()

        def late(rc):  # Ctrl-C came first: nobody will use this connection
            if out:
                _lib.fn("mesh_conn_close")(out)
        rc = _lib.interruptible(work, late=late)
        if rc < 0 and out:
            _lib.fn("mesh_conn_close")(out)
        _lib.check(rc, st)
        conn = Conn(out, self)
        if timeout is not None:
            conn.settimeout(timeout)
        return conn

    def listen(self, addr=None):
        """Listen on "host:port" (None: the config's inbound.listen; port 0
        picks a free one).  Returns a Listener."""
        from .conn import Listener
        st = _lib.Status()
        out = _lib.Handle()
        h = self._enter()
        try:
            rc = _lib.fn("mesh_listen")(h, _lib.enc(addr), ctypes.byref(out),
                                        ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(rc, st)
        return Listener(out, self)

    # -- discovery -------------------------------------------------------------

    def endpoints(self, service):
        """The current endpoints of a configured service (an Endpoints
        list with .version).  Never blocks on discovery."""
        from .discovery import convert
        st = _lib.Status()
        out = _lib.Handle()
        h = self._enter()
        try:
            rc = _lib.fn("mesh_endpoints_get")(h, _lib.enc(service),
                                               ctypes.byref(out),
                                               ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(rc, st)
        try:
            return convert(out)
        finally:
            _lib.fn("mesh_endpoints_free")(out)

    def wait_discovery(self, service, timeout=5.0):
        """Wait (at most timeout seconds) for the service's first discovery
        answer.  Raises MeshTimeout, or Unavailable (MESH_ERR_DISCOVERY)
        when that answer was an error."""
        ms = -1 if timeout is None else max(0, int(round(timeout * 1000)))
        st = _lib.Status()
        h = self._enter()
        try:
            rc = _lib.fn("mesh_discovery_wait")(h, _lib.enc(service), ms,
                                                ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(rc, st)

    def watch(self, service, fn):
        """Call fn(service, endpoints) after each change of the service's
        endpoints (and once now if it has a set), from the library's worker
        thread.  Returns an id for unwatch().  Exceptions in fn are
        swallowed."""
        from .discovery import convert

        def on_change(name, eps, _user):
            try:
                fn(_lib.dec(name), convert(eps))
            except Exception:
                pass

        cb = _lib.ENDPOINTS_FN(on_change)
        st = _lib.Status()
        h = self._enter()
        try:
            wid = _lib.fn("mesh_discovery_watch")(h, _lib.enc(service), cb,
                                                  None, ctypes.byref(st))
        finally:
            self._leave()
        _lib.check(wid, st)
        self._watches[wid] = cb
        return wid

    def unwatch(self, wid):
        """Remove a watch; when this returns its callback is not running."""
        h = self._enter()
        try:
            rc = _lib.fn("mesh_discovery_unwatch")(h, wid)
        finally:
            self._leave()
        _lib.check(rc)
        # The callback object stays alive until close(): unwatch() may be
        # called from inside it, while it still runs.

    # -- the call API ----------------------------------------------------------

    def call(self, service, **opts):
        """Begin one try of a call to a configured service (a Call, use it
        as a context manager).  opts: deadline, per_try_timeout,
        connect_timeout (seconds), max_retries, hedging, hash_key, alpn,
        subset (a configured subset name), trace_parent (a TraceContext)."""
        from . import call
        return call.begin(self, service, call.CallOptions(**opts))

    def call_do(self, service, fn, **opts):
        """Run fn(conn) -> (outcome, status) under the service's retry
        policy (see libmesh.call).  Raises MeshError (Unavailable for
        MESH_ERR_UPSTREAM after retries) on failure."""
        from . import call
        call.do(self, service, fn, call.CallOptions(**opts))

    def request(self, service, req, frame, max_response=1 << 20, **opts):
        """Send req and read the response framed by frame(data) -> (n,
        status), with retries and hedging.  Returns (response, status);
        a final error status raises Unavailable (MESH_ERR_UPSTREAM) with
        .response and .status."""
        from . import call
        return call.request(self, service, req, frame,
                            call.CallOptions(**opts), max_response)

    # -- observability ---------------------------------------------------------

    def trace_formats(self):
        """Propagation formats configured in tracing.propagation (a mask of
        libmesh.trace.TRACECONTEXT | B3 | B3_MULTI)."""
        from . import trace  # noqa: F401  (declares the prototypes)
        h = self._enter()
        try:
            return _lib.fn("mesh_trace_formats")(h)
        finally:
            self._leave()

    def set_span_hooks(self, on_start=None, on_end=None):
        """Call on_start(span) / on_end(span) (libmesh.trace.Span, a copy)
        when a sampled span starts / ends, on the thread that starts or ends
        it (the caller's or the library's worker).  Either may be None;
        set_span_hooks() with neither removes the hooks.  Exceptions raised
        by a hook are swallowed.  Spans already running may still report to
        the hooks this call replaces."""
        from . import trace
        start, end = trace.span_hook(on_start), trace.span_hook(on_end)
        h = self._enter()
        try:
            self._keep.extend((start, end))
            _lib.check(_lib.fn("mesh_set_span_hooks")(h, start, end, None),
                       prefix="span hooks")
        finally:
            self._leave()

    # -- authorization ---------------------------------------------------------

    def authz_check(self, request=None, **attrs):
        """Check a request against the current policies (CUSTOM providers
        included).  request: a libmesh.authz.Request, or build one from
        attrs (conn, principal, source_ip, port, method, path, host,
        headers).  Returns None when allowed (or dry-run); raises Denied
        naming the policy otherwise."""
        from . import authz
        return authz.check(self, request, attrs)

    def authz_reload(self, config):
        """Replace the policies without a restart: config is an "authz"
        section (dict or JSON text).  Validated in full first: on any error
        (ConfigError naming its JSON path) nothing changes."""
        from . import authz
        authz.reload(self, _config_text(config))

    def set_authorizer(self, fn):
        """Install fn(request, policy) -> bool as the decider of CUSTOM
        policies with "provider": "callback" (None removes it: such
        policies then deny).  request is a libmesh.authz.RequestView valid
        during the call; fn runs on the checking thread, possibly several at
        once.  An exception or a non-True result denies."""
        from . import authz
        authz.set_callback(self, fn)

    def authz_counter(self, name):
        """A decision counter: "allow", "deny", "conn_deny", "dry_run_deny",
        "custom_deny", "opa_error", "opa_cache_hit", "audit", "reload",
        "reload_error"."""
        from . import authz
        return authz.counter(self, name)

    # -- HTTP ------------------------------------------------------------------

    def http_call(self, service, method="GET", target="/", headers=None,
                  body=None, timeout=None):
        """Send an HTTP/1.1 request to a service by name through the
        library (routes, faults, the call layer's retries and pooling,
        trace headers).  Returns a libmesh.http.Response whatever its
        status (a 5xx after retries is a response too)."""
        from . import http
        return http.call(self, service, method, target, headers, body,
                         timeout)

    def http_serve(self, conn, handler):
        """Serve HTTP/1.1 requests on an accepted Conn until the peer is
        done, with the authorization policies enforced per request (403
        without calling handler when denied).  handler(request) returns a
        libmesh.http.Response or (status, headers, body) / (status, body).
        The connection is not closed.  A handler exception is answered 500
        and the first one re-raised when serving ends."""
        from . import http
        http.serve(self, conn, handler)

    def metrics_text(self):
        """Every metric of this context in the Prometheus text format."""
        need = ctypes.c_size_t(0)
        size = 65536
        for _ in range(8):  # the set can grow between calls: bounded
            buf = ctypes.create_string_buffer(size)
            h = self._enter()
            try:
                rc = _lib.fn("mesh_metrics_text")(h, buf, size,
                                                  ctypes.byref(need))
            finally:
                self._leave()
            if rc != errors.ERR_BUFFER:
                _lib.check(rc, prefix="metrics")
                return buf.raw[:rc].decode("utf-8", "replace")
            size = max(need.value, size * 2)
        raise errors.error_for(errors.ERR_BUFFER, "metrics text keeps growing")

    @property
    def admin_port(self):
        """Port of the admin endpoint; None when it is not configured."""
        h = self._enter()
        try:
            rc = _lib.fn("mesh_admin_port")(h)
        finally:
            self._leave()
        return None if rc == errors.ERR_NOT_FOUND else _lib.check(rc)

    # -- external event loop ----------------------------------------------

    def backend_fd(self):
        """fd that becomes readable when work is due (external worker mode);
        -1 when the library runs its own thread."""
        h = self._enter()
        try:
            return _lib.fn("mesh_backend_fd")(h)
        finally:
            self._leave()

    def backend_timeout(self):
        """Milliseconds until the next timer is due (-1: none)."""
        h = self._enter()
        try:
            return _lib.fn("mesh_backend_timeout")(h)
        finally:
            self._leave()

    def process(self):
        """Run due timers and ready I/O (external worker mode only)."""
        h = self._enter()
        try:
            _lib.check(_lib.fn("mesh_process")(h))
        finally:
            self._leave()


class _DialOpts:
    """mesh_dial_opts_t for one dial (NULL when everything is default)."""

    def __init__(self, timeout, peers, alpn, hash_key, trace_parent=None):
        self.h = None
        if (timeout is None and not peers and alpn is None and
                hash_key is None and trace_parent is None):
            return
        self.h = _lib.fn("mesh_dial_opts_new")()
        if not self.h:
            raise MemoryError("mesh_dial_opts_new")
        try:
            self._set(timeout, peers, alpn, hash_key)
            if trace_parent is not None:
                from . import trace
                _lib.check(_lib.fn("mesh_dial_opts_set_trace_parent")(
                    self.h, trace.ctx_ptr(trace_parent)),
                    prefix="trace_parent")
        except BaseException:
            self.free()
            raise

    def _set(self, timeout, peers, alpn, hash_key):
        if timeout is not None:
            ms = max(1, int(round(float(timeout) * 1000)))
            _lib.check(_lib.fn("mesh_dial_opts_set_timeout")(self.h, ms),
                       prefix="timeout")
        if isinstance(peers, str):
            peers = [peers]
        for p in peers or ():
            _lib.check(_lib.fn("mesh_dial_opts_add_peer")(self.h,
                                                          _lib.enc(p)),
                       prefix="peer %r" % (p,))
        if alpn is not None:
            if not isinstance(alpn, (str, bytes)):
                alpn = ",".join(alpn)
            _lib.check(_lib.fn("mesh_dial_opts_set_alpn")(self.h,
                                                          _lib.enc(alpn)),
                       prefix="alpn")
        if hash_key is not None:
            key = _lib.enc(hash_key)
            _lib.check(_lib.fn("mesh_dial_opts_set_hash_key")(
                self.h, key, len(key)), prefix="hash_key")

    def free(self):
        if self.h:
            _lib.fn("mesh_dial_opts_free")(self.h)
            self.h = None

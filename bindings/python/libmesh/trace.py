"""Trace context propagation (include/mesh/trace.h): W3C traceparent /
tracestate and B3, parsed and formatted by the library, injected into and
extracted from any header mapping."""

import ctypes

from . import _lib, errors

TRACECONTEXT = 0x1  # traceparent + tracestate
B3 = 0x2            # b3 single header
B3_MULTI = 0x4      # x-b3-* headers
ALL = TRACECONTEXT | B3 | B3_MULTI

SAMPLING = ("deferred", "accept", "deny", "debug")


class _Ctx(ctypes.Structure):
    """mesh_trace_ctx_t: plain data, fixed size."""
    _fields_ = [("trace_id", ctypes.c_uint8 * 16),
                ("span_id", ctypes.c_uint8 * 8),
                ("parent_span_id", ctypes.c_uint8 * 8),
                ("flags", ctypes.c_uint8),
                ("sampling", ctypes.c_uint8),
                ("has_ids", ctypes.c_uint8),
                ("trace_id_64", ctypes.c_uint8),
                ("tracestate", ctypes.c_char * 513)]


_GETTER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
_SETTER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_void_p)
_P = ctypes.POINTER(_Ctx)
_lib.PROTOTYPES.update({
    "mesh_traceparent_parse": (ctypes.c_int, [ctypes.c_char_p,
                                              ctypes.c_size_t, _P]),
    "mesh_traceparent_format": (ctypes.c_int, [_P, ctypes.c_char_p,
                                               ctypes.c_size_t]),
    "mesh_tracestate_parse": (ctypes.c_int, [ctypes.c_char_p,
                                             ctypes.c_size_t,
                                             ctypes.c_char_p,
                                             ctypes.c_size_t]),
    "mesh_b3_parse": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, _P]),
    "mesh_b3_format": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "mesh_trace_extract": (ctypes.c_int, [ctypes.c_uint, _GETTER,
                                          ctypes.c_void_p, _P]),
    "mesh_trace_inject": (ctypes.c_int, [_P, ctypes.c_uint, _SETTER,
                                         ctypes.c_void_p]),
    "mesh_trace_formats": (ctypes.c_uint, [_lib.Handle]),
})


class TraceContext:
    """A span context as carried between processes: trace_id (32 hex),
    span_id (16 hex, the caller's span), parent_span_id (B3, or ""),
    sampled, sampling ("deferred", "accept", "deny", "debug"),
    tracestate (normalized, "" if none)."""

    def __init__(self, _c=None):
        self._c = _c if _c is not None else _Ctx()

    @property
    def trace_id(self):
        return bytes(self._c.trace_id).hex()

    @property
    def span_id(self):
        return bytes(self._c.span_id).hex()

    @property
    def parent_span_id(self):
        p = bytes(self._c.parent_span_id)
        return p.hex() if any(p) else ""

    @property
    def sampled(self):
        return bool(self._c.flags & 1)

    @property
    def sampling(self):
        s = self._c.sampling
        return SAMPLING[s] if s < len(SAMPLING) else "deferred"

    @property
    def tracestate(self):
        return _lib.dec(self._c.tracestate)

    def __repr__(self):
        return "<TraceContext %s>" % (self.traceparent()
                                      if any(self._c.span_id) else "empty")

    @classmethod
    def from_traceparent(cls, value):
        """Parse a W3C traceparent value; MeshError(MESH_ERR_PARSE) when
        invalid."""
        c = _Ctx()
        b = _lib.enc(value)
        _lib.check(_lib.fn("mesh_traceparent_parse")(b, len(b), c),
                   prefix="traceparent %r" % (value,))
        return cls(c)

    @classmethod
    def from_b3(cls, value):
        """Parse a B3 single-header value."""
        c = _Ctx()
        b = _lib.enc(value)
        _lib.check(_lib.fn("mesh_b3_parse")(b, len(b), c),
                   prefix="b3 %r" % (value,))
        return cls(c)

    def traceparent(self):
        """Format as a version-00 traceparent."""
        buf = ctypes.create_string_buffer(64)
        _lib.check(_lib.fn("mesh_traceparent_format")(self._c, buf,
                                                      len(buf)))
        return _lib.dec(buf.value)

    def b3(self):
        """Format as a B3 single-header value."""
        buf = ctypes.create_string_buffer(128)
        _lib.check(_lib.fn("mesh_b3_format")(self._c, buf, len(buf)))
        return _lib.dec(buf.value)


def tracestate_normalize(value):
    """Validate and normalize a tracestate value (W3C rules)."""
    b = _lib.enc(value)
    out = ctypes.create_string_buffer(513)
    _lib.check(_lib.fn("mesh_tracestate_parse")(b, len(b), out, len(out)),
               prefix="tracestate")
    return _lib.dec(out.value)


def extract(headers, formats=ALL, strict=False):
    """The TraceContext carried by a header mapping (any case of keys;
    http.client / http.server message objects work), trying W3C, then b3,
    then x-b3-*.  None when no header is present, or (unless strict) when
    they are invalid -- start a new trace then."""
    lower = {}
    for k in headers.keys():
        v = headers.get(k) if hasattr(headers, "get") else headers[k]
        if v is not None:
            lower.setdefault(str(k).lower(), _lib.enc(str(v)))
    keep = []  # values handed to C stay alive until the next call

    def get(key, _user):
        v = lower.get(_lib.dec(key))
        if v is None:
            return None
        buf = ctypes.create_string_buffer(v)
        keep[:] = [buf]
        return ctypes.addressof(buf)

    c = _Ctx()
    rc = _lib.fn("mesh_trace_extract")(formats, _GETTER(get), None, c)
    if rc == errors.ERR_NOT_FOUND or (rc == errors.ERR_PARSE and not strict):
        return None
    _lib.check(rc, prefix="trace extract")
    return TraceContext(c)


def inject(ctx, headers, formats=ALL):
    """Set the trace headers of ctx in a mutable mapping (a dict, or
    anything with __setitem__), in every enabled format."""
    def put(key, value, _user):
        try:
            headers[_lib.dec(key)] = _lib.dec(value)
            return 0
        except Exception:
            return 1

    _lib.check(_lib.fn("mesh_trace_inject")(ctx._c, formats, _SETTER(put),
                                            None), prefix="trace inject")
    return headers

# SPDX-License-Identifier: Apache-2.0
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
    # parents given to dials and calls
    "mesh_dial_opts_set_trace_parent": (ctypes.c_int, [_lib.Handle, _P]),
    "mesh_call_opts_set_trace_parent": (ctypes.c_int, [_lib.Handle, _P]),
    "mesh_call_trace_context": (ctypes.c_int, [_lib.Handle, _P]),
    # spans
    "mesh_set_span_hooks": (ctypes.c_int, [_lib.Handle, _lib.SPAN_HOOK_FN,
                                           _lib.SPAN_HOOK_FN,
                                           ctypes.c_void_p]),
    "mesh_span_name": (ctypes.c_char_p, [ctypes.c_void_p]),
    "mesh_span_kind": (ctypes.c_int, [ctypes.c_void_p]),
    "mesh_span_context": (None, [ctypes.c_void_p, _P]),
    "mesh_span_start_ns": (ctypes.c_uint64, [ctypes.c_void_p]),
    "mesh_span_end_ns": (ctypes.c_uint64, [ctypes.c_void_p]),
    "mesh_span_status": (ctypes.c_int, [ctypes.c_void_p,
                                        ctypes.POINTER(ctypes.c_char_p)]),
    "mesh_span_attr_count": (ctypes.c_size_t, [ctypes.c_void_p]),
    "mesh_span_attr": (ctypes.c_int, [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_double)]),
})


class TraceContext:
    """A span context as carried between processes: trace_id (32 hex),
    span_id (16 hex, the caller's span), parent_span_id (B3, or ""),
    sampled, random (the Level 2 random-trace-id flag), sampling
    ("deferred", "accept", "deny", "debug"),
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
    def random(self):
        """W3C Trace Context Level 2 random-trace-id flag."""
        return bool(self._c.flags & 2)

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


def _field_values(headers):
    """{lower-case name: [values in order]} of a header mapping.  A message
    object (http.client.HTTPMessage, the headers of http.server, any
    email.message.Message) repeats the name of a repeated field in keys()
    and returns only the first from get(): all of them come from
    get_all().  A plain mapping may hold a list of values per name, and
    names that differ in case only."""
    fields = {}
    if hasattr(headers, "get_all"):
        for k in headers.keys():
            name = str(k).lower()
            if name not in fields:
                fields[name] = [str(v) for v in (headers.get_all(k) or [])
                                if v is not None]
        return fields
    for k in headers.keys():
        v = headers.get(k) if hasattr(headers, "get") else headers[k]
        vals = v if isinstance(v, (list, tuple)) else [v]
        fields.setdefault(str(k).lower(), []).extend(
            str(x) for x in vals if x is not None)
    return fields


def extract(headers, formats=ALL, strict=False):
    """The TraceContext carried by a header mapping (any case of keys;
    http.client / http.server message objects work), trying W3C, then b3,
    then x-b3-*.  Repeated fields are joined with "," as RFC 9110 5.3
    combines them (the W3C rule for tracestate; a repeated traceparent
    then fails to parse and the trace restarts, as the spec asks), like the
    Go binding's Header.Values.  None when no header is present, or
    (unless strict) when they are invalid -- start a new trace then."""
    lower = {name: _lib.enc(",".join(vals))
             for name, vals in _field_values(headers).items() if vals}
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


# ---- spans -------------------------------------------------------------------

SPAN_KINDS = {1: "internal", 2: "server", 3: "client"}
SPAN_STATUSES = ("unset", "ok", "error")
_ATTR_STRING, _ATTR_INT, _ATTR_BOOL, _ATTR_DOUBLE = 1, 2, 3, 4


class Span:
    """A span the library started or ended, copied out of the hook call
    (the C span is only borrowed for its duration): name, kind
    ("internal", "server", "client"), context (a TraceContext: trace_id,
    span_id and, in parent_span_id, the parent's span id, "" for a root),
    start_ns / end_ns (Unix nanoseconds; end_ns is 0 while running),
    status ("unset", "ok", "error"), status_message and attributes (a dict
    of str, int, bool or float values)."""

    __slots__ = ("name", "kind", "context", "start_ns", "end_ns", "status",
                 "status_message", "attributes")

    def __init__(self, sp):
        f = _lib.fn
        self.name = _lib.dec(f("mesh_span_name")(sp))
        self.kind = SPAN_KINDS.get(f("mesh_span_kind")(sp), "internal")
        c = _Ctx()
        f("mesh_span_context")(sp, c)
        self.context = TraceContext(c)
        self.start_ns = f("mesh_span_start_ns")(sp)
        self.end_ns = f("mesh_span_end_ns")(sp)
        msg = ctypes.c_char_p()
        st = f("mesh_span_status")(sp, ctypes.byref(msg))
        self.status = SPAN_STATUSES[st] if 0 <= st < 3 else "unset"
        self.status_message = _lib.dec(msg.value)
        self.attributes = {}
        key, sv = ctypes.c_char_p(), ctypes.c_char_p()
        num, dbl = ctypes.c_int64(), ctypes.c_double()
        for i in range(f("mesh_span_attr_count")(sp)):
            t = f("mesh_span_attr")(sp, i, ctypes.byref(key),
                                    ctypes.byref(sv), ctypes.byref(num),
                                    ctypes.byref(dbl))
            if t == _ATTR_STRING:
                v = _lib.dec(sv.value)
            elif t == _ATTR_INT:
                v = num.value
            elif t == _ATTR_BOOL:
                v = bool(num.value)
            elif t == _ATTR_DOUBLE:
                v = dbl.value
            else:
                continue
            self.attributes[_lib.dec(key.value)] = v

    @property
    def trace_id(self):
        return self.context.trace_id

    @property
    def span_id(self):
        return self.context.span_id

    @property
    def parent_span_id(self):
        return self.context.parent_span_id

    @property
    def duration(self):
        """Seconds from start to end (None while running)."""
        if not self.end_ns:
            return None
        return (self.end_ns - self.start_ns) / 1e9

    def __repr__(self):
        return "<Span %s %s trace=%s span=%s parent=%s %s>" % (
            self.name, self.kind, self.trace_id, self.span_id,
            self.parent_span_id or "-", self.status)


def span_hook(fn):
    """A C span hook calling fn(Span); exceptions in fn are swallowed
    (a hook must never unwind into C).  None gives a NULL hook."""
    if fn is None:
        return _lib.SPAN_HOOK_FN()

    def hook(sp, _user):
        try:
            fn(Span(sp))
        except Exception:
            pass
    return _lib.SPAN_HOOK_FN(hook)


def ctx_ptr(ctx):
    """The mesh_trace_ctx_t of a TraceContext for a C call (None: NULL)."""
    if ctx is None:
        return None
    if not isinstance(ctx, TraceContext):
        raise TypeError("trace_parent must be a libmesh.trace.TraceContext, "
                        "not %s" % type(ctx).__name__)
    return ctypes.byref(ctx._c)

// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <mesh/metrics.h>
#include <mesh/trace.h>

extern char *meshGoTraceGet(char *key, uintptr_t user);
extern int meshGoTraceSet(char *key, char *value, uintptr_t user);

static const char *mesh_go_trace_get(const char *key, void *user) {
	return meshGoTraceGet((char *)key, (uintptr_t)user);
}
static int mesh_go_trace_set(const char *key, const char *value, void *user) {
	return meshGoTraceSet((char *)key, (char *)value, (uintptr_t)user);
}
static int mesh_go_trace_extract(unsigned formats, uintptr_t h,
                                 mesh_trace_ctx_t *ctx) {
	return mesh_trace_extract(formats, mesh_go_trace_get, (void *)h, ctx);
}
static int mesh_go_trace_inject(const mesh_trace_ctx_t *ctx, unsigned formats,
                                uintptr_t h) {
	return mesh_trace_inject(ctx, formats, mesh_go_trace_set, (void *)h);
}
*/
import "C"

import (
	"encoding/hex"
	"net/http"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// Trace propagation formats (a bit mask).
const (
	PropagateTraceContext = uint(C.MESH_PROPAGATE_TRACECONTEXT) // traceparent + tracestate
	PropagateB3           = uint(C.MESH_PROPAGATE_B3)           // b3 single header
	PropagateB3Multi      = uint(C.MESH_PROPAGATE_B3_MULTI)     // x-b3-* headers
	PropagateAll          = PropagateTraceContext | PropagateB3 | PropagateB3Multi
)

// TraceContext is a span context as carried between processes
// (mesh_trace_ctx_t, parsed and formatted by the library).
type TraceContext struct{ c C.mesh_trace_ctx_t }

// TraceID is the 32-hex-digit trace id.
func (t *TraceContext) TraceID() string {
	return hex.EncodeToString(C.GoBytes(unsafe.Pointer(&t.c.trace_id[0]), 16))
}

// SpanID is the 16-hex-digit id of the caller's span.
func (t *TraceContext) SpanID() string {
	return hex.EncodeToString(C.GoBytes(unsafe.Pointer(&t.c.span_id[0]), 8))
}

// ParentSpanID is B3's ParentSpanId, or "".
func (t *TraceContext) ParentSpanID() string {
	b := C.GoBytes(unsafe.Pointer(&t.c.parent_span_id[0]), 8)
	for _, x := range b {
		if x != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// Sampled reports the W3C sampled flag.
func (t *TraceContext) Sampled() bool { return t.c.flags&1 == 1 }

// TraceState is the normalized tracestate ("" if none).
func (t *TraceContext) TraceState() string { return C.GoString(&t.c.tracestate[0]) }

// ParseTraceparent parses a W3C traceparent value (ErrParse if invalid).
func ParseTraceparent(s string) (*TraceContext, error) {
	t := &TraceContext{}
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	if rc := C.mesh_traceparent_parse(cs, C.size_t(len(s)), &t.c); rc != 0 {
		return nil, &Error{Code: Code(rc), Op: "traceparent", Message: s}
	}
	return t, nil
}

// ParseB3 parses a B3 single-header value.
func ParseB3(s string) (*TraceContext, error) {
	t := &TraceContext{}
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	if rc := C.mesh_b3_parse(cs, C.size_t(len(s)), &t.c); rc != 0 {
		return nil, &Error{Code: Code(rc), Op: "b3", Message: s}
	}
	return t, nil
}

// Traceparent formats the context as a version-00 traceparent.
func (t *TraceContext) Traceparent() (string, error) {
	var buf [64]C.char
	if rc := C.mesh_traceparent_format(&t.c, &buf[0], C.size_t(len(buf))); rc < 0 {
		return "", &Error{Code: Code(rc), Op: "traceparent"}
	}
	return C.GoString(&buf[0]), nil
}

// B3 formats the context as a B3 single-header value.
func (t *TraceContext) B3() (string, error) {
	var buf [128]C.char
	if rc := C.mesh_b3_format(&t.c, &buf[0], C.size_t(len(buf))); rc < 0 {
		return "", &Error{Code: Code(rc), Op: "b3"}
	}
	return C.GoString(&buf[0]), nil
}

// carrier is the Go side of the getter/setter callbacks.
type carrier struct {
	h    http.Header
	last *C.char // the getter's value stays valid until its next call
	err  bool
}

//export meshGoTraceGet
func meshGoTraceGet(key *C.char, user C.uintptr_t) *C.char {
	c := cgo.Handle(user).Value().(*carrier)
	if c.last != nil {
		C.free(unsafe.Pointer(c.last))
		c.last = nil
	}
	vals := c.h.Values(C.GoString(key))
	if len(vals) == 0 {
		return nil
	}
	c.last = C.CString(strings.Join(vals, ","))
	return c.last
}

//export meshGoTraceSet
func meshGoTraceSet(key, value *C.char, user C.uintptr_t) C.int {
	c := cgo.Handle(user).Value().(*carrier)
	c.h.Set(C.GoString(key), C.GoString(value))
	return 0
}

// ExtractTrace reads the trace context from HTTP headers, trying W3C, then
// b3, then x-b3-*, among formats.  ok is false when no header is present
// or they are invalid (start a new trace then).
func ExtractTrace(h http.Header, formats uint) (t *TraceContext, ok bool) {
	c := &carrier{h: h}
	hd := cgo.NewHandle(c)
	defer hd.Delete()
	t = &TraceContext{}
	rc := C.mesh_go_trace_extract(C.uint(formats), C.uintptr_t(hd), &t.c)
	if c.last != nil {
		C.free(unsafe.Pointer(c.last))
	}
	if rc != 0 {
		return nil, false
	}
	return t, true
}

// InjectTrace sets the headers of t in every enabled format.
func InjectTrace(t *TraceContext, h http.Header, formats uint) error {
	c := &carrier{h: h}
	hd := cgo.NewHandle(c)
	defer hd.Delete()
	if rc := C.mesh_go_trace_inject(&t.c, C.uint(formats), C.uintptr_t(hd)); rc != 0 {
		return &Error{Code: Code(rc), Op: "trace inject"}
	}
	return nil
}

// TraceFormats are the formats configured in tracing.propagation.
func (m *Mesh) TraceFormats() uint {
	cm, ok := m.use()
	if !ok {
		return 0
	}
	defer m.done()
	return uint(C.mesh_trace_formats(cm))
}

// MetricsText renders every metric in the Prometheus text format.
func (m *Mesh) MetricsText() (string, error) {
	cm, ok := m.use()
	if !ok {
		return "", closedErr("metrics")
	}
	defer m.done()
	size := 65536
	for i := 0; i < 8; i++ { // the set may grow between calls: bounded
		buf := make([]byte, size)
		var need C.size_t
		rc := C.mesh_metrics_text(cm, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(size), &need)
		if Code(rc) == ErrBuffer {
			size = int(need)
			if size < 2*len(buf) {
				size = 2 * len(buf)
			}
			continue
		}
		if rc < 0 {
			return "", &Error{Code: Code(rc), Op: "metrics"}
		}
		return string(buf[:rc]), nil
	}
	return "", &Error{Code: ErrBuffer, Op: "metrics", Message: "metrics text keeps growing"}
}

// AdminPort is the admin endpoint's port; ok is false when it is not
// configured.
func (m *Mesh) AdminPort() (port int, ok bool) {
	cm, live := m.use()
	if !live {
		return 0, false
	}
	defer m.done()
	rc := int(C.mesh_admin_port(cm))
	return rc, rc > 0
}

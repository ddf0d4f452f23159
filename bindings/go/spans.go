// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdint.h>
#include <mesh/trace.h>

extern void meshGoSpan(void *span, int end, uintptr_t user);

static void mesh_go_span_start(const mesh_span_t *s, void *user) {
	meshGoSpan((void *)s, 0, (uintptr_t)user);
}
static void mesh_go_span_end(const mesh_span_t *s, void *user) {
	meshGoSpan((void *)s, 1, (uintptr_t)user);
}
static int mesh_go_set_span_hooks(mesh_t *m, int start, int end, uintptr_t h) {
	return mesh_set_span_hooks(m, start ? mesh_go_span_start : NULL,
	                           end ? mesh_go_span_end : NULL, (void *)h);
}
*/
import "C"

import (
	"runtime/cgo"
	"time"
	"unsafe"
)

// SpanKind is the OTLP kind of a span.
type SpanKind int

// Span kinds (values as OTLP's SpanKind).
const (
	SpanInternal SpanKind = C.MESH_SPAN_INTERNAL
	SpanServer   SpanKind = C.MESH_SPAN_SERVER
	SpanClient   SpanKind = C.MESH_SPAN_CLIENT
)

func (k SpanKind) String() string {
	switch k {
	case SpanServer:
		return "server"
	case SpanClient:
		return "client"
	}
	return "internal"
}

// SpanStatus is the OTLP status code of a span.
type SpanStatus int

// Span statuses (values as OTLP's StatusCode).
const (
	SpanStatusUnset SpanStatus = C.MESH_SPAN_STATUS_UNSET
	SpanStatusOK    SpanStatus = C.MESH_SPAN_STATUS_OK
	SpanStatusError SpanStatus = C.MESH_SPAN_STATUS_ERROR
)

func (s SpanStatus) String() string {
	switch s {
	case SpanStatusOK:
		return "ok"
	case SpanStatusError:
		return "error"
	}
	return "unset"
}

// Span is a span the library started or ended ("mesh.dial",
// "mesh.handshake", "mesh.call", "mesh.try", "mesh.accept",
// "mesh.request"), copied out of the hook call.
type Span struct {
	Name string
	Kind SpanKind
	// Context is the span's own context; its ParentSpanID is the parent
	// span's id ("" for a root).
	Context       TraceContext
	Start, End    time.Time // End is zero while the span runs
	Status        SpanStatus
	StatusMessage string
	// Attributes hold string, int64, bool or float64 values.
	Attributes map[string]any
}

// TraceID, SpanID and ParentSpanID are those of Context.
func (s *Span) TraceID() string      { return s.Context.TraceID() }
func (s *Span) SpanID() string       { return s.Context.SpanID() }
func (s *Span) ParentSpanID() string { return s.Context.ParentSpanID() }

func unixNano(ns C.uint64_t) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func convertSpan(sp *C.mesh_span_t) *Span {
	s := &Span{
		Name:  C.GoString(C.mesh_span_name(sp)),
		Kind:  SpanKind(C.mesh_span_kind(sp)),
		Start: unixNano(C.mesh_span_start_ns(sp)),
		End:   unixNano(C.mesh_span_end_ns(sp)),
	}
	C.mesh_span_context(sp, &s.Context.c)
	var msg *C.char
	s.Status = SpanStatus(C.mesh_span_status(sp, &msg))
	s.StatusMessage = C.GoString(msg)
	n := C.mesh_span_attr_count(sp)
	s.Attributes = make(map[string]any, int(n))
	for i := C.size_t(0); i < n; i++ {
		var key, str *C.char
		var num C.int64_t
		var dbl C.double
		switch C.mesh_span_attr(sp, i, &key, &str, &num, &dbl) {
		case C.MESH_ATTR_STRING:
			s.Attributes[C.GoString(key)] = C.GoString(str)
		case C.MESH_ATTR_INT:
			s.Attributes[C.GoString(key)] = int64(num)
		case C.MESH_ATTR_BOOL:
			s.Attributes[C.GoString(key)] = num != 0
		case C.MESH_ATTR_DOUBLE:
			s.Attributes[C.GoString(key)] = float64(dbl)
		}
	}
	return s
}

type spanHooks struct{ start, end func(*Span) }

//export meshGoSpan
func meshGoSpan(span unsafe.Pointer, end C.int, user C.uintptr_t) {
	h, ok := cgo.Handle(user).Value().(*spanHooks)
	if !ok {
		return
	}
	fn := h.start
	if end != 0 {
		fn = h.end
	}
	if fn == nil {
		return
	}
	defer func() { recover() }() // a hook's panic must not unwind into C
	fn(convertSpan((*C.mesh_span_t)(span)))
}

// SetSpanHooks calls onStart / onEnd (either may be nil; both nil removes
// the hooks) when a sampled span starts / ends, on the thread that starts
// or ends it: the caller's goroutine or the library's worker thread.  The
// hooks must be safe for concurrent use and should return quickly; a
// panic in one is recovered and ignored.  Spans already running may still
// report to the hooks this call replaces.
func (m *Mesh) SetSpanHooks(onStart, onEnd func(*Span)) error {
	cm, ok := m.use()
	if !ok {
		return closedErr("span hooks")
	}
	defer m.done()
	var h cgo.Handle
	if onStart != nil || onEnd != nil {
		h = cgo.NewHandle(&spanHooks{start: onStart, end: onEnd})
		m.keep(h)
	}
	rc := C.mesh_go_set_span_hooks(cm, boolInt(onStart != nil), boolInt(onEnd != nil), C.uintptr_t(h))
	if rc != 0 {
		return &Error{Code: Code(rc), Op: "span hooks"}
	}
	return nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

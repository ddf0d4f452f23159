// SPDX-License-Identifier: Apache-2.0

// Package mesh is the Go binding of libmesh, a proxyless service mesh in a
// C library: mutual TLS with SPIFFE identities, discovery, load balancing
// and resilience, linked into the process.
//
// Dial returns a net.Conn and Listen a net.Listener, so the standard
// library runs over the mesh unchanged:
//
//	m, _ := mesh.New(config)
//	defer m.Close()
//	client := &http.Client{Transport: &http.Transport{DialContext: m.DialContext}}
//	srv := &http.Server{Handler: h}
//	ln, _ := m.Listen("127.0.0.1:0")
//	go srv.Serve(ln)
//
// Call runs a request to a configured service under the library's retry
// policy, over a pooled connection to an endpoint it picked:
//
//	err := m.Call(ctx, "api", func(c *mesh.CallConn) (mesh.Outcome, int, error) {
//		// speak the protocol over c (a net.Conn); report how it went
//		return mesh.OutcomeOK, 200, nil
//	})
//
// SetSpanHooks sees the library's spans; AuthzCheck, AuthzReload and
// SetAuthorizer use its authorization policies.
//
// Build against a build tree with CGO_CFLAGS=-I<top>/include and
// CGO_LDFLAGS="-L<top>/build/libmesh/.libs -Wl,-rpath,<top>/build/libmesh/.libs";
// against an installed libmesh nothing needs setting.
//
// Threading: a *Mesh is safe for concurrent use; so is a *Conn, as the
// net.Conn contract requires (calls into C on one connection are
// serialized; waits happen in Go's network poller, not in C).
package mesh

/*
#cgo pkg-config: mesh
#include <stdint.h>
#include <stdlib.h>
#include <mesh/mesh.h>

extern void meshGoLog(int level, char *line, uintptr_t user);
extern void meshGoConfigError(char *text, uintptr_t user);

static void mesh_go_log_tramp(int level, const char *line, void *user) {
	meshGoLog(level, (char *)line, (uintptr_t)user);
}
static void mesh_go_set_log(mesh_t *m, int level, uintptr_t h) {
	mesh_set_log(m, level, h ? mesh_go_log_tramp : NULL, (void *)h);
}
static void mesh_go_config_tramp(const char *text, void *user) {
	meshGoConfigError((char *)text, (uintptr_t)user);
}
static int mesh_go_config_check(const char *json, uintptr_t h) {
	return mesh_config_check(json, mesh_go_config_tramp, (void *)h);
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Log levels for SetLogger.
const (
	LogError = int(C.MESH_LOG_ERROR)
	LogWarn  = int(C.MESH_LOG_WARN)
	LogInfo  = int(C.MESH_LOG_INFO)
	LogDebug = int(C.MESH_LOG_DEBUG)
	LogTrace = int(C.MESH_LOG_TRACE)
)

// Version is the runtime library version, e.g. "0.1.0".
func Version() string { return C.GoString(C.mesh_version()) }

// ConfigCheck validates a JSON configuration without creating a context
// and returns every error as "json.path: reason" (nil when valid).
func ConfigCheck(config string) ([]string, error) {
	var found []string
	h := cgo.NewHandle(&found)
	defer h.Delete()
	cs := C.CString(config)
	defer C.free(unsafe.Pointer(cs))
	rc := C.mesh_go_config_check(cs, C.uintptr_t(h))
	if rc < 0 {
		return nil, newError("config check", rc, nil)
	}
	return found, nil
}

// Mesh is a libmesh context (mesh_t).
type Mesh struct {
	// mu is held shared around every C call that uses m, exclusively by
	// Close before mesh_free: no call ever sees a freed context.
	mu     sync.RWMutex
	m      *C.mesh_t
	ctx    context.Context // cancelled by Close: aborts dials in flight
	cancel context.CancelFunc

	services map[string]bool // configured service names (for DialContext)

	childMu  sync.Mutex
	children map[io.Closer]struct{}
	closing  bool
	// handles: every callback handle given to C (loggers, span hooks,
	// the authorizer), replaced ones too, since C may still be running
	// them; deleted after mesh_free.
	handles []cgo.Handle

	// inflight counts long C calls that call back into Go (Call, Request,
	// BeginCall's dial).  They run without holding mu, so a callback may
	// use the Mesh; Close waits for them after cancelling ctx.
	inflight sync.WaitGroup
}

// New creates a context from a JSON configuration (see docs/config.md).
// Errors are *Error with Code ErrConfig and the JSON path in Message.
func New(config string) (*Mesh, error) {
	cs := C.CString(config)
	defer C.free(unsafe.Pointer(cs))
	var st C.mesh_status_t
	var m *C.mesh_t
	if rc := C.mesh_new(cs, &m, &st); rc != 0 {
		return nil, newError("new", rc, &st)
	}
	return wrap(m, []byte(config)), nil
}

// NewFromFile creates a context from a JSON configuration file.
func NewFromFile(path string) (*Mesh, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var st C.mesh_status_t
	var m *C.mesh_t
	if rc := C.mesh_new_from_file(cs, &m, &st); rc != 0 {
		return nil, newError("new", rc, &st)
	}
	text, _ := os.ReadFile(path) // the library read it already
	return wrap(m, text), nil
}

func wrap(m *C.mesh_t, config []byte) *Mesh {
	ctx, cancel := context.WithCancel(context.Background())
	var doc struct {
		Services map[string]json.RawMessage `json:"services"`
	}
	json.Unmarshal(config, &doc) // valid: mesh_new accepted it
	names := make(map[string]bool, len(doc.Services))
	for name := range doc.Services {
		names[name] = true
	}
	return &Mesh{m: m, ctx: ctx, cancel: cancel, services: names,
		children: make(map[io.Closer]struct{})}
}

// Close closes every connection and listener made from this context, then
// frees it.  Safe to call more than once and from any goroutine.
func (m *Mesh) Close() error {
	m.childMu.Lock()
	if m.closing {
		m.childMu.Unlock()
		return nil
	}
	m.closing = true
	kids := make([]io.Closer, 0, len(m.children))
	for c := range m.children {
		kids = append(kids, c)
	}
	m.children = nil
	m.childMu.Unlock()

	m.cancel()
	for _, c := range kids {
		c.Close()
	}
	m.inflight.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	C.mesh_free(m.m)
	m.m = nil
	m.childMu.Lock()
	hs := m.handles
	m.handles = nil
	m.childMu.Unlock()
	for _, h := range hs {
		h.Delete()
	}
	return nil
}

// enter registers a long call that may call back into Go (see inflight);
// ok is false once Close has begun.  Pair with exit.
func (m *Mesh) enter() (*C.mesh_t, bool) {
	m.childMu.Lock()
	defer m.childMu.Unlock()
	if m.closing {
		return nil, false
	}
	m.inflight.Add(1)
	return m.m, true // Close frees m.m only after inflight drains
}

func (m *Mesh) exit() { m.inflight.Done() }

// keep records a handle to delete after mesh_free.
func (m *Mesh) keep(h cgo.Handle) {
	m.childMu.Lock()
	m.handles = append(m.handles, h)
	m.childMu.Unlock()
}

// use takes the shared lock; ok is false once the context is closed.
func (m *Mesh) use() (*C.mesh_t, bool) {
	m.mu.RLock()
	if m.m == nil {
		m.mu.RUnlock()
		return nil, false
	}
	return m.m, true
}

func (m *Mesh) done() { m.mu.RUnlock() }

func closedErr(op string) error {
	return &Error{Code: ErrClosed, Op: op, Message: "mesh is closed"}
}

// adopt registers a child closed by Close; false if the context is closing.
func (m *Mesh) adopt(c io.Closer) bool {
	m.childMu.Lock()
	defer m.childMu.Unlock()
	if m.closing {
		return false
	}
	m.children[c] = struct{}{}
	return true
}

func (m *Mesh) disown(c io.Closer) {
	m.childMu.Lock()
	defer m.childMu.Unlock()
	if m.children != nil {
		delete(m.children, c)
	}
}

// SetLogger routes log lines at or below level to fn (nil: stderr).  fn
// is called from the library's worker thread or the calling goroutine's
// thread; it must be safe for concurrent use.
func (m *Mesh) SetLogger(level int, fn func(level int, line string)) error {
	cm, ok := m.use()
	if !ok {
		return closedErr("set logger")
	}
	defer m.done()
	var h cgo.Handle
	if fn != nil {
		h = cgo.NewHandle(fn)
		m.keep(h)
	}
	C.mesh_go_set_log(cm, C.int(level), C.uintptr_t(h))
	return nil
}

// BackendFD is the fd that becomes readable when work is due, in
// "worker": {"mode": "external"}; -1 when the library runs its own thread.
func (m *Mesh) BackendFD() int {
	cm, ok := m.use()
	if !ok {
		return -1
	}
	defer m.done()
	return int(C.mesh_backend_fd(cm))
}

// BackendTimeout is the number of milliseconds until the next timer (-1:
// none).
func (m *Mesh) BackendTimeout() int {
	cm, ok := m.use()
	if !ok {
		return -1
	}
	defer m.done()
	return int(C.mesh_backend_timeout(cm))
}

// Process runs due timers and ready I/O (external worker mode only).
func (m *Mesh) Process() error {
	cm, ok := m.use()
	if !ok {
		return closedErr("process")
	}
	defer m.done()
	if rc := C.mesh_process(cm); rc != 0 {
		return newError("process", rc, nil)
	}
	return nil
}

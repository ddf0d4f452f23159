// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdint.h>
#include <stdlib.h>
#include <mesh/authz.h>

extern int meshGoAuthorize(void *req, char *policy, uintptr_t user);

static int mesh_go_authz_tramp(const mesh_authz_request_t *req,
                               const char *policy, void *user) {
	return meshGoAuthorize((void *)req, (char *)policy, (uintptr_t)user);
}
static int mesh_go_authz_set(mesh_t *m, uintptr_t h) {
	return mesh_authz_set_callback(m, h ? mesh_go_authz_tramp : NULL,
	                               (void *)h);
}
*/
import "C"

import (
	"net/http"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// AuthzRequest describes one request for AuthzCheck (Istio
// AuthorizationPolicy attributes).  Zero fields are unknown.  A request
// with a Method or Path is an HTTP request; without, it is judged with
// Istio's TCP semantics.
type AuthzRequest struct {
	// Conn, if set, gives the peer's SPIFFE ID, its address and the local
	// port; the fields below override them.
	Conn      *Conn
	Principal string // peer SPIFFE ID; its /ns/<namespace>/ path gives the namespace
	SourceIP  string // peer IP literal
	Port      int    // destination (local) port, 1-65535
	Method    string // HTTP method ("GET" when only Path is set)
	Path      string // request target, query allowed; normalized for matching
	Host      string
	Header    http.Header
}

func (r *AuthzRequest) build() (*C.mesh_authz_request_t, error) {
	q := C.mesh_authz_request_new()
	if q == nil {
		return nil, &Error{Code: ErrNoMem, Op: "authz"}
	}
	var err error
	set := func(what string, rc C.int) {
		if rc != 0 && err == nil {
			err = &Error{Code: Code(rc), Op: "authz", Message: what}
		}
	}
	str := func(what, v string, fn func(*C.char) C.int) {
		cs := C.CString(v)
		set(what+" "+v, fn(cs))
		C.free(unsafe.Pointer(cs))
	}
	if r.Conn != nil {
		r.Conn.mu.Lock()
		if r.Conn.c == nil {
			set("conn", C.int(ErrClosed))
		} else {
			set("conn", C.mesh_authz_request_set_conn(q, r.Conn.c))
		}
		r.Conn.mu.Unlock()
	}
	if r.Principal != "" {
		str("principal", r.Principal, func(s *C.char) C.int { return C.mesh_authz_request_set_principal(q, s) })
	}
	if r.SourceIP != "" {
		str("source IP", r.SourceIP, func(s *C.char) C.int { return C.mesh_authz_request_set_source_ip(q, s) })
	}
	if r.Port != 0 {
		set("port", C.mesh_authz_request_set_port(q, C.int(r.Port)))
	}
	if r.Method != "" || r.Path != "" || r.Host != "" {
		method, path := r.Method, r.Path
		if method == "" {
			method = "GET"
		}
		if path == "" {
			path = "/"
		}
		cm, cp, ch := C.CString(method), C.CString(path), C.CString(r.Host)
		set("http "+method+" "+path, C.mesh_authz_request_set_http(q, cm, cp, ch))
		C.free(unsafe.Pointer(cm))
		C.free(unsafe.Pointer(cp))
		C.free(unsafe.Pointer(ch))
	}
	for name, vals := range r.Header {
		for _, v := range vals {
			cn, cv := C.CString(name), C.CString(v)
			set("header "+name, C.mesh_authz_request_add_header(q, cn, cv))
			C.free(unsafe.Pointer(cn))
			C.free(unsafe.Pointer(cv))
		}
	}
	if err != nil {
		C.mesh_authz_request_free(q)
		return nil, err
	}
	return q, nil
}

// AuthzCheck checks a request against the current policies (CUSTOM
// providers included), counted and logged like the library's own checks
// (it enforces them itself at accept).  nil: allowed (or dry run); an
// *Error with ErrDenied naming the policy otherwise.
func (m *Mesh) AuthzCheck(r *AuthzRequest) error {
	if r == nil {
		return &Error{Code: ErrInvalidArg, Op: "authz", Message: "nil request"}
	}
	q, err := r.build()
	if err != nil {
		return err
	}
	defer C.mesh_authz_request_free(q)
	// enter, not use: a Go authorizer runs inside and may use the Mesh.
	cm, ok := m.enter()
	if !ok {
		return closedErr("authz")
	}
	defer m.exit()
	var st C.mesh_status_t
	if rc := C.mesh_authz_check(cm, q, &st); rc != 0 {
		return newError("authz", rc, &st)
	}
	return nil
}

// AuthzReload replaces the policies without a restart.  json is the text
// of an "authz" section ({"policies": [...], "dry_run": false}); it is
// validated in full first and on any error (ErrConfig with its JSON path)
// nothing changes.
func (m *Mesh) AuthzReload(json string) error {
	cm, ok := m.use()
	if !ok {
		return closedErr("authz reload")
	}
	defer m.done()
	cs := C.CString(json)
	defer C.free(unsafe.Pointer(cs))
	var st C.mesh_status_t
	if rc := C.mesh_authz_reload(cm, cs, &st); rc != 0 {
		return newError("authz reload", rc, &st)
	}
	return nil
}

// AuthzCounter reads a decision counter: "allow", "deny", "conn_deny",
// "dry_run_deny", "custom_deny", "opa_error", "opa_cache_hit", "audit",
// "reload", "reload_error" (ErrNotFound for another name).
func (m *Mesh) AuthzCounter(name string) (uint64, error) {
	cm, ok := m.use()
	if !ok {
		return 0, closedErr("authz counter")
	}
	defer m.done()
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var v C.uint64_t
	if rc := C.mesh_authz_counter(cm, cs, &v); rc != 0 {
		return 0, &Error{Code: Code(rc), Op: "authz counter", Message: name}
	}
	return uint64(v), nil
}

// AuthzView is the request an authorizer decides on.  It is only valid
// during the authorizer's call: afterwards its methods return zero
// values.
type AuthzView struct {
	mu sync.Mutex
	r  *C.mesh_authz_request_t
}

func (v *AuthzView) str(fn func(*C.mesh_authz_request_t) *C.char) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.r == nil {
		return "", false
	}
	p := fn(v.r)
	if p == nil {
		return "", false
	}
	return C.GoString(p), true
}

// Principal is the peer's SPIFFE ID ("" when none).
func (v *AuthzView) Principal() string {
	s, _ := v.str(func(r *C.mesh_authz_request_t) *C.char { return C.mesh_authz_request_principal(r) })
	return s
}

// Namespace is the namespace of the peer's SPIFFE ID ("" when none).
func (v *AuthzView) Namespace() string {
	s, _ := v.str(func(r *C.mesh_authz_request_t) *C.char { return C.mesh_authz_request_namespace(r) })
	return s
}

// SourceIP is the peer's IP ("" when unknown).
func (v *AuthzView) SourceIP() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.r == nil {
		return ""
	}
	var buf [64]C.char
	if C.mesh_authz_request_source_ip(v.r, &buf[0], C.size_t(len(buf))) != 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

// Port is the destination (local) port, -1 when unknown.
func (v *AuthzView) Port() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.r == nil {
		return -1
	}
	return int(C.mesh_authz_request_port(v.r))
}

// HTTP returns the method, the normalized path (no query) and the host;
// ok is false for a non-HTTP (TCP) request.
func (v *AuthzView) HTTP() (method, path, host string, ok bool) {
	method, ok = v.str(func(r *C.mesh_authz_request_t) *C.char { return C.mesh_authz_request_method(r) })
	if !ok {
		return "", "", "", false
	}
	path, _ = v.str(func(r *C.mesh_authz_request_t) *C.char { return C.mesh_authz_request_path(r) })
	host, _ = v.str(func(r *C.mesh_authz_request_t) *C.char { return C.mesh_authz_request_host(r) })
	return method, path, host, true
}

// Header is the first value of a request header (any case of name); ok
// is false when absent.
func (v *AuthzView) Header(name string) (string, bool) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return v.str(func(r *C.mesh_authz_request_t) *C.char { return C.mesh_authz_request_header(r, cs) })
}

// HeaderValues is every value of a request header (any case of name),
// one per field line, in order; nil when absent.  Policies match a
// repeated field joined with "," (strings.Join(v, ",")).
func (v *AuthzView) HeaderValues(name string) []string {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.r == nil {
		return nil
	}
	n := C.mesh_authz_request_header_values(v.r, cs, nil, 0)
	if n == 0 {
		return nil
	}
	arr := (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(arr))
	n = C.mesh_authz_request_header_values(v.r, cs, arr, n)
	ptrs := unsafe.Slice(arr, int(n))
	out := make([]string, len(ptrs))
	for i, p := range ptrs {
		out[i] = C.GoString(p)
	}
	return out
}

type authorizer struct {
	fn func(r *AuthzView, policy string) bool
}

//export meshGoAuthorize
func meshGoAuthorize(req unsafe.Pointer, policy *C.char, user C.uintptr_t) (r C.int) {
	a, ok := cgo.Handle(user).Value().(*authorizer)
	if !ok {
		return C.MESH_AUTHZ_DENY
	}
	v := &AuthzView{r: (*C.mesh_authz_request_t)(req)}
	defer func() {
		v.mu.Lock()
		v.r = nil
		v.mu.Unlock()
		if recover() != nil { // fail closed, never unwind into C
			r = C.MESH_AUTHZ_DENY
		}
	}()
	if a.fn(v, C.GoString(policy)) {
		return C.MESH_AUTHZ_ALLOW
	}
	return C.MESH_AUTHZ_DENY
}

// SetAuthorizer installs fn as the decider of CUSTOM policies with
// "provider": "callback" (nil removes it; such policies then deny).  fn
// returns true to allow.  It runs on the goroutine or thread that checks
// the request (an accepting Listener, AuthzCheck), possibly several at
// once, so it must be safe for concurrent use; a panic denies.
func (m *Mesh) SetAuthorizer(fn func(r *AuthzView, policy string) bool) error {
	cm, ok := m.use()
	if !ok {
		return closedErr("authorizer")
	}
	defer m.done()
	var h cgo.Handle
	if fn != nil {
		h = cgo.NewHandle(&authorizer{fn: fn})
		m.keep(h)
	}
	if rc := C.mesh_go_authz_set(cm, C.uintptr_t(h)); rc != 0 {
		return &Error{Code: Code(rc), Op: "authorizer"}
	}
	return nil
}

// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdlib.h>
#include <mesh/http.h>
*/
import "C"

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unsafe"
)

type connKey struct{}

// ConnContext is an http.Server ConnContext hook: it makes the mesh
// connection of each request available to handlers through
// ConnFromContext, so they can see the caller's SPIFFE ID:
//
//	srv := &http.Server{ConnContext: mesh.ConnContext, Handler: h}
//	// in h: c, _ := mesh.ConnFromContext(r.Context()); c.PeerID()
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if mc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, mc)
	}
	return ctx
}

// ConnFromContext returns the mesh connection stored by ConnContext.
func ConnFromContext(ctx context.Context) (*Conn, bool) {
	c, ok := ctx.Value(connKey{}).(*Conn)
	return c, ok
}

// AuthzRequestFromHTTP describes a request served by net/http for
// AuthzCheck: the mesh connection (from ConnContext) for the peer, the
// method, the request target as sent (normalized by the library for
// matching), the host (net/http takes it from an absolute-form target
// before Host, as RFC 9112 says) and every value of every header.
func AuthzRequestFromHTTP(r *http.Request) *AuthzRequest {
	q := &AuthzRequest{Method: r.Method, Path: r.RequestURI, Host: r.Host,
		Header: r.Header}
	if q.Path == "" {
		q.Path = r.URL.RequestURI()
	}
	if c, ok := ConnFromContext(r.Context()); ok {
		q.Conn = c
	}
	return q
}

// JoinRepeatedHeaders makes each header field sent more than once a
// single value, its values joined with "," in order: the value the
// authorization policies matched (Envoy's rule).  Without it a handler's
// h.Get("X-User") would read only the first copy ("mallory") of
// "mallory,bob", which a policy on "mallory" did not deny.
func JoinRepeatedHeaders(h http.Header) {
	for k, v := range h {
		if len(v) > 1 {
			h[k] = []string{strings.Join(v, ",")}
		}
	}
}

// NormalizePath normalizes the path of a request target as the mesh's
// own HTTP server does before its policies see it
// (authz.path_normalization): dot segments, unreserved %XX, backslashes,
// merged slashes.  The query is dropped.  An ErrHTTPParse error means the
// target must be refused with 400 (%00, a bad escape, not a path).
func (m *Mesh) NormalizePath(target string) (string, error) {
	ct := C.CString(target)
	defer C.free(unsafe.Pointer(ct))
	buf := make([]byte, len(target)+2)
	var cm *C.mesh_t
	if m != nil {
		var ok bool
		if cm, ok = m.enter(); !ok {
			return "", closedErr("http")
		}
		defer m.exit()
	}
	rc := C.mesh_http_path_normalize(cm, ct, (*C.char)(unsafe.Pointer(&buf[0])),
		C.size_t(len(buf)))
	if rc != 0 {
		return "", &Error{Code: Code(rc), Op: "http", Message: "normalize " + target}
	}
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), nil
}

// Authorize wraps a handler with the mesh's authorization policies
// (AuthzCheck on AuthzRequestFromHTTP).  A denied request gets 403
// "RBAC: access denied" and never reaches next, a target that cannot be
// normalized 400; an allowed one reaches it as the policies saw it: its
// URL path normalized (NormalizePath) and repeated header fields joined
// (JoinRepeatedHeaders).  Use it with http.Server{ConnContext: ConnContext}
// so that the peer's SPIFFE ID is known.
func (m *Mesh) Authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := AuthzRequestFromHTTP(r)
		p, err := m.NormalizePath(q.Path)
		var dec string
		if err == nil {
			dec, err = url.PathUnescape(p)
		}
		if err != nil {
			http.Error(w, "Bad Request", http.StatusBadRequest)
			return
		}
		if err := m.AuthzCheck(q); err != nil {
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
			return
		}
		r.URL.Path, r.URL.RawPath = dec, p
		JoinRepeatedHeaders(r.Header)
		next.ServeHTTP(w, r)
	})
}

package mesh

import (
	"context"
	"net"
	"net/http"
	"strings"
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

// Authorize wraps a handler with the mesh's authorization policies
// (AuthzCheck on AuthzRequestFromHTTP).  A denied request gets 403
// "RBAC: access denied" and never reaches next; an allowed one reaches
// it as the policies saw it: repeated header fields joined
// (JoinRepeatedHeaders).  Use it with http.Server{ConnContext: ConnContext}
// so that the peer's SPIFFE ID is known.
func (m *Mesh) Authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.AuthzCheck(AuthzRequestFromHTTP(r)); err != nil {
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
			return
		}
		JoinRepeatedHeaders(r.Header)
		next.ServeHTTP(w, r)
	})
}

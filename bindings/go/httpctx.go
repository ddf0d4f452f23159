package mesh

import (
	"context"
	"net"
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

// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdlib.h>
#include <mesh/mesh.h>
*/
import "C"

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// DialOptions adjust one dial.  The zero value means the configuration's
// defaults.
type DialOptions struct {
	// Peers are SPIFFE ID patterns the server must match ("*", exact,
	// "td/prefix*", "spiffe://td"); they replace the service's configured
	// peers.
	Peers []string
	// ALPN protocols to offer, e.g. []string{"h2", "http/1.1"}.
	ALPN []string
	// HashKey for ring_hash / maglev balancing.
	HashKey []byte
	// Timeout for connect and handshake together.  Zero: the context's
	// deadline if any, else the configuration's tls timeouts.
	Timeout time.Duration
	// TraceParent is the parent of the dial's spans ("mesh.dial" and its
	// "mesh.handshake"), e.g. from ExtractTrace of the request being
	// served; nil starts a new trace, subject to sampling.
	TraceParent *TraceContext
}

// Dial connects to a configured service by name, or to "host:port" /
// "[v6]:port", over mutual TLS, and returns once the handshake and the
// peer check are done.  ctx bounds the whole dial and can cancel it.
func (m *Mesh) Dial(ctx context.Context, target string) (*Conn, error) {
	return m.DialWithOptions(ctx, target, nil)
}

// DialContext has the signature of net.Dialer.DialContext, for
// http.Transport and friends.  addr "service:port" where service is
// configured dials the service (its endpoints come from discovery; the
// port, which URLs always carry, is ignored); any other addr is dialed as
// "host:port".  network must be "tcp", "tcp4" or "tcp6".
func (m *Mesh) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &net.OpError{Op: "dial", Net: network,
			Err: &Error{Code: ErrInvalidArg, Op: "dial", Message: "network must be tcp"}}
	}
	c, err := m.Dial(ctx, m.targetFor(addr))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (m *Mesh) targetFor(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err == nil && m.services[host] {
		return host
	}
	return addr
}

// DialWithOptions is Dial with per-dial options (o may be nil).
func (m *Mesh) DialWithOptions(ctx context.Context, target string, o *DialOptions) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "mesh", Err: err}
	}
	cm, ok := m.use()
	if !ok {
		return nil, closedErr("dial")
	}
	defer m.done()
	// Close of the Mesh cancels dials in flight.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	opts, err := cDialOpts(ctx, o)
	if err != nil {
		return nil, err
	}
	defer C.mesh_dial_opts_free(opts)
	ct := C.CString(target)
	defer C.free(unsafe.Pointer(ct))
	var st C.mesh_status_t
	var out *C.mesh_conn_t
	rc := C.mesh_dial(cm, ct, opts, &out, &st)
	pending := Code(rc) == ErrWantRead || Code(rc) == ErrWantWrite
	if rc < 0 && !pending {
		if out != nil {
			C.mesh_conn_close(out)
		}
		return nil, newError("dial", rc, &st)
	}
	conn, err := newConn(m, out, false)
	if err != nil {
		return nil, err
	}
	if rc == 0 {
		// Finished inside mesh_dial: a dial path that does not honour the
		// non-blocking option (or a pooled connection).  Keep C waits to
		// 1 ms and do the real waiting in Go.
		conn.blockingC = true
		C.mesh_conn_set_timeouts(out, 1, 1)
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		if errors.Is(err, context.Canceled) && m.ctx.Err() != nil {
			return nil, closedErr("dial")
		}
		return nil, err
	}
	return conn, nil
}

// cDialOpts builds mesh_dial_opts_t: always non-blocking, the handshake
// is driven from Go.
func cDialOpts(ctx context.Context, o *DialOptions) (*C.mesh_dial_opts_t, error) {
	opts := C.mesh_dial_opts_new()
	if opts == nil {
		return nil, &Error{Code: ErrNoMem, Op: "dial"}
	}
	fail := func(what string, rc C.int) error {
		C.mesh_dial_opts_free(opts)
		return &Error{Code: Code(rc), Op: "dial", Message: what}
	}
	C.mesh_dial_opts_set_nonblocking(opts, 1)
	var timeout time.Duration
	if o != nil && o.Timeout > 0 {
		timeout = o.Timeout
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); timeout == 0 || left < timeout {
			timeout = left
		}
	}
	if timeout != 0 {
		ms := timeout.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		if ms > 1<<31-1 {
			ms = 1<<31 - 1
		}
		if rc := C.mesh_dial_opts_set_timeout(opts, C.int(ms)); rc != 0 {
			return nil, fail("timeout", rc)
		}
	}
	if o == nil {
		return opts, nil
	}
	for _, p := range o.Peers {
		cp := C.CString(p)
		rc := C.mesh_dial_opts_add_peer(opts, cp)
		C.free(unsafe.Pointer(cp))
		if rc != 0 {
			return nil, fail("peer "+p, rc)
		}
	}
	if len(o.ALPN) > 0 {
		ca := C.CString(strings.Join(o.ALPN, ","))
		rc := C.mesh_dial_opts_set_alpn(opts, ca)
		C.free(unsafe.Pointer(ca))
		if rc != 0 {
			return nil, fail("alpn", rc)
		}
	}
	if o.TraceParent != nil {
		if rc := C.mesh_dial_opts_set_trace_parent(opts, &o.TraceParent.c); rc != 0 {
			return nil, fail("trace parent", rc)
		}
	}
	if len(o.HashKey) > 0 {
		rc := C.mesh_dial_opts_set_hash_key(opts,
			(*C.char)(unsafe.Pointer(&o.HashKey[0])), C.size_t(len(o.HashKey)))
		if rc != 0 {
			return nil, fail("hash key", rc)
		}
	}
	return opts, nil
}

// Listener is a mesh listening socket (mesh_listener_t) implementing
// net.Listener.  Accept returns connections whose handshake completes on
// first use (see Conn).
type Listener struct {
	mesh *Mesh
	mu   sync.Mutex
	l    *C.mesh_listener_t
	f    *os.File
	rc   syscall.RawConn
	addr net.Addr

	// HandshakeTimeout bounds the handshake of accepted connections that
	// have no deadline set (default 10 s, as tls.handshake_timeout_ms).
	HandshakeTimeout time.Duration

	closeOnce sync.Once
	closed    chan struct{}
}

// Listen listens on "host:port" ("": the configuration's inbound.listen;
// port 0 picks a free one).
func (m *Mesh) Listen(addr string) (*Listener, error) {
	cm, ok := m.use()
	if !ok {
		return nil, closedErr("listen")
	}
	defer m.done()
	var ca *C.char
	if addr != "" {
		ca = C.CString(addr)
		defer C.free(unsafe.Pointer(ca))
	}
	var st C.mesh_status_t
	var l *C.mesh_listener_t
	if rc := C.mesh_listen(cm, ca, &l, &st); rc != 0 {
		return nil, newError("listen", rc, &st)
	}
	dup, err := dupNonblock(int(C.mesh_listener_fd(l)))
	if err != nil {
		C.mesh_listener_close(l)
		return nil, &Error{Code: ErrFDLimit, Op: "listen", Message: err.Error()}
	}
	f := os.NewFile(uintptr(dup), "mesh-listener")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		C.mesh_listener_close(l)
		return nil, &Error{Code: ErrIO, Op: "listen", Message: err.Error()}
	}
	ln := &Listener{mesh: m, l: l, f: f, rc: rc, closed: make(chan struct{}),
		HandshakeTimeout: 10 * time.Second}
	ln.addr, _ = sockAddrs(dup)
	if !m.adopt(ln) {
		ln.Close()
		return nil, closedErr("listen")
	}
	return ln, nil
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptMesh()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptMesh is Accept returning the concrete *Conn.
func (l *Listener) AcceptMesh() (*Conn, error) {
	var out *C.mesh_conn_t
	var st C.mesh_status_t
	var rc C.int
	gone := false
	err := l.rc.Read(func(uintptr) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.l == nil {
			gone = true
			return true
		}
		rc = C.mesh_accept_start(l.l, &out, &st)
		return Code(rc) != ErrWantRead
	})
	if gone || l.isClosed() {
		if out != nil {
			C.mesh_conn_close(out)
		}
		return nil, &net.OpError{Op: "accept", Net: "mesh", Addr: l.addr, Err: net.ErrClosed}
	}
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "mesh", Addr: l.addr, Err: err}
	}
	if rc != 0 {
		return nil, &net.OpError{Op: "accept", Net: "mesh", Addr: l.addr,
			Err: &acceptError{newError("accept", rc, &st).(*Error)}}
	}
	c, err := newConn(l.mesh, out, true)
	if err != nil {
		return nil, err
	}
	c.hsTimeout = l.HandshakeTimeout
	return c, nil
}

// acceptError: a failure to take one connection; the listener itself
// still works, so it is Temporary (http.Server retries with backoff).
type acceptError struct{ err *Error }

func (e *acceptError) Error() string   { return e.err.Error() }
func (e *acceptError) Timeout() bool   { return e.err.Timeout() }
func (e *acceptError) Temporary() bool { return true }
func (e *acceptError) Unwrap() error   { return e.err }

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Close stops listening and unblocks Accept.
func (l *Listener) Close() error {
	first := false
	l.closeOnce.Do(func() {
		first = true
		close(l.closed)
		l.f.Close()
		l.mu.Lock()
		C.mesh_listener_close(l.l)
		l.l = nil
		l.mu.Unlock()
		l.mesh.disown(l)
	})
	if !first {
		return &net.OpError{Op: "close", Net: "mesh", Addr: l.addr, Err: net.ErrClosed}
	}
	return nil
}

// Addr is the bound address (with the port picked for ":0").
func (l *Listener) Addr() net.Addr { return l.addr }

// Port is the bound TCP port.
func (l *Listener) Port() int {
	if a, ok := l.addr.(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

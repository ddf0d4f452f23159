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
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a mutual-TLS connection (mesh_conn_t).  It implements net.Conn:
// methods may be called from several goroutines at once, deadlines work,
// and Close unblocks pending Read and Write calls.
//
// How: the C connection is non-blocking; each call into C is short and
// serialized by a mutex, and waiting for the socket happens in Go's
// network poller on a duplicate of the socket's descriptor.
//
// A connection from Listener.Accept completes its handshake on the first
// Read, Write or Handshake call (as crypto/tls does); PeerID and the other
// TLS attributes are empty until then.
type Conn struct {
	mesh   *Mesh
	server bool

	mu sync.Mutex // serializes C calls on c; c is nil once closed
	c  *C.mesh_conn_t
	// blockingC: the C connection was made blocking (a dial path that
	// ignored the non-blocking option); I/O then runs with 1 ms C timeouts
	// and waits in Go.
	blockingC bool
	// borrowed: the C connection belongs to a call (CallConn); Close
	// detaches from it without closing it.
	borrowed bool

	f  *os.File // dup of the socket, registered with the netpoller
	rc syscall.RawConn

	// C never sees the caller's slices: cgo forbids passing memory that
	// may hold Go pointers (a []byte field of a struct, as net/http uses).
	// Reads and writes go through these pointer-free buffers, each used
	// under its own lock, which also makes every Write atomic.
	rmu, wmu   sync.Mutex
	rbuf, wbuf []byte
	// werr: a Write that timed out with a TLS record half sent leaves
	// mbedTLS expecting the same bytes again; like crypto/tls, later
	// Writes fail with the same error instead of corrupting the stream.
	werr error

	hsMu   sync.Mutex // one handshake at a time
	hsDone bool
	hsErr  error
	// HandshakeTimeout bounds a server-side handshake with no deadline set
	// (the library's tls.handshake_timeout_ms default is 10 s).
	hsTimeout time.Duration

	dlMu     sync.Mutex // guards the user's deadlines
	rdl, wdl time.Time
	// limit caps every deadline (zero: none): a call's try timeout, or a
	// time in the past once the call's context is cancelled.
	limit time.Time

	closeOnce sync.Once
	closed    chan struct{}

	local, remote net.Addr
	info          connInfo
}

// connInfo is what the handshake established, copied out of C.
type connInfo struct {
	peerID, cipher, version, alpn string
	resumed, isTLS                bool
}

// newConn wraps a non-blocking C connection; on error c is closed.
func newConn(m *Mesh, c *C.mesh_conn_t, server bool) (*Conn, error) {
	fd := int(C.mesh_conn_fd(c))
	dup, err := dupNonblock(fd)
	if err != nil {
		C.mesh_conn_close(c)
		return nil, &Error{Code: ErrFDLimit, Op: "dial", Message: err.Error()}
	}
	f := os.NewFile(uintptr(dup), "mesh-conn")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		C.mesh_conn_close(c)
		return nil, &Error{Code: ErrIO, Op: "dial", Message: err.Error()}
	}
	conn := &Conn{mesh: m, server: server, c: c, f: f, rc: rc,
		closed: make(chan struct{}), hsTimeout: 10 * time.Second}
	conn.local, conn.remote = sockAddrs(dup)
	if !m.adopt(conn) {
		conn.Close()
		return nil, closedErr("dial")
	}
	return conn, nil
}

// dupNonblock duplicates fd (close-on-exec) and makes it non-blocking; the
// flag is shared with the original, which the library already set.
func dupNonblock(fd int) (int, error) {
	dup, err := dupCloexec(fd)
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(dup, true); err != nil {
		syscall.Close(dup)
		return -1, err
	}
	return dup, nil
}

func dupCloexec(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd),
		syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func sockAddrs(fd int) (local, remote net.Addr) {
	conv := func(sa syscall.Sockaddr) net.Addr {
		switch a := sa.(type) {
		case *syscall.SockaddrInet4:
			return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
		case *syscall.SockaddrInet6:
			return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
		}
		return &net.TCPAddr{}
	}
	l, _ := syscall.Getsockname(fd)
	r, _ := syscall.Getpeername(fd)
	return conv(l), conv(r)
}

// ---- waiting ---------------------------------------------------------------

// drive runs op (one non-blocking C call, made under c.mu) until it
// returns something other than WANT_READ/WANT_WRITE, waiting for the
// socket in the netpoller in between.  The call is made inside the
// RawConn callback so no readiness edge is lost.  want is the side op
// starts on (ErrWantRead for reads, ErrWantWrite for writes): RawConn
// holds that side's lock, and a Read pending on the other side must not
// block a Write.
func (c *Conn) drive(want Code, op func(cc *C.mesh_conn_t) C.long) (C.long, error) {
	for {
		var r C.long
		var gone bool
		call := func(waitFor Code) func(uintptr) bool {
			return func(uintptr) bool {
				c.mu.Lock()
				if c.c == nil {
					c.mu.Unlock()
					gone = true
					return true
				}
				r = op(c.c)
				if c.blockingC && Code(r) == ErrTimeout {
					r = C.long(waitFor) // 1 ms C timeout: just "not yet"
				}
				c.mu.Unlock()
				return Code(r) != waitFor
			}
		}
		var err error
		if want == ErrWantRead {
			err = c.rc.Read(call(ErrWantRead))
		} else {
			err = c.rc.Write(call(ErrWantWrite))
		}
		if gone {
			return 0, net.ErrClosed
		}
		if err != nil {
			return 0, c.waitErr(err)
		}
		switch Code(r) {
		case ErrWantRead, ErrWantWrite:
			want = Code(r)
			continue
		}
		return r, nil
	}
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *Conn) waitErr(err error) error {
	if c.isClosed() {
		return net.ErrClosed
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (c *Conn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &net.OpError{Op: op, Net: "mesh", Source: c.local, Addr: c.remote, Err: err}
}

// cErr turns a negative C result into an *Error with the connection's
// detail message.
func (c *Conn) cErr(op string, r C.long) error {
	c.mu.Lock()
	msg := ""
	if c.c != nil {
		msg = C.GoString(C.mesh_conn_errmsg(c.c))
	}
	c.mu.Unlock()
	return &Error{Code: Code(r), Op: op, Message: msg}
}

// ---- handshake -------------------------------------------------------------

// Handshake completes the mTLS handshake and peer check if not done yet.
// Read and Write call it; call it yourself to see the peer's identity
// before any data moves.
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext is Handshake bounded by ctx (deadline and cancellation).
func (c *Conn) HandshakeContext(ctx context.Context) error {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsDone {
		return c.hsErr
	}
	err := c.handshake(ctx)
	if err != nil && c.isClosed() {
		return c.opErr("handshake", net.ErrClosed) // not sticky: closed anyway
	}
	c.hsDone, c.hsErr = true, err
	return err
}

func (c *Conn) handshake(ctx context.Context) error {
	stop, err := c.bound(ctx)
	if err != nil {
		return err
	}
	defer stop()
	var st C.mesh_status_t
	r, err := c.drive(ErrWantRead, func(cc *C.mesh_conn_t) C.long {
		return C.long(C.mesh_conn_handshake(cc, &st))
	})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() == context.Canceled {
				return c.opErr("handshake", ctx.Err())
			}
			// One more step lets the library report its own timeout.
			c.mu.Lock()
			if c.c != nil {
				r = C.long(C.mesh_conn_handshake(c.c, &st))
			}
			c.mu.Unlock()
			if r < 0 && Code(r) != ErrWantRead && Code(r) != ErrWantWrite {
				return newError("handshake", C.int(r), &st)
			}
			return &Error{Code: ErrTimeout, Op: "handshake",
				Message: "mTLS handshake with " + c.remote.String() + " timed out"}
		}
		return c.opErr("handshake", err)
	}
	if r < 0 {
		return newError("handshake", C.int(r), &st)
	}
	c.mu.Lock()
	if c.c != nil {
		cc := c.c
		c.info = connInfo{
			peerID:  C.GoString(C.mesh_conn_peer_id(cc)),
			cipher:  C.GoString(C.mesh_conn_cipher(cc)),
			version: C.GoString(C.mesh_conn_tls_version(cc)),
			alpn:    C.GoString(C.mesh_conn_alpn(cc)),
			resumed: C.mesh_conn_resumed(cc) == 1,
			isTLS:   C.mesh_conn_is_tls(cc) == 1,
		}
	}
	c.mu.Unlock()
	return nil
}

// bound applies the earliest of ctx's deadline, the user's read and
// write deadlines and (server side, when none is set) the handshake
// timeout to the socket, and interrupts the wait when ctx is cancelled.
// stop restores the user's deadlines.
func (c *Conn) bound(ctx context.Context) (stop func(), err error) {
	c.dlMu.Lock()
	dl := earliest(c.rdl, c.wdl)
	c.dlMu.Unlock()
	if d, ok := ctx.Deadline(); ok {
		dl = earliest(dl, d)
	}
	if dl.IsZero() && c.server {
		dl = time.Now().Add(c.hsTimeout)
	}
	if err := c.f.SetDeadline(dl); err != nil {
		return nil, c.opErr("handshake", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	if ctx.Done() != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
				c.f.SetDeadline(time.Unix(1, 0)) // wake the waiter now
			case <-done:
			}
		}()
	}
	return func() {
		close(done)
		wg.Wait()
		c.dlMu.Lock()
		c.f.SetReadDeadline(earliest(c.rdl, c.limit))
		c.f.SetWriteDeadline(earliest(c.wdl, c.limit))
		c.dlMu.Unlock()
	}, nil
}

// earliest of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// ---- net.Conn --------------------------------------------------------------

// ioChunk is the most one C call moves: one TLS record's payload.
const ioChunk = 16384

// Read reads decrypted data; io.EOF once the peer has closed its side.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rbuf == nil {
		c.rbuf = make([]byte, ioChunk)
	}
	want := len(b)
	if want > len(c.rbuf) {
		want = len(c.rbuf)
	}
	p, n := unsafe.Pointer(&c.rbuf[0]), C.size_t(want)
	r, err := c.drive(ErrWantRead, func(cc *C.mesh_conn_t) C.long {
		return C.mesh_conn_read(cc, p, n)
	})
	if err != nil {
		return 0, c.opErr("read", err)
	}
	switch {
	case r > 0:
		return copy(b, c.rbuf[:r]), nil
	case r == 0 || Code(r) == ErrPeerClosed:
		return 0, io.EOF
	}
	return 0, c.opErr("read", c.cErr("read", r))
}

// Write writes all of b (or fails).
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.wbuf == nil {
		c.wbuf = make([]byte, ioChunk)
	}
	done := 0
	for done < len(b) {
		// A retry after WANT_WRITE passes the same bytes, as mbedTLS
		// requires: wbuf is refilled only after C took the chunk.
		k := copy(c.wbuf, b[done:])
		p, n := unsafe.Pointer(&c.wbuf[0]), C.size_t(k)
		pending := false
		r, err := c.drive(ErrWantWrite, func(cc *C.mesh_conn_t) C.long {
			r := C.mesh_conn_write(cc, p, n)
			pending = Code(r) == ErrWantWrite || Code(r) == ErrWantRead
			return r
		})
		if err != nil {
			err = c.opErr("write", err)
			if pending {
				c.werr = err
			}
			return done, err
		}
		if r < 0 {
			return done, c.opErr("write", c.cErr("write", r))
		}
		done += int(r)
	}
	return done, nil
}

// CloseWrite sends close_notify and shuts down the write side; the peer
// reads EOF, and this side can still Read.
func (c *Conn) CloseWrite() error {
	if err := c.Handshake(); err != nil {
		return err
	}
	r, err := c.drive(ErrWantWrite, func(cc *C.mesh_conn_t) C.long {
		return C.long(C.mesh_conn_shutdown(cc))
	})
	if err != nil {
		return c.opErr("close write", err)
	}
	if r < 0 {
		return c.opErr("close write", c.cErr("close write", r))
	}
	return nil
}

// Close sends close_notify (best effort), closes the socket and unblocks
// any pending Read or Write.  Safe to call more than once.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		c.f.Close() // wakes waiters; returns once none is inside RawConn
		c.mu.Lock()
		if !c.borrowed {
			C.mesh_conn_close(c.c)
		}
		c.c = nil
		c.mu.Unlock()
		if !c.borrowed {
			c.mesh.disown(c)
		}
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	return nil
}

// LocalAddr is the local TCP address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's TCP address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.rdl, c.wdl = t, t
	return c.f.SetDeadline(earliest(t, c.limit))
}

// SetReadDeadline bounds pending and future Reads (zero: none).  A
// handshake that Read triggers is bounded by it too.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.rdl = t
	return c.f.SetReadDeadline(earliest(t, c.limit))
}

// SetWriteDeadline bounds pending and future Writes (zero: none).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.wdl = t
	return c.f.SetWriteDeadline(earliest(t, c.limit))
}

// ---- identity and TLS attributes -------------------------------------------

// PeerID is the peer's SPIFFE ID ("" before the handshake, and for a
// plaintext peer accepted in PERMISSIVE mode).
func (c *Conn) PeerID() string { return c.attrs().peerID }

// CipherSuite is the negotiated cipher suite name.
func (c *Conn) CipherSuite() string { return c.attrs().cipher }

// TLSVersion is e.g. "TLSv1.2".
func (c *Conn) TLSVersion() string { return c.attrs().version }

// ALPN is the negotiated application protocol, or "".
func (c *Conn) ALPN() string { return c.attrs().alpn }

// Resumed reports whether the TLS session was resumed.
func (c *Conn) Resumed() bool { return c.attrs().resumed }

// IsTLS is false for a plaintext peer accepted in PERMISSIVE mode.
func (c *Conn) IsTLS() bool { return c.attrs().isTLS }

func (c *Conn) attrs() connInfo {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	return c.info
}

// PeerChainPEM is the peer's certificate chain as PEM.
func (c *Conn) PeerChainPEM() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return "", net.ErrClosed
	}
	for size := 16384; size <= 1<<20; size *= 4 {
		buf := make([]byte, size)
		r := C.mesh_conn_peer_chain_pem(c.c, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(size))
		if Code(r) == ErrBuffer {
			continue
		}
		if r < 0 {
			return "", &Error{Code: Code(r), Op: "peer chain"}
		}
		return string(buf[:r]), nil
	}
	return "", &Error{Code: ErrBuffer, Op: "peer chain"}
}

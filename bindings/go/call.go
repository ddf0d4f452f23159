// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdint.h>
#include <stdlib.h>
#include <mesh/mesh.h>

extern int meshGoCallTry(void *call, void *conn, int *status, uintptr_t user);
extern long meshGoCallFrame(void *buf, size_t len, int *status, uintptr_t user);

static int mesh_go_try_tramp(mesh_call_t *call, mesh_conn_t *conn,
                             int *status, void *user) {
	return meshGoCallTry(call, conn, status, (uintptr_t)user);
}
static long mesh_go_frame_tramp(const void *buf, size_t len, int *status,
                                void *user) {
	return meshGoCallFrame((void *)buf, len, status, (uintptr_t)user);
}
static int mesh_go_call_do(mesh_t *m, const char *service,
                           const mesh_call_opts_t *opts, uintptr_t h,
                           mesh_status_t *st) {
	return mesh_call_do(m, service, opts, mesh_go_try_tramp, (void *)h, st);
}
static int mesh_go_call_request(mesh_t *m, const char *service,
                                const mesh_call_opts_t *opts,
                                const void *req, size_t req_len, uintptr_t h,
                                void *resp, size_t cap, size_t *resp_len,
                                int *status, mesh_status_t *st) {
	return mesh_call_request(m, service, opts, req, req_len,
	                         mesh_go_frame_tramp, (void *)h, resp, cap,
	                         resp_len, status, st);
}
*/
import "C"

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Outcome says how one try of a call ended (mesh_call_outcome_t).  It
// feeds the load balancer, outlier detection, circuit breakers and
// metrics, and decides whether the connection goes back to the pool.
type Outcome int

// The outcomes of include/mesh/call.h.
const (
	// OutcomeOK: a complete response arrived and the connection is at a
	// message boundary: it is pooled.  The status says whether the
	// response itself was an error (5xx).
	OutcomeOK Outcome = C.MESH_CALL_OK
	// OutcomeOKClose: a complete response, but the connection must not
	// be reused (bytes left unread, or the protocol closes it).
	OutcomeOKClose Outcome = C.MESH_CALL_OK_CLOSE
	// OutcomeConnectFailure: no connection (normally reported by the
	// library itself).
	OutcomeConnectFailure Outcome = C.MESH_CALL_CONNECT_FAILURE
	// OutcomeReset: the connection was reset or closed before the
	// response ended.
	OutcomeReset Outcome = C.MESH_CALL_RESET
	// OutcomeTimeout: no complete response within the per-try timeout.
	OutcomeTimeout Outcome = C.MESH_CALL_TIMEOUT
	// OutcomeProtocolError: the response was malformed.
	OutcomeProtocolError Outcome = C.MESH_CALL_PROTOCOL_ERROR
	// OutcomeCancelled: the try was abandoned; not held against the
	// endpoint.
	OutcomeCancelled Outcome = C.MESH_CALL_CANCELLED
)

// CallOptions adjust one call.  The zero value (or nil) takes everything
// from the service's configuration.
type CallOptions struct {
	// Deadline of the whole call, retries included (replaces
	// timeouts.overall_ms).  The context's deadline applies too; the
	// earlier wins.
	Deadline time.Duration
	// PerTryTimeout replaces timeouts.per_try_ms.
	PerTryTimeout time.Duration
	// ConnectTimeout (connect + handshake of a new connection) replaces
	// timeouts.connect_ms.
	ConnectTimeout time.Duration
	// MaxRetries > 0 replaces retry.num_retries; NoRetries turns retries
	// off (a request that must not be repeated).
	MaxRetries int
	NoRetries  bool
	// NoHedging turns the service's hedging off (Request only).
	NoHedging bool
	// HashKey for ring_hash / maglev balancing.
	HashKey []byte
	// ALPN protocols; a call with its own ALPN gets a fresh connection,
	// closed at the end.
	ALPN []string
	// Subset routes the call to a named subset of the service (its
	// `subsets`), bypassing the split.  Unknown names fail with
	// ErrNotFound.
	Subset string
	// TraceParent is the parent of the call's span (e.g. from
	// ExtractTrace of the request being served).
	TraceParent *TraceContext
	// MaxResponse bounds Request's response (default 1 MiB).
	MaxResponse int
}

func clampMS(d time.Duration) C.int {
	ms := d.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if ms > 1<<31-1 {
		ms = 1<<31 - 1
	}
	return C.int(ms)
}

// cCallOpts builds mesh_call_opts_t from o and ctx's deadline.
func cCallOpts(ctx context.Context, o *CallOptions) (*C.mesh_call_opts_t, error) {
	opts := C.mesh_call_opts_new()
	if opts == nil {
		return nil, &Error{Code: ErrNoMem, Op: "call"}
	}
	var err error
	set := func(what string, rc C.int) {
		if rc != 0 && err == nil {
			err = &Error{Code: Code(rc), Op: "call", Message: what}
		}
	}
	if o == nil {
		o = &CallOptions{}
	}
	deadline := o.Deadline
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); deadline == 0 || left < deadline {
			deadline = left
		}
	}
	if deadline != 0 {
		set("deadline", C.mesh_call_opts_set_deadline(opts, clampMS(deadline)))
	}
	if o.PerTryTimeout > 0 {
		set("per-try timeout", C.mesh_call_opts_set_per_try_timeout(opts, clampMS(o.PerTryTimeout)))
	}
	if o.ConnectTimeout > 0 {
		set("connect timeout", C.mesh_call_opts_set_connect_timeout(opts, clampMS(o.ConnectTimeout)))
	}
	if o.NoRetries {
		set("retries", C.mesh_call_opts_set_max_retries(opts, 0))
	} else if o.MaxRetries > 0 {
		set("retries", C.mesh_call_opts_set_max_retries(opts, C.int(o.MaxRetries)))
	}
	if o.NoHedging {
		set("hedging", C.mesh_call_opts_set_hedging(opts, 0))
	}
	if len(o.HashKey) > 0 {
		k := C.CBytes(o.HashKey)
		set("hash key", C.mesh_call_opts_set_hash_key(opts, k, C.size_t(len(o.HashKey))))
		C.free(k)
	}
	if len(o.ALPN) > 0 {
		a := C.CString(strings.Join(o.ALPN, ","))
		set("alpn", C.mesh_call_opts_set_alpn(opts, a))
		C.free(unsafe.Pointer(a))
	}
	if o.Subset != "" {
		s := C.CString(o.Subset)
		set("subset", C.mesh_call_opts_set_subset(opts, s))
		C.free(unsafe.Pointer(s))
	}
	if o.TraceParent != nil {
		set("trace parent", C.mesh_call_opts_set_trace_parent(opts, &o.TraceParent.c))
	}
	if err != nil {
		C.mesh_call_opts_free(opts)
		return nil, err
	}
	return opts, nil
}

// CallConn is the connection of one try of a call: a net.Conn (a *Conn
// whose C connection belongs to the call), plus where the try went.  It
// is valid until the try ends: when the try function returns (Call), or
// at End (BeginCall).  Close and CloseWrite never close the pooled
// connection themselves; they make the try end with the connection closed
// instead of pooled (OutcomeOK becomes OutcomeOKClose).
type CallConn struct {
	*Conn
	endpoint string
	attempt  int
	trace    TraceContext
	dirty    atomic.Bool // not at a message boundary: never pool

	// BeginCall only.
	callMu sync.Mutex
	call   *C.mesh_call_t // nil once ended
	stop   func()         // stops the context watcher
}

// Endpoint is "ip:port" of the endpoint this try went to.
func (c *CallConn) Endpoint() string { return c.endpoint }

// Attempt is 0 for the first try, then 1, 2, ... for retries.
func (c *CallConn) Attempt() int { return c.attempt }

// TraceContext is the context of this try's span ("mesh.try"), to send
// along with the request (InjectTrace) so the server joins the trace.
func (c *CallConn) TraceContext() *TraceContext {
	t := c.trace
	return &t
}

// Close detaches from the call's connection (see CallConn).
func (c *CallConn) Close() error {
	c.dirty.Store(true)
	return c.Conn.Close()
}

// CloseWrite sends close_notify; the connection will not be pooled.
func (c *CallConn) CloseWrite() error {
	c.dirty.Store(true)
	return c.Conn.CloseWrite()
}

// finalOutcome downgrades OK to OK_CLOSE when the connection is not at a
// clean boundary (closed, half-closed, or a write half sent).
func (c *CallConn) finalOutcome(o Outcome) Outcome {
	if o != OutcomeOK {
		return o
	}
	c.Conn.wmu.Lock()
	broken := c.Conn.werr != nil
	c.Conn.wmu.Unlock()
	if broken || c.dirty.Load() {
		return OutcomeOKClose
	}
	return o
}

// borrow wraps the C connection of a call for Go: non-blocking waits in
// the netpoller (the C side keeps 1 ms I/O timeouts), deadlines capped
// by the try's time left and by ctx.
func borrow(m *Mesh, call *C.mesh_call_t, cc *C.mesh_conn_t) (*CallConn, error) {
	dup, err := dupNonblock(int(C.mesh_conn_fd(cc)))
	if err != nil {
		return nil, &Error{Code: ErrFDLimit, Op: "call", Message: err.Error()}
	}
	f := os.NewFile(uintptr(dup), "mesh-call-conn")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &Error{Code: ErrIO, Op: "call", Message: err.Error()}
	}
	conn := &Conn{mesh: m, c: cc, f: f, rc: rc, closed: make(chan struct{}),
		borrowed: true, blockingC: true, hsDone: true}
	conn.local, conn.remote = sockAddrs(dup)
	conn.info = connInfo{
		peerID:  C.GoString(C.mesh_conn_peer_id(cc)),
		cipher:  C.GoString(C.mesh_conn_cipher(cc)),
		version: C.GoString(C.mesh_conn_tls_version(cc)),
		alpn:    C.GoString(C.mesh_conn_alpn(cc)),
		resumed: C.mesh_conn_resumed(cc) == 1,
		isTLS:   C.mesh_conn_is_tls(cc) == 1,
	}
	if left := int(C.mesh_call_remaining_ms(call)); left >= 0 {
		conn.limit = time.Now().Add(time.Duration(left) * time.Millisecond)
	}
	C.mesh_conn_set_timeouts(cc, 1, 1)
	f.SetDeadline(conn.limit)
	cc2 := &CallConn{Conn: conn,
		endpoint: C.GoString(C.mesh_call_endpoint(call)),
		attempt:  int(C.mesh_call_attempt(call))}
	C.mesh_call_trace_context(call, &cc2.trace.c)
	return cc2, nil
}

// watch caps the connection's deadlines by ctx: its deadline, and "now"
// once it is cancelled.  stop ends the watch.
func (c *CallConn) watch(ctx context.Context) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		c.capDeadline(dl)
	}
	if ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			c.capDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

func (c *CallConn) capDeadline(t time.Time) {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.limit = earliest(c.limit, t)
	c.f.SetReadDeadline(earliest(c.rdl, c.limit))
	c.f.SetWriteDeadline(earliest(c.wdl, c.limit))
}

// ---- Call: the library's retry loop around a Go function ----------------------

// stopCode is what a try function returns to C to stop the call without
// retry; the Go error or panic is kept on the Go side.
const stopCode = C.MESH_ERR_INTERNAL

type callRun struct {
	m        *Mesh
	ctx      context.Context
	try      func(*CallConn) (Outcome, int, error)
	stopErr  error
	panicked bool
	panicVal any
}

// Call makes one logical request to a configured service: the library
// picks an endpoint, takes a pooled mTLS connection or dials one, and runs
// try over it under the service's retry policy (backoff with jitter, the
// retry budget, the per-try timeout and the overall deadline); each retry
// prefers another endpoint.
//
// try speaks the protocol over c and reports how it went: an Outcome and
// the protocol's status (HTTP-like: 5xx are server errors, 0 for none).
// Instead it may return an error: connection failures (resets, EOF before
// the response ended, mesh connection errors) count as OutcomeReset and
// timeouts (the try's deadline) as OutcomeTimeout, so an I/O error can be
// returned as is; any other error stops the call without retry and Call
// returns it.  A panic in try stops the call and is re-raised by Call.
//
// Call returns nil when the last try got a response whose status is not
// an error; an *Error otherwise: ErrUpstream (an error status after
// retries), ErrRetryBudget, ErrDeadline, ErrNoEndpoints, ErrCircuitOpen,
// the last connection error, ...  ctx's deadline becomes the call's
// deadline; its cancellation ends the current try (Call returns
// ctx.Err()), and a backoff sleep in progress is cut short (in C, through
// a cancel token: see include/mesh/cancel.h).  try
// must not call m.Close.
func (m *Mesh) Call(ctx context.Context, service string, try func(c *CallConn) (Outcome, int, error)) error {
	return m.CallWithOptions(ctx, service, nil, try)
}

// CallWithOptions is Call with per-call options (o may be nil).
func (m *Mesh) CallWithOptions(ctx context.Context, service string, o *CallOptions, try func(c *CallConn) (Outcome, int, error)) error {
	if try == nil {
		return &Error{Code: ErrInvalidArg, Op: "call", Message: "try function is nil"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cm, ok := m.enter()
	if !ok {
		return closedErr("call")
	}
	defer m.exit()
	ctx, cancel := m.bindContext(ctx)
	defer cancel()
	opts, err := cCallOpts(ctx, o)
	if err != nil {
		return err
	}
	defer C.mesh_call_opts_free(opts)
	if stop := cancelOnDone(ctx, opts); stop != nil {
		defer stop()
	}
	cs := C.CString(service)
	defer C.free(unsafe.Pointer(cs))
	run := &callRun{m: m, ctx: ctx, try: try}
	h := cgo.NewHandle(run)
	defer h.Delete()
	var st C.mesh_status_t
	rc := C.mesh_go_call_do(cm, cs, opts, C.uintptr_t(h), &st)
	if run.panicked {
		panic(run.panicVal)
	}
	if run.stopErr != nil {
		return run.stopErr
	}
	if rc != 0 {
		if err := m.ctxErr(ctx); err != nil {
			return err
		}
		return newError("call", rc, &st)
	}
	return nil
}

// cancelOnDone gives opts a C cancel token fired when ctx is done, so that
// a retry backoff sleeping in C ends at once.  stop (nil when ctx can
// never be done) ends the watcher and frees the token after the call.
func cancelOnDone(ctx context.Context, opts *C.mesh_call_opts_t) (stop func()) {
	if ctx.Done() == nil {
		return nil
	}
	var tok *C.mesh_cancel_t
	if C.mesh_cancel_new(&tok) != 0 {
		return nil // no token: the backoff still ends at the deadline
	}
	C.mesh_call_opts_set_cancel(opts, tok)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			C.mesh_cancel_fire(tok)
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-finished
		C.mesh_cancel_free(tok)
	}
}

// bindContext derives a context also cancelled by Close.
func (m *Mesh) bindContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-m.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// ctxErr is the error for a call that ended because ctx did: ctx.Err(),
// or ErrClosed when it was Close that cancelled it.
func (m *Mesh) ctxErr(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if m.ctx.Err() != nil {
		return closedErr("call")
	}
	return ctx.Err()
}

//export meshGoCallTry
func meshGoCallTry(call, conn unsafe.Pointer, status *C.int, user C.uintptr_t) (rc C.int) {
	run := cgo.Handle(user).Value().(*callRun)
	if err := run.m.ctxErr(run.ctx); err != nil {
		run.stopErr = err
		return stopCode
	}
	cc, err := borrow(run.m, (*C.mesh_call_t)(call), (*C.mesh_conn_t)(conn))
	if err != nil {
		run.stopErr = err
		return stopCode
	}
	stop := cc.watch(run.ctx)
	defer func() {
		stop()
		cc.Conn.Close() // detach before C ends the try
		if p := recover(); p != nil {
			run.panicked, run.panicVal = true, p
			rc = stopCode
		}
	}()
	outcome, st, err := run.try(cc)
	if err == nil {
		*status = C.int(st)
		return C.int(cc.finalOutcome(outcome))
	}
	if ctxErr := run.m.ctxErr(run.ctx); ctxErr != nil {
		run.stopErr = ctxErr
		return stopCode
	}
	if code, ok := tryCode(err); ok {
		return C.int(code)
	}
	run.stopErr = err
	return stopCode
}

// tryCode maps a try's error to the mesh code the library reads as an
// outcome (reset or timeout); ok is false for errors that stop the call.
func tryCode(err error) (Code, bool) {
	var me *Error
	if errors.As(err, &me) {
		switch me.Code {
		case ErrReset, ErrPeerClosed, ErrClosed, ErrTLS, ErrIO, ErrTimeout:
			return me.Code, true
		}
		return me.Code, false
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout, true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return ErrReset, true
	}
	return 0, false
}

// ---- BeginCall / End: one try, the caller handles retries -------------------------

// callEnder lets Close end a call its owner forgot.
type callEnder struct{ c *CallConn }

func (e *callEnder) Close() error { return e.c.end(OutcomeCancelled, 0, false) }

// BeginCall begins one try of a call: it picks an endpoint of service and
// gets a connection to it (pooled, else dialed; connect failures are
// retried on other endpoints as the retry policy allows, nothing having
// been sent).  Speak the protocol over the returned connection, then
// report with End.  Its deadlines are capped by the try's time left and by
// ctx; cancelling ctx fails pending I/O.  Close of the Mesh ends a call
// still open as OutcomeCancelled.
func (m *Mesh) BeginCall(ctx context.Context, service string, o *CallOptions) (*CallConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cm, ok := m.enter()
	if !ok {
		return nil, closedErr("call")
	}
	defer m.exit()
	opts, err := cCallOpts(ctx, o)
	if err != nil {
		return nil, err
	}
	defer C.mesh_call_opts_free(opts)
	cs := C.CString(service)
	defer C.free(unsafe.Pointer(cs))
	var st C.mesh_status_t
	var call *C.mesh_call_t
	if rc := C.mesh_call_begin(cm, cs, opts, &call, &st); rc != 0 {
		return nil, newError("call", rc, &st)
	}
	cc, err := borrow(m, call, C.mesh_call_conn(call))
	if err != nil {
		C.mesh_call_end(call, C.MESH_CALL_CANCELLED, 0)
		return nil, err
	}
	cc.call = call
	if !m.adopt(&callEnder{cc}) {
		cc.Conn.Close()
		C.mesh_call_end(call, C.MESH_CALL_CANCELLED, 0)
		return nil, closedErr("call")
	}
	cc.stop = cc.watch(ctx)
	return cc, nil
}

// Remaining is the time left in this try (per-try timeout and overall
// deadline, whichever ends first); ok is false when neither is set or
// the call has ended.
func (c *CallConn) Remaining() (d time.Duration, ok bool) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if c.call == nil {
		return 0, false
	}
	ms := int(C.mesh_call_remaining_ms(c.call))
	if ms < 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// End reports how the try went and releases the connection (pooled on
// OutcomeOK, else closed).  status is the protocol's status code
// (HTTP-like, 0 for none).  Only for connections from BeginCall; calling
// it again is a no-op.  Returns ErrInvalidArg for an unknown outcome (the
// call is ended all the same, as a protocol error).
func (c *CallConn) End(outcome Outcome, status int) error {
	return c.end(outcome, status, true)
}

func (c *CallConn) end(outcome Outcome, status int, owner bool) error {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if c.call == nil {
		return nil
	}
	if c.stop != nil {
		c.stop()
	}
	outcome = c.finalOutcome(outcome)
	c.Conn.Close() // detach: no Go I/O in flight from here
	rc := C.mesh_call_end(c.call, C.int(outcome), C.int(status))
	c.call = nil
	if owner {
		c.mesh.disownEnder(c)
	}
	if rc != 0 {
		return &Error{Code: Code(rc), Op: "call end", Message: "unknown outcome"}
	}
	return nil
}

func (m *Mesh) disownEnder(c *CallConn) {
	m.childMu.Lock()
	defer m.childMu.Unlock()
	for k := range m.children {
		if e, ok := k.(*callEnder); ok && e.c == c {
			delete(m.children, k)
			return
		}
	}
}

// ---- Request: the library does the I/O, with hedging ---------------------------

type frameRun struct {
	frame    func([]byte) (int, int)
	panicked bool
	panicVal any
}

// Request sends req to service and reads the response until frame says it
// is complete, under the retry policy and, when the service configures
// `hedge`, hedging (the request also goes to another endpoint after
// hedge.delay_ms; the first complete response wins).  frame is called
// with all bytes received so far on one attempt and returns (0, 0) for
// "need more", (n, status) when the first n bytes are the complete
// response, or a negative n when they are malformed; the slice is only
// valid during the call.  The library does the I/O on the calling thread:
// ctx's deadline bounds the request, but cancellation is only seen
// before it starts.  A final error status returns the response with an
// ErrUpstream error.
func (m *Mesh) Request(ctx context.Context, service string, o *CallOptions, req []byte, frame func(resp []byte) (n, status int)) ([]byte, int, error) {
	if frame == nil {
		return nil, 0, &Error{Code: ErrInvalidArg, Op: "request", Message: "frame function is nil"}
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	cm, ok := m.enter()
	if !ok {
		return nil, 0, closedErr("request")
	}
	defer m.exit()
	opts, err := cCallOpts(ctx, o)
	if err != nil {
		return nil, 0, err
	}
	defer C.mesh_call_opts_free(opts)
	if stop := cancelOnDone(ctx, opts); stop != nil {
		defer stop()
	}
	max := 1 << 20
	if o != nil && o.MaxResponse > 0 {
		max = o.MaxResponse
	}
	cs := C.CString(service)
	defer C.free(unsafe.Pointer(cs))
	creq := C.CBytes(req) // C memory: the library may hold it across hedges
	defer C.free(creq)
	resp := C.malloc(C.size_t(max))
	if resp == nil {
		return nil, 0, &Error{Code: ErrNoMem, Op: "request"}
	}
	defer C.free(resp)
	run := &frameRun{frame: frame}
	h := cgo.NewHandle(run)
	defer h.Delete()
	var st C.mesh_status_t
	var n C.size_t
	var status C.int
	rc := C.mesh_go_call_request(cm, cs, opts, creq, C.size_t(len(req)), C.uintptr_t(h),
		resp, C.size_t(max), &n, &status, &st)
	if run.panicked {
		panic(run.panicVal)
	}
	out := C.GoBytes(resp, C.int(n))
	if rc != 0 {
		if rc == C.MESH_ERR_CLOSED && ctx.Err() != nil {
			return out, int(status), ctx.Err() // cancelled in a backoff
		}
		return out, int(status), newError("request", rc, &st)
	}
	return out, int(status), nil
}

//export meshGoCallFrame
func meshGoCallFrame(buf unsafe.Pointer, n C.size_t, status *C.int, user C.uintptr_t) (r C.long) {
	run := cgo.Handle(user).Value().(*frameRun)
	if run.panicked {
		return -1
	}
	defer func() {
		if p := recover(); p != nil {
			run.panicked, run.panicVal = true, p
			r = -1
		}
	}()
	var b []byte
	if n > 0 {
		b = unsafe.Slice((*byte)(buf), int(n))
	}
	got, st := run.frame(b)
	if got > 0 {
		*status = C.int(st)
	}
	return C.long(got)
}

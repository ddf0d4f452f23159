// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withServices returns name's config with a "services" section added.
func (d *trustDomain) withServices(name, services string) *Mesh {
	d.t.Helper()
	base := d.config(name)
	m, err := New(base[:len(base)-1] + `,"services":` + services + `}`)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { m.Close() })
	return m
}

// apiClient: a "web" mesh whose service "api" is the given listeners
// (static discovery) with the given extra service keys.
func apiClient(t *testing.T, td *trustDomain, extra string, lns ...*Listener) *Mesh {
	t.Helper()
	var eps []string
	for _, ln := range lns {
		eps = append(eps, fmt.Sprintf(`{"address":"127.0.0.1","port":%d}`, ln.Port()))
	}
	m := td.withServices("web", `{"api":{"peers":["spiffe://example.org/api"],`+extra+
		`"discovery":{"type":"static","endpoints":[`+strings.Join(eps, ",")+`]}}}`)
	if err := m.WaitDiscovery("api", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return m
}

// pingTry writes msg and reads it back from the echo server.
func pingTry(msg string) func(c *CallConn) (Outcome, int, error) {
	return func(c *CallConn) (Outcome, int, error) {
		if _, err := io.WriteString(c, msg); err != nil {
			return 0, 0, err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, 0, err
		}
		if string(buf) != msg {
			return OutcomeProtocolError, 0, nil
		}
		return OutcomeOK, 200, nil
	}
}

func accepted(peers chan string) int {
	n := 0
	for {
		select {
		case <-peers:
			n++
		default:
			return n
		}
	}
}

func TestCallEchoAndPooling(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, peers := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		var seen *CallConn
		err := web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) {
			seen = c
			if c.Endpoint() != addr(ln) || c.Attempt() != 0 ||
				c.PeerID() != "spiffe://example.org/api" || c.TraceContext().SpanID() == "" {
				t.Errorf("try %d: endpoint %q attempt %d peer %q", i, c.Endpoint(), c.Attempt(), c.PeerID())
			}
			return pingTry(fmt.Sprintf("ping %d", i))(c)
		})
		if err != nil {
			t.Fatal(err)
		}
		// The connection handed to the try is dead once it returned.
		if _, err := seen.Write([]byte("x")); err == nil {
			t.Error("write after the try ended")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted(peers); n != 1 {
		t.Errorf("3 calls made %d connections, want 1 (pooled)", n)
	}
	// Closing the call's connection in the try keeps it out of the pool.
	for i := 0; i < 2; i++ {
		err := web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) {
			o, s, err := pingTry("bye")(c)
			c.Close()
			return o, s, err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted(peers); n != 1 {
		t.Errorf("after closing tries: %d new connections, want 1", n)
	}
}

func TestCallRetriesAndErrors(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, `"retry":{"retry_on":["5xx"],"num_retries":2,"base_interval_ms":1},`, ln)
	ctx := context.Background()

	var tries []int
	err := web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) {
		tries = append(tries, c.Attempt())
		if _, _, err := pingTry("x")(c); err != nil {
			return 0, 0, err
		}
		return OutcomeOK, 503, nil
	})
	var me *Error
	if !errors.Is(err, ErrUpstream) || !errors.As(err, &me) || !strings.Contains(me.Message, "503") {
		t.Errorf("503 three times: %v", err)
	}
	if fmt.Sprint(tries) != "[0 1 2]" {
		t.Errorf("tries %v", tries)
	}

	// An EOF before the response ended is a reset: retried.
	tries = nil
	err = web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) {
		tries = append(tries, c.Attempt())
		if c.Attempt() == 0 {
			return 0, 0, fmt.Errorf("reading: %w", io.ErrUnexpectedEOF)
		}
		return pingTry("y")(c)
	})
	if err != nil || len(tries) != 2 {
		t.Errorf("reset then ok: %v after %v", err, tries)
	}

	// Any other error stops the call at once and comes back as is.
	stop := errors.New("bad request of ours")
	tries = nil
	err = web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) {
		tries = append(tries, c.Attempt())
		return 0, 0, stop
	})
	if err != stop || len(tries) != 1 {
		t.Errorf("stop: %v after %v", err, tries)
	}

	// An outcome that is not one.
	err = web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) { return 42, 0, nil })
	if !errors.Is(err, ErrInvalidArg) {
		t.Errorf("outcome 42: %v", err)
	}
	if err := web.Call(ctx, "nope", pingTry("z")); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
	if err := web.Call(ctx, "api", nil); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("nil try: %v", err)
	}
}

// The echo server answers nothing until it is written to: a try that only
// reads waits for the per-try timeout, then the call fails with it.
func TestCallPerTryTimeoutAndContext(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	wait := func(c *CallConn) (Outcome, int, error) {
		_, err := c.Read(make([]byte, 1))
		return OutcomeOK, 200, err
	}
	t0 := time.Now()
	err := web.CallWithOptions(context.Background(), "api",
		&CallOptions{PerTryTimeout: 200 * time.Millisecond, NoRetries: true}, wait)
	if el := time.Since(t0); !errors.Is(err, ErrTimeout) || el < 150*time.Millisecond || el > 3*time.Second {
		t.Errorf("per-try timeout: %v after %v", err, el)
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%v is not a net.Error timeout", err)
	}

	// The context's deadline bounds the call.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 = time.Now()
	err = web.Call(ctx, "api", wait)
	if el := time.Since(t0); err == nil || el > 3*time.Second {
		t.Errorf("context deadline: %v after %v", err, el)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrDeadline) {
		t.Errorf("context deadline: %v", err)
	}

	// Cancelling the context ends a blocked try.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	t0 = time.Now()
	err = web.Call(ctx, "api", wait)
	if el := time.Since(t0); !errors.Is(err, context.Canceled) || el > 3*time.Second {
		t.Errorf("cancel: %v after %v", err, el)
	}
	if err := web.Call(ctx, "api", wait); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before the start: %v", err)
	}
}

func TestCallPanicIsRethrown(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v", p)
			}
		}()
		web.Call(context.Background(), "api", func(c *CallConn) (Outcome, int, error) {
			panic("boom")
		})
		t.Error("Call returned after a panic")
	}()
	// The library's state is intact: the next call works.
	if err := web.Call(context.Background(), "api", pingTry("after")); err != nil {
		t.Fatal(err)
	}
}

// Concurrent calls on one Mesh, each with its own connection.
func TestCallConcurrent(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	var wg sync.WaitGroup
	var fails atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				msg := strings.Repeat(fmt.Sprint(g), 100+i*1000)
				if err := web.Call(context.Background(), "api", pingTry(msg)); err != nil {
					t.Error(err)
					fails.Add(1)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if fails.Load() != 0 {
		t.Fatalf("%d goroutines failed", fails.Load())
	}
}

// net/http's own request writer and response reader over a call's
// connection: the try function speaks HTTP/1.1 itself.
func TestCallWithNetHTTP(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, err := td.mesh("api").Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	web := apiClient(t, td, `"retry":{"retry_on":["5xx"],"num_retries":1,"base_interval_ms":1},`, ln)
	var body string
	err = web.Call(context.Background(), "api", func(c *CallConn) (Outcome, int, error) {
		req, _ := http.NewRequest("GET", "http://api/x", nil)
		InjectTrace(c.TraceContext(), req.Header, web.TraceFormats())
		if err := req.Write(c); err != nil {
			return 0, 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return 0, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, 0, err
		}
		body = string(b)
		return OutcomeOK, resp.StatusCode, nil
	})
	if err != nil || body != "hello /x" || hits.Load() != 2 {
		t.Fatalf("got %q, %v after %d hits", body, err, hits.Load())
	}
}

func TestBeginEnd(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	c, err := web.BeginCall(context.Background(), "api", &CallOptions{Deadline: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if left, ok := c.Remaining(); !ok || left <= 0 || left > 5*time.Second {
		t.Errorf("Remaining = %v %v", left, ok)
	}
	if o, _, err := pingTry("one try")(c); o != OutcomeOK || err != nil {
		t.Fatalf("try: %v %v", o, err)
	}
	if err := c.End(OutcomeOK, 200); err != nil {
		t.Fatal(err)
	}
	if err := c.End(OutcomeOK, 200); err != nil { // no-op
		t.Fatal(err)
	}
	if _, ok := c.Remaining(); ok {
		t.Error("Remaining after End")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read after End")
	}
	c2, err := web.BeginCall(context.Background(), "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.End(Outcome(42), 0); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("End(42) = %v", err)
	}
	if _, err := web.BeginCall(context.Background(), "api", &CallOptions{Subset: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown subset: %v", err)
	}
}

// Close of the Mesh ends calls still open and waits for running ones.
func TestCloseEndsOpenCalls(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	base := td.config("web")
	web, err := New(base[:len(base)-1] + fmt.Sprintf(`,"services":{"api":{"discovery":`+
		`{"type":"static","endpoints":[{"address":"127.0.0.1","port":%d}]}}}}`, ln.Port()))
	if err != nil {
		t.Fatal(err)
	}
	open, err := web.BeginCall(context.Background(), "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- web.Call(context.Background(), "api", func(c *CallConn) (Outcome, int, error) {
			close(running)
			_, err := c.Read(make([]byte, 1)) // until Close cancels it
			return OutcomeOK, 0, err
		})
	}()
	<-running
	done := make(chan struct{})
	go func() { web.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := <-result; !errors.Is(err, ErrClosed) {
		t.Errorf("running call: %v", err)
	}
	if err := open.End(OutcomeOK, 200); err != nil {
		t.Errorf("End after Close: %v", err)
	}
	if _, err := web.BeginCall(context.Background(), "api", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("BeginCall after Close: %v", err)
	}
	if err := web.Call(context.Background(), "api", pingTry("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close: %v", err)
	}
}

func TestRequestFramed(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	req := []byte("line one\nline two\n")
	var calls int
	resp, status, err := web.Request(context.Background(), "api", nil, req,
		func(b []byte) (int, int) {
			calls++
			if len(b) < len(req) {
				return 0, 0 // need more
			}
			return len(req), 200
		})
	if err != nil || !bytes.Equal(resp, req) || status != 200 || calls < 1 {
		t.Fatalf("Request: %q %d %v (%d frame calls)", resp, status, err, calls)
	}
	_, _, err = web.Request(context.Background(), "api", &CallOptions{MaxResponse: 4}, req,
		func(b []byte) (int, int) {
			if len(b) < len(req) {
				return 0, 0
			}
			return len(req), 200
		})
	if err == nil {
		t.Error("a response larger than MaxResponse fitted")
	}
	func() {
		defer func() {
			if recover() != "frame bug" {
				t.Error("frame panic not re-raised")
			}
		}()
		web.Request(context.Background(), "api", nil, req, func([]byte) (int, int) { panic("frame bug") })
	}()
}

func TestCallSubset(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	var eps []string
	for _, v := range []string{"v1", "v2"} {
		ln, _ := echoServer(t, td.mesh("api-"+v))
		eps = append(eps, fmt.Sprintf(`{"address":"127.0.0.1","port":%d,"labels":{"version":%q}}`, ln.Port(), v))
	}
	web := td.withServices("web", `{"api":{"peers":["spiffe://example.org/api-*"],`+
		`"subsets":{"v1":{"version":"v1"},"v2":{"version":"v2"}},`+
		`"split":[{"subset":"v1","weight":100},{"subset":"v2","weight":0}],`+
		`"discovery":{"type":"static","endpoints":[`+strings.Join(eps, ",")+`]}}}`)
	if err := web.WaitDiscovery("api", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	who := func(o *CallOptions) string {
		var id string
		if err := web.CallWithOptions(context.Background(), "api", o, func(c *CallConn) (Outcome, int, error) {
			id = c.PeerID()
			return pingTry("who")(c)
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := 0; i < 3; i++ {
		if got := who(nil); got != "spiffe://example.org/api-v1" {
			t.Errorf("split: %s", got)
		}
		if got := who(&CallOptions{Subset: "v2"}); got != "spiffe://example.org/api-v2" {
			t.Errorf("subset v2: %s", got)
		}
	}
}

// A context cancelled during a long retry backoff (10 s) ends the call at
// once: the backoff sleeps in C and observes the context through a cancel
// token.
func TestCallContextCutsBackoff(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, `"retry":{"retry_on":["5xx"],"num_retries":3,"base_interval_ms":10000,"max_interval_ms":10000},"timeouts":{"overall_ms":60000},`, ln)
	ctx, cancel := context.WithCancel(context.Background())
	var tries int32
	go func() {
		for atomic.LoadInt32(&tries) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // inside the backoff now
		cancel()
	}()
	t0 := time.Now()
	err := web.Call(ctx, "api", func(c *CallConn) (Outcome, int, error) {
		atomic.AddInt32(&tries, 1)
		if _, _, err := pingTry("x")(c); err != nil {
			return 0, 0, err
		}
		return OutcomeOK, 503, nil
	})
	took := time.Since(t0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if took > 5*time.Second {
		t.Errorf("the call took %v: the 10 s backoff was not cut short", took)
	}
	if n := atomic.LoadInt32(&tries); n != 1 {
		t.Errorf("%d tries, want 1", n)
	}
}

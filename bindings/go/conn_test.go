// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// trustDomain mints SVIDs with the binding's dev CA in a test temp dir.
type trustDomain struct {
	t            *testing.T
	dir, ca, key string
}

func newTrustDomain(t *testing.T, td string) *trustDomain {
	t.Helper()
	dir := t.TempDir()
	d := &trustDomain{t: t, dir: dir, ca: filepath.Join(dir, "ca.crt"),
		key: filepath.Join(dir, "ca.key")}
	if err := CAInit(td, 3600, d.ca, d.key); err != nil {
		t.Fatal(err)
	}
	return d
}

// config returns a JSON config for name with its own SVID.
func (d *trustDomain) config(name string) string {
	d.t.Helper()
	crt, key := filepath.Join(d.dir, name+".crt"), filepath.Join(d.dir, name+".key")
	if err := CAIssue(d.ca, d.key, "spiffe://example.org/"+name, 0, 0,
		IssueDefault, crt, key); err != nil {
		d.t.Fatal(err)
	}
	return fmt.Sprintf(`{"name":%q,"log":{"level":"error"},`+
		`"identity":{"cert":%q,"key":%q,"bundle":%q}}`, name, crt, key, d.ca)
}

func (d *trustDomain) mesh(name string) *Mesh {
	d.t.Helper()
	m, err := New(d.config(name))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { m.Close() })
	return m
}

// echoServer accepts on a loopback listener and echoes each connection.
func echoServer(t *testing.T, m *Mesh) (*Listener, chan string) {
	t.Helper()
	ln, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptMesh()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if c.Handshake() != nil {
					return
				}
				select {
				case peers <- c.PeerID():
				default:
				}
				io.Copy(c, c)
				c.CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln, peers
}

func addr(ln *Listener) string { return fmt.Sprintf("127.0.0.1:%d", ln.Port()) }

func TestDialEchoAndIdentity(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv, cli := td.mesh("server"), td.mesh("client")
	ln, peers := echoServer(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cli.DialWithOptions(ctx, addr(ln),
		&DialOptions{Peers: []string{"spiffe://example.org/server"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello mesh")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello mesh" {
		t.Fatalf("read %q %v", buf, err)
	}
	if c.PeerID() != "spiffe://example.org/server" || !c.IsTLS() ||
		c.CipherSuite() == "" || !strings.HasPrefix(c.TLSVersion(), "TLS") {
		t.Errorf("attrs: id=%q tls=%v cipher=%q version=%q", c.PeerID(),
			c.IsTLS(), c.CipherSuite(), c.TLSVersion())
	}
	if got := <-peers; got != "spiffe://example.org/client" {
		t.Errorf("server saw %q", got)
	}
	if ra := c.RemoteAddr().(*net.TCPAddr); ra.Port != ln.Port() {
		t.Errorf("RemoteAddr %v", ra)
	}
	if pem, err := c.PeerChainPEM(); err != nil || !strings.Contains(pem, "BEGIN CERTIFICATE") {
		t.Errorf("PeerChainPEM: %v", err)
	}
	// CloseWrite: the server echoes what is left, then EOF.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after CloseWrite: %q %v", rest, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// Full duplex: one goroutine writes while another reads, on one Conn.
func TestConcurrentReadWrite(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv, cli := td.mesh("server"), td.mesh("client")
	ln, _ := echoServer(t, srv)
	c, err := cli.Dial(context.Background(), addr(ln))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("echo differs")
	}
}

func TestReadDeadline(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv, cli := td.mesh("server"), td.mesh("client")
	ln, _ := echoServer(t, srv)
	c, err := cli.Dial(context.Background(), addr(ln))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	t0 := time.Now()
	_, err = c.Read(make([]byte, 10))
	took := time.Since(t0)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	if took < 80*time.Millisecond || took > 2*time.Second {
		t.Errorf("deadline took %v", took)
	}
	// Not sticky once the deadline moves.
	c.SetReadDeadline(time.Time{})
	c.Write([]byte("ok"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("after deadline reset: %q %v", buf, err)
	}
}

func TestWriteDeadline(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv, cli := td.mesh("server"), td.mesh("client")
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	go func() { // handshake, then never read
		c, err := ln.AcceptMesh()
		if err == nil {
			c.Handshake()
			<-stall
			c.Close()
		}
	}()
	defer close(stall)
	c, err := cli.Dial(context.Background(), addr(ln))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	chunk := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ { // at most 64 MiB
		_, werr = c.Write(chunk)
	}
	if !errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Fatalf("Write against a stalled reader: %v", werr)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv, cli := td.mesh("server"), td.mesh("client")
	ln, _ := echoServer(t, srv)
	c, err := cli.Dial(context.Background(), addr(ln))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Read returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

func TestDialFailures(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv, cli := td.mesh("server"), td.mesh("client")
	ln, _ := echoServer(t, srv)
	ctx := context.Background()

	_, err := cli.DialWithOptions(ctx, addr(ln),
		&DialOptions{Peers: []string{"spiffe://example.org/other"}})
	var me *Error
	if !errors.Is(err, ErrPeerID) || !errors.As(err, &me) ||
		!strings.Contains(me.Message, "spiffe://example.org/server") {
		t.Errorf("wrong peer: %v", err)
	}

	other := newTrustDomain(t, "example.org") // same name, other CA
	stranger := other.mesh("client")
	if _, err := stranger.Dial(ctx, addr(ln)); !errors.Is(err, ErrCertUntrusted) {
		t.Errorf("untrusted CA: %v", err)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if _, err := cli.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port)); !errors.Is(err, ErrConnect) {
		t.Errorf("refused: %v", err)
	}
	if _, err := cli.Dial(ctx, "nosuchservice"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := cli.DialContext(ctx, "udp", addr(ln)); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("udp: %v", err)
	}
}

// A TCP server that accepts and never speaks: the dial is bounded by the
// context, by its deadline and by cancellation.
func TestDialContextStalledPeer(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	cli := td.mesh("client")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	target := l.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = cli.Dial(ctx, target)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("deadline: %v", err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("deadline dial took %v", took)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	t0 = time.Now()
	_, err = cli.Dial(ctx2, target)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("cancelled dial took %v", took)
	}
}

func TestServerHandshakeTimeout(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv := td.mesh("server")
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.HandshakeTimeout = 150 * time.Millisecond
	raw, err := net.Dial("tcp", addr(ln)) // connects, never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c, err := ln.AcceptMesh()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	err = c.Handshake()
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("stalled client: %v", err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
	if c.Handshake() != err {
		t.Error("handshake error is not sticky")
	}
}

func TestAcceptUnblockedByClose(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv := td.mesh("server")
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ln.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
}

func TestMeshCloseClosesChildren(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	srv := td.mesh("server")
	ln, _ := echoServer(t, srv)
	m, err := New(td.config("client2"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Dial(context.Background(), addr(ln))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Mesh.Close: %v", err)
	}
	if _, err := l2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Mesh.Close: %v", err)
	}
	if _, err := m.Dial(context.Background(), addr(ln)); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Mesh.Close: %v", err)
	}
}

func TestLogger(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	m := td.mesh("logger")
	var mu sync.Mutex
	var lines []string
	m.SetLogger(LogDebug, func(level int, line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	})
	l, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(lines, "\n"), "event=listen") {
		t.Errorf("no listen line in %q", lines)
	}
}

func TestSelfIDExpiryReload(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	m := td.mesh("self")
	if id := m.SelfID(); id != "spiffe://example.org/self" {
		t.Errorf("SelfID = %q", id)
	}
	d, ok := m.SVIDExpiresIn()
	if !ok || d <= 50*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("SVIDExpiresIn = %v %v (issued for 1 h)", d, ok)
	}
	if err := m.ReloadIdentity(); err != nil {
		t.Errorf("reload of unchanged files: %v", err)
	}
	// A broken file: the reload fails with the reason, the old ID stays.
	os.WriteFile(filepath.Join(td.dir, "self.crt"), []byte("not PEM"), 0o600)
	if err := m.ReloadIdentity(); err == nil {
		t.Error("reload of a broken certificate succeeded")
	}
	if id := m.SelfID(); id != "spiffe://example.org/self" {
		t.Errorf("after failed reload SelfID = %q", id)
	}
	plain, _ := New(`{}`)
	defer plain.Close()
	if _, ok := plain.SVIDExpiresIn(); ok || plain.SelfID() != "" {
		t.Error("context without identity reports one")
	}
}

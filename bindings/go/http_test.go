// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// net/http runs over the mesh unchanged: http.Server.Serve on a mesh
// Listener, http.Transport with the mesh's DialContext.
func TestHTTPOverMesh(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	api, web := td.mesh("api"), td.mesh("web")
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ConnContext: ConnContext,
		ReadTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := ConnFromContext(r.Context())
			if !ok {
				http.Error(w, "no mesh conn", 500)
				return
			}
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", c.PeerID(), r.URL.Path, len(body))
		}),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	tr := &http.Transport{DialContext: web.DialContext, MaxIdleConnsPerHost: 4}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", ln.Port())

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				body := strings.Repeat("x", g*1000+i)
				resp, err := client.Post(fmt.Sprintf("%s/g%d/%d", base, g, i),
					"text/plain", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := fmt.Sprintf("spiffe://example.org/web /g%d/%d %d", g, i, len(body))
				if resp.StatusCode != 200 || string(got) != want {
					errs <- fmt.Errorf("got %d %q, want %q", resp.StatusCode, got, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
}

// A client that the server's identity check refuses gets a dial error from
// the transport, not a hang.
func TestHTTPWrongServerIdentity(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	api, web := td.mesh("api"), td.mesh("web")
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := web.DialWithOptions(ctx, addr,
			&DialOptions{Peers: []string{"spiffe://example.org/not-api"}})
		if err != nil {
			return nil, err
		}
		return c, nil
	}}
	_, err = (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(
		fmt.Sprintf("http://127.0.0.1:%d/", ln.Port()))
	if err == nil || !strings.Contains(err.Error(), "MESH_ERR_PEER_ID") {
		t.Fatalf("got %v", err)
	}
}

// A configured service by name: http://api/ goes to the endpoints that
// discovery gives for "api" (static here), through the call layer's dial.
func TestHTTPToServiceByName(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	api := td.mesh("api")
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ConnContext: ConnContext, Handler: http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			c, _ := ConnFromContext(r.Context())
			fmt.Fprintf(w, "%s via %s", c.PeerID(), r.Host)
		})}
	go srv.Serve(ln)
	defer srv.Close()

	base := td.config("web")
	cfg := base[:len(base)-1] + fmt.Sprintf(`,"services":{"api":{`+
		`"peers":["spiffe://example.org/api"],"discovery":{"type":"static",`+
		`"endpoints":[{"address":"127.0.0.1","port":%d}]}}}}`, ln.Port())
	web, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	client := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: web.DialContext}}
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://api/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "spiffe://example.org/web via api" {
			t.Fatalf("got %q", body)
		}
	}
}

// Authorize: the handler sees a repeated header as the policy saw it (one
// value, joined with ","), never only the copy a DENY was aimed at; every
// value stays visible to an authorizer through HeaderValues.
func TestAuthorizeRepeatedHeader(t *testing.T) {
	m, err := New(`{"log":{"level":"error"},"authz":{"policies":[
	 {"name":"no-mallory","action":"DENY","rules":[{"when":[
	   {"key":"request.headers[x-user]","values":["mallory"]}]}]},
	 {"name":"ext","action":"CUSTOM","provider":"callback","rules":[{"to":[
	   {"operation":{"paths":["/cb"]}}]}]}]}}`)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var seen []string
	var mu sync.Mutex
	if err := m.SetAuthorizer(func(r *AuthzView, policy string) bool {
		mu.Lock()
		seen = r.HeaderValues("X-USER")
		mu.Unlock()
		return true
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadTimeout: 5 * time.Second, Handler: m.Authorize(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" && r.URL.Path != "/cb" {
				fmt.Fprintf(w, "path=%s raw=%s", r.URL.Path, r.URL.EscapedPath())
				return
			}
			fmt.Fprintf(w, "x-user=%s n=%d", r.Header.Get("X-User"),
				len(r.Header.Values("X-User")))
		}))}
	go srv.Serve(ln)
	defer srv.Close()
	get := func(path string, users ...string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		for _, u := range users {
			req.Header.Add("X-User", u)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/", "mallory"); code != 403 {
		t.Errorf("mallory alone: %d, want 403", code)
	}
	if code, body := get("/", "mallory", "bob"); code != 200 || body != "x-user=mallory,bob n=1" {
		t.Errorf("mallory+bob: %d %q", code, body)
	}
	if code, body := get("/", "mallory", ""); code != 200 || body != "x-user=mallory, n=1" {
		t.Errorf("mallory+empty: %d %q", code, body)
	}
	// the handler sees the path the policy judged
	if code, body := get("/a/./b/../c%2Fd"); code != 200 || body != "path=/a/c/d raw=/a/c%2Fd" {
		t.Errorf("normalized path: %d %q", code, body)
	}
	if code, _ := get("/a%00b"); code != 400 {
		t.Errorf("%%00: %d, want 400", code)
	}
	if p, err := m.NormalizePath("//x/%61/..?q"); err != nil || p != "/x/" {
		t.Errorf("NormalizePath: %q %v", p, err)
	}
	if code, _ := get("/cb", "a", "b"); code != 200 {
		t.Errorf("callback: %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "|") != "a|b" {
		t.Errorf("HeaderValues: %q", seen)
	}
}

// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const policies = `{"policies":[
 {"name":"deny-dev-post","action":"DENY","rules":[
   {"from":[{"source":{"namespaces":["dev"]}}],"to":[{"operation":{"methods":["POST"]}}]}]},
 {"name":"shop-read","action":"ALLOW","rules":[
   {"from":[{"source":{"principals":["example.org/ns/shop/*","example.org/ns/dev/*"]}}],
    "to":[{"operation":{"paths":["/items*"]}}]}]}]}`

const (
	webID = "spiffe://example.org/ns/shop/sa/web"
	devID = "spiffe://example.org/ns/dev/sa/tool"
)

func counter(t *testing.T, m *Mesh, name string) uint64 {
	t.Helper()
	v, err := m.AuthzCounter(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuthzCheck(t *testing.T) {
	m, err := New(`{"log":{"level":"error"},"authz":` + policies + `}`)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cases := []struct {
		req    AuthzRequest
		allow  bool
		policy string
	}{
		{AuthzRequest{Principal: webID, Method: "GET", Path: "/items/1"}, true, ""},
		{AuthzRequest{Principal: webID, Method: "POST", Path: "/items"}, true, ""},
		{AuthzRequest{Principal: devID, Method: "POST", Path: "/items"}, false, "deny-dev-post"},
		{AuthzRequest{Principal: webID, Method: "GET", Path: "/admin"}, false, ""},
		{AuthzRequest{Principal: webID, Path: "/x/../items/%31"}, true, ""}, // normalized
		{AuthzRequest{Principal: "spiffe://example.org/ns/other/sa/x", Path: "/items"}, false, ""},
	}
	for _, tc := range cases {
		err := m.AuthzCheck(&tc.req)
		if tc.allow != (err == nil) {
			t.Errorf("%+v: %v", tc.req, err)
			continue
		}
		if !tc.allow && (!errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.policy)) {
			t.Errorf("%+v: %v", tc.req, err)
		}
	}
	if a, d := counter(t, m, "allow"), counter(t, m, "deny"); a != 3 || d != 3 {
		t.Errorf("allow %d deny %d", a, d)
	}
	for _, bad := range []AuthzRequest{{SourceIP: "not-an-ip"}, {Port: 70000}, {Path: "no-slash"}} {
		if err := m.AuthzCheck(&bad); err == nil || errors.Is(err, ErrDenied) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := m.AuthzCounter("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown counter: %v", err)
	}

	// Reload: a bad set changes nothing, a good one replaces all.
	admin := &AuthzRequest{Principal: webID, Path: "/admin"}
	err = m.AuthzReload(`{"policies":[{"name":"x","rules":[{"to":[{"operation":{"paths":["admin"]}}]}]}]}`)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "policies[0].rules[0].to[0]") {
		t.Errorf("bad reload: %v", err)
	}
	if err := m.AuthzCheck(admin); !errors.Is(err, ErrDenied) {
		t.Errorf("after a failed reload: %v", err)
	}
	if err := m.AuthzReload(`{"policies":[]}`); err != nil {
		t.Fatal(err)
	}
	if err := m.AuthzCheck(admin); err != nil {
		t.Errorf("after reload: %v", err)
	}
	if r, re := counter(t, m, "reload"), counter(t, m, "reload_error"); r != 1 || re != 1 {
		t.Errorf("reload %d reload_error %d", r, re)
	}
}

const custom = `{"policies":[{"name":"tenant","action":"CUSTOM","provider":"callback","rules":[{}]}]}`

func TestAuthorizer(t *testing.T) {
	m, err := New(`{"log":{"level":"error"},"authz":` + custom + `}`)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var mu sync.Mutex
	var seen []string
	var kept *AuthzView
	m.SetAuthorizer(func(r *AuthzView, policy string) bool {
		method, path, host, ok := r.HTTP()
		tenant, _ := r.Header("X-Tenant")
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %s %s %s %s %v %s", policy, r.Principal(), r.Namespace(), method, path, host, ok, tenant))
		kept = r
		mu.Unlock()
		return tenant == "acme"
	})
	req := &AuthzRequest{Principal: webID, Method: "GET", Path: "/p?q", Host: "api",
		Header: http.Header{"X-Tenant": {"acme"}}}
	if err := m.AuthzCheck(req); err != nil {
		t.Errorf("acme: %v", err)
	}
	req.Header.Set("X-Tenant", "evil")
	if err := m.AuthzCheck(req); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "tenant") {
		t.Errorf("evil: %v", err)
	}
	want := []string{"tenant " + webID + " shop GET /p api true acme", "tenant " + webID + " shop GET /p api true evil"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("seen %q", seen)
	}
	if kept.Principal() != "" || kept.Port() != -1 { // a view does not outlive its call
		t.Errorf("stale view still reads %q", kept.Principal())
	}
	if n := counter(t, m, "custom_deny"); n != 1 {
		t.Errorf("custom_deny %d", n)
	}
	m.SetAuthorizer(func(*AuthzView, string) bool { panic("authorizer bug") })
	if err := m.AuthzCheck(req); !errors.Is(err, ErrDenied) {
		t.Errorf("panicking authorizer: %v", err)
	}
	m.SetAuthorizer(nil)
	if err := m.AuthzCheck(req); !errors.Is(err, ErrDenied) {
		t.Errorf("no authorizer: %v", err)
	}

	// Concurrent checks through the Go authorizer.
	var n atomic.Int32
	m.SetAuthorizer(func(*AuthzView, string) bool { n.Add(1); return true })
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := m.AuthzCheck(&AuthzRequest{Principal: webID}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n.Load() != 200 {
		t.Errorf("authorizer ran %d times", n.Load())
	}
}

// Connection-level decisions inside the accept of real mTLS peers, by
// a policy and by a Go authorizer; AuthzRequest from an accepted Conn.
func TestAuthzAtAccept(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	echo := func(m *Mesh, target string) error {
		c, err := m.Dial(context.Background(), target)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.WriteString(c, "ping"); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 4))
		return err
	}
	server := func(authz string) (*Mesh, *Listener) {
		base := td.config("api")
		m, err := New(base[:len(base)-1] + `,"authz":` + authz[:len(authz)-1] + `,"protocol":"tcp"}}`)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		ln, _ := echoServer(t, m)
		return m, ln
	}
	web, intruder := td.mesh("web"), td.mesh("intruder")

	m, ln := server(`{"policies":[{"name":"web-only","rules":[{"from":[{"source":{"principals":["example.org/web"]}}]}]}]}`)
	if err := echo(web, addr(ln)); err != nil {
		t.Fatalf("web: %v", err)
	}
	if err := echo(intruder, addr(ln)); err == nil {
		t.Fatal("intruder got through")
	}
	if n := counter(t, m, "conn_deny"); n != 1 {
		t.Errorf("conn_deny %d", n)
	}

	m, ln = server(custom)
	var mu sync.Mutex
	var who []string
	m.SetAuthorizer(func(r *AuthzView, policy string) bool {
		mu.Lock()
		who = append(who, fmt.Sprint(r.Principal(), " ", r.Port(), " ", r.SourceIP()))
		mu.Unlock()
		return strings.HasSuffix(r.Principal(), "/web")
	})
	if err := echo(web, addr(ln)); err != nil {
		t.Fatalf("web via authorizer: %v", err)
	}
	if err := echo(intruder, addr(ln)); err == nil {
		t.Fatal("intruder got through the authorizer")
	}
	mu.Lock()
	if len(who) != 2 || who[0] != fmt.Sprintf("spiffe://example.org/web %d 127.0.0.1", ln.Port()) ||
		!strings.HasPrefix(who[1], "spiffe://example.org/intruder ") {
		t.Errorf("authorizer saw %q", who)
	}
	mu.Unlock()

	// A request built from an accepted connection.
	api := td.mesh("api2")
	ln2, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln2.AcceptMesh()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		if err := c.Handshake(); err != nil {
			got <- err
			return
		}
		api.AuthzReload(fmt.Sprintf(`{"policies":[{"name":"p","rules":[{"from":[{"source":`+
			`{"principals":["example.org/web"]}}],"to":[{"operation":{"ports":[%d]}}]}]}]}`, ln2.Port()))
		err = api.AuthzCheck(&AuthzRequest{Conn: c})
		if err == nil {
			err = api.AuthzCheck(&AuthzRequest{Conn: c, Port: 1})
			if !errors.Is(err, ErrDenied) {
				err = fmt.Errorf("port 1: %v", err)
			} else {
				err = nil
			}
		}
		c.Write([]byte("x"))
		got <- err
	}()
	c, err := web.Dial(context.Background(), addr(ln2))
	if err != nil {
		t.Fatal(err)
	}
	c.Read(make([]byte, 1))
	c.Close()
	if err := <-got; err != nil {
		t.Error(err)
	}
}

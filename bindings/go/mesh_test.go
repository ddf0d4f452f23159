// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	v := Version()
	if strings.Count(v, ".") != 2 {
		t.Fatalf("Version() = %q", v)
	}
}

// Every Code constant must carry the library's name for it, so a
// renumbering on either side fails here.
func TestCodeNames(t *testing.T) {
	names := map[Code]string{
		OK: "MESH_OK", ErrInvalidArg: "MESH_ERR_INVALID_ARG",
		ErrConfig: "MESH_ERR_CONFIG", ErrClosed: "MESH_ERR_CLOSED",
		ErrWantRead: "MESH_ERR_WANT_READ", ErrTimeout: "MESH_ERR_TIMEOUT",
		ErrConnect: "MESH_ERR_CONNECT", ErrTLS: "MESH_ERR_TLS",
		ErrCertUntrusted: "MESH_ERR_CERT_UNTRUSTED", ErrPeerID: "MESH_ERR_PEER_ID",
		ErrTrustDomain: "MESH_ERR_TRUST_DOMAIN", ErrNoPeerCert: "MESH_ERR_NO_PEER_CERT",
		ErrPEM: "MESH_ERR_PEM", ErrSpiffeID: "MESH_ERR_SPIFFE_ID",
		ErrReset: "MESH_ERR_RESET", ErrUnknownService: "MESH_ERR_UNKNOWN_SERVICE",
		ErrDenied: "MESH_ERR_DENIED", ErrUnsupported: "MESH_ERR_UNSUPPORTED",
		ErrFDLimit: "MESH_ERR_FD_LIMIT", ErrBuffer: "MESH_ERR_BUFFER",
		ErrUpstream:     "MESH_ERR_UPSTREAM",
		ErrGRPCStatus:   "MESH_ERR_GRPC_STATUS",
		ErrMsgTooLarge:  "MESH_ERR_MSG_TOO_LARGE",
		ErrCancelled:    "MESH_ERR_CANCELLED",
		ErrGRPCProtocol: "MESH_ERR_GRPC_PROTOCOL",
	}
	for c, want := range names {
		if got := c.Name(); got != want {
			t.Errorf("Code(%d).Name() = %q, want %q", int(c), got, want)
		}
	}
	for c := OK; c >= lastCode; c-- {
		if c.Name() == "MESH_ERR_UNKNOWN" {
			t.Errorf("library has no name for %d", int(c))
		}
	}
	if (lastCode - 1).Name() != "MESH_ERR_UNKNOWN" {
		t.Errorf("library has codes past %d this binding lacks", int(lastCode))
	}
}

func TestNewConfigErrors(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{`{"nmae":"x"}`, "nmae: unknown key"},
		{`{"log":{"level":"loud"}}`, `log.level: unknown value "loud"`},
		{`{"services":{"payments":{"peers":[]}}}`, "services.payments.peers: must list at least one pattern"},
		{"{\n \"name\": \"x\",\n oops\n}", "JSON syntax error at line 3"},
	}
	for _, tc := range cases {
		m, err := New(tc.cfg)
		if err == nil {
			m.Close()
			t.Errorf("New(%s): no error", tc.cfg)
			continue
		}
		var me *Error
		if !errors.As(err, &me) || me.Code != ErrConfig || !errors.Is(err, ErrConfig) {
			t.Errorf("New(%s): %v is not an ErrConfig *Error", tc.cfg, err)
			continue
		}
		if !strings.Contains(me.Message, tc.want) {
			t.Errorf("New(%s): message %q lacks %q", tc.cfg, me.Message, tc.want)
		}
		if !strings.Contains(err.Error(), "MESH_ERR_CONFIG") {
			t.Errorf("Error() = %q", err.Error())
		}
	}
}

func TestConfigCheckListsEveryError(t *testing.T) {
	found, err := ConfigCheck(`{"name":"a","nmae":1,"log":{"lvl":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 {
		t.Fatalf("found %q", found)
	}
	joined := strings.Join(found, "\n")
	for _, want := range []string{"nmae:", "log.lvl:"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in %q", want, found)
		}
	}
	if found, err := ConfigCheck(`{"name":"ok"}`); err != nil || len(found) != 0 {
		t.Errorf("valid config: %q %v", found, err)
	}
}

func TestNewFromFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mesh.json")
	if err := os.WriteFile(p, []byte(`{"name":"f"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := NewFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, err = NewFromFile(filepath.Join(dir, "missing.json"))
	if !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	m, err := New(`{}`)
	if err != nil {
		t.Fatal(err)
	}
	if m.BackendFD() != -1 {
		t.Error("thread mode has a backend fd")
	}
	if err := m.Process(); !errors.Is(err, ErrInvalidArg) {
		t.Errorf("Process in thread mode: %v", err)
	}
	m.SetLogger(LogDebug, func(int, string) {})
	m.Close()
	m.Close()
	if err := m.Process(); !errors.Is(err, ErrClosed) {
		t.Errorf("Process after Close: %v", err)
	}
}

func TestExternalLoop(t *testing.T) {
	m, err := New(`{"worker":{"mode":"external"}}`)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.BackendFD() < 0 {
		t.Fatal("external mode: no backend fd")
	}
	if m.BackendTimeout() < -1 {
		t.Fatal("bad timeout")
	}
	if err := m.Process(); err != nil {
		t.Fatal(err)
	}
}

// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startAgent runs the tests' SPIFFE Workload API agent (tests/wl_agent.py
// on Debian's python3-grpcio) on a unix socket in a temporary directory,
// granting spiffe://example.org/a; it is killed when the test ends.
func startAgent(t *testing.T) string {
	t.Helper()
	top := os.Getenv("MESH_TOP")
	if top == "" {
		top = filepath.Join("..", "..")
	}
	agent := filepath.Join(top, "tests", "wl_agent.py")
	if _, err := os.Stat(agent); err != nil {
		t.Fatalf("agent: %v", err)
	}
	dir := t.TempDir()
	ctl := `{"ids": [["spiffe://example.org/a", "a"]]}`
	if err := os.WriteFile(filepath.Join(dir, "control.json"), []byte(ctl), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	// Debian's interpreter: the one with grpcio (PATH may hold another)
	cmd := exec.Command("/usr/bin/python3", agent, "--socket", sock, "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("agent: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("agent exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent not ready after 60 s")
	}
	return sock
}

func TestValidateJWTSVID(t *testing.T) {
	sock := startAgent(t)
	cfg := fmt.Sprintf(`{"identity": {"source": "workload_api",
		"endpoint": "unix://%s", "wait_ms": 30000}}`, sock)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := m.JWTSVID("aud1")
	if err != nil || strings.Count(tok, ".") != 2 {
		t.Fatalf("JWTSVID = %q, %v", tok, err)
	}
	id, claims, err := m.ValidateJWTSVID(tok, "aud1")
	if err != nil {
		t.Fatal(err)
	}
	if id != "spiffe://example.org/a" || claims["sub"] != id {
		t.Fatalf("ValidateJWTSVID = %q, %v", id, claims)
	}
	aud, _ := claims["aud"].([]any)
	if claims["aud"] != "aud1" && (len(aud) != 1 || aud[0] != "aud1") {
		t.Fatalf("aud claim = %v", claims["aud"])
	}
	if _, ok := claims["exp"].(float64); !ok {
		t.Fatalf("exp claim = %v", claims["exp"])
	}
	// refused by the agent: another audience, an edited signature
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	if sig[3] == 'A' {
		sig[3] = 'B'
	} else {
		sig[3] = 'A'
	}
	bad := parts[0] + "." + parts[1] + "." + string(sig)
	for _, c := range []struct{ tok, aud string }{{tok, "other"}, {bad, "aud1"}} {
		id, claims, err := m.ValidateJWTSVID(c.tok, c.aud)
		var me *Error
		if !errors.As(err, &me) || me.Code != ErrDenied || me.Message == "" ||
			id != "" || claims != nil {
			t.Errorf("ValidateJWTSVID(aud %q) = %q %v %v", c.aud, id, claims, err)
		}
	}
	// no Workload API source: not found
	plain, err := New(`{}`)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, _, err := plain.ValidateJWTSVID(tok, "aud1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("without a source: %v", err)
	}
}

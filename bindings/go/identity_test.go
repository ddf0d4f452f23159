// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpiffeIDs(t *testing.T) {
	td, p, err := ParseSpiffeID("spiffe://example.org/ns/default/sa/web")
	if err != nil || td != "example.org" || p != "/ns/default/sa/web" {
		t.Fatalf("ParseSpiffeID = %q %q %v", td, p, err)
	}
	for _, bad := range []string{"http://x.org/a", "spiffe://example.org/",
		"spiffe://Example.org/a", "spiffe://example.org/a/../b"} {
		err := ValidateSpiffeID(bad)
		var me *Error
		if !errors.As(err, &me) || me.Code != ErrSpiffeID || me.Message == "" {
			t.Errorf("ValidateSpiffeID(%q) = %v", bad, err)
		}
	}
	match := []struct {
		pattern, id string
		want        bool
	}{
		{"*", "spiffe://a.org/x", true},
		{"a.org/ns/default/sa/*", "spiffe://a.org/ns/default/sa/web", true},
		{"a.org/ns/default/sa/*", "spiffe://a.org/ns/prod/sa/web", false},
		{"spiffe://a.org", "spiffe://b.org/x", false},
	}
	for _, m := range match {
		if got := MatchSpiffeID(m.pattern, m.id); got != m.want {
			t.Errorf("MatchSpiffeID(%q, %q) = %v", m.pattern, m.id, got)
		}
	}
}

func TestDevCA(t *testing.T) {
	dir := t.TempDir()
	ca, cakey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := CAInit("example.org", 3600, ca, cakey); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cakey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v %v", fi, err)
	}
	crt, key := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	if err := CAIssue(ca, cakey, "spiffe://example.org/a", 0, 0, IssueDefault, crt, key); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(crt)
	if !strings.Contains(string(pem), "BEGIN CERTIFICATE") {
		t.Fatalf("no certificate in %s", crt)
	}
	err := CAIssue(ca, cakey, "not-an-id", 0, 0, IssueDefault, crt, key)
	if !errors.Is(err, ErrSpiffeID) {
		t.Errorf("bad ID: %v", err)
	}
	err = CAInit("Bad Domain", 60, ca+"2", cakey+"2")
	if !errors.Is(err, ErrSpiffeID) {
		t.Errorf("bad trust domain: %v", err)
	}
}

// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestTraceparent(t *testing.T) {
	c, err := ParseTraceparent(tp)
	if err != nil {
		t.Fatal(err)
	}
	if c.TraceID() != "4bf92f3577b34da6a3ce929d0e0e4736" || c.SpanID() != "00f067aa0ba902b7" || !c.Sampled() {
		t.Errorf("parsed %s %s %v", c.TraceID(), c.SpanID(), c.Sampled())
	}
	if s, err := c.Traceparent(); err != nil || s != tp {
		t.Errorf("format %q %v", s, err)
	}
	for _, bad := range []string{"", strings.ToUpper(tp), "ff" + tp[2:], tp[:54]} {
		if _, err := ParseTraceparent(bad); !errors.Is(err, ErrParse) {
			t.Errorf("ParseTraceparent(%q) = %v", bad, err)
		}
	}
	b, err := ParseB3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
	if err != nil || b.ParentSpanID() != "05e3ac9a4f6e3b90" {
		t.Fatalf("b3: %v", err)
	}
}

func TestExtractInjectHTTPHeaders(t *testing.T) {
	in := http.Header{}
	in.Set("Traceparent", tp)
	in.Add("Tracestate", "congo=t61rcWkgMzE")
	in.Add("Tracestate", "rojo=00f067aa0ba902b7") // two fields, joined
	c, ok := ExtractTrace(in, PropagateAll)
	if !ok || c.TraceState() != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
		t.Fatalf("extract: %v %q", ok, c)
	}
	out := http.Header{}
	if err := InjectTrace(c, out, PropagateTraceContext|PropagateB3); err != nil {
		t.Fatal(err)
	}
	if out.Get("traceparent") != tp || !strings.HasPrefix(out.Get("b3"),
		"4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1") {
		t.Errorf("injected %v", out)
	}
	if _, ok := ExtractTrace(http.Header{}, PropagateAll); ok {
		t.Error("extract from no headers")
	}
	bad := http.Header{}
	bad.Set("traceparent", "garbage")
	if _, ok := ExtractTrace(bad, PropagateAll); ok {
		t.Error("extract from a bad header")
	}
}

func TestMetricsAndAdmin(t *testing.T) {
	m, err := New(`{"log":{"level":"error"},"admin":{"listen":"127.0.0.1:0"},
		"tracing":{"propagation":["tracecontext","b3"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.TraceFormats() != PropagateTraceContext|PropagateB3 {
		t.Errorf("TraceFormats = %d", m.TraceFormats())
	}
	text, err := m.MetricsText()
	if err != nil || !strings.Contains(text, "# TYPE mesh_") {
		t.Fatalf("MetricsText: %v %q", err, text)
	}
	port, ok := m.AdminPort()
	if !ok {
		t.Fatal("no admin port")
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "# TYPE mesh_") {
		t.Errorf("admin /metrics: %q", body)
	}
	plain, _ := New(`{}`)
	defer plain.Close()
	if _, ok := plain.AdminPort(); ok {
		t.Error("admin port without admin section")
	}
}

// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"context"
	"sync"
	"testing"
	"time"
)

// spanLog collects spans from hooks called on any thread.
type spanLog struct {
	mu           sync.Mutex
	started, end []*Span
}

func (l *spanLog) onStart(s *Span) { l.mu.Lock(); l.started = append(l.started, s); l.mu.Unlock() }
func (l *spanLog) onEnd(s *Span)   { l.mu.Lock(); l.end = append(l.end, s); l.mu.Unlock() }

// named returns the ended spans called name, waiting (bounded) for one.
func (l *spanLog) named(name string) []*Span {
	for i := 0; i < 500; i++ {
		var got []*Span
		l.mu.Lock()
		for _, s := range l.end {
			if s.Name == name {
				got = append(got, s)
			}
		}
		l.mu.Unlock()
		if len(got) > 0 || i == 499 {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func TestSpanHooksDialUnderTraceParent(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := td.mesh("web")
	var log spanLog
	if err := web.SetSpanHooks(log.onStart, log.onEnd); err != nil {
		t.Fatal(err)
	}
	parent, err := ParseTraceparent(tp)
	if err != nil {
		t.Fatal(err)
	}
	c, err := web.DialWithOptions(context.Background(), addr(ln), &DialOptions{TraceParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	dials := log.named("mesh.dial")
	if len(dials) != 1 {
		t.Fatalf("%d mesh.dial spans", len(dials))
	}
	d := dials[0]
	if d.TraceID() != parent.TraceID() || d.ParentSpanID() != parent.SpanID() ||
		d.Kind != SpanClient || d.Kind.String() != "client" || d.Status != SpanStatusUnset {
		t.Errorf("mesh.dial: %s/%s parent %s kind %v status %v", d.TraceID(), d.SpanID(),
			d.ParentSpanID(), d.Kind, d.Status)
	}
	if d.Attributes["server.port"] != int64(ln.Port()) ||
		d.Attributes["mesh.peer.spiffe_id"] != "spiffe://example.org/api" {
		t.Errorf("attributes %v", d.Attributes)
	}
	if d.Start.IsZero() || !d.End.After(d.Start) {
		t.Errorf("times %v %v", d.Start, d.End)
	}
	hs := log.named("mesh.handshake")
	if len(hs) != 1 || hs[0].ParentSpanID() != d.SpanID() || hs[0].TraceID() != d.TraceID() {
		t.Errorf("mesh.handshake not under mesh.dial: %+v", hs)
	}
	log.mu.Lock()
	var started *Span
	for _, s := range log.started {
		if s.SpanID() == d.SpanID() {
			started = s
		}
	}
	log.mu.Unlock()
	if started == nil || !started.End.IsZero() {
		t.Errorf("onStart did not see the running dial span: %+v", started)
	}

	// Removed hooks see nothing more; a panicking hook is contained.
	if err := web.SetSpanHooks(nil, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := web.Dial(context.Background(), addr(ln)); err == nil {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(log.named("mesh.dial")); n != 1 {
		t.Errorf("%d dial spans after removing the hooks", n)
	}
	web.SetSpanHooks(func(*Span) { panic("hook bug") }, nil)
	c, err = web.Dial(context.Background(), addr(ln))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestSpanHooksCall(t *testing.T) {
	td := newTrustDomain(t, "example.org")
	ln, _ := echoServer(t, td.mesh("api"))
	web := apiClient(t, td, "", ln)
	var log spanLog
	web.SetSpanHooks(nil, log.onEnd)
	parent, _ := ParseTraceparent(tp)
	var sent *TraceContext
	err := web.CallWithOptions(context.Background(), "api", &CallOptions{TraceParent: parent},
		func(c *CallConn) (Outcome, int, error) {
			sent = c.TraceContext()
			return pingTry("traced")(c)
		})
	if err != nil {
		t.Fatal(err)
	}
	calls, tries := log.named("mesh.call"), log.named("mesh.try")
	if len(calls) != 1 || len(tries) != 1 {
		t.Fatalf("%d calls, %d tries", len(calls), len(tries))
	}
	if calls[0].TraceID() != parent.TraceID() || calls[0].ParentSpanID() != parent.SpanID() {
		t.Errorf("mesh.call not under the parent: %s %s", calls[0].TraceID(), calls[0].ParentSpanID())
	}
	if tries[0].ParentSpanID() != calls[0].SpanID() || sent.SpanID() != tries[0].SpanID() ||
		tries[0].Attributes["mesh.status_code"] != int64(200) {
		t.Errorf("mesh.try %+v, sent %s", tries[0], sent.SpanID())
	}
}

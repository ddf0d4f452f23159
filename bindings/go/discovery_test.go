// SPDX-License-Identifier: Apache-2.0

package mesh

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

const discoveryConfig = `{"log":{"level":"error"},"services":{
  "api":{"discovery":{"type":"static","endpoints":[
    {"address":"127.0.0.2","port":8443,"health":"draining"},
    {"address":"127.0.0.1","port":8443,"weight":3,"priority":1,
     "locality":{"region":"eu-west","zone":"a","subzone":"r1"},
     "labels":{"version":"v1","tier":"gold"}}]}},
  "empty":{}}}`

func TestEndpoints(t *testing.T) {
	m, err := New(discoveryConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.WaitDiscovery("api", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eps, err := m.Endpoints("api")
	if err != nil {
		t.Fatal(err)
	}
	if eps.Version == 0 || len(eps.Endpoints) != 2 {
		t.Fatalf("got %+v", eps)
	}
	a, b := eps.Endpoints[0], eps.Endpoints[1]
	want := Endpoint{Address: "127.0.0.1", Port: 8443, Weight: 3, Priority: 1,
		Health: a.Health, Region: "eu-west", Zone: "a", Subzone: "r1",
		Labels: map[string]string{"version": "v1", "tier": "gold"}}
	if !reflect.DeepEqual(a, want) || (a.Health != HealthUnknown && a.Health != HealthHealthy) {
		t.Errorf("endpoint 0 = %+v", a)
	}
	if b.Address != "127.0.0.2" || b.Health != HealthDraining || b.Weight != 1 ||
		b.Labels != nil || b.Health.String() != "draining" {
		t.Errorf("endpoint 1 = %+v", b)
	}
	if _, err := m.Endpoints("nope"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
}

func TestWatch(t *testing.T) {
	m, err := New(discoveryConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.WaitDiscovery("api", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got := make(chan Endpoints, 4)
	stop, err := m.Watch("api", func(service string, eps Endpoints) {
		if service == "api" {
			select {
			case got <- eps:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case eps := <-got:
		if len(eps.Endpoints) != 2 || eps.Endpoints[0].Address != "127.0.0.1" {
			t.Errorf("watch got %+v", eps)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch callback never ran")
	}
	stop()
	stop() // idempotent
	if _, err := m.Watch("nope", func(string, Endpoints) {}); !errors.Is(err, ErrUnknownService) {
		t.Errorf("watch unknown: %v", err)
	}
}

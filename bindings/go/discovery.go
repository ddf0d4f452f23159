// SPDX-License-Identifier: Apache-2.0

package mesh

/*
#include <stdint.h>
#include <stdlib.h>
#include <mesh/discovery.h>

extern void meshGoEndpoints(char *service, void *eps, uintptr_t user);

static void mesh_go_endpoints_tramp(const char *service,
                                    const mesh_endpoints_t *eps, void *user) {
	meshGoEndpoints((char *)service, (void *)eps, (uintptr_t)user);
}
static int mesh_go_watch(mesh_t *m, const char *service, uintptr_t h,
                         mesh_status_t *st) {
	return mesh_discovery_watch(m, service, mesh_go_endpoints_tramp,
	                            (void *)h, st);
}
*/
import "C"

import (
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Health of an endpoint (Envoy's HealthStatus subset).
type Health int

// Endpoint health values (MESH_HEALTH_*).
const (
	HealthUnknown   Health = C.MESH_HEALTH_UNKNOWN
	HealthHealthy   Health = C.MESH_HEALTH_HEALTHY
	HealthUnhealthy Health = C.MESH_HEALTH_UNHEALTHY
	HealthDraining  Health = C.MESH_HEALTH_DRAINING
)

func (h Health) String() string {
	switch h {
	case HealthUnknown:
		return "unknown"
	case HealthHealthy:
		return "healthy"
	case HealthUnhealthy:
		return "unhealthy"
	case HealthDraining:
		return "draining"
	}
	return "invalid"
}

// Endpoint is one endpoint of a service, copied out of the library.
type Endpoint struct {
	Address               string // IP literal or hostname, as the source gave it
	Port                  int
	Weight, Priority      uint32
	Health                Health // when the set was copied
	Region, Zone, Subzone string
	Labels                map[string]string
}

// Endpoints is a service's endpoint set at one moment, ordered by address
// then port.  Version increases with each change; 0 before discovery's
// first answer.
type Endpoints struct {
	Version   uint64
	Endpoints []Endpoint
}

func convertEndpoints(e *C.mesh_endpoints_t) Endpoints {
	n := C.mesh_endpoints_count(e)
	out := Endpoints{Version: uint64(C.mesh_endpoints_version(e)),
		Endpoints: make([]Endpoint, 0, int(n))}
	for i := C.size_t(0); i < n; i++ {
		ep := Endpoint{
			Address:  C.GoString(C.mesh_endpoint_address(e, i)),
			Port:     int(C.mesh_endpoint_port(e, i)),
			Weight:   uint32(C.mesh_endpoint_weight(e, i)),
			Priority: uint32(C.mesh_endpoint_priority(e, i)),
			Health:   Health(C.mesh_endpoint_health(e, i)),
			Region:   C.GoString(C.mesh_endpoint_region(e, i)),
			Zone:     C.GoString(C.mesh_endpoint_zone(e, i)),
			Subzone:  C.GoString(C.mesh_endpoint_subzone(e, i)),
		}
		if k := C.mesh_endpoint_label_count(e, i); k > 0 {
			ep.Labels = make(map[string]string, int(k))
			for j := C.size_t(0); j < k; j++ {
				var key, val *C.char
				if C.mesh_endpoint_label_at(e, i, j, &key, &val) == 0 {
					ep.Labels[C.GoString(key)] = C.GoString(val)
				}
			}
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	return out
}

// Endpoints returns the current endpoints of a configured service.  It
// never blocks on discovery.
func (m *Mesh) Endpoints(service string) (Endpoints, error) {
	cm, ok := m.use()
	if !ok {
		return Endpoints{}, closedErr("endpoints")
	}
	defer m.done()
	cs := C.CString(service)
	defer C.free(unsafe.Pointer(cs))
	var st C.mesh_status_t
	var e *C.mesh_endpoints_t
	if rc := C.mesh_endpoints_get(cm, cs, &e, &st); rc != 0 {
		return Endpoints{}, newError("endpoints", rc, &st)
	}
	defer C.mesh_endpoints_free(e)
	return convertEndpoints(e), nil
}

// WaitDiscovery waits at most timeout for the service's first discovery
// answer: nil, ErrTimeout, or ErrDiscovery when that answer was an error.
func (m *Mesh) WaitDiscovery(service string, timeout time.Duration) error {
	cm, ok := m.use()
	if !ok {
		return closedErr("wait discovery")
	}
	defer m.done()
	cs := C.CString(service)
	defer C.free(unsafe.Pointer(cs))
	ms := timeout.Milliseconds()
	if ms > 1<<31-1 {
		ms = 1<<31 - 1
	}
	var st C.mesh_status_t
	if rc := C.mesh_discovery_wait(cm, cs, C.int(ms), &st); rc != 0 {
		return newError("wait discovery", rc, &st)
	}
	return nil
}

type watch struct {
	fn func(service string, eps Endpoints)
}

// Watch calls fn after each change of the service's endpoints (and once
// at once if it has a set), from the library's worker thread; fn must not
// block for long.  stop removes the watch: when it returns fn is not
// running and will not run again (do not call stop from inside fn).
func (m *Mesh) Watch(service string, fn func(service string, eps Endpoints)) (stop func(), err error) {
	cm, ok := m.use()
	if !ok {
		return nil, closedErr("watch")
	}
	defer m.done()
	cs := C.CString(service)
	defer C.free(unsafe.Pointer(cs))
	h := cgo.NewHandle(&watch{fn: fn})
	var st C.mesh_status_t
	id := C.mesh_go_watch(cm, cs, C.uintptr_t(h), &st)
	if id < 0 {
		h.Delete()
		return nil, newError("watch", id, &st)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if cm, ok := m.use(); ok {
				C.mesh_discovery_unwatch(cm, id)
				m.done()
			}
			// After unwatch (or mesh_free) the callback cannot run.
			h.Delete()
		})
	}, nil
}

/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the endpoint part (DESIGN.md layer "endpoint", below
 * discovery, lb and resilience): the endpoint model they share.  This
 * header is the part's whole surface.
 *
 * A host (one address:port of a service) lives as long as any snapshot or
 * in-flight call holds it; its mutable state (active requests, latency EWMA,
 * ejection) is atomic and survives updates that keep the same address:port.
 * A snapshot is an immutable array of hosts published by discovery; readers
 * take it without any lock (see mesh__snap_acquire). */
#ifndef MESH_ENDPOINT_ENDPOINT_H
#define MESH_ENDPOINT_ENDPOINT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "core/core.h"

/* Health as reported by the source (and by active checks). Same values as
 * the public MESH_HEALTH_* constants. */
enum mesh__health {
  MESH__HEALTH_UNKNOWN = 0,
  MESH__HEALTH_HEALTHY = 1,
  MESH__HEALTH_UNHEALTHY = 2,
  MESH__HEALTH_DRAINING = 3,
};

typedef struct mesh__label {
  char *key;
  char *value;
} mesh__label_t;

typedef struct mesh__host {
  _Atomic uint32_t refs;
  /* identity of the host: immutable after creation */
  char *address;          /* IPv4/IPv6 literal (hostname if unresolved) */
  uint16_t port;
  struct sockaddr_storage sa; /* resolved address when `resolved` */
  socklen_t salen;
  bool resolved;
  char key[64];           /* "addr:port" / "[v6]:port", for maps and logs */

  /* attributes from the source: immutable (a change makes a new host) */
  char *hostname;         /* the name `address` was resolved from, or NULL */
  uint32_t weight;        /* >= 1, default 1 */
  uint32_t priority;      /* 0 = highest */
  char *region, *zone, *subzone;
  mesh__label_t *labels;
  size_t nlabels;
  int source_health;      /* enum mesh__health */

  /* mutable state: atomics, written by calls and the worker */
  _Atomic int hc_health;          /* active health check verdict */
  _Atomic int64_t ejected_until_ms; /* outlier detection; 0 = not ejected */
  _Atomic uint32_t active_rq;     /* in-flight requests (least request) */
  _Atomic uint64_t ewma_ns;       /* peak EWMA latency, ns (0 = none) */
  _Atomic int64_t ewma_stamp_ns;  /* last EWMA update */
  /* per-part state, typed, created lazily by its part (published with a
   * CAS) and freed with the host through the part's registered ops */
  _Atomic(struct mesh__res_host *) res; /* resilience per-host state, owned */
  _Atomic(struct mesh__pool *) pool;    /* idle connection pool, owned */
} mesh__host_t;

/* How the host frees the state other parts attach to it.  The owning part
 * (resilience) registers its ops once, before it attaches any state; the
 * endpoint model never calls up into that part by name.  Each function is
 * given a non-NULL state. */
typedef struct mesh__host_state_ops {
  void (*res_free)(struct mesh__res_host *res);
  void (*pool_free)(struct mesh__pool *pool);
} mesh__host_state_ops_t;

/** Register the per-host state ops (a static object; process-wide, the
 *  same for every context; registering the same ops again is a no-op). */
void mesh__host_state_ops_set(const mesh__host_state_ops_t *ops);

typedef struct mesh__snapshot {
  _Atomic uint32_t refs;
  uint64_t version;       /* increases with each publish */
  size_t n;
  mesh__host_t **hosts;   /* n hosts, each holding one reference */
  /* Picker state built for this snapshot by svc->prepare_snapshot (lb's,
   * or a stand-in's in tests/test_discovery_static.c), freed by lb_free. */
  void *lb;
  void (*lb_free)(void *lb);
} mesh__snapshot_t;

/* Host lifecycle.  mesh__host_new copies every string. */
mesh__host_t *mesh__host_new(const char *address, uint16_t port);
void mesh__host_ref(mesh__host_t *h);
void mesh__host_unref(mesh__host_t *h);
/** Label value or NULL. */
const char *mesh__host_label(const mesh__host_t *h, const char *key);
/** Usable for picking now: not ejected, not unhealthy/draining. */
bool mesh__host_usable(const mesh__host_t *h, int64_t now_ms);

/* A publication point: one per service.  Readers never block writers or
 * each other: a reader announces itself in the current epoch's counter,
 * loads the pointer, and leaves; the writer swaps the pointer, flips the
 * epoch and waits for the old epoch's readers to drain before it drops its
 * reference (writers are the worker thread; a wait is a few ns). */
typedef struct mesh__snapref {
  _Atomic(mesh__snapshot_t *) cur;
  _Atomic uint32_t epoch;
  _Atomic uint32_t readers[2];
  pthread_mutex_t wmu; /* serializes writers only */
} mesh__snapref_t;

void mesh__snapref_init(mesh__snapref_t *r);
void mesh__snapref_fini(mesh__snapref_t *r);
/** Take a reference to the current snapshot (NULL if none yet). */
mesh__snapshot_t *mesh__snap_acquire(mesh__snapref_t *r);
void mesh__snap_release(mesh__snapshot_t *s);
/** Publish s (takes over the caller's reference). */
void mesh__snap_publish(mesh__snapref_t *r, mesh__snapshot_t *s);

/** A snapshot with room for n hosts (s->n = 0), refs = 1; NULL on OOM. */
mesh__snapshot_t *mesh__snap_new(size_t n);
/** Take one more reference to a snapshot the caller already holds. */
void mesh__snap_ref(mesh__snapshot_t *s);

/* ---- building snapshots from a source's answer ---------------------------
 * An endpoint as a source reports it: strings borrowed from the caller, all
 * fields already validated (see mesh__ep_parse). */
typedef struct mesh__ep {
  const char *address;   /* IP literal or hostname */
  const char *hostname;  /* the name address was resolved from, or NULL */
  uint16_t port;         /* 1..65535 */
  uint32_t weight;       /* >= 1 */
  uint32_t priority;
  const char *region, *zone, *subzone; /* NULL = none */
  const cJSON *labels;   /* object of string values, or NULL */
  int health;            /* enum mesh__health */
} mesh__ep_t;

/** Build the snapshot that follows prev (may be NULL) for eps[0..n).
 *  A host of prev with the same address, port and attributes is reused, so
 *  its live state (active requests, EWMA, ejection, pools) carries over; a
 *  host whose attributes changed is new but inherits the health verdict,
 *  ejection and EWMA.  A repeated address:port keeps its first entry.
 *  Hosts are ordered by address, then port.  O(n) expected (hash index).
 *  @param out      receives the new snapshot (version 0, lb NULL), or NULL
 *                  when the set is identical to prev's.
 *  @return MESH_OK or MESH_ERR_NOMEM (nothing allocated remains). */
int mesh__snap_build(const mesh__snapshot_t *prev, const mesh__ep_t *eps,
                     size_t n, mesh__snapshot_t **out);

#endif /* MESH_ENDPOINT_ENDPOINT_H */

/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — service discovery: the current endpoints of a configured
 * service, and a callback when they change.
 *
 * A service's endpoints come from its "discovery" config (static, file,
 * DNS or etcd; see docs/config/discovery.md).  Each change is published as
 * an immutable set; mesh_endpoints_get() takes the current one without
 * blocking discovery, and the set stays valid, unchanged, until it is
 * freed.  Strings returned by the accessors are borrowed from the set.
 */
#ifndef MESH_DISCOVERY_H
#define MESH_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;

/* Health of an endpoint (Envoy's HealthStatus subset).  UNKNOWN endpoints
 * are used like HEALTHY ones; UNHEALTHY and DRAINING ones are not picked. */
#define MESH_HEALTH_UNKNOWN 0
#define MESH_HEALTH_HEALTHY 1
#define MESH_HEALTH_UNHEALTHY 2
#define MESH_HEALTH_DRAINING 3

/** An immutable set of endpoints of one service (opaque). */
typedef struct mesh_endpoints mesh_endpoints_t;

/** Take the current endpoint set of a configured service.  Never blocks on
 *  discovery: before the first answer the set is empty (version 0).
 *  Thread-safe, lock-free.
 *  @param out  receives a set the caller frees with mesh_endpoints_free().
 *  @return MESH_OK, MESH_ERR_UNKNOWN_SERVICE, MESH_ERR_INVALID_ARG,
 *          MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_endpoints_get(mesh_t *m, const char *service,
                                   mesh_endpoints_t **out, mesh_status_t *st);

/** Another handle on the same set (for keeping one received in a
 *  callback).  @return NULL on NULL or out of memory. */
MESH_EXTERN mesh_endpoints_t *mesh_endpoints_dup(const mesh_endpoints_t *e);

/** Release a set.  NULL is a no-op. */
MESH_EXTERN void mesh_endpoints_free(mesh_endpoints_t *e);

/** Number of endpoints (0 for NULL). */
MESH_EXTERN size_t mesh_endpoints_count(const mesh_endpoints_t *e);

/** Version of the set: increases with each change; 0 = no answer yet. */
MESH_EXTERN uint64_t mesh_endpoints_version(const mesh_endpoints_t *e);

/* Accessors of endpoint i (0 <= i < count).  Endpoints are ordered by
 * address, then port.  An index out of range returns NULL / 0 / -1. */

/** IPv4/IPv6 literal of the endpoint.  A hostname in a static, file or
 *  etcd endpoint is resolved by the library: each of its addresses is an
 *  endpoint of its own (see mesh_endpoint_hostname). */
MESH_EXTERN const char *mesh_endpoint_address(const mesh_endpoints_t *e,
                                              size_t i);
/** The hostname the endpoint's address was resolved from, as the source
 *  gave it; "" when the source gave an IP literal (or a DNS source's
 *  answer); NULL if i is out of range.  Borrowed from e. */
MESH_EXTERN const char *mesh_endpoint_hostname(const mesh_endpoints_t *e,
                                               size_t i);
/** Port (1-65535), 0 if out of range. */
MESH_EXTERN int mesh_endpoint_port(const mesh_endpoints_t *e, size_t i);
/** Load-balancing weight (>= 1), 0 if out of range. */
MESH_EXTERN uint32_t mesh_endpoint_weight(const mesh_endpoints_t *e,
                                          size_t i);
/** Priority (0 = highest), 0 if out of range. */
MESH_EXTERN uint32_t mesh_endpoint_priority(const mesh_endpoints_t *e,
                                            size_t i);
/** Current health (MESH_HEALTH_*): the source's, overridden by an active
 *  health check's verdict when there is one (DRAINING from the source
 *  always wins).  Read live: it may change while the set is held.
 *  -1 if out of range. */
MESH_EXTERN int mesh_endpoint_health(const mesh_endpoints_t *e, size_t i);
/** Locality parts: "" when not set, NULL if out of range. */
MESH_EXTERN const char *mesh_endpoint_region(const mesh_endpoints_t *e,
                                             size_t i);
MESH_EXTERN const char *mesh_endpoint_zone(const mesh_endpoints_t *e,
                                           size_t i);
MESH_EXTERN const char *mesh_endpoint_subzone(const mesh_endpoints_t *e,
                                              size_t i);
/** Number of labels of endpoint i. */
MESH_EXTERN size_t mesh_endpoint_label_count(const mesh_endpoints_t *e,
                                             size_t i);
/** Label j of endpoint i (labels are sorted by key).
 *  @return MESH_OK, or MESH_ERR_INVALID_ARG when out of range. */
MESH_EXTERN int mesh_endpoint_label_at(const mesh_endpoints_t *e, size_t i,
                                       size_t j, const char **key,
                                       const char **value);
/** Value of label `key` on endpoint i, or NULL. */
MESH_EXTERN const char *mesh_endpoint_label(const mesh_endpoints_t *e,
                                            size_t i, const char *key);

/** Wait (at most timeout_ms) until the service's discovery has given its
 *  first answer.  In external-loop mode it does not wait (the caller's
 *  thread drives the loop) and reports the current state.
 *  @return MESH_OK (endpoints known, possibly none), MESH_ERR_DISCOVERY
 *          (the first answer was an error), MESH_ERR_TIMEOUT,
 *          MESH_ERR_UNKNOWN_SERVICE, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_discovery_wait(mesh_t *m, const char *service,
                                    int timeout_ms, mesh_status_t *st);

/** Called after a service's endpoint set changed (and once at
 *  registration when the service already has a set).  Runs on the
 *  library's worker thread (in external-loop mode: inside mesh_process(),
 *  or inside mesh_discovery_watch() for the first call).  `eps` is
 *  borrowed for the duration of the call; keep it with
 *  mesh_endpoints_dup().  The callback may call mesh_endpoints_* and
 *  mesh_discovery_unwatch(), must not block for long, and must not call
 *  mesh_free(). */
typedef void (*mesh_endpoints_fn)(const char *service,
                                  const mesh_endpoints_t *eps, void *user);

/** Register a change callback for a service.  Thread-safe.
 *  @return a watch id (> 0), or MESH_ERR_UNKNOWN_SERVICE,
 *          MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_discovery_watch(mesh_t *m, const char *service,
                                     mesh_endpoints_fn fn, void *user,
                                     mesh_status_t *st);

/** Remove a callback.  When it returns, the callback is not running and
 *  will not run again (unless called from the callback itself).
 *  Thread-safe.  @return MESH_OK or MESH_ERR_NOT_FOUND. */
MESH_EXTERN int mesh_discovery_unwatch(mesh_t *m, int id);

#ifdef __cplusplus
}
#endif
#endif /* MESH_DISCOVERY_H */

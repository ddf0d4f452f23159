/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: a c-ares channel driven by the worker loop (c-ares's
 * second integration tier: socket-state callback + ares_timeout +
 * ares_process_fd), and the resolver settings shared by the DNS source and
 * the resolution of hostnames in static, file and etcd endpoints.
 *
 * Threads: a channel belongs to the loop thread (or to init, before the
 * loop starts).  Query callbacks run inside mesh__ares_* calls and the
 * loop's I/O and timer callbacks. */
#ifndef MESH_DISCOVERY_ARES_LOOP_H
#define MESH_DISCOVERY_ARES_LOOP_H

/* c-ares 1.28+ (Debian 13) deprecates ares_parse_*_reply, which we use
 * while bookworm's 1.18 lacks the replacement (ares_dns_parse). */
#define CARES_NO_DEPRECATED
#include <ares.h>
#include <cjson/cJSON.h>

#include "core/core.h"

#define MESH__DNS_MIN_TTL_DEFAULT_MS 5000
#define MESH__DNS_MAX_TTL_DEFAULT_MS 300000
#define MESH__DNS_TIMEOUT_DEFAULT_MS 5000

/* Resolver settings of one service (validated by mesh__dns_cfg_check). */
typedef struct mesh__dns_cfg {
  const cJSON *servers; /* array of "ip[:port]" (borrowed); NULL: system */
  int64_t min_ttl_ms, max_ttl_ms, timeout_ms;
} mesh__dns_cfg_t;

/** Validate "servers", "min_ttl_ms", "max_ttl_ms" and "timeout_ms" of obj
 *  (other keys are the caller's business). */
void mesh__dns_cfg_check(mesh__cfg_t *c, const cJSON *obj, const char *path);
/** Read the settings of a validated obj (NULL: every default). */
void mesh__dns_cfg_read(const cJSON *obj, mesh__dns_cfg_t *out);
/** Delay until the next resolution after an answer whose smallest TTL is
 *  ttl_s (UINT32_MAX: no records), clamped to [min_ttl_ms, max_ttl_ms]. */
int64_t mesh__dns_refresh_ms(const mesh__dns_cfg_t *cfg, uint32_t ttl_s);
/** Delay after the failures-th consecutive failure (failures >= 1):
 *  exponential from min_ttl_ms, capped at min(max_ttl_ms, 10 x min_ttl_ms)
 *  (Envoy's dns_failure_refresh_rate), +-20% jitter. */
int64_t mesh__dns_retry_ms(const mesh__dns_cfg_t *cfg, unsigned failures);

typedef struct mesh__ares mesh__ares_t;

/** A channel for cfg on m's loop: two tries per query (per-try timeout
 *  timeout_ms / 3, doubled by c-ares for the second), EDNS, cfg's servers
 *  or /etc/resolv.conf.  service and source (static strings or strings
 *  that outlive the channel) name it in logs; what names the settings in
 *  errors ("services.x.discovery.resolver").
 *  @return MESH_OK, MESH_ERR_NOMEM, MESH_ERR_CONFIG (servers refused),
 *          MESH_ERR_DISCOVERY (c-ares could not start). */
int mesh__ares_new(mesh_t *m, const mesh__dns_cfg_t *cfg, const char *service,
                   const char *source, const char *what, mesh__ares_t **out,
                   mesh_status_t *st);
/** The channel, to issue queries on. */
ares_channel mesh__ares_channel(mesh__ares_t *a);
/** Re-arm the timeout timer after queries were issued outside a loop
 *  callback (answers processed by the loop re-arm it themselves). */
void mesh__ares_kick(mesh__ares_t *a);

/** The address of one answer node as text (out: INET6_ADDRSTRLEN bytes);
 *  false for a node that is neither IPv4 nor IPv6. */
bool mesh__ares_node_text(const struct ares_addrinfo_node *p, char *out);
/** The smaller of ttl and every CNAME's TTL on the way to the answer. */
uint32_t mesh__ares_cname_ttl(const struct ares_addrinfo *ai, uint32_t ttl);
/** Destroy the channel: pending callbacks run with ARES_EDESTRUCTION
 *  (and must not issue queries).  NULL is a no-op. */
void mesh__ares_free(mesh__ares_t *a);

#endif /* MESH_DISCOVERY_ARES_LOOP_H */

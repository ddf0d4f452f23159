/* SPDX-License-Identifier: Apache-2.0 */
/* The public endpoint-set accessors (mesh_endpoints_*, mesh_endpoint_*): a
 * mesh_endpoints_t holds one reference to a published snapshot and reads
 * it; mesh_endpoints_get() itself is in discovery.c. */
#include "discovery/discovery.h"

#include <mesh/discovery.h>

#include <stdlib.h>

mesh_endpoints_t *mesh_endpoints_dup(const mesh_endpoints_t *e) {
  if (!e)
    return NULL;
  mesh_endpoints_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->s = e->s;
  mesh__snap_ref(c->s);
  return c;
}

void mesh_endpoints_free(mesh_endpoints_t *e) {
  if (!e)
    return;
  mesh__snap_release(e->s);
  free(e);
}

size_t mesh_endpoints_count(const mesh_endpoints_t *e) {
  return e && e->s ? e->s->n : 0;
}

uint64_t mesh_endpoints_version(const mesh_endpoints_t *e) {
  return e && e->s ? e->s->version : 0;
}

static const mesh__host_t *host_at(const mesh_endpoints_t *e, size_t i) {
  return e && e->s && i < e->s->n ? e->s->hosts[i] : NULL;
}

const char *mesh_endpoint_address(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? h->address : NULL;
}

const char *mesh_endpoint_hostname(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? (h->hostname ? h->hostname : "") : NULL;
}

int mesh_endpoint_port(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? h->port : 0;
}

uint32_t mesh_endpoint_weight(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? h->weight : 0;
}

uint32_t mesh_endpoint_priority(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? h->priority : 0;
}

int mesh_endpoint_health(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  if (!h)
    return -1;
  if (h->source_health == MESH__HEALTH_DRAINING)
    return MESH_HEALTH_DRAINING;
  int hc = atomic_load(&h->hc_health);
  return hc != MESH__HEALTH_UNKNOWN ? hc : h->source_health;
}

static const char *or_empty(const char *s) { return s ? s : ""; }

const char *mesh_endpoint_region(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? or_empty(h->region) : NULL;
}

const char *mesh_endpoint_zone(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? or_empty(h->zone) : NULL;
}

const char *mesh_endpoint_subzone(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? or_empty(h->subzone) : NULL;
}

size_t mesh_endpoint_label_count(const mesh_endpoints_t *e, size_t i) {
  const mesh__host_t *h = host_at(e, i);
  return h ? h->nlabels : 0;
}

int mesh_endpoint_label_at(const mesh_endpoints_t *e, size_t i, size_t j,
                           const char **key, const char **value) {
  const mesh__host_t *h = host_at(e, i);
  if (!h || j >= h->nlabels)
    return MESH_ERR_INVALID_ARG;
  if (key)
    *key = h->labels[j].key;
  if (value)
    *value = h->labels[j].value;
  return MESH_OK;
}

const char *mesh_endpoint_label(const mesh_endpoints_t *e, size_t i,
                                const char *key) {
  return mesh__host_label(host_at(e, i), key);
}

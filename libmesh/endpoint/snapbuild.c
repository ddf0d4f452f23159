/* SPDX-License-Identifier: Apache-2.0 */
/* Building the next snapshot from a source's answer.  Hosts are matched to
 * the previous snapshot through a hash index keyed by address and port, so
 * an update of n endpoints costs O(n) and unchanged hosts keep their state. */
#include "endpoint/endpoint.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
  uint64_t hash; /* 0 = empty (hash_key never returns 0) */
  mesh__host_t *h;
} slot_t;

typedef struct index_ {
  slot_t *v;
  size_t mask;
} index_t;

static uint64_t hash_key(const char *address, uint16_t port) {
  uint64_t x = 1469598103934665603ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)address; *p; p++) {
    x ^= *p;
    x *= 1099511628211ull;
  }
  x ^= port;
  x *= 1099511628211ull;
  x ^= x >> 29;
  return x ? x : 1;
}

static int index_init(index_t *ix, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  ix->v = calloc(cap, sizeof *ix->v);
  ix->mask = cap - 1;
  return ix->v ? MESH_OK : MESH_ERR_NOMEM;
}

/* The slot holding address:port, or the empty slot where it would go. */
static slot_t *index_find(const index_t *ix, uint64_t hash, const char *address,
                          uint16_t port) {
  for (size_t i = hash & ix->mask;; i = (i + 1) & ix->mask) {
    slot_t *s = &ix->v[i];
    if (s->hash == 0)
      return s;
    if (s->hash == hash && s->h->port == port &&
        strcmp(s->h->address, address) == 0)
      return s;
  }
}

static bool str_eq(const char *a, const char *b) {
  if (!a || !*a)
    return !b || !*b;
  return b && strcmp(a, b) == 0;
}

static bool labels_eq(const mesh__host_t *h, const cJSON *labels) {
  size_t n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, labels) {
    const char *v = mesh__host_label(h, it->string);
    if (!v || !cJSON_IsString(it) || strcmp(v, it->valuestring) != 0)
      return false;
    n++;
  }
  return n == h->nlabels;
}

static bool attrs_eq(const mesh__host_t *h, const mesh__ep_t *e) {
  return h->weight == e->weight && h->priority == e->priority &&
         h->source_health == e->health && str_eq(h->hostname, e->hostname) &&
         str_eq(h->region, e->region) &&
         str_eq(h->zone, e->zone) && str_eq(h->subzone, e->subzone) &&
         labels_eq(h, e->labels);
}

static int cmp_label(const void *a, const void *b) {
  const mesh__label_t *x = a, *y = b;
  return strcmp(x->key, y->key);
}

static char *dup_opt(const char *s, bool *oom) {
  if (!s || !*s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *oom = true;
  return d;
}

static bool host_set_labels(mesh__host_t *h, const cJSON *labels) {
  size_t n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, labels) if (cJSON_IsString(it)) n++;
  if (n == 0)
    return true;
  h->labels = calloc(n, sizeof *h->labels);
  if (!h->labels)
    return false;
  cJSON_ArrayForEach(it, labels) {
    if (!cJSON_IsString(it))
      continue;
    mesh__label_t *l = &h->labels[h->nlabels++];
    l->key = strdup(it->string);
    l->value = strdup(it->valuestring);
    if (!l->key || !l->value)
      return false;
  }
  qsort(h->labels, h->nlabels, sizeof *h->labels, cmp_label);
  return true;
}

static mesh__host_t *host_from_ep(const mesh__ep_t *e) {
  mesh__host_t *h = mesh__host_new(e->address, e->port);
  if (!h)
    return NULL;
  bool oom = false;
  h->weight = e->weight ? e->weight : 1;
  h->priority = e->priority;
  h->source_health = e->health;
  h->hostname = dup_opt(e->hostname, &oom);
  h->region = dup_opt(e->region, &oom);
  h->zone = dup_opt(e->zone, &oom);
  h->subzone = dup_opt(e->subzone, &oom);
  if (oom || !host_set_labels(h, e->labels)) {
    mesh__host_unref(h);
    return NULL;
  }
  return h;
}

/* A changed host replaces an old one at the same address: keep what the
 * health checker, outlier detector and latency tracker learned about it. */
static void host_inherit(mesh__host_t *h, const mesh__host_t *old) {
  atomic_store(&h->hc_health, atomic_load(&old->hc_health));
  atomic_store(&h->ejected_until_ms, atomic_load(&old->ejected_until_ms));
  atomic_store(&h->ewma_ns, atomic_load(&old->ewma_ns));
  atomic_store(&h->ewma_stamp_ns, atomic_load(&old->ewma_stamp_ns));
}

/* Sort key: the first 8 bytes of the address, big-endian and zero-padded,
 * compare like strcmp on those bytes without touching the host.  Ties
 * (common: "10.0.12.x") fall back to the full comparison. */
typedef struct skey {
  uint64_t pre;
  mesh__host_t *h;
} skey_t;

static uint64_t prefix8(const char *s) {
  uint64_t x = 0;
  int i = 0;
  for (; i < 8 && s[i]; i++)
    x = (x << 8) | (unsigned char)s[i];
  return x << (8 * (8 - i));
}

static int cmp_host(const mesh__host_t *x, const mesh__host_t *y) {
  int r = strcmp(x->address, y->address);
  if (r)
    return r;
  return (x->port > y->port) - (x->port < y->port);
}

static int cmp_skey(const void *a, const void *b) {
  const skey_t *x = a, *y = b;
  if (x->pre != y->pre)
    return x->pre < y->pre ? -1 : 1;
  return cmp_host(x->h, y->h);
}

/* Sort hosts[0..n) by address, then port. */
static int sort_hosts(mesh__host_t **hosts, size_t n) {
  if (n < 2)
    return MESH_OK;
  skey_t *k = malloc(n * sizeof *k);
  if (!k)
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    k[i].pre = prefix8(hosts[i]->address);
    k[i].h = hosts[i];
  }
  qsort(k, n, sizeof *k, cmp_skey);
  for (size_t i = 0; i < n; i++)
    hosts[i] = k[i].h;
  free(k);
  return MESH_OK;
}

/* Add one endpoint to s (unless its address:port is already there).
 * Hosts not taken from prev are also listed in fresh[]. */
static int add_ep(mesh__snapshot_t *s, index_t *seen, const index_t *old,
                  const mesh__ep_t *e, mesh__host_t **fresh, size_t *nfresh) {
  uint64_t hash = hash_key(e->address, e->port);
  slot_t *dup = index_find(seen, hash, e->address, e->port);
  if (dup->hash)
    return MESH_OK;
  mesh__host_t *prev = NULL;
  if (old->v) {
    slot_t *o = index_find(old, hash, e->address, e->port);
    prev = o->hash ? o->h : NULL;
  }
  mesh__host_t *h;
  if (prev && attrs_eq(prev, e)) {
    h = prev;
    mesh__host_ref(h);
  } else {
    h = host_from_ep(e);
    if (!h)
      return MESH_ERR_NOMEM;
    if (prev)
      host_inherit(h, prev);
    fresh[(*nfresh)++] = h;
  }
  dup->hash = hash;
  dup->h = h;
  s->hosts[s->n++] = h;
  return MESH_OK;
}

/* Order s->hosts.  The hosts kept from prev are already in order (prev is
 * sorted): only the fresh ones are sorted, then the two runs are merged,
 * so a small change to a large set costs O(n + k log k). */
static int order_hosts(mesh__snapshot_t *s, const mesh__snapshot_t *prev,
                       const index_t *seen, const uint64_t *prev_hash,
                       mesh__host_t **fresh, size_t nfresh) {
  if (!prev || nfresh * 4 > s->n)
    return sort_hosts(s->hosts, s->n);
  int rc = sort_hosts(fresh, nfresh);
  if (rc != MESH_OK)
    return rc;
  size_t o = 0, f = 0;
  for (size_t i = 0; i < prev->n; i++) {
    mesh__host_t *p = prev->hosts[i];
    slot_t *sl = index_find(seen, prev_hash[i], p->address, p->port);
    if (!sl->hash || sl->h != p)
      continue; /* dropped or replaced */
    while (f < nfresh && cmp_host(fresh[f], p) < 0)
      s->hosts[o++] = fresh[f++];
    s->hosts[o++] = p;
  }
  while (f < nfresh)
    s->hosts[o++] = fresh[f++];
  return o == s->n ? MESH_OK : MESH_ERR_INTERNAL;
}

int mesh__snap_build(const mesh__snapshot_t *prev, const mesh__ep_t *eps,
                     size_t n, mesh__snapshot_t **out) {
  *out = NULL;
  if (n > 0 && !eps)
    return MESH_ERR_INVALID_ARG;
  index_t old = {0}, seen = {0};
  size_t prev_n = prev ? prev->n : 0, nfresh = 0;
  int rc = MESH_OK;
  mesh__snapshot_t *s = mesh__snap_new(n);
  mesh__host_t **fresh = malloc((n ? n : 1) * sizeof *fresh);
  uint64_t *prev_hash = malloc((prev_n ? prev_n : 1) * sizeof *prev_hash);
  if (!s || !fresh || !prev_hash || index_init(&seen, n) != MESH_OK)
    rc = MESH_ERR_NOMEM;
  if (rc == MESH_OK && prev_n > 0) {
    rc = index_init(&old, prev_n);
    for (size_t i = 0; rc == MESH_OK && i < prev_n; i++) {
      mesh__host_t *h = prev->hosts[i];
      prev_hash[i] = hash_key(h->address, h->port);
      slot_t *sl = index_find(&old, prev_hash[i], h->address, h->port);
      sl->hash = prev_hash[i];
      sl->h = h;
    }
  }
  for (size_t i = 0; rc == MESH_OK && i < n; i++)
    rc = add_ep(s, &seen, &old, &eps[i], fresh, &nfresh);
  bool same = rc == MESH_OK && prev && nfresh == 0 && s->n == prev_n;
  if (rc == MESH_OK && !same)
    rc = order_hosts(s, prev, &seen, prev_hash, fresh, nfresh);
  free(old.v);
  free(seen.v);
  free(fresh);
  free(prev_hash);
  if (rc != MESH_OK || same) {
    /* Same hosts with the same attributes: nothing to publish. */
    mesh__snap_release(s);
    return rc;
  }
  *out = s;
  return MESH_OK;
}

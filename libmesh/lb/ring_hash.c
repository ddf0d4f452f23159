/* SPDX-License-Identifier: Apache-2.0 */
/* Ring hash ("ketama"), placed like Envoy's RingHashLoadBalancer so that
 * Envoy sidecars and libmesh clients send a key to the same host:
 *  - host hash key: the address as Envoy prints it, "10.0.0.1:8080" or
 *    "[2001:db8::1]:8080" (a hostname endpoint uses "name:port");
 *  - entry i of a host hashes "<key>_<i>" with xxHash64, seed 0;
 *  - weights normalized to sum 1; scale = min(ceil(min_w * min_size) /
 *    min_w, max_size); hosts take entries while a running sum of
 *    scale * w stays ahead (Envoy's exact arithmetic, in doubles);
 *  - the ring is sorted by hash; a request hash h goes to the first entry
 *    with hash >= h, wrapping to the first entry.
 * Differences (see docs/config/lb.md): the ring covers every host of the
 * priority level, and an unusable host is skipped by walking clockwise to
 * the next usable entry — Envoy rebuilds its ring without the host instead,
 * which also moves a few keys between the remaining hosts. */
#include "lb/lb.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t mesh__lb_host_key(const mesh__host_t *h, char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN];
  int n;
  if (h->resolved && h->sa.ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&h->sa;
    if (!inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip))
      return 0;
    n = snprintf(buf, size, "[%s]:%u", ip, (unsigned)h->port);
  } else if (h->resolved && h->sa.ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&h->sa;
    if (!inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip))
      return 0;
    n = snprintf(buf, size, "%s:%u", ip, (unsigned)h->port);
  } else {
    n = snprintf(buf, size, "%s:%u", h->address, (unsigned)h->port);
  }
  if (n < 0 || (size_t)n >= size)
    return 0;
  return (size_t)n;
}

static int cmp_entry(const void *a, const void *b) {
  const mesh__lb_ring_entry_t *x = a, *y = b;
  if (x->hash != y->hash)
    return x->hash < y->hash ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Envoy's ring size for these normalized weights. */
static double ring_scale(const double *norm, uint32_t n, uint64_t min_size,
                         uint64_t max_size) {
  double min_w = 1.0;
  for (uint32_t i = 0; i < n; i++)
    if (norm[i] > 0 && norm[i] < min_w)
      min_w = norm[i];
  double scale = ceil(min_w * (double)min_size) / min_w;
  return scale < (double)max_size ? scale : (double)max_size;
}

int mesh__ring_build(mesh__lb_pool_t *p, const double *norm, uint64_t min_size,
                     uint64_t max_size) {
  if (p->n == 0)
    return MESH_OK;
  double scale = ring_scale(norm, p->n, min_size, max_size);
  size_t cap = (size_t)ceil(scale) + p->n + 1; /* rounding slack */
  p->ring = malloc(sizeof *p->ring * cap);
  if (!p->ring)
    return MESH_ERR_NOMEM;
  char key[320];
  double current = 0.0, target = 0.0;
  size_t len = 0;
  for (uint32_t h = 0; h < p->n; h++) {
    if (norm[h] <= 0)
      continue;
    size_t klen = mesh__lb_host_key(p->hosts[h], key, sizeof key - 24);
    if (klen == 0)
      continue; /* cannot happen with sane addresses; host left off */
    key[klen++] = '_';
    target += scale * norm[h];
    for (uint64_t i = 0; current < target && len < cap; i++) {
      int d = snprintf(key + klen, sizeof key - klen, "%llu",
                       (unsigned long long)i);
      p->ring[len].hash = mesh__xxh64(key, klen + (size_t)d, 0);
      p->ring[len].idx = h;
      len++;
      current += 1.0;
    }
  }
  qsort(p->ring, len, sizeof *p->ring, cmp_entry);
  p->nring = len;
  return MESH_OK;
}

size_t mesh__ring_find(const mesh__lb_pool_t *p, uint64_t hash) {
  size_t lo = 0, hi = p->nring;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->ring[mid].hash < hash)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo == p->nring ? 0 : lo;
}

mesh__host_t *mesh__ring_pick(const mesh__lb_pool_t *p, uint64_t hash,
                              const mesh__lb_ctx_t *ctx, int64_t now_ms,
                              bool need_usable, bool need_fresh) {
  if (p->nring == 0)
    return NULL;
  size_t at = mesh__ring_find(p, hash);
  for (size_t k = 0; k < p->nring; k++) {
    mesh__host_t *h = p->hosts[p->ring[(at + k) % p->nring].idx];
    if (mesh__lb_acceptable(h, ctx, now_ms, need_usable, need_fresh))
      return h;
  }
  return NULL;
}

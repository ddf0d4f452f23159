/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the test_lb_* programs: snapshots from endpoint tables, a
 * service built from a JSON service object, counting picks, and the
 * chi-square bound.  Header-only (static functions); each test binary
 * includes it once. */
#ifndef MESH_TESTS_TEST_LB_UTIL_H
#define MESH_TESTS_TEST_LB_UTIL_H

#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/lb.h"

/* RNG seed of every statistical test: fixed, so results are reproducible;
 * the bounds are wide enough (p = 0.001) that any seed passes. */
#define TLB_SEED 20240601u

typedef struct tlb_ep {
  const char *address;
  uint16_t port;
  uint32_t weight;   /* 0 = 1 */
  uint32_t priority;
  const char *region, *zone;
  const char *labels; /* JSON object or NULL */
} tlb_ep_t;

/* A snapshot of eps (hosts sorted by address, then port, by discovery). */
static inline mesh__snapshot_t *tlb_snap(const tlb_ep_t *eps, size_t n) {
  mesh__ep_t *v = calloc(n ? n : 1, sizeof *v);
  cJSON **labels = calloc(n ? n : 1, sizeof *labels);
  for (size_t i = 0; i < n; i++) {
    v[i].address = eps[i].address;
    v[i].port = eps[i].port;
    v[i].weight = eps[i].weight ? eps[i].weight : 1;
    v[i].priority = eps[i].priority;
    v[i].region = eps[i].region;
    v[i].zone = eps[i].zone;
    v[i].health = MESH__HEALTH_HEALTHY;
    if (eps[i].labels) {
      labels[i] = cJSON_Parse(eps[i].labels);
      v[i].labels = labels[i];
    }
  }
  mesh__snapshot_t *s = NULL;
  int rc = mesh__snap_build(NULL, v, n, &s);
  for (size_t i = 0; i < n; i++)
    cJSON_Delete(labels[i]);
  free(labels);
  free(v);
  return rc == MESH_OK ? s : NULL;
}

/* n hosts 10.0.<i/250>.<i%250 + 1>:8080, weight 1, priority 0. */
static inline mesh__snapshot_t *tlb_snap_n(size_t n) {
  tlb_ep_t *eps = calloc(n, sizeof *eps);
  char (*addr)[32] = calloc(n, 32);
  for (size_t i = 0; i < n; i++) {
    snprintf(addr[i], 32, "127.10.%zu.%zu", i / 250, i % 250 + 1);
    eps[i] = (tlb_ep_t){.address = addr[i], .port = 8080};
  }
  mesh__snapshot_t *s = tlb_snap(eps, n);
  free(addr);
  free(eps);
  return s;
}

/* A service named "svc" from a JSON service object, with an optional
 * top-level "locality" object; validated with the part's own check. */
typedef struct tlb_svc {
  mesh__service_t svc;
  struct mesh_ctx m;
  cJSON *cfg, *root;
} tlb_svc_t;

static inline tlb_svc_t *tlb_svc(const char *svc_json, const char *locality_json) {
  tlb_svc_t *t = calloc(1, sizeof *t);
  t->cfg = cJSON_Parse(svc_json ? svc_json : "{}");
  t->root = cJSON_CreateObject();
  if (locality_json)
    cJSON_AddItemToObject(t->root, "locality", cJSON_Parse(locality_json));
  t->m.config = t->root;
  t->svc.name = "svc";
  t->svc.cfg = t->cfg;
  mesh__cfg_t c = {0};
  mesh__lb_svc_part.check(&c, cJSON_GetObjectItem(t->cfg, "lb"), "lb");
  mesh__subsets_svc_part.check(&c, cJSON_GetObjectItem(t->cfg, "subsets"),
                               "subsets");
  mesh__split_svc_part.check(&c, cJSON_GetObjectItem(t->cfg, "split"),
                             "split");
  mesh_status_t st;
  if (c.nerr || mesh__lb_svc_part.init(&t->m, &t->svc, NULL, &st) != MESH_OK) {
    fprintf(stderr, "tlb_svc: bad config %s\n", svc_json);
    cJSON_Delete(t->cfg);
    cJSON_Delete(t->root);
    free(t);
    return NULL;
  }
  return t;
}

static inline void tlb_svc_free(tlb_svc_t *t) {
  if (!t)
    return;
  mesh__lb_svc_part.fini(&t->m, &t->svc);
  cJSON_Delete(t->cfg);
  cJSON_Delete(t->root);
  free(t);
}

static inline int tlb_index(const mesh__snapshot_t *s, const mesh__host_t *h) {
  for (size_t i = 0; i < s->n; i++)
    if (s->hosts[i] == h)
      return (int)i;
  return -1;
}

static inline mesh__host_t *tlb_find(const mesh__snapshot_t *s, const char *addr,
                              uint16_t port) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->hosts[i]->address, addr) && s->hosts[i]->port == port)
      return s->hosts[i];
  return NULL;
}

/* picks times into counts[snapshot index]; returns the number of failed
 * picks. */
static inline int tlb_count(tlb_svc_t *t, mesh__snapshot_t *s,
                     const mesh__lb_ctx_t *ctx, int picks, unsigned *counts) {
  int fails = 0;
  memset(counts, 0, sizeof *counts * s->n);
  for (int i = 0; i < picks; i++) {
    mesh__host_t *h = NULL;
    if (mesh__lb_pick(&t->svc, s, ctx, &h) != MESH_OK || !h) {
      fails++;
      continue;
    }
    int k = tlb_index(s, h);
    if (k < 0)
      fails++;
    else
      counts[k]++;
  }
  return fails;
}

/* Chi-square statistic of counts against expected shares (weights). */
static inline double tlb_chi2(const unsigned *counts, const double *weights,
                       size_t k) {
  double total = 0, wsum = 0, chi = 0;
  for (size_t i = 0; i < k; i++) {
    total += counts[i];
    wsum += weights[i];
  }
  for (size_t i = 0; i < k; i++) {
    double e = total * weights[i] / wsum;
    if (e > 0)
      chi += (counts[i] - e) * (counts[i] - e) / e;
    else if (counts[i] > 0)
      return INFINITY;
  }
  return chi;
}

/* Critical value of chi-square with df degrees of freedom at p = 0.001
 * (Wilson-Hilferty; within 1% of the tables for df >= 1). */
static inline double tlb_chi2_crit(size_t df) {
  double d = (double)df, z = 3.0902;
  double t = 1.0 - 2.0 / (9.0 * d) + z * sqrt(2.0 / (9.0 * d));
  return d * t * t * t;
}

#define TLB_ASSERT_CHI2(counts, weights, k)                                    \
  do {                                                                         \
    double chi_ = tlb_chi2((counts), (weights), (k));                          \
    double crit_ = tlb_chi2_crit((k) - 1);                                     \
    if (!(chi_ < crit_))                                                       \
      fprintf(stderr, "chi2 %.2f >= %.2f (df %zu) at %s:%d\n", chi_, crit_,    \
              (size_t)(k) - 1, __FILE__, __LINE__);                            \
    CU_ASSERT(chi_ < crit_);                                                   \
  } while (0)

static inline void tlb_set_health(mesh__host_t *h, int health) {
  atomic_store(&h->hc_health, health);
}

#endif

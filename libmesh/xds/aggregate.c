/* SPDX-License-Identifier: Apache-2.0 */
/* Aggregate clusters (gRFC A37, Envoy's envoy.clusters.aggregate): a
 * cluster whose ClusterConfig lists other clusters in priority order.
 *
 * The graph check runs when a Cluster is accepted (ads.c): with the new
 * resource in place of its cached version, the aggregate graph must have
 * no loop and no chain longer than 16 clusters (gRPC's limit: the root at
 * depth 0, a cluster at depth 16 is refused); otherwise the resource is
 * refused (NACK) and the last good one stays.  O(clusters + children):
 * each cluster's height is computed once, and the walk never goes deeper
 * than the limit.
 *
 * The flattening runs when a service is applied (apply.c): the leaves
 * (EDS clusters) depth first, each once (its first occurrence), and their
 * endpoints as one priority list: the first leaf's priorities, then the
 * second's after them, and so on, so the lb priority picker fails over
 * from one underlying cluster to the next as A37 describes.  A LOGICAL_DNS
 * leaf (logical_dns.c) takes its place like an EDS one: one priority
 * with its resolved host, none while its name has no address. */
#include <stdlib.h>
#include <string.h>

#include "xds/xds.h"
#include "xds/xds_int.h"

#define MAX_CHAIN 16 /* clusters on one root-to-leaf path */

typedef struct graph {
  const mesh__xds_cds_t **v; /* the clusters, the new one in place */
  size_t n;
  unsigned char *state;      /* 0 new, 1 on the walk, 2 done */
  unsigned *height;          /* clusters on the longest path down */
  const char *bad;           /* where the loop or depth was found */
  bool loop;
} graph_t;

static long node(const graph_t *g, const char *name) {
  for (size_t i = 0; i < g->n; i++)
    if (strcmp(g->v[i]->name, name) == 0)
      return (long)i;
  return -1;
}

/* The height of v (1 for a leaf or an unknown child), or 0 after a loop
 * or a path of more than MAX_CHAIN clusters (g->bad says where). */
static unsigned walk(graph_t *g, size_t v, unsigned depth) {
  if (g->state[v] == 2)
    return g->height[v];
  if (g->state[v] == 1) {
    g->loop = true;
    g->bad = g->v[v]->name;
    return 0;
  }
  if (depth >= MAX_CHAIN) {
    g->bad = g->v[v]->name;
    return 0;
  }
  g->state[v] = 1;
  unsigned h = 1;
  const mesh__xds_cds_t *c = g->v[v];
  for (size_t k = 0; c->kind == MESH__XDS_CLUSTER_AGGREGATE && k < c->nchildren; k++) {
    long w = node(g, c->children[k]);
    unsigned ch = w < 0 ? 1 : walk(g, (size_t)w, depth + 1);
    if (!ch)
      return 0;
    if (ch + 1 > h)
      h = ch + 1;
  }
  g->state[v] = 2;
  g->height[v] = h;
  if (h > MAX_CHAIN) {
    g->bad = c->name;
    return 0;
  }
  return h;
}

int mesh__xds_agg_check(const mesh__xds_cds_t *c, const mesh__xds_cds_t **all,
                        size_t n, mesh_status_t *st) {
  if (!c)
    return MESH_OK;
  graph_t g = {0};
  g.v = calloc(n + 1, sizeof *g.v);
  g.state = calloc(n + 1, 1);
  g.height = calloc(n + 1, sizeof *g.height);
  int rc = MESH_OK;
  if (!g.v || !g.state || !g.height) {
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    if (all[i] && strcmp(all[i]->name, c->name) != 0)
      g.v[g.n++] = all[i];
  g.v[g.n++] = c;
  for (size_t i = 0; i < g.n && !g.bad; i++)
    walk(&g, i, 0);
  if (g.bad && g.loop)
    rc = mesh__fail(st, MESH_ERR_CONFIG, "cluster \"%.100s\": aggregate "
                    "clusters form a loop (through \"%.100s\")", c->name,
                    g.bad);
  else if (g.bad)
    rc = mesh__fail(st, MESH_ERR_CONFIG, "cluster \"%.100s\": aggregate "
                    "clusters nested deeper than %d (at \"%.100s\")",
                    c->name, MAX_CHAIN, g.bad);
out:
  free(g.v);
  free(g.state);
  free(g.height);
  return rc;
}

/* ---- flattening (apply) --------------------------------------------------*/

typedef struct flat {
  const mesh__xds_ads_t *a;
  const char **leaves;
  size_t n, cap;
  char *note;
  size_t note_cap;
} flat_t;

/* Depth first; false (f->note set) when a cluster has not arrived. */
static bool leaves(flat_t *f, const char *name, unsigned depth) {
  const mesh__xds_cds_t *c = mesh__xds_ads_cached(f->a, MESH__XDS_T_CDS, name);
  if (!c) {
    snprintf(f->note, f->note_cap, "aggregate: cluster \"%.100s\": waiting "
             "for CDS", name);
    return false;
  }
  if (c->kind != MESH__XDS_CLUSTER_AGGREGATE) { /* EDS or LOGICAL_DNS */
    for (size_t i = 0; i < f->n; i++)
      if (strcmp(f->leaves[i], name) == 0)
        return true; /* its first occurrence counts */
    if (f->n == f->cap) {
      size_t cap = f->cap ? f->cap * 2 : 8;
      const char **v = realloc(f->leaves, cap * sizeof *v);
      if (!v) {
        snprintf(f->note, f->note_cap, "aggregate: out of memory");
        return false;
      }
      f->leaves = v;
      f->cap = cap;
    }
    f->leaves[f->n++] = c->name;
    return true;
  }
  /* the graph check refused loops and depth: this bound only guards */
  for (size_t k = 0; depth < MAX_CHAIN && k < c->nchildren; k++)
    if (!leaves(f, c->children[k], depth + 1))
      return false;
  return true;
}

/* Leaf i's endpoints: an EDS cluster's, or a LOGICAL_DNS cluster's one
 * host in *one; false (note set) while not there yet. */
static bool leaf_eps(const mesh__xds_ads_t *a, const mesh__xds_ldns_t *dns,
                     const mesh__xds_cds_t *c, mesh__ep_t *one,
                     const mesh__ep_t **eps, size_t *n, uint32_t *nprio,
                     char *note, size_t cap) {
  if (c->kind == MESH__XDS_CLUSTER_LOGICAL_DNS) {
    if (mesh__xds_ldns_endpoint(dns, c, one, n, note, cap) != MESH_OK)
      return false;
    *eps = one;
    *nprio = *n ? 1 : 0;
    return true;
  }
  const mesh__xds_eds_t *e = mesh__xds_ads_cached(a, MESH__XDS_T_EDS, c->eds_name);
  if (!e) {
    snprintf(note, cap, "aggregate: cluster \"%.100s\": waiting for EDS",
             c->name);
    return false;
  }
  *eps = e->eps;
  *n = e->n;
  *nprio = e->npriorities;
  return true;
}

int mesh__xds_agg_flatten(const mesh__xds_ads_t *a, const mesh__xds_ldns_t *dns,
                          const char *name,
                          mesh__ep_t **eps, size_t *n,
                          const mesh__xds_cds_t **first, char *note,
                          size_t note_cap) {
  flat_t f = {.a = a, .note = note, .note_cap = note_cap};
  *eps = NULL;
  *n = 0;
  *first = NULL;
  if (!leaves(&f, name, 0)) {
    free(f.leaves);
    return MESH_ERR_NOT_FOUND;
  }
  size_t total = 0;
  mesh__ep_t one;
  const mesh__ep_t *le;
  size_t ln;
  uint32_t np;
  for (size_t i = 0; i < f.n; i++) {
    const mesh__xds_cds_t *c = mesh__xds_ads_cached(a, MESH__XDS_T_CDS, f.leaves[i]);
    if (!leaf_eps(a, dns, c, &one, &le, &ln, &np, note, note_cap)) {
      free(f.leaves);
      return MESH_ERR_NOT_FOUND;
    }
    total += ln;
  }
  mesh__ep_t *v = malloc(sizeof *v * (total ? total : 1));
  if (!v || !f.n) {
    free(v);
    snprintf(note, note_cap, "aggregate: %s", f.n ? "out of memory"
             : "no underlying cluster");
    free(f.leaves);
    return f.n ? MESH_ERR_NOMEM : MESH_ERR_NOT_FOUND;
  }
  uint32_t base = 0;
  size_t k = 0;
  for (size_t i = 0; i < f.n; i++) {
    const mesh__xds_cds_t *c = mesh__xds_ads_cached(a, MESH__XDS_T_CDS, f.leaves[i]);
    leaf_eps(a, dns, c, &one, &le, &ln, &np, note, note_cap);
    for (size_t j = 0; j < ln; j++) {
      v[k] = le[j];
      v[k++].priority += base;
    }
    base += np;
    if (i == 0)
      *first = c;
  }
  free(f.leaves);
  *eps = v;
  *n = k;
  return MESH_OK;
}

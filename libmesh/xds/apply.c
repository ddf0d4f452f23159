/* SPDX-License-Identifier: Apache-2.0 */
/* What the ADS cache says for one service, applied to the parts below:
 * the clusters it reaches (its CDS root, or its LDS root's route with a
 * weighted split among clusters, as Istio canaries are), each cluster's
 * settings (CDS: lb policy, outlier detection, circuit breakers, connect
 * timeout: each cluster of a split keeps its own, as in Envoy) and
 * endpoints (EDS).  Run on the loop thread after every
 * response (part.c), under the session's lock.
 *
 * Atomic for calls in flight: lb and resilience settings are replaced
 * through their swap APIs (a new version beside the old, never edited in
 * place), then discovery publishes one new snapshot whose picker state is
 * built from the new lb config; a pick holds one snapshot, a call one
 * version of the resilience settings.  A state that is not complete yet
 * (a route naming a cluster whose CDS or EDS has not arrived) is not
 * applied at all: the previous one stays in force, as gRPC keeps using
 * its old config until the new clusters resolve.  A LOGICAL_DNS cluster's
 * host is its resolver's answer (logical_dns.c), applied anew when it
 * changes. */
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"
#include "lb/lb.h"
#include "resilience/resilience.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

/* One cluster a service reaches, with its share. */
typedef struct target {
  const char *name;
  uint32_t weight;
  bool linger; /* named by the previous table only (see lingering()) */
  const mesh__xds_cds_t *cds; /* an aggregate's: its first leaf (A37) */
  const mesh__xds_eds_t *eds;
  const mesh__ep_t *eps;      /* its endpoints (an aggregate's: own) */
  size_t neps;
  mesh__ep_t *own;            /* aggregate: the flattened priority list */
} target_t;

static void targets_free(target_t *t, size_t n) {
  for (size_t i = 0; t && i < n; i++)
    free(t[i].own);
  free(t);
}

/* Resolve t's CDS and EDS (an aggregate flattened, aggregate.c).  false
 * with note set when not complete. */
static bool resolve(const mesh__xds_ads_t *a, const mesh__xds_ldns_t *dns,
                    target_t *t, char *note, size_t cap) {
  t->cds = mesh__xds_ads_cached(a, MESH__XDS_T_CDS, t->name);
  if (t->cds && t->cds->kind == MESH__XDS_CLUSTER_LOGICAL_DNS) {
    t->own = malloc(sizeof *t->own); /* its one host (logical_dns.c) */
    if (!t->own) {
      snprintf(note, cap, "cluster \"%.100s\": out of memory", t->name);
      return false;
    }
    t->eps = t->own;
    return mesh__xds_ldns_endpoint(dns, t->cds, t->own, &t->neps, note,
                                   cap) == MESH_OK;
  }
  if (t->cds && t->cds->kind == MESH__XDS_CLUSTER_AGGREGATE) {
    const mesh__xds_cds_t *first;
    if (mesh__xds_agg_flatten(a, dns, t->name, &t->own, &t->neps, &first,
                              note, cap) != MESH_OK)
      return false;
    t->cds = first;
    t->eps = t->own;
    return true;
  }
  if (t->cds)
    t->eds = mesh__xds_ads_cached(a, MESH__XDS_T_EDS, t->cds->eds_name);
  if (t->eds) {
    t->eps = t->eds->eps;
    t->neps = t->eds->n;
    return true;
  }
  snprintf(note, cap, "cluster \"%.100s\": %s", t->name,
           !t->cds ? "waiting for CDS" : "waiting for EDS");
  return false;
}

/* The route direct calls (no path: mesh_call_do, mesh_dial) take for the
 * service's split: the first whose match is a bare prefix "" or "/" (the
 * catch-all Istio and gRPC examples end with), else the first route. */
static const cJSON *split_route(const cJSON *vh) {
  const cJSON *r;
  cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(vh, "routes")) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "match");
    const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "prefix"));
    if (p && (!*p || strcmp(p, "/") == 0) &&
        !cJSON_GetObjectItemCaseSensitive(m, "headers") &&
        !cJSON_GetObjectItemCaseSensitive(m, "fraction_ppm"))
      return r;
  }
  return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vh, "routes"), 0);
}

/* The virtual host of a listener service (Envoy's domain match on the
 * listener name, which is the authority gRPC's xds:///NAME uses); NULL
 * with s->note set when the chain LDS -> RDS -> virtual host is not
 * complete.  *fault: the listener's fault filter config. */
static const cJSON *vhost(const mesh__xds_ads_t *a, mesh__xds_svc_t *s,
                          const cJSON **fault) {
  const mesh__xds_lds_t *l = mesh__xds_ads_cached(a, MESH__XDS_T_LDS, s->listener);
  const cJSON *rc = NULL;
  if (l)
    rc = l->route_config ? l->route_config
                         : mesh__xds_ads_cached(a, MESH__XDS_T_RDS, l->rds_name);
  const cJSON *vh = rc ? mesh__xds_vhost_pick(rc, s->listener) : NULL;
  bool empty = vh && !cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(vh, "routes"));
  if (!vh || empty)
    snprintf(s->note, sizeof s->note, "%s", !l ? "waiting for the listener"
             : !rc ? "waiting for the route configuration"
             : !vh ? "no virtual host matches this name"
                   : "the virtual host has no route");
  *fault = l ? l->fault : NULL;
  return vh && !empty ? vh : NULL;
}

/* Every cluster the virtual host's routes name, once, in order of first
 * appearance; weights from the split route (0 for the others). */
static target_t *route_targets(const cJSON *vh, size_t extra, size_t *n) {
  const cJSON *r, *c;
  size_t cap = 0;
  cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(vh, "routes"))
    cap += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "clusters"));
  target_t *t = calloc(cap + extra + 1, sizeof *t);
  if (!t)
    return NULL;
  const cJSON *sr = split_route(vh);
  *n = 0;
  cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(vh, "routes"))
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "clusters")) {
      const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name"));
      const cJSON *w = cJSON_GetObjectItemCaseSensitive(c, "weight");
      size_t k = 0;
      while (k < *n && strcmp(t[k].name, name) != 0)
        k++;
      if (k == *n)
        t[(*n)++].name = name;
      if (r == sr)
        t[k].weight = cJSON_IsNumber(w) ? (uint32_t)w->valuedouble : 1;
    }
  return t;
}

/* Clusters the table in force names but the new one does not stay in the
 * endpoint set for this version (weight 0, no route names them): a call
 * that copied a decision from the old table just before the new one went
 * in still finds its cluster's hosts (gRPC keeps a cluster while calls
 * reference it).  The next update drops them. */
static void lingering(const mesh__xds_svc_t *s, target_t *t, size_t *n) {
  size_t k = *n;
  for (size_t i = 0; i < s->nnamed; i++) {
    size_t j = 0;
    while (j < k && strcmp(t[j].name, s->named[i]) != 0)
      j++;
    if (j == k)
      t[k++] = (target_t){.name = s->named[i], .linger = true};
  }
  *n = k;
}

/* Remember the clusters the new table names (lingering() of the next). */
static void remember(mesh__xds_svc_t *s, const target_t *t, size_t n) {
  char **v = calloc(n + 1, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; v && i < n; i++)
    if (!t[i].linger && !(v[k++] = mesh__strdup(t[i].name)))
      k--;
  for (size_t i = 0; i < s->nnamed; i++)
    free(s->named[i]);
  free(s->named);
  s->named = v;
  s->nnamed = v ? k : 0;
}

/* The clusters s reaches, each with CDS and EDS resolved.  MESH_OK, or
 * MESH_ERR_NOT_FOUND (not complete: s->note says why), NOMEM.  *vh: the
 * listener service's virtual host. */
static int targets(mesh_t *m, const mesh__xds_ads_t *a, mesh__xds_svc_t *s,
                   target_t **out, size_t *n, const cJSON **vh,
                   const cJSON **fault) {
  *vh = s->listener ? vhost(a, s, fault) : NULL;
  if (s->listener && !*vh)
    return MESH_ERR_NOT_FOUND;
  size_t k = 1;
  target_t *t = *vh ? route_targets(*vh, s->nnamed, &k) : calloc(1, sizeof *t);
  if (!t)
    return MESH_ERR_NOMEM;
  if (!*vh)
    t[0] = (target_t){.name = s->cluster, .weight = 1};
  else
    lingering(s, t, &k);
  size_t kept = 0;
  for (size_t i = 0; i < k; i++) {
    char note[sizeof s->note];
    bool ok = resolve(a, mesh__xds_ldns_of(m), &t[i], note, sizeof note);
    if (!ok && t[i].linger) {
      free(t[i].own);
      continue; /* gone from the cache too: nothing to keep */
    }
    t[kept++] = t[i];
    if (!ok) {
      mesh__strlcpy(s->note, note, sizeof s->note);
      targets_free(t, kept);
      return MESH_ERR_NOT_FOUND;
    }
  }
  *out = t;
  *n = kept;
  return MESH_OK;
}

static void copy_keys(cJSON *dst, const cJSON *src, const char *const *keys) {
  for (size_t i = 0; keys[i]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, keys[i]);
    if (v)
      cJSON_AddItemToObject(dst, keys[i], cJSON_Duplicate(v, true));
  }
}

/* lb settings: the first cluster's "lb" for the service (direct calls'
 * split); with several clusters one subset per cluster (hosts labelled
 * MESH__XDS_CLUSTER_LABEL) weighted as the split route, each with its own
 * CDS lb policy ("subset_lb": a call routed to a cluster picks with that
 * cluster's policy; Envoy's default, round robin, when CDS has none). */
static cJSON *lb_settings(const target_t *t, size_t n) {
  static const char *const keys[] = {"lb", NULL};
  cJSON *o = cJSON_CreateObject();
  copy_keys(o, t[0].cds->svc, keys);
  if (n < 2)
    return o;
  cJSON *subs = cJSON_AddObjectToObject(o, "subsets");
  cJSON *split = cJSON_AddArrayToObject(o, "split");
  cJSON *own = cJSON_AddObjectToObject(o, "subset_lb");
  for (size_t i = 0; i < n; i++) {
    cJSON *labels = cJSON_AddObjectToObject(subs, t[i].name);
    cJSON_AddStringToObject(labels, MESH__XDS_CLUSTER_LABEL, t[i].name);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "subset", t[i].name);
    cJSON_AddNumberToObject(e, "weight", t[i].weight);
    cJSON_AddItemToArray(split, e);
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(t[i].cds->svc, "lb");
    cJSON_AddItemToObject(own, t[i].name,
                          lb ? cJSON_Duplicate(lb, true) : cJSON_CreateObject());
  }
  return o;
}

/* Resilience settings: a single cluster's for the service; with several,
 * one group per cluster (its hosts labelled MESH__XDS_CLUSTER_LABEL), each
 * with its own CDS outlier detection, circuit breakers and connect
 * timeout, and the split route's weight (a call without a route decision
 * draws its cluster by it).  The first cluster's also stand at the top
 * level for hosts of no group (there are none: every endpoint is
 * labelled). */
static cJSON *res_settings(const target_t *t, size_t n) {
  static const char *const keys[] = {"outlier_detection", "circuit_breakers",
                                     "timeouts", NULL};
  cJSON *o = cJSON_CreateObject();
  copy_keys(o, t[0].cds->svc, keys);
  if (n < 2)
    return o;
  cJSON_AddStringToObject(o, "group_label", MESH__XDS_CLUSTER_LABEL);
  cJSON *gs = cJSON_AddObjectToObject(o, "groups");
  for (size_t i = 0; i < n; i++) {
    cJSON *g = cJSON_AddObjectToObject(gs, t[i].name);
    cJSON_AddNumberToObject(g, "weight", t[i].weight);
    copy_keys(g, t[i].cds->svc, keys);
  }
  return o;
}

/* Replace *applied with want through swap() when they differ.  Returns
 * true when a new version went in. */
static bool settle(mesh_t *m, mesh__service_t *svc, cJSON **applied,
                   cJSON *want, bool lb, mesh__xds_svc_t *s) {
  if (!want || (*applied && cJSON_Compare(*applied, want, true))) {
    cJSON_Delete(want);
    return false;
  }
  mesh_status_t st = {0};
  int rc = lb ? mesh__lb_reconfigure(m, svc, want, &st)
              : mesh__res_reconfigure(svc, want, &st);
  if (rc != MESH_OK) {
    snprintf(s->note, sizeof s->note, "%s settings not applied: %.200s",
             lb ? "lb" : "resilience", st.message);
    mesh__log(m, MESH_LOG_ERROR, "xds_apply", "service=%s error=\"%s\"",
              s->name, s->note);
    cJSON_Delete(want);
    return false;
  }
  cJSON_Delete(*applied);
  *applied = want;
  return true;
}

/* The union of the clusters' endpoints, each labelled with its cluster
 * (labels owned by *hold).  A single cluster: its endpoints as they are. */
static mesh__ep_t *endpoints(const target_t *t, size_t n, size_t *count,
                             cJSON **hold) {
  *hold = NULL;
  if (n == 1) { /* borrowed as they are: no copy of a 10k-endpoint set */
    *count = t[0].neps;
    return (mesh__ep_t *)t[0].eps;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += t[i].neps;
  mesh__ep_t *v = malloc(sizeof *v * (total ? total : 1));
  *hold = cJSON_CreateArray();
  if (!v || !*hold) {
    free(v);
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < t[i].neps; j++) {
      v[k] = t[i].eps[j];
      if (n > 1) {
        cJSON *l = v[k].labels ? cJSON_Duplicate(v[k].labels, true)
                               : cJSON_CreateObject();
        cJSON_AddItemToArray(*hold, l);
        cJSON_AddStringToObject(l, MESH__XDS_CLUSTER_LABEL, t[i].name);
        v[k].labels = l;
      }
      k++;
    }
  *count = k;
  return v;
}

/* event=xds_apply service=web clusters=web-v1:90,web-v2:10 */
static void log_split(mesh_t *m, const mesh__xds_svc_t *s, const target_t *t,
                      size_t n) {
  char buf[512];
  size_t o = 0;
  for (size_t i = 0; i < n && o < sizeof buf; i++) {
    int w = snprintf(buf + o, sizeof buf - o, "%s%.100s:%u", i ? "," : "",
                     t[i].name, t[i].weight);
    o += w > 0 ? (size_t)w : 0;
  }
  mesh__log(m, MESH_LOG_INFO, "xds_apply", "service=%s clusters=%s", s->name,
            buf);
}

/* The route table after the endpoints and subsets it names are in force
 * (a call that copies a decision finds its cluster's hosts). */
static void publish_routes(mesh_t *m, mesh__xds_svc_t *s, const cJSON *vh,
                           const cJSON *fault, bool labelled) {
  mesh__xds_rtab_t *t;
  int rc = mesh__xds_rtab_build(vh, fault, labelled, m, &t);
  if (rc != MESH_OK) {
    snprintf(s->note, sizeof s->note, "routes not applied: %s",
             mesh_strerror(rc));
    mesh__log(m, MESH_LOG_ERROR, "xds_apply", "service=%s error=\"%s\"",
              s->name, s->note);
    return;
  }
  mesh__xds_rtab_publish(&s->routes, t);
}

void mesh__xds_apply(mesh_t *m, const mesh__xds_ads_t *a, mesh__xds_svc_t *s) {
  mesh__service_t *svc = mesh__service_find(m, s->name);
  if (!svc || !svc->disc)
    return;
  target_t *t = NULL;
  size_t n = 0;
  const cJSON *vh, *fault = NULL;
  if (targets(m, a, s, &t, &n, &vh, &fault) != MESH_OK)
    return; /* the state in force stays */
  s->note[0] = '\0';
  if (n)
    mesh__xds_cluster_tls(m, s->name, t[0].cds); /* A29 (tlsctx.c) */
  bool lb_new = settle(m, svc, &s->lb_cfg, lb_settings(t, n), true, s);
  if (lb_new)
    log_split(m, s, t, n);
  settle(m, svc, &s->res_cfg, res_settings(t, n), false, s);
  cJSON *hold = NULL;
  size_t count = 0;
  mesh__ep_t *eps = endpoints(t, n, &count, &hold);
  uint64_t before = svc->disc->version;
  if (eps || (n == 1 && count == 0))
    mesh__disc_apply(svc->disc, eps, count);
  else
    mesh__disc_error(svc->disc, "xds: out of memory");
  if (lb_new && svc->disc->version == before)
    mesh__disc_republish(svc->disc); /* same hosts, new split or policy */
  if (vh) {
    publish_routes(m, s, vh, fault, n > 1);
    remember(s, t, n);
  }
  if (n > 1)
    free(eps);
  cJSON_Delete(hold);
  targets_free(t, n);
}

void mesh__xds_svc_fini(mesh__xds_svc_t *s) {
  free(s->name);
  free(s->cluster);
  free(s->listener);
  cJSON_Delete(s->lb_cfg);
  cJSON_Delete(s->res_cfg);
  mesh__xds_rtab_publish(&s->routes, NULL);
  for (size_t i = 0; i < s->nnamed; i++)
    free(s->named[i]);
  free(s->named);
}

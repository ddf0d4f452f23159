/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz one xDS decoder (libmesh/xds), chosen at build time by FUZZ_XDS:
 * 1 EDS, 2 CDS, 3 RDS, 4 LDS (input: the resource's bytes), 5 the ADS
 * session (input: DiscoveryResponses, each after a 2-byte length; after each the
 * due requests are drained: they decode, and run out).
 * Properties: the verdict is OK or one of the documented codes; a refusal
 * has a message and no result; a result holds what the model promises
 * (EDS: ports 1..65535, weights >= 1, priorities below npriorities, and a
 * snapshot builds from it; CDS: an EDS name exactly for EDS clusters,
 * children exactly for aggregates, a resolvable name, port and refresh
 * settings exactly for LOGICAL_DNS, a service config object; RDS: every
 * route has clusters with a positive total weight; LDS: a client names
 * routes one way; and every virtual host of an accepted route model
 * compiles into the per-request table (route.c), which routes its own
 * paths and a few others to a named cluster or to "no route", and the
 * host picked for each domain exists); decoding the same bytes again
 * gives the same verdict and message (no hidden state). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "authz/authz.h"
#include "discovery/discovery.h"
#include "resilience/resilience.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

#ifndef FUZZ_XDS
#define FUZZ_XDS 1
#endif

__attribute__((unused)) static void check_eds(const mesh__xds_eds_t *e) {
  FUZZ_ASSERT(e->name && *e->name);
  for (size_t i = 0; i < e->n; i++) {
    FUZZ_ASSERT(e->eps[i].port >= 1 && e->eps[i].weight >= 1);
    FUZZ_ASSERT(e->eps[i].priority < e->npriorities);
    FUZZ_ASSERT(e->eps[i].address && *e->eps[i].address);
  }
  mesh__snapshot_t *s = NULL;
  FUZZ_ASSERT(mesh__snap_build(NULL, e->eps, e->n, &s) == MESH_OK);
  if (s)
    mesh__snap_release(s);
}

/* What CDS accepts for a cluster, resilience accepts as that cluster's
 * group when a route splits a service (xds/apply.c res_settings), with the
 * same values as for a whole service. */
__attribute__((unused)) static void check_cds_group(const mesh__xds_cds_t *c) {
  static const char *const keys[] = {"outlier_detection", "circuit_breakers",
                                     "timeouts", NULL};
  cJSON *o = cJSON_CreateObject(), *gs = cJSON_CreateObject();
  cJSON *g = cJSON_CreateObject();
  FUZZ_ASSERT(o && gs && g);
  cJSON_AddStringToObject(o, "group_label", "xds.cluster");
  cJSON_AddItemToObject(o, "groups", gs);
  cJSON_AddItemToObject(gs, c->name, g);
  cJSON_AddNumberToObject(g, "weight", 1);
  for (size_t i = 0; keys[i]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->svc, keys[i]);
    if (v)
      cJSON_AddItemToObject(g, keys[i], cJSON_Duplicate(v, true));
  }
  mesh__res_live_t l;
  memset(&l, 0, sizeof l);
  mesh_status_t st = {0};
  int rc = mesh__res_grp_parse(&l, NULL, o, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "group refused: %s\n", st.message);
  FUZZ_ASSERT(rc == MESH_OK && l.ngrp == 1 && l.grp_weight == 1);
  mesh__cfg_t cc = {.first = &st};
  mesh__res_cfg_t whole;
  mesh__res_cfg_parse(&cc, c->svc, "", &whole);
  FUZZ_ASSERT(cc.nerr == 0);
  const mesh__res_grp_t *gr = mesh__res_grp_find(&l, c->name);
  FUZZ_ASSERT(gr && memcmp(&gr->cb, &whole.cb, sizeof whole.cb) == 0 &&
              gr->connect_ms == whole.to.connect_ms);
  /* field by field: the struct has padding */
  const mesh__od_cfg_t *a = &gr->od, *b = &whole.od;
  FUZZ_ASSERT(a->enabled == b->enabled &&
              a->consecutive_5xx == b->consecutive_5xx &&
              a->consecutive_gateway_failure == b->consecutive_gateway_failure &&
              a->interval_ms == b->interval_ms &&
              a->base_ejection_time_ms == b->base_ejection_time_ms &&
              a->max_ejection_time_ms == b->max_ejection_time_ms &&
              a->max_ejection_percent == b->max_ejection_percent &&
              a->success_rate_minimum_hosts == b->success_rate_minimum_hosts &&
              a->success_rate_request_volume == b->success_rate_request_volume &&
              a->success_rate_stdev_factor == b->success_rate_stdev_factor &&
              a->failure_percentage_threshold == b->failure_percentage_threshold &&
              a->enforcing_success_rate == b->enforcing_success_rate &&
              a->enforcing_failure_percentage == b->enforcing_failure_percentage);
  mesh__res_grp_free(&l);
  cJSON_Delete(o);
}

__attribute__((unused)) static void check_cds(const mesh__xds_cds_t *c) {
  FUZZ_ASSERT(c->name && *c->name && cJSON_IsObject(c->svc));
  if (c->kind == MESH__XDS_CLUSTER_EDS)
    FUZZ_ASSERT(c->eds_name && !c->nchildren && !c->dns.host);
  else if (c->kind == MESH__XDS_CLUSTER_LOGICAL_DNS)
    /* gRFC A37: one endpoint, a name to resolve, sane refresh settings */
    FUZZ_ASSERT(!c->eds_name && !c->nchildren && c->dns.host &&
                mesh__disc_valid_address(c->dns.host) && c->dns.port >= 1 &&
                c->dns.family >= 0 && c->dns.family <= 4 &&
                c->dns.refresh_ms >= 1 && c->dns.fail_base_ms >= 1 &&
                c->dns.fail_max_ms > c->dns.fail_base_ms);
  else
    FUZZ_ASSERT(c->kind == MESH__XDS_CLUSTER_AGGREGATE && !c->eds_name &&
                c->nchildren > 0 && !c->dns.host);
  /* A29: SAN matchers only with a TLS context, each a known kind with a
   * value; a TLS context names its CA instance */
  FUZZ_ASSERT(!c->nsan || (c->san && c->tls_ca_instance));
  for (size_t i = 0; i < c->nsan; i++)
    FUZZ_ASSERT(c->san[i].kind >= 0 && c->san[i].kind <= 3 && c->san[i].value);
  FUZZ_ASSERT(!c->tls_cert_instance || c->tls_ca_instance);
  check_cds_group(c);
}

__attribute__((unused)) static const char *fuzz_hdr(void *user, const char *name) {
  (void)name;
  return user;
}

#if FUZZ_XDS >= 4
/* A36 chains: a server Listener has at least one; a TLS chain names its
 * certificate instance; the choice for any connection is one of the
 * chains, the default one, or none (closed); the instance walk ends. */
__attribute__((unused)) static void check_chains(const mesh__xds_lds_t *l) {
  FUZZ_ASSERT(l->nchains || l->defchain);
  for (size_t i = 0; i <= l->nchains; i++) {
    const mesh__xds_fchain_t *c = i < l->nchains ? &l->chains[i] : l->defchain;
    if (c)
      FUZZ_ASSERT(c->tls == MESH__XDS_CHAIN_PLAIN ? !c->cert_instance
                                                   : c->cert_instance != NULL);
  }
  static const char *const ips[] = {"127.0.0.1", "11.1.2.3", "193.168.1.5",
                                    "::1", "::ffff:11.0.0.1"};
  for (size_t i = 0; i < 5; i++)
    for (size_t j = 0; j < 5; j++) {
      struct sockaddr_storage d = {0}, s = {0};
      const char *a[2] = {ips[i], ips[j]};
      struct sockaddr_storage *ss[2] = {&d, &s};
      for (int k = 0; k < 2; k++) {
        if (strchr(a[k], ':')) {
          struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss[k];
          s6->sin6_family = AF_INET6;
          s6->sin6_port = htons((uint16_t)(4000 + i + j));
          inet_pton(AF_INET6, a[k], &s6->sin6_addr);
        } else {
          struct sockaddr_in *s4 = (struct sockaddr_in *)ss[k];
          s4->sin_family = AF_INET;
          s4->sin_port = htons((uint16_t)(4000 + i + j));
          inet_pton(AF_INET, a[k], &s4->sin_addr);
        }
      }
      const mesh__xds_fchain_t *c =
          mesh__xds_fcm_pick(l, (struct sockaddr *)&d, (struct sockaddr *)&s);
      FUZZ_ASSERT(!c || c == l->defchain ||
                  (c >= l->chains && c < l->chains + l->nchains));
      FUZZ_ASSERT(!c || !c->never || c == l->defchain);
    }
  size_t k = 0;
  while (mesh__xds_lds_instance(l, k))
    k++;
  FUZZ_ASSERT(k <= 2 * (l->nchains + 1));
}
#endif

/* The table of one virtual host: builds, and routes to a named cluster
 * or to "no route" (route.c). */
__attribute__((unused)) static void check_rtab(const cJSON *d, const cJSON *vh) {
  const char *dom = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(vh, "domains"), 0));
  FUZZ_ASSERT(!dom || mesh__xds_vhost_pick(d, dom) != NULL);
  mesh__xds_rtab_t *t = NULL;
  int rc = mesh__xds_rtab_build(vh, NULL, true, d, &t);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_NOMEM);
  const cJSON *r;
  double u[4] = {0.5, 0.999, 0.0, 0.0};
  cJSON_ArrayForEach(r, cJSON_GetObjectItem(vh, "routes")) {
    const cJSON *m = cJSON_GetObjectItem(r, "match");
    const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(m, "prefix"));
    if (!p)
      p = cJSON_GetStringValue(cJSON_GetObjectItem(m, "path"));
    for (int grpc = 0; t && grpc < 2; grpc++) {
      mesh__xroute_in_t in = {.path = p ? p : "/", .header = fuzz_hdr,
                              .user = grpc ? NULL : "v", .grpc = grpc};
      mesh__xroute_t x;
      int k = mesh__xds_rtab_route(t, &in, u, &x);
      FUZZ_ASSERT(k == MESH_OK || k == MESH_ERR_NOT_FOUND);
      FUZZ_ASSERT(k != MESH_OK || (x.cluster[0] && strcmp(x.subset, x.cluster) == 0));
    }
  }
  mesh__xds_rtab_release(t);
}

__attribute__((unused)) static void check_rds(const cJSON *d) {
  const cJSON *vh, *r, *c;
  cJSON_ArrayForEach(vh, cJSON_GetObjectItem(d, "virtual_hosts")) {
    FUZZ_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(vh, "domains")) > 0);
    check_rtab(d, vh);
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(vh, "routes")) {
      double sum = 0;
      cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "clusters"))
        sum += cJSON_GetObjectItem(c, "weight")->valuedouble;
      FUZZ_ASSERT(sum > 0);
    }
  }
}

__attribute__((unused)) static int decode(const uint8_t *data, size_t size, mesh_status_t *st) {
  int rc;
#if FUZZ_XDS == 1
  mesh__xds_eds_t *e;
  rc = mesh__xds_decode_eds(data, size, &e, st);
  FUZZ_ASSERT(!rc == !!e);
  if (e)
    check_eds(e);
  mesh__xds_eds_free(e);
#elif FUZZ_XDS == 2
  mesh__xds_cds_t *c;
  rc = mesh__xds_decode_cds(data, size, &c, st);
  FUZZ_ASSERT(!rc == !!c);
  if (c)
    check_cds(c);
  mesh__xds_cds_free(c);
#elif FUZZ_XDS == 3
  cJSON *d;
  rc = mesh__xds_decode_rds(data, size, &d, st);
  FUZZ_ASSERT(!rc == !!d);
  if (d)
    check_rds(d);
  cJSON_Delete(d);
#else
  mesh__xds_lds_t *l;
  rc = mesh__xds_decode_lds(data, size, &l, st);
  FUZZ_ASSERT(!rc == !!l);
  if (l && !l->server)
    FUZZ_ASSERT(!l->rds_name != !l->route_config);
  if (l && l->route_config)
    check_rds(l->route_config);
  if (l && l->rbac) {
    /* what the RBAC mapping emits, the authz part builds (server.c hands
     * it down as the external policy set) */
    mesh_status_t ast = {0};
    mesh__cfg_t c = {.first = &ast};
    mesh__authz_set_t *set = NULL;
    FUZZ_ASSERT(mesh__authz_set_build(&c, l->rbac, "authz", &set) == MESH_OK);
    FUZZ_ASSERT(set != NULL);
    mesh__authz_set_unref(set);
  }
  if (l && l->server)
    check_chains(l);
  mesh__xds_lds_free(l);
#endif
  return rc;
}

#if FUZZ_XDS == 5
#include "xds/proto/base.pb-c.h"

static void drain(mesh__xds_ads_t *a) {
  uint8_t *b;
  size_t n;
  int k = 0;
  while (mesh__xds_ads_next_request(a, &b, &n) == MESH_OK) {
    Meshxds__DiscoveryRequest *r = meshxds__discovery_request__unpack(NULL, n, b);
    FUZZ_ASSERT(r != NULL);
    meshxds__discovery_request__free_unpacked(r, NULL);
    free(b);
    FUZZ_ASSERT(++k <= MESH__XDS_T_N_);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mesh__xds_ads_t *a = mesh__xds_ads_new(NULL, NULL);
  FUZZ_ASSERT(a != NULL);
  mesh__xds_ads_watch(a, MESH__XDS_T_LDS, "api");
  mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "web");
  drain(a);
  for (int i = 0; i < 16 && size > 0; i++) {
    /* a 2-byte big-endian length, then that many bytes (or the rest) */
    size_t n = size >= 2 ? ((size_t)data[0] << 8 | data[1]) : 0;
    data += size >= 2 ? 2 : size;
    size -= size >= 2 ? 2 : size;
    n = n < size ? n : size;
    const uint8_t *f = data;
    data += n;
    size -= n;
    mesh_status_t st = {0};
    int rc = mesh__xds_ads_on_response(a, f, n, &st);
    FUZZ_ASSERT(rc == MESH_OK || st.message[0] != '\0');
    drain(a);
    if (i == 7)
      mesh__xds_ads_on_reconnect(a);
  }
  /* "web" as an aggregate (gRFC A37): the graph check let no loop in,
   * so flattening ends; then A27's timer over everything still asked */
  mesh__ep_t *eps;
  size_t n;
  const mesh__xds_cds_t *first;
  char note[256];
  if (mesh__xds_agg_flatten(a, NULL, "web", &eps, &n, &first, note, sizeof note) == MESH_OK) {
    FUZZ_ASSERT(first != NULL);
    for (size_t i = 0; i < n; i++)
      FUZZ_ASSERT(eps[i].address != NULL && eps[i].port > 0);
    free(eps);
  } else {
    FUZZ_ASSERT(note[0] != '\0');
  }
  mesh__xds_ads_expire(a, INT64_C(1) << 60, 1);
  cJSON_Delete(mesh__xds_ads_view(a));
  mesh__xds_ads_free(a);
  return 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mesh_status_t a = {0}, b = {0};
  int rc = decode(data, size, &a);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PARSE ||
              rc == MESH_ERR_UNSUPPORTED || rc == MESH_ERR_CONFIG ||
              rc == MESH_ERR_NOMEM);
  if (rc)
    FUZZ_ASSERT(a.message[0] != '\0');
  FUZZ_ASSERT(decode(data, size, &b) == rc);
  FUZZ_ASSERT(strcmp(a.message, b.message) == 0);
  return 0;
}
#endif

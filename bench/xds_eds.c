/* SPDX-License-Identifier: Apache-2.0 */
/* bench/xds_eds [N] [ROUNDS]: an EDS update of N endpoints (default 10000),
 * decode to publish.  Two timings, median of ROUNDS (default 21):
 *   decode   mesh__xds_decode_eds alone (bytes -> endpoint model);
 *   publish  the whole path a pushed update takes: DiscoveryResponse bytes
 *            fed to the context's ADS session (mesh__xds_feed), resource
 *            decoded, discovery builds the snapshot, lb prepares it, and it
 *            is published (mesh_endpoints_get sees it).
 * Consecutive updates alternate two endpoint sets (ports differ), so every
 * publish is a real change.  Target (issue 16): publish <= 5 ms at 10k. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh/mesh.h"
#include "xds/proto/base.pb-c.h"
#include "xds/proto/cluster.pb-c.h"
#include "xds/proto/endpoint.pb-c.h"
#include "xds/xds.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* CPU time of every thread of the process (the publish runs on the loop
 * thread): on a shared, loaded machine this is the steadier number. */
static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A DiscoveryResponse holding one ClusterLoadAssignment "web" of n
 * endpoints in 4 zones; port base+i%1000. */
static uint8_t *response(size_t n, unsigned base, const char *version,
                         size_t *len, uint8_t **cla, size_t *cla_len) {
  Meshxds__ClusterLoadAssignment c = MESHXDS__CLUSTER_LOAD_ASSIGNMENT__INIT;
  c.cluster_name = "web";
  Meshxds__LocalityLbEndpoints loc[4];
  Meshxds__Locality l[4];
  static const char *zones[] = {"a", "b", "c", "d"};
  Meshxds__LocalityLbEndpoints *lp[4];
  Meshxds__LbEndpoint *lbe = calloc(n, sizeof *lbe);
  Meshxds__Endpoint *ep = calloc(n, sizeof *ep);
  Meshxds__Address *ad = calloc(n, sizeof *ad);
  Meshxds__SocketAddress *sa = calloc(n, sizeof *sa);
  char (*ip)[20] = calloc(n, sizeof *ip);
  Meshxds__LbEndpoint **pp = calloc(n, sizeof *pp);
  for (int z = 0; z < 4; z++) {
    meshxds__locality_lb_endpoints__init(&loc[z]);
    meshxds__locality__init(&l[z]);
    l[z].region = "r";
    l[z].zone = (char *)zones[z];
    loc[z].locality = &l[z];
    loc[z].lb_endpoints = pp + z * (n / 4);
    loc[z].n_lb_endpoints = z < 3 ? n / 4 : n - 3 * (n / 4);
    lp[z] = &loc[z];
  }
  for (size_t i = 0; i < n; i++) {
    meshxds__lb_endpoint__init(&lbe[i]);
    meshxds__endpoint__init(&ep[i]);
    meshxds__address__init(&ad[i]);
    meshxds__socket_address__init(&sa[i]);
    snprintf(ip[i], sizeof ip[i], "10.%u.%u.%u", (unsigned)(i >> 16) & 255,
             (unsigned)(i >> 8) & 255, (unsigned)i & 255);
    sa[i].address = ip[i];
    sa[i].port_value = base + (unsigned)(i % 1000);
    ad[i].address_case = MESHXDS__ADDRESS__ADDRESS_SOCKET_ADDRESS;
    ad[i].socket_address = &sa[i];
    ep[i].address = &ad[i];
    lbe[i].endpoint = &ep[i];
    lbe[i].health_status = MESHXDS__HEALTH_STATUS__HEALTHY;
    pp[i] = &lbe[i];
  }
  c.endpoints = lp;
  c.n_endpoints = 4;
  *cla_len = meshxds__cluster_load_assignment__get_packed_size(&c);
  *cla = malloc(*cla_len);
  meshxds__cluster_load_assignment__pack(&c, *cla);
  Meshxds__Any any = MESHXDS__ANY__INIT;
  any.type_url = MESH__XDS_EDS;
  any.value.data = *cla;
  any.value.len = *cla_len;
  Meshxds__Any *anys[] = {&any};
  Meshxds__DiscoveryResponse r = MESHXDS__DISCOVERY_RESPONSE__INIT;
  r.version_info = (char *)version;
  r.nonce = (char *)version;
  r.type_url = MESH__XDS_EDS;
  r.resources = anys;
  r.n_resources = 1;
  *len = meshxds__discovery_response__get_packed_size(&r);
  uint8_t *b = malloc(*len);
  meshxds__discovery_response__pack(&r, b);
  free(lbe);
  free(ep);
  free(ad);
  free(sa);
  free(ip);
  free(pp);
  return b;
}

static uint8_t *cds(size_t *len) {
  Meshxds__Cluster c = MESHXDS__CLUSTER__INIT;
  c.name = "web";
  c.cluster_discovery_type_case = MESHXDS__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
  c.type = MESHXDS__CLUSTER__DISCOVERY_TYPE__EDS;
  size_t cl = meshxds__cluster__get_packed_size(&c);
  uint8_t *cb = malloc(cl);
  meshxds__cluster__pack(&c, cb);
  Meshxds__Any any = MESHXDS__ANY__INIT;
  any.type_url = MESH__XDS_CDS;
  any.value.data = cb;
  any.value.len = cl;
  Meshxds__Any *anys[] = {&any};
  Meshxds__DiscoveryResponse r = MESHXDS__DISCOVERY_RESPONSE__INIT;
  r.version_info = "1";
  r.nonce = "c";
  r.type_url = MESH__XDS_CDS;
  r.resources = anys;
  r.n_resources = 1;
  *len = meshxds__discovery_response__get_packed_size(&r);
  uint8_t *b = malloc(*len);
  meshxds__discovery_response__pack(&r, b);
  free(cb);
  return b;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
  int rounds = argc > 2 ? atoi(argv[2]) : 21;
  if (n < 4 || rounds < 1 || rounds > 1000)
    return 2;
  size_t len[2], cla_len[2];
  uint8_t *cla[2];
  uint8_t *resp[2] = {response(n, 1000, "a", &len[0], &cla[0], &cla_len[0]),
                      response(n, 3000, "b", &len[1], &cla[1], &cla_len[1])};
  double *dec = calloc((size_t)rounds, sizeof *dec);
  double *pub = calloc((size_t)rounds, sizeof *pub);
  double *pubcpu = calloc((size_t)rounds, sizeof *pubcpu);
  mesh_status_t st;
  for (int i = 0; i < rounds; i++) {
    mesh__xds_eds_t *e;
    double t0 = now_ms();
    int rc = mesh__xds_decode_eds(cla[i & 1], cla_len[i & 1], &e, &st);
    dec[i] = now_ms() - t0;
    if (rc || e->n != n) {
      fprintf(stderr, "decode: %s\n", st.message);
      return 1;
    }
    mesh__xds_eds_free(e);
  }
  setenv("GRPC_XDS_BOOTSTRAP_CONFIG", "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:1\", "
         "\"channel_creds\": [{\"type\": \"insecure\"}]}]}", 1);
  mesh_t *m;
  if (mesh_new("{\"log\": {\"level\": \"error\"}, \"services\": {\"web\": {\"discovery\": "
               "{\"type\": \"xds\"}}}}", &m, &st)) {
    fprintf(stderr, "mesh_new: %s\n", st.message);
    return 1;
  }
  size_t cl;
  uint8_t *c = cds(&cl);
  if (mesh__xds_feed(m, c, cl, &st)) {
    fprintf(stderr, "cds: %s\n", st.message);
    return 1;
  }
  free(c);
  for (int i = 0; i < rounds; i++) {
    double t0 = now_ms(), c0 = cpu_ms();
    int rc = mesh__xds_feed(m, resp[i & 1], len[i & 1], &st);
    pub[i] = now_ms() - t0;
    pubcpu[i] = cpu_ms() - c0;
    mesh_endpoints_t *e = NULL;
    mesh_endpoints_get(m, "web", &e, &st);
    if (rc || mesh_endpoints_count(e) != n ||
        mesh_endpoint_port(e, 0) != (i & 1 ? 3000 : 1000)) {
      fprintf(stderr, "publish %d: rc %d %s, %zu endpoints\n", i, rc, st.message,
              mesh_endpoints_count(e));
      return 1;
    }
    mesh_endpoints_free(e);
  }
  mesh_free(m);
  qsort(dec, (size_t)rounds, sizeof *dec, cmp);
  qsort(pub, (size_t)rounds, sizeof *pub, cmp);
  qsort(pubcpu, (size_t)rounds, sizeof *pubcpu, cmp);
  printf("xds_eds endpoints=%zu bytes=%zu rounds=%d decode_median_ms=%.3f "
         "publish_median_ms=%.3f publish_max_ms=%.3f publish_cpu_median_ms=%.3f\n",
         n, len[0], rounds, dec[rounds / 2], pub[rounds / 2], pub[rounds - 1],
         pubcpu[rounds / 2]);
  free(dec);
  free(pub);
  free(pubcpu);
  free(resp[0]);
  free(resp[1]);
  free(cla[0]);
  free(cla[1]);
  return 0;
}

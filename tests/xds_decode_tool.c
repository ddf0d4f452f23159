/* SPDX-License-Identifier: Apache-2.0 */
/* tests/xds_decode_tool TYPE FILE: decode one xDS resource with libmesh's
 * decoders and print the model as JSON (the interop test compares it with
 * what gRPC's own xDS client reached).  TYPE: ClusterLoadAssignment,
 * Cluster, RouteConfiguration, Listener.  Exit 1 with the NACK message on
 * refusal.
 *   xds_decode_tool route FILE HOST PATH[@HEADER=VALUE]... : the cluster
 * libmesh's per-request route table (xds/route.c) chooses for each gRPC
 * call of PATH to authority HOST in the RouteConfiguration FILE, as a
 * JSON array ("-": no route). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/xds.h"

static cJSON *eds_json(const mesh__xds_eds_t *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", e->name);
  cJSON *a = cJSON_AddArrayToObject(o, "endpoints");
  for (size_t i = 0; i < e->n; i++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "address", e->eps[i].address);
    cJSON_AddNumberToObject(x, "port", e->eps[i].port);
    cJSON_AddNumberToObject(x, "priority", e->eps[i].priority);
    cJSON_AddNumberToObject(x, "weight", e->eps[i].weight);
    cJSON_AddStringToObject(x, "zone", e->eps[i].zone ? e->eps[i].zone : "");
    cJSON_AddItemToArray(a, x);
  }
  if (e->locality_weights)
    cJSON_AddItemToObject(o, "locality_weights", cJSON_Duplicate(e->locality_weights, 1));
  return o;
}

static const char *one_header(void *user, const char *name) {
  const char *h = user; /* "name=value" or NULL */
  size_t n = strlen(name);
  return h && strncmp(h, name, n) == 0 && h[n] == '=' ? h + n + 1 : NULL;
}

/* The route mode (see the top comment). */
static int route_mode(const uint8_t *buf, size_t n, int argc, char **argv) {
  mesh_status_t st = {0};
  cJSON *doc = NULL, *res = cJSON_CreateArray();
  if (mesh__xds_decode_rds(buf, n, &doc, &st)) {
    printf("NACK: %s\n", st.message);
    return 1;
  }
  mesh__xds_rtab_t *t = NULL;
  const cJSON *vh = mesh__xds_vhost_pick(doc, argv[3]);
  if (vh && mesh__xds_rtab_build(vh, NULL, false, NULL, &t))
    return 1;
  for (int i = 4; i < argc; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s", argv[i]);
    char *at = strchr(path, '@');
    if (at)
      *at++ = '\0';
    mesh__xroute_in_t in = {.path = path, .header = one_header, .user = at,
                            .grpc = true};
    double u[4] = {0, 0, 0.99, 0.99};
    mesh__xroute_t x;
    bool ok = t && mesh__xds_rtab_route(t, &in, u, &x) == MESH_OK;
    cJSON_AddItemToArray(res, cJSON_CreateString(ok ? x.cluster : "-"));
  }
  char *s = cJSON_PrintUnformatted(res);
  printf("%s\n", s);
  free(s);
  cJSON_Delete(res);
  cJSON_Delete(doc);
  mesh__xds_rtab_release(t);
  return 0;
}

int main(int argc, char **argv) {
  bool route = argc >= 4 && strcmp(argv[1], "route") == 0;
  if (argc != 3 && !route)
    return 2;
  FILE *f = fopen(argv[2], "rb");
  if (!f)
    return 2;
  static uint8_t buf[1 << 22];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (route)
    return route_mode(buf, n, argc, argv);
  mesh_status_t st = {0};
  cJSON *out = NULL;
  int rc;
  if (strcmp(argv[1], "ClusterLoadAssignment") == 0) {
    mesh__xds_eds_t *e;
    rc = mesh__xds_decode_eds(buf, n, &e, &st);
    if (!rc)
      out = eds_json(e);
    mesh__xds_eds_free(e);
  } else if (strcmp(argv[1], "Cluster") == 0) {
    mesh__xds_cds_t *c;
    rc = mesh__xds_decode_cds(buf, n, &c, &st);
    if (!rc)
      out = cJSON_Duplicate(c->svc, 1);
    if (!rc && c->kind == MESH__XDS_CLUSTER_AGGREGATE) /* A37's children */
      cJSON_AddItemToObject(out, "aggregate", cJSON_CreateStringArray(
                                                  (const char *const *)c->children,
                                                  (int)c->nchildren));
    if (!rc && c->kind == MESH__XDS_CLUSTER_LOGICAL_DNS) { /* A37's DNS one */
      cJSON *d = cJSON_AddObjectToObject(out, "logical_dns");
      cJSON_AddStringToObject(d, "host", c->dns.host);
      cJSON_AddNumberToObject(d, "port", c->dns.port);
      cJSON_AddNumberToObject(d, "family", c->dns.family);
      cJSON_AddNumberToObject(d, "refresh_ms", (double)c->dns.refresh_ms);
    }
    mesh__xds_cds_free(c);
  } else if (strcmp(argv[1], "RouteConfiguration") == 0) {
    rc = mesh__xds_decode_rds(buf, n, &out, &st);
  } else {
    mesh__xds_lds_t *l;
    rc = mesh__xds_decode_lds(buf, n, &l, &st);
    if (!rc) {
      out = cJSON_CreateObject();
      cJSON_AddStringToObject(out, "rds", l->rds_name ? l->rds_name : "");
    }
    mesh__xds_lds_free(l);
  }
  if (rc) {
    printf("NACK: %s\n", st.message);
    return 1;
  }
  char *s = cJSON_PrintUnformatted(out);
  printf("%s\n", s);
  free(s);
  cJSON_Delete(out);
  return 0;
}

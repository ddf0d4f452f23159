/* SPDX-License-Identifier: Apache-2.0 */
/* tests/xds_decode_tool TYPE FILE: decode one xDS resource with libmesh's
 * decoders and print the model as JSON (the interop test compares it with
 * what gRPC's own xDS client reached).  TYPE: ClusterLoadAssignment,
 * Cluster, RouteConfiguration, Listener.  Exit 1 with the NACK message on
 * refusal. */
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

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  FILE *f = fopen(argv[2], "rb");
  if (!f)
    return 2;
  static uint8_t buf[1 << 22];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
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

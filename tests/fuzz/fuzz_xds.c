/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz one xDS decoder (libmesh/xds), chosen at build time by FUZZ_XDS:
 * 1 EDS, 2 CDS, 3 RDS, 4 LDS.  Input: the resource's bytes.
 * Properties: the verdict is OK or one of the documented codes; a refusal
 * has a message and no result; a result holds what the model promises
 * (EDS: ports 1..65535, weights >= 1, priorities below npriorities, and a
 * snapshot builds from it; CDS: an EDS name exactly for EDS clusters,
 * children exactly for aggregates, a service config object; RDS: every
 * route has clusters with a positive total weight; LDS: a client names
 * routes one way); decoding the same bytes again gives the same verdict
 * and message (no hidden state). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xds/xds.h"

#ifndef FUZZ_XDS
#define FUZZ_XDS 1
#endif

static void check_eds(const mesh__xds_eds_t *e) {
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

static void check_cds(const mesh__xds_cds_t *c) {
  FUZZ_ASSERT(c->name && *c->name && cJSON_IsObject(c->svc));
  if (c->kind == MESH__XDS_CLUSTER_EDS)
    FUZZ_ASSERT(c->eds_name && !c->nchildren);
  else
    FUZZ_ASSERT(!c->eds_name && c->nchildren > 0);
}

static void check_rds(const cJSON *d) {
  const cJSON *vh, *r, *c;
  cJSON_ArrayForEach(vh, cJSON_GetObjectItem(d, "virtual_hosts")) {
    FUZZ_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(vh, "domains")) > 0);
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(vh, "routes")) {
      double sum = 0;
      cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "clusters"))
        sum += cJSON_GetObjectItem(c, "weight")->valuedouble;
      FUZZ_ASSERT(sum > 0);
    }
  }
}

static int decode(const uint8_t *data, size_t size, mesh_status_t *st) {
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
  mesh__xds_lds_free(l);
#endif
  return rc;
}

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

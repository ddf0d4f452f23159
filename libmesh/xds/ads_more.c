/* SPDX-License-Identifier: Apache-2.0 */
/* The ADS session, continued (ads.c is the protocol core): gRFC A27's
 * does-not-exist timer, the status getter first-use waiters read, and the
 * aggregate graph check run on every accepted Cluster.  No I/O. */
#include <stdlib.h>
#include <string.h>

#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds/ads_int.h"

size_t mesh__xds_ads_expire(mesh__xds_ads_t *a, int64_t now_ms,
                            int64_t timeout_ms) {
  size_t n = 0;
  for (int t = 0; a && t < MESH__XDS_T_N_; t++)
    for (size_t i = 0; i < a->t[t].n; i++) {
      res_t *r = &a->t[t].r[i];
      if (r->status != MESH__XDS_REQUESTED || r->obj || !r->asked_ms ||
          now_ms - r->asked_ms < timeout_ms)
        continue;
      r->status = MESH__XDS_DOES_NOT_EXIST;
      mesh__xds_refuse(r->err, sizeof r->err, 0, "no answer within %lld ms "
                       "of the request", (long long)timeout_ms);
      n++;
    }
  return n;
}

int mesh__xds_ads_status(const mesh__xds_ads_t *a, mesh__xds_type_t t,
                         const char *name) {
  if (!a || !name || t < 0 || t >= MESH__XDS_T_N_)
    return -1;
  const tstate_t *ts = &a->t[t];
  for (size_t i = 0; i < ts->n; i++)
    if (strcmp(ts->r[i].name, name) == 0)
      return ts->r[i].status;
  return -1;
}

int mesh__xds_ads_agg_check(const mesh__xds_ads_t *a, const void *obj,
                            mesh_status_t *st) {
  const mesh__xds_cds_t *c = obj;
  const tstate_t *ts = &a->t[MESH__XDS_T_CDS];
  bool sub = false; /* names not subscribed are dropped, not checked */
  for (size_t i = 0; c && !sub && i < ts->n; i++)
    sub = strcmp(ts->r[i].name, c->name) == 0;
  if (!sub)
    return MESH_OK;
  bool any = c->kind == MESH__XDS_CLUSTER_AGGREGATE;
  for (size_t i = 0; !any && i < ts->n; i++) {
    const mesh__xds_cds_t *o = ts->r[i].obj;
    any = o && o->kind == MESH__XDS_CLUSTER_AGGREGATE;
  }
  if (!any) /* no aggregate anywhere: nothing to walk */
    return MESH_OK;
  const mesh__xds_cds_t **all = calloc(ts->n + 1, sizeof *all);
  if (!all)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  size_t n = 0;
  for (size_t i = 0; i < ts->n; i++)
    if (ts->r[i].obj)
      all[n++] = ts->r[i].obj;
  int rc = mesh__xds_agg_check(c, all, n, st);
  free(all);
  return rc;
}

size_t mesh__xds_ads_ncds(const mesh__xds_ads_t *a) {
  return a ? a->t[MESH__XDS_T_CDS].n : 0;
}

const mesh__xds_cds_t *mesh__xds_ads_cds_at(const mesh__xds_ads_t *a,
                                            size_t i) {
  return a && i < a->t[MESH__XDS_T_CDS].n ? a->t[MESH__XDS_T_CDS].r[i].obj
                                          : NULL;
}

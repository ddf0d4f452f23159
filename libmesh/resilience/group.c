/* SPDX-License-Identifier: Apache-2.0 */
/* Groups of a service's hosts with their own outlier detection, breakers
 * and connect timeout (resilience.h: mesh__res_grp_t).  A control plane
 * that splits one service across clusters (xDS weighted clusters) sends
 * them through mesh__res_reconfigure(); services configured locally have
 * none and keep one state for the whole service.
 *
 * The settings of a group are part of one immutable live version; its
 * counters are a separate reference-counted object carried over from the
 * version in force when the group keeps its name, so calls bound to it
 * under the old version and the new share one max_requests budget.  A
 * group that disappears keeps its counters alive as long as a call or a
 * pooled connection still holds them. */
#include <stdlib.h>
#include <string.h>

#include "resilience/resilience.h"

const mesh__res_grp_t *mesh__res_grp_find(const mesh__res_live_t *l,
                                          const char *name) {
  for (size_t i = 0; l && name && i < l->ngrp; i++)
    if (strcmp(l->grp[i].name, name) == 0)
      return &l->grp[i];
  return NULL;
}

const mesh__res_grp_t *mesh__res_grp_of(const mesh__res_live_t *l,
                                        const mesh__host_t *h) {
  if (!l || !l->ngrp || !h)
    return NULL;
  return mesh__res_grp_find(l, mesh__host_label(h, l->grp_label));
}

const mesh__res_grp_t *mesh__res_grp_draw(const mesh__res_live_t *l,
                                          uint64_t r) {
  if (!l || !l->grp_weight)
    return NULL;
  uint64_t x = r % l->grp_weight;
  for (size_t i = 0; i < l->ngrp; i++) {
    if (x < l->grp[i].weight)
      return &l->grp[i];
    x -= l->grp[i].weight;
  }
  return NULL;
}

void mesh__res_grp_free(mesh__res_live_t *l) {
  for (size_t i = 0; i < l->ngrp; i++) {
    free(l->grp[i].name);
    mesh__breakers_unref(l->grp[i].br);
  }
  free(l->grp);
  free(l->grp_label);
  l->grp = NULL;
  l->grp_label = NULL;
  l->ngrp = 0;
  l->grp_weight = 0;
}

static const char *const grp_keys[] = {"outlier_detection", "circuit_breakers",
                                       "timeouts", NULL};

/* One group's object: its keys checked and parsed into g.  Errors to c. */
static void parse_one(mesh__cfg_t *c, const cJSON *v, const char *path,
                      mesh__res_grp_t *g) {
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path, "must be an object");
    return;
  }
  const cJSON *k;
  cJSON_ArrayForEach(k, v) {
    bool known = strcmp(k->string, "weight") == 0;
    for (size_t i = 0; grp_keys[i] && !known; i++)
      known = strcmp(k->string, grp_keys[i]) == 0;
    if (!known)
      mesh__cfg_error(c, path, "unknown key \"%s\"", k->string);
  }
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, "weight");
  if (w && (!cJSON_IsNumber(w) || w->valuedouble < 0 ||
            w->valuedouble > UINT32_MAX || w->valuedouble != (double)(uint32_t)w->valuedouble))
    mesh__cfg_error(c, path, "weight must be an integer in 0..4294967295");
  g->weight = cJSON_IsNumber(w) && c->nerr == 0 ? (uint32_t)w->valuedouble : 0;
  char p[320];
  for (size_t i = 0; grp_keys[i]; i++) {
    snprintf(p, sizeof p, "%s.%s", path, grp_keys[i]);
    mesh__res_cfg_check_key(c, grp_keys[i],
                            cJSON_GetObjectItemCaseSensitive(v, grp_keys[i]), p);
  }
  if (c->nerr > 0)
    return;
  mesh__res_cfg_t cfg;
  mesh__res_cfg_parse(c, v, path, &cfg);
  g->od = cfg.od;
  g->cb = cfg.cb;
  g->connect_ms = cfg.to.connect_ms;
}

int mesh__res_grp_parse(mesh__res_live_t *l, const mesh__res_live_t *cur,
                        const cJSON *svc_cfg, mesh_status_t *st) {
  const cJSON *gs = cJSON_GetObjectItemCaseSensitive(svc_cfg, "groups");
  const cJSON *lab = cJSON_GetObjectItemCaseSensitive(svc_cfg, "group_label");
  if (!gs && !lab)
    return MESH_OK;
  if (!cJSON_IsObject(gs))
    return mesh__fail(st, MESH_ERR_CONFIG, "groups: must be an object");
  if (!cJSON_IsString(lab) || !lab->valuestring[0])
    return mesh__fail(st, MESH_ERR_CONFIG,
                      "group_label: must be a non-empty string");
  size_t n = (size_t)cJSON_GetArraySize(gs);
  l->grp = calloc(n ? n : 1, sizeof *l->grp);
  l->grp_label = mesh__strdup(lab->valuestring);
  if (!l->grp || !l->grp_label) {
    mesh__res_grp_free(l);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  mesh__cfg_t c = {.first = st};
  const cJSON *v;
  cJSON_ArrayForEach(v, gs) {
    mesh__res_grp_t *g = &l->grp[l->ngrp];
    char path[300];
    snprintf(path, sizeof path, "groups.%.200s", v->string);
    parse_one(&c, v, path, g);
    if (c.nerr > 0)
      break;
    const mesh__res_grp_t *old = mesh__res_grp_find(cur, v->string);
    g->name = mesh__strdup(v->string);
    g->br = old ? old->br : mesh__breakers_new();
    if (old)
      mesh__breakers_ref(g->br);
    l->ngrp++; /* from here g is freed with l */
    if (!g->name || !g->br) {
      mesh__res_grp_free(l);
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    }
    l->grp_weight += g->weight;
  }
  if (c.nerr > 0) {
    mesh__res_grp_free(l);
    return MESH_ERR_CONFIG;
  }
  return MESH_OK;
}

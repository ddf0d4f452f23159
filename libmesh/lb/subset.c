/* SPDX-License-Identifier: Apache-2.0 */
/* Subsets by labels and weighted traffic splits between them.
 *
 *   "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
 *   "split": [{"subset": "v1", "weight": 90}, {"subset": "v2", "weight": 10}]
 *
 * A subset is the hosts carrying every listed label with the listed value;
 * a split entry names a subset or writes its labels inline.  Each subset
 * gets its own priority levels, localities and picker structure per
 * snapshot.  A call picks a split entry at random in proportion to weight,
 * or — with a sticky key — by xxHash64(key) % total weight, so one key
 * always lands in the same subset (as long as the split does not change).
 * A call may also name a subset directly (ctx->subset), bypassing the split.
 * An empty subset fails the call (lb.subset_fallback "none", Envoy's
 * NO_FALLBACK) or uses every host ("any", Envoy's ANY_ENDPOINT). */
#include "lb/lb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ------------------------------------------------------------------ */

static void check_labels(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path, "expected an object of label: value");
    return;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    if (cJSON_IsString(it))
      continue;
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, it->string);
    mesh__cfg_error(c, p, "expected a string label value");
  }
}

void mesh__subsets_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!v)
    return;
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path, "expected an object of name: {label: value}");
    return;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, it->string);
    if (!it->string[0])
      mesh__cfg_error(c, p, "subset name must not be empty");
    check_labels(c, it, p);
  }
}

/* Returns false when the weight is missing or invalid. */
static bool check_entry(mesh__cfg_t *c, const cJSON *e, const char *p,
                        int64_t *weight) {
  static const char *const keys[] = {"subset", "weight", NULL};
  *weight = 0;
  if (!mesh__cfg_object(c, e, p, keys))
    return false;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "subset");
  char q[MESH__PATH_MAX];
  mesh__cfg_path(q, p, "subset");
  if (!s)
    mesh__cfg_error(c, q, "required: a subset name or {label: value}");
  else if (cJSON_IsObject(s))
    check_labels(c, s, q);
  else if (!cJSON_IsString(s))
    mesh__cfg_error(c, q, "expected a subset name or {label: value}");
  else if (c->svc && !cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(c->svc, "subsets"),
                         s->valuestring))
    mesh__cfg_error(c, q, "unknown subset \"%s\" (not in \"subsets\")",
                    s->valuestring);
  if (!cJSON_GetObjectItemCaseSensitive(e, "weight")) {
    mesh__cfg_path(q, p, "weight");
    mesh__cfg_error(c, q, "required: an integer in [0, 1000000]");
    return false;
  }
  return mesh__cfg_int(c, e, p, "weight", 0, 1000000, 0, weight);
}

static void split_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!v)
    return;
  if (!cJSON_IsArray(v)) {
    mesh__cfg_error(c, path, "expected an array of {subset, weight}");
    return;
  }
  int64_t total = 0;
  int i = 0;
  bool valid = true;
  const cJSON *e;
  cJSON_ArrayForEach(e, v) {
    char p[MESH__PATH_MAX + 16];
    snprintf(p, sizeof p, "%s[%d]", path, i++);
    int64_t w;
    valid = check_entry(c, e, p, &w) && valid;
    total += w;
  }
  if (valid && i > 0 && total == 0)
    mesh__cfg_error(c, path, "the weights must not all be 0");
}

const mesh__svc_part_t mesh__subsets_svc_part = {
    .key = "subsets", .check = mesh__subsets_check};
const mesh__svc_part_t mesh__split_svc_part = {.key = "split",
                                               .check = split_check};

static int add_subset(mesh__lb_conf_t *conf, const char *name,
                      const cJSON *labels) {
  mesh__lb_subset_t *s = &conf->subsets[conf->nsubsets++];
  size_t n = (size_t)cJSON_GetArraySize(labels);
  s->keys = calloc(n ? n : 1, sizeof *s->keys);
  s->values = calloc(n ? n : 1, sizeof *s->values);
  if (!s->keys || !s->values)
    return MESH_ERR_NOMEM;
  if (name) {
    s->name = strdup(name);
    if (!s->name)
      return MESH_ERR_NOMEM;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, labels) {
    if (!cJSON_IsString(it))
      continue;
    s->keys[s->nlabels] = strdup(it->string);
    s->values[s->nlabels] = strdup(it->valuestring);
    s->nlabels++;
    if (!s->keys[s->nlabels - 1] || !s->values[s->nlabels - 1])
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

static int find_named(const mesh__lb_conf_t *conf, const char *name) {
  for (size_t i = 0; i < conf->nsubsets; i++)
    if (conf->subsets[i].name && !strcmp(conf->subsets[i].name, name))
      return (int)i;
  return -1;
}

int mesh__subsets_parse(mesh__lb_conf_t *conf, const cJSON *svc_cfg,
                        mesh_status_t *st) {
  const cJSON *subs = cJSON_GetObjectItemCaseSensitive(svc_cfg, "subsets");
  const cJSON *split = cJSON_GetObjectItemCaseSensitive(svc_cfg, "split");
  size_t ns = cJSON_IsObject(subs) ? (size_t)cJSON_GetArraySize(subs) : 0;
  size_t np = cJSON_IsArray(split) ? (size_t)cJSON_GetArraySize(split) : 0;
  conf->subsets = calloc(ns + np ? ns + np : 1, sizeof *conf->subsets);
  conf->splits = calloc(np ? np : 1, sizeof *conf->splits);
  if (!conf->subsets || !conf->splits)
    return MESH_ERR_NOMEM;
  const cJSON *it;
  if (ns)
    cJSON_ArrayForEach(it, subs) {
      int rc = add_subset(conf, it->string, it);
      if (rc != MESH_OK)
        return rc;
    }
  int i = 0;
  if (np)
    cJSON_ArrayForEach(it, split) {
      const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "subset");
      const cJSON *w = cJSON_GetObjectItemCaseSensitive(it, "weight");
      int idx = -1;
      if (cJSON_IsString(s)) {
        idx = find_named(conf, s->valuestring);
        if (idx < 0)
          return mesh__fail(st, MESH_ERR_CONFIG,
                            "split[%d].subset: unknown subset \"%s\" (not in "
                            "\"subsets\")",
                            i, s->valuestring);
      } else {
        idx = (int)conf->nsubsets;
        int rc = add_subset(conf, NULL, s);
        if (rc != MESH_OK)
          return rc;
      }
      conf->splits[conf->nsplits].subset = (size_t)idx;
      conf->splits[conf->nsplits].weight =
          cJSON_IsNumber(w) ? (uint32_t)w->valuedouble : 0;
      conf->nsplits++;
      i++;
    }
  return MESH_OK;
}

/* ---- matching and choosing ------------------------------------------------------ */

bool mesh__subset_match(const mesh__lb_subset_t *s, const mesh__host_t *h) {
  for (size_t i = 0; i < s->nlabels; i++) {
    const char *v = mesh__host_label(h, s->keys[i]);
    if (!v || strcmp(v, s->values[i]) != 0)
      return false;
  }
  return true;
}

int mesh__lb_choose_set(const mesh__lb_state_t *st, const mesh__lb_ctx_t *ctx,
                        uint32_t *set) {
  *set = 0;
  if (ctx->subset) {
    for (size_t i = 0; i < st->nsubsets; i++)
      if (st->subset_names[i] && !strcmp(st->subset_names[i], ctx->subset)) {
        *set = (uint32_t)i + 1;
        return MESH_OK;
      }
    return MESH_ERR_NOT_FOUND;
  }
  if (st->nsplit == 0)
    return MESH_OK;
  uint64_t total = st->split_cum[st->nsplit - 1];
  if (total == 0)
    return MESH_OK;
  uint64_t r = ctx->sticky_key
                   ? mesh__xxh64(ctx->sticky_key, ctx->sticky_key_len, 0)
                   : mesh__lb_rand();
  uint64_t x = r % total;
  for (uint32_t i = 0; i < st->nsplit; i++)
    if (x < st->split_cum[i]) {
      *set = st->split_set[i];
      return MESH_OK;
    }
  return MESH_OK;
}

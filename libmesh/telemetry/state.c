/* SPDX-License-Identifier: Apache-2.0 */
/* The telemetry layer's state and its "metrics" config section.  The
 * registry is created lazily so that any part may register series (and
 * views) from its own init, whatever the order of the part table. */
#include "telemetry/metrics_impl.h"
#include "telemetry/telemetry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mesh__observe *mesh__observe_get(mesh_t *m) {
  if (!m)
    return NULL;
  struct mesh__observe *o = atomic_load_explicit(&m->observe, memory_order_acquire);
  if (o)
    return o;
  struct mesh__observe *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  n->metrics = mesh__metrics_new();
  if (!n->metrics) {
    free(n);
    return NULL;
  }
  pthread_mutex_init(&n->views_mu, NULL);
  struct mesh__observe *expected = NULL;
  if (atomic_compare_exchange_strong_explicit(
          &m->observe, &expected, n, memory_order_acq_rel, memory_order_acquire))
    return n;
  mesh__metrics_free(n->metrics); /* another thread won the race */
  pthread_mutex_destroy(&n->views_mu);
  free(n);
  return expected;
}

/* ---- "metrics" section ------------------------------------------------- */

static const char *const metrics_keys[] = {"latency_buckets", NULL};

static void metrics_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  if (!cfg || !mesh__cfg_object(c, cfg, path, metrics_keys))
    return;
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, "latency_buckets");
  if (!b)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "latency_buckets");
  int n = cJSON_GetArraySize(b);
  if (!cJSON_IsArray(b) || n < 1 || n > MESH__HIST_MAX_BUCKETS) {
    mesh__cfg_error(c, p, "expected an array of 1 to %d increasing numbers "
                    "(seconds)", MESH__HIST_MAX_BUCKETS);
    return;
  }
  double prev = -INFINITY;
  const cJSON *it;
  cJSON_ArrayForEach(it, b) {
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
        !(it->valuedouble > prev)) {
      mesh__cfg_error(c, p, "bounds must be finite and strictly increasing");
      return;
    }
    prev = it->valuedouble;
  }
}

static int metrics_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  struct mesh__observe *o = mesh__observe_get(m);
  if (!o)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  const cJSON *b =
      cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "latency_buckets") : NULL;
  if (b) {
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, b) o->latency_bounds[i++] = it->valuedouble;
    o->nlatency = i;
  }
  return MESH_OK;
}

static void metrics_fini(mesh_t *m) {
  struct mesh__observe *o = m->observe;
  if (!o)
    return;
  mesh__metrics_free(o->metrics);
  mesh__views_free(o);
  pthread_mutex_destroy(&o->views_mu);
  free(o);
  m->observe = NULL;
}

const mesh__part_t mesh__part_metrics = {
    .key = "metrics",
    .check = metrics_check,
    .init = metrics_init,
    .fini = metrics_fini,
};

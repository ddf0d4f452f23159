/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text exposition format 0.0.4: HELP/TYPE per family, escaped
 * help and label values, cumulative histogram buckets with le="+Inf",
 * _sum and _count. */
#include "observe/observe.h"
#include "telemetry/telemetry.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
  char *p;
  size_t len, cap;
  bool oom;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->oom)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *np = realloc(o->p, cap);
    if (!np) {
      o->oom = true;
      return;
    }
    o->p = np;
    o->cap = cap;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

static void put_help(out_t *o, const char *help) {
  for (const char *p = help; *p; p++) {
    if (*p == '\\')
      put(o, "\\\\", 2);
    else if (*p == '\n')
      put(o, "\\n", 2);
    else
      put(o, p, 1);
  }
}

static void put_sample(out_t *o, const char *name, const char *suffix,
                       const char *labels, const char *extra,
                       const char *value) {
  puts_(o, name);
  puts_(o, suffix);
  if (*labels || *extra) {
    put(o, "{", 1);
    puts_(o, labels);
    if (*labels && *extra)
      put(o, ",", 1);
    puts_(o, extra);
    put(o, "}", 1);
  }
  put(o, " ", 1);
  puts_(o, value);
  put(o, "\n", 1);
}

static void render_hist(out_t *o, const struct mesh__family *f,
                        const mesh__metric_t *s) {
  char v[64], le[80], b[40];
  uint64_t cum = 0;
  for (size_t i = 0; i <= f->nbounds; i++) {
    cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    if (i < f->nbounds)
      mesh__fmt_double(b, sizeof b, f->bounds[i]);
    else
      mesh__strlcpy(b, "+Inf", sizeof b);
    snprintf(le, sizeof le, "le=\"%s\"", b);
    snprintf(v, sizeof v, "%" PRIu64, cum);
    put_sample(o, f->name, "_bucket", s->labels, le, v);
  }
  uint64_t sb = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
  double sum;
  memcpy(&sum, &sb, sizeof sum);
  mesh__fmt_double(v, sizeof v, sum);
  put_sample(o, f->name, "_sum", s->labels, "", v);
  /* The count is the +Inf bucket so the two always agree in one scrape. */
  snprintf(v, sizeof v, "%" PRIu64, cum);
  put_sample(o, f->name, "_count", s->labels, "", v);
}

static void render_family(out_t *o, const struct mesh__family *f) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  if (!f->series)
    return;
  puts_(o, "# HELP ");
  puts_(o, f->name);
  put(o, " ", 1);
  put_help(o, f->help);
  puts_(o, "\n# TYPE ");
  puts_(o, f->name);
  put(o, " ", 1);
  puts_(o, types[f->type]);
  put(o, "\n", 1);
  for (const mesh__metric_t *s = f->series; s; s = s->next) {
    char v[64];
    if (f->type == MESH__METRIC_HISTOGRAM) {
      render_hist(o, f, s);
      continue;
    }
    if (f->type == MESH__METRIC_COUNTER) {
      snprintf(v, sizeof v, "%" PRIu64,
               atomic_load_explicit(&s->u, memory_order_relaxed));
    } else {
      double d;
      if (s->fn) {
        d = s->fn(s->user);
      } else {
        uint64_t u = atomic_load_explicit(&s->u, memory_order_relaxed);
        memcpy(&d, &u, sizeof d);
      }
      mesh__fmt_double(v, sizeof v, d);
    }
    put_sample(o, f->name, "", s->labels, "", v);
  }
}

int mesh__metrics_render(mesh_t *m, char **out, size_t *len) {
  if (!out)
    return MESH_ERR_INVALID_ARG;
  *out = NULL;
  mesh__metrics_t *r = mesh__metrics_get(m);
  if (!r)
    return m ? MESH_ERR_NOMEM : MESH_ERR_INVALID_ARG;
  out_t o = {0};
  put(&o, "", 0);
  pthread_mutex_lock(&r->mu);
  for (const struct mesh__family *f = r->head; f; f = f->next)
    render_family(&o, f);
  pthread_mutex_unlock(&r->mu);
  if (o.oom) {
    free(o.p);
    return MESH_ERR_NOMEM;
  }
  *out = o.p;
  if (len)
    *len = o.len;
  return MESH_OK;
}

int mesh_metrics_text(mesh_t *m, char *buf, size_t len, size_t *need) {
  if (!m || (!buf && len))
    return MESH_ERR_INVALID_ARG;
  char *text;
  size_t n;
  int rc = mesh__metrics_render(m, &text, &n);
  if (rc != MESH_OK)
    return rc;
  if (need)
    *need = n + 1;
  if (n + 1 > len) {
    free(text);
    return MESH_ERR_BUFFER;
  }
  memcpy(buf, text, n + 1);
  free(text);
  return (int)(n > INT32_MAX ? INT32_MAX : n);
}

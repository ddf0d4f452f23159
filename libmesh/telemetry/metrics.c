/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics registry: families (name, help, type, buckets) holding series
 * (one label set each).  Registration is locked and rare; updates are plain
 * atomics on a pre-resolved series handle. */
#include "telemetry/metrics.h"
#include "telemetry/metrics_impl.h"
#include "telemetry/telemetry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double mesh__latency_buckets[MESH__LATENCY_NBUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

/* ---- doubles in atomics ---------------------------------------------------- */

static uint64_t dbits(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

static double bitsd(uint64_t u) {
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double d) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  for (;;) {
    uint64_t nw = dbits(bitsd(old) + d);
    if (atomic_compare_exchange_weak_explicit(p, &old, nw,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      return;
  }
}

/* ---- hot path ---------------------------------------------------------------- */

void mesh__counter_add(mesh__metric_t *c, uint64_t n) {
  if (!c || c->fam->type != MESH__METRIC_COUNTER)
    return;
  atomic_fetch_add_explicit(&c->u, n, memory_order_relaxed);
}

void mesh__gauge_set(mesh__metric_t *g, double v) {
  if (!g || g->fam->type != MESH__METRIC_GAUGE || g->fn)
    return;
  atomic_store_explicit(&g->u, dbits(v), memory_order_relaxed);
}

void mesh__gauge_add(mesh__metric_t *g, double delta) {
  if (!g || g->fam->type != MESH__METRIC_GAUGE || g->fn)
    return;
  atomic_add_double(&g->u, delta);
}

void mesh__histogram_observe(mesh__metric_t *h, double v) {
  if (!h || h->fam->type != MESH__METRIC_HISTOGRAM || isnan(v))
    return;
  const struct mesh__family *f = h->fam;
  size_t i = 0;
  while (i < f->nbounds && v > f->bounds[i])
    i++;
  atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->u, 1, memory_order_relaxed);
  atomic_add_double(&h->sum_bits, v);
}

double mesh__metric_value(mesh__metric_t *x) {
  if (!x)
    return 0;
  switch (x->fam->type) {
  case MESH__METRIC_COUNTER:
  case MESH__METRIC_HISTOGRAM:
    return (double)atomic_load_explicit(&x->u, memory_order_relaxed);
  default:
    if (x->fn)
      return x->fn(x->user);
    return bitsd(atomic_load_explicit(&x->u, memory_order_relaxed));
  }
}

double mesh__histogram_sum(mesh__metric_t *h) {
  if (!h || h->fam->type != MESH__METRIC_HISTOGRAM)
    return 0;
  return bitsd(atomic_load_explicit(&h->sum_bits, memory_order_relaxed));
}

/* ---- names and labels ----------------------------------------------------- */

static bool name_char(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
      c == ':')
    return true;
  return !first && c >= '0' && c <= '9';
}

bool mesh__metric_name_ok(const char *name, int type) {
  if (!name || strncmp(name, "mesh_", 5) != 0)
    return false;
  size_t n = strlen(name);
  if (n > 200)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!name_char(name[i], i == 0))
      return false;
  if (type == MESH__METRIC_COUNTER)
    return n > 6 && strcmp(name + n - 6, "_total") == 0;
  return true;
}

static bool label_key_ok(const char *k, size_t n) {
  if (n == 0 || n > 64 || (n >= 2 && k[0] == '_' && k[1] == '_'))
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = k[i];
    if (c == ':' || !name_char(c, i == 0))
      return false;
  }
  return !(n == 2 && k[0] == 'l' && k[1] == 'e'); /* reserved by histograms */
}

/* Growable output for label rendering. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf_t;

static void sb_putc(sbuf_t *b, char c) {
  if (b->oom)
    return;
  if (b->len + 2 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  b->p[b->len++] = c;
  b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    sb_putc(b, s[i]);
}

/* Parse "k=v,k2=v2" into the rendered form `k="v",k2="v2"` (values
 * escaped for the exposition format) and the key list "k,k2".  One pass
 * that writes both outputs as it reads (65 lines): split, the escaping
 * rules would be spread over helpers that share the two buffers.
 * @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_NOMEM. */
int mesh__labels_parse(const char *kv, char **rendered, char **keys) {
  sbuf_t r = {0}, k = {0};
  sb_putc(&r, '\0');
  r.len = 0;
  sb_putc(&k, '\0');
  k.len = 0;
  const char *p = kv ? kv : "";
  int rc = MESH_OK;
  size_t nlabels = 0;
  while (*p && rc == MESH_OK) {
    const char *eq = strchr(p, '=');
    if (!eq || !label_key_ok(p, (size_t)(eq - p)) || ++nlabels > 16) {
      rc = MESH_ERR_PARSE;
      break;
    }
    /* duplicate key? */
    size_t klen = (size_t)(eq - p);
    if (k.len) {
      const char *s = k.p;
      while (s && *s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == klen && memcmp(s, p, n) == 0)
          rc = MESH_ERR_PARSE;
        s = e ? e + 1 : NULL;
      }
      sb_putc(&k, ',');
      sb_putc(&r, ',');
    }
    sb_puts(&k, p, klen);
    sb_puts(&r, p, klen);
    sb_puts(&r, "=\"", 2);
    const char *v = eq + 1;
    while (*v && *v != ',') {
      char c = *v;
      if (c == '\\' && (v[1] == ',' || v[1] == '\\')) {
        c = v[1];
        v++;
      }
      if (c == '\\' || c == '"') {
        sb_putc(&r, '\\');
        sb_putc(&r, c);
      } else if (c == '\n') {
        sb_puts(&r, "\\n", 2);
      } else {
        sb_putc(&r, c);
      }
      v++;
    }
    sb_putc(&r, '"');
    p = *v == ',' ? v + 1 : v;
    if (*v == ',' && !*p)
      rc = MESH_ERR_PARSE; /* trailing comma */
  }
  if (r.oom || k.oom)
    rc = MESH_ERR_NOMEM;
  if (rc != MESH_OK) {
    free(r.p);
    free(k.p);
    return rc;
  }
  /* kept for the series' life: at their length, not the doubled buffer
   * (~0.8 KB per service of ~22 series) */
  char *rf = realloc(r.p, r.len + 1), *kf = realloc(k.p, k.len + 1);
  *rendered = rf ? rf : r.p;
  *keys = kf ? kf : k.p;
  return MESH_OK;
}

/* ---- registry ------------------------------------------------------------- */

mesh__metrics_t *mesh__metrics_get(mesh_t *m) {
  struct mesh__observe *o = mesh__observe_get(m);
  return o ? o->metrics : NULL;
}

mesh__metrics_t *mesh__metrics_new(void) {
  mesh__metrics_t *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  pthread_mutex_init(&r->mu, NULL);
  return r;
}

struct mesh__series_chunk {
  struct mesh__series_chunk *next;
  size_t used, cap; /* bytes of mem */
  _Alignas(16) unsigned char mem[];
};

/* n zeroed bytes, 16-aligned, from the registry's chunks (4 KiB first,
 * doubling to 64 KiB: a context with a few services stays small).
 * Called with r->mu held. */
static void *series_alloc(mesh__metrics_t *r, size_t n) {
  n = (n + 15) & ~(size_t)15;
  struct mesh__series_chunk *c = r->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = c ? c->cap * 2 : 4096;
    if (cap > 65536)
      cap = 65536;
    if (cap < n)
      cap = n;
    struct mesh__series_chunk *nc = calloc(1, sizeof *nc + cap);
    if (!nc)
      return NULL;
    nc->cap = cap;
    nc->next = c;
    r->chunks = c = nc;
  }
  void *p = c->mem + c->used;
  c->used += n;
  return p;
}

void mesh__metrics_free(mesh__metrics_t *r) {
  if (!r)
    return;
  struct mesh__family *f = r->head;
  while (f) {
    struct mesh__family *nf = f->next;
    free(f->name);
    free(f->help);
    free(f->keys);
    free(f->bounds);
    free(f);
    f = nf;
  }
  while (r->chunks) { /* the series */
    struct mesh__series_chunk *c = r->chunks;
    r->chunks = c->next;
    free(c);
  }
  free(r->idx);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static bool bounds_ok(const double *b, size_t n) {
  if (n == 0 || n > MESH__HIST_MAX_BUCKETS)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
      return false;
  }
  return true;
}

static struct mesh__family *family_find(mesh__metrics_t *r, const char *name) {
  for (struct mesh__family *f = r->head; f; f = f->next)
    if (strcmp(f->name, name) == 0)
      return f;
  return NULL;
}

static struct mesh__family *family_new(mesh__metrics_t *r, const char *name,
                                       const char *help, int type,
                                       const char *keys, const double *b,
                                       size_t nb) {
  struct mesh__family *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  f->keys = strdup(keys);
  f->type = type;
  f->registry = r;
  if (type == MESH__METRIC_HISTOGRAM) {
    f->bounds = malloc(nb * sizeof *b);
    if (f->bounds)
      memcpy(f->bounds, b, nb * sizeof *b);
    f->nbounds = nb;
  }
  if (!f->name || !f->help || !f->keys ||
      (type == MESH__METRIC_HISTOGRAM && !f->bounds)) {
    free(f->name);
    free(f->help);
    free(f->keys);
    free(f->bounds);
    free(f);
    return NULL;
  }
  if (r->tail)
    r->tail->next = f;
  else
    r->head = f;
  r->tail = f;
  return f;
}

static bool family_matches(const struct mesh__family *f, int type,
                           const char *keys, const double *b, size_t nb) {
  if (f->type != type || strcmp(f->keys, keys) != 0)
    return false;
  if (type != MESH__METRIC_HISTOGRAM)
    return true;
  return f->nbounds == nb && memcmp(f->bounds, b, nb * sizeof *b) == 0;
}

/* FNV-1a over the labels, seeded by the family's address, then
 * MurmurHash3's finalizer: FNV's multiply only carries upward, so without
 * it the low bits (the slot) of labels that differ in their last bytes
 * cluster. */
static size_t series_hash(const struct mesh__family *f, const char *labels) {
  uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)f;
  for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return (size_t)(h ^ (h >> 33));
}

/* The slot holding (f, labels) of hash h, or the free slot where it
 * would go.  The hash sits in the slot: a probe reads a series only when
 * the hashes agree, and growing reads none (cache misses at 100k series). */
static struct mesh__idx_slot *idx_slot(mesh__metrics_t *r, size_t h,
                                       const struct mesh__family *f,
                                       const char *labels) {
  size_t mask = r->idx_cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    struct mesh__idx_slot *e = &r->idx[i];
    if (!e->s || (e->hash == h && e->s->fam == f &&
                  strcmp(e->s->labels, labels) == 0))
      return e;
  }
}

/* Keep the index at most three quarters full (16 B a slot: at half, 46k
 * series of 2,000 services took 2 MiB; probes compare the hash kept in
 * the slot, so the longer runs cost few series reads).
 * @return false when out of memory. */
static bool idx_reserve(mesh__metrics_t *r) {
  if ((r->idx_n + 1) * 4 <= r->idx_cap * 3)
    return true;
  size_t cap = r->idx_cap ? r->idx_cap * 2 : 64;
  struct mesh__idx_slot *old = r->idx, *nw = calloc(cap, sizeof *nw);
  if (!nw)
    return false;
  size_t ocap = r->idx_cap, mask = cap - 1;
  r->idx = nw;
  r->idx_cap = cap;
  for (size_t i = 0; i < ocap; i++) {
    if (!old[i].s)
      continue;
    size_t j = old[i].hash & mask; /* all distinct: the first free slot */
    while (nw[j].s)
      j = (j + 1) & mask;
    nw[j] = old[i];
  }
  free(old);
  return true;
}

static mesh__metric_t *series_get(mesh__metrics_t *r, struct mesh__family *f,
                                  char *labels,
                                  mesh__gauge_fn fn, void *user) {
  if (!idx_reserve(r)) {
    free(labels);
    return NULL;
  }
  size_t h = series_hash(f, labels);
  struct mesh__idx_slot *slot = idx_slot(r, h, f, labels);
  if (slot->s) {
    mesh__metric_t *s = slot->s;
    free(labels);
    /* A computed gauge and a stored one cannot share a series. */
    if (f->type == MESH__METRIC_GAUGE && (s->fn == NULL) != (fn == NULL))
      return NULL;
    return s;
  }
  size_t nbk = f->type == MESH__METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
  size_t llen = strlen(labels) + 1;
  /* the labels after the struct, then a histogram's buckets at the next
   * 8-byte boundary */
  size_t boff = (sizeof(mesh__metric_t) + llen + 7) & ~(size_t)7;
  mesh__metric_t *s = series_alloc(r, boff + nbk * sizeof(uint64_t));
  if (!s) {
    free(labels);
    return NULL;
  }
  s->fam = f;
  memcpy(s->labels, labels, llen);
  if (nbk)
    s->buckets = (_Atomic uint64_t *)(void *)((char *)s + boff);
  else if (fn) {
    s->fn = fn;
    s->user = user;
  }
  free(labels);
  if (f->series_tail)
    f->series_tail->next = s;
  else
    f->series = s;
  f->series_tail = s;
  *slot = (struct mesh__idx_slot){h, s};
  r->idx_n++;
  return s;
}

static mesh__metric_t *reg(mesh_t *m, int type, const char *name,
                           const char *help, const char *labels_kv,
                           const double *b, size_t nb, mesh__gauge_fn fn,
                           void *user) {
  mesh__metrics_t *r = mesh__metrics_get(m);
  if (!r)
    return NULL;
  if (!mesh__metric_name_ok(name, type)) {
    mesh__log(m, MESH_LOG_ERROR, "metric_invalid", "name=%s reason=%s",
              name ? name : "(null)",
              "name must match mesh_[a-zA-Z0-9_:]* (counters end in _total)");
    return NULL;
  }
  if (type == MESH__METRIC_HISTOGRAM && !b) {
    struct mesh__observe *o = mesh__observe_get(m);
    b = o->nlatency ? o->latency_bounds : mesh__latency_buckets;
    nb = o->nlatency ? o->nlatency : MESH__LATENCY_NBUCKETS;
  }
  if (type == MESH__METRIC_HISTOGRAM && !bounds_ok(b, nb)) {
    mesh__log(m, MESH_LOG_ERROR, "metric_invalid",
              "name=%s reason=\"bad histogram bounds\"", name);
    return NULL;
  }
  char *labels, *keys;
  if (mesh__labels_parse(labels_kv, &labels, &keys) != MESH_OK) {
    mesh__log(m, MESH_LOG_ERROR, "metric_invalid",
              "name=%s reason=\"bad labels\"", name);
    return NULL;
  }
  pthread_mutex_lock(&r->mu);
  mesh__metric_t *s = NULL;
  struct mesh__family *f = family_find(r, name);
  if (!f)
    f = family_new(r, name, help, type, keys, b, nb);
  else if (!family_matches(f, type, keys, b, nb))
    f = NULL;
  if (f)
    s = series_get(r, f, labels, fn, user);
  else
    free(labels);
  pthread_mutex_unlock(&r->mu);
  free(keys);
  if (!s)
    mesh__log(m, MESH_LOG_ERROR, "metric_invalid",
              "name=%s reason=\"type, label keys or buckets differ from "
              "an earlier registration, or out of memory\"",
              name);
  return s;
}

mesh__metric_t *mesh__counter(mesh_t *m, const char *name, const char *help,
                              const char *labels_kv) {
  return reg(m, MESH__METRIC_COUNTER, name, help, labels_kv, NULL, 0, NULL,
             NULL);
}

mesh__metric_t *mesh__gauge(mesh_t *m, const char *name, const char *help,
                            const char *labels_kv) {
  return reg(m, MESH__METRIC_GAUGE, name, help, labels_kv, NULL, 0, NULL,
             NULL);
}

mesh__metric_t *mesh__gauge_func(mesh_t *m, const char *name,
                                 const char *help, const char *labels_kv,
                                 mesh__gauge_fn fn, void *user) {
  if (!fn)
    return NULL;
  return reg(m, MESH__METRIC_GAUGE, name, help, labels_kv, NULL, 0, fn, user);
}

static double detached(void *user) {
  (void)user;
  return NAN;
}

void mesh__gauge_func_detach(mesh__metric_t *g) {
  if (!g || g->fam->type != MESH__METRIC_GAUGE || !g->fn)
    return;
  /* Renders read fn under the registry lock: swap it under the same. */
  mesh__metrics_t *r = g->fam->registry;
  pthread_mutex_lock(&r->mu);
  g->fn = detached;
  g->user = NULL;
  pthread_mutex_unlock(&r->mu);
}

mesh__metric_t *mesh__histogram(mesh_t *m, const char *name, const char *help,
                                const char *labels_kv, const double *bounds,
                                size_t nbounds) {
  return reg(m, MESH__METRIC_HISTOGRAM, name, help, labels_kv, bounds,
             nbounds, NULL, NULL);
}

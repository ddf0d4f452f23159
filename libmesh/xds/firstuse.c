/* SPDX-License-Identifier: Apache-2.0 */
/* Names subscribed on first use, as gRPC's xds resolver does for
 * xds:///NAME: a call or dial naming something that is neither a
 * configured service nor host:port, on a context with an "xds" section,
 * subscribes Listener NAME (then its route configuration, clusters and
 * endpoints as for a declared {"type": "xds", "listener": NAME} service)
 * and waits for them, bounded by its deadline (or the connect timeout;
 * without one, resource_timeout_ms).  A name the control plane does not
 * know fails with MESH_ERR_UNKNOWN_SERVICE: a full-state LDS response
 * without it, or gRFC A27's does-not-exist timer (resource_timeout_ms,
 * 15 s by default) for a control plane that never answers; so does one
 * whose routes name a cluster that does not exist, while no route table
 * of it is in force.
 *
 * Choices: a name once subscribed stays subscribed (and its service
 * exists) until mesh_free, as a gRPC channel keeps its watch while it
 * lives; xds.first_use_max (100 by default) bounds how many names, so a
 * caller with random names cannot grow the library without bound; over
 * it the call fails with MESH_ERR_UNKNOWN_SERVICE saying so.  Only names
 * a config could declare (1-128 of A-Z a-z 0-9 . _ -) are taken, and
 * gRPC's target form xds:///NAME (NAME: 1..256 printable bytes, so
 * Istio's "reviews.default.svc.cluster.local:9080" too): the service is
 * called by the whole target, the Listener is NAME.
 *
 * Threads: creation runs on the loop thread (mesh__loop_call) under the
 * session lock; waiters sleep on a condition variable the loop thread
 * broadcasts after each response and timer tick; lookups (the route hook,
 * mesh__service_find) are lock-free over an append-only array. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xds/xds.h"
#include "xds/xds_int.h"

enum { PENDING = 0, READY, MISSING };

typedef struct fent {
  mesh__xds_svc_t s;
  _Atomic int state;
  char why[300];              /* MISSING: the reason */
} fent_t;

struct mesh__xds_fu {
  mesh_t *m;
  pthread_mutex_t *mu;        /* the session's */
  mesh__xds_ads_t *ads;
  pthread_cond_t cv;          /* CLOCK_MONOTONIC */
  size_t max;
  int64_t dne_ms;
  fent_t *v;                  /* [max] */
  _Atomic size_t n;
  int64_t timer;
};

#define DEFAULT_MAX 100
#define DEFAULT_DNE_MS 15000 /* gRFC A27 */

void mesh__xds_fu_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  int64_t v;
  if (!cfg)
    return;
  mesh__cfg_int(c, cfg, path, "first_use_max", 0, 4096, DEFAULT_MAX, &v);
  mesh__cfg_int(c, cfg, path, "resource_timeout_ms", 10, 600000,
                DEFAULT_DNE_MS, &v);
}

static fent_t *find(mesh__xds_fu_t *f, const char *name) {
  size_t n = f ? atomic_load_explicit(&f->n, memory_order_acquire) : 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(f->v[i].s.name, name) == 0)
      return &f->v[i];
  return NULL;
}

mesh__xds_svc_t *mesh__xds_fu_find(mesh__xds_fu_t *f, const char *name) {
  fent_t *e = find(f, name);
  return e ? &e->s : NULL;
}

/* A cluster the listener's routes name that the control plane says does
 * not exist (absent from a full-state CDS response, or A27's timer), or
 * NULL.  Such a state is never applied (apply.c waits for every cluster),
 * so a first use waiting for it fails now, as gRPC's xDS client fails the
 * channel's RPCs ("does not exist"), not at its deadline. */
static const char *missing_cluster(const mesh__xds_ads_t *a,
                                   const mesh__xds_lds_t *l, const char *li) {
  const cJSON *rc = l->route_config
                        ? l->route_config
                        : mesh__xds_ads_cached(a, MESH__XDS_T_RDS, l->rds_name);
  const cJSON *vh = rc ? mesh__xds_vhost_pick(rc, li) : NULL;
  const cJSON *r, *c;
  cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(vh, "routes"))
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "clusters")) {
      const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name"));
      if (n && mesh__xds_ads_status(a, MESH__XDS_T_CDS, n) ==
                   MESH__XDS_DOES_NOT_EXIST)
        return n;
    }
  return NULL;
}

/* The entry's state from the cache (session lock held). */
static void update(mesh__xds_fu_t *f, fent_t *e) {
  const char *li = e->s.listener;
  int ls = mesh__xds_ads_status(f->ads, MESH__XDS_T_LDS, li);
  const mesh__xds_lds_t *l = mesh__xds_ads_cached(f->ads, MESH__XDS_T_LDS, li);
  int rs = l && l->rds_name
               ? mesh__xds_ads_status(f->ads, MESH__XDS_T_RDS, l->rds_name)
               : -1;
  int st = PENDING;
  const char *cl = l && !atomic_load(&e->s.routes.cur)
                       ? missing_cluster(f->ads, l, li) : NULL;
  if (ls == MESH__XDS_DOES_NOT_EXIST) {
    st = MISSING;
    snprintf(e->why, sizeof e->why, "xds: listener \"%.128s\" does not "
             "exist (the control plane does not know it)", li);
  } else if (rs == MESH__XDS_DOES_NOT_EXIST) {
    st = MISSING;
    snprintf(e->why, sizeof e->why, "xds: listener \"%.128s\": route "
             "configuration \"%.100s\" does not exist", li, l->rds_name);
  } else if (atomic_load(&e->s.routes.cur)) {
    st = READY; /* a table in force keeps serving its clusters */
  } else if (cl) {
    st = MISSING;
    snprintf(e->why, sizeof e->why, "xds: listener \"%.100s\": cluster "
             "\"%.100s\" does not exist", li, cl);
  }
  atomic_store(&e->state, st);
}

void mesh__xds_fu_applied(mesh__xds_fu_t *f, bool dirty) {
  size_t n = f ? atomic_load(&f->n) : 0;
  for (size_t i = 0; i < n; i++) {
    if (dirty)
      mesh__xds_apply(f->m, f->ads, &f->v[i].s);
    update(f, &f->v[i]);
  }
  if (f)
    pthread_cond_broadcast(&f->cv);
}

static void tick(void *user) {
  mesh__xds_fu_t *f = user;
  pthread_mutex_lock(f->mu);
  if (mesh__xds_ads_expire(f->ads, mesh__now_ms(), f->dne_ms))
    mesh__xds_fu_applied(f, false);
  pthread_mutex_unlock(f->mu);
  int64_t every = f->dne_ms / 4 < 1000 ? f->dne_ms / 4 : 1000;
  int64_t t = mesh__loop_timer(f->m->loop, every > 5 ? every : 5, tick, f);
  f->timer = t > 0 ? t : 0;
}

/* The Listener a first-use name subscribes, or NULL (not taken). */
static const char *listener_of(const char *name) {
  if (strncmp(name, "xds:///", 7) != 0)
    return mesh__name_valid(name) ? name : NULL;
  const char *li = name + 7;
  size_t n = 0;
  for (; li[n] && n <= 256; n++)
    if ((unsigned char)li[n] <= ' ' || (unsigned char)li[n] >= 0x7f)
      return NULL;
  return n >= 1 && n <= 256 ? li : NULL;
}

struct create {
  mesh__xds_fu_t *f;
  const char *name;
  fent_t *e;
  mesh_status_t *st;
  int rc;
};

/* A new entry for c->name: its service, its Listener watch (loop thread,
 * session lock held). */
static int add(struct create *c) {
  mesh__xds_fu_t *f = c->f;
  size_t n = atomic_load(&f->n);
  if (n >= f->max)
    return mesh__fail(c->st, MESH_ERR_UNKNOWN_SERVICE, "xds: \"%.128s\" "
                      "is not subscribed: the limit of %zu names subscribed "
                      "on first use is reached (xds.first_use_max)", c->name,
                      f->max);
  fent_t *e = &f->v[n];
  memset(e, 0, sizeof *e);
  const char *li = listener_of(c->name);
  e->s.name = mesh__strdup(c->name);
  e->s.listener = mesh__strdup(li);
  cJSON *cfg = cJSON_CreateObject();
  cJSON *d = cJSON_AddObjectToObject(cfg, "discovery");
  cJSON_AddStringToObject(d, "type", "xds");
  if (!e->s.name || !e->s.listener ||
      !cJSON_AddStringToObject(d, "listener", li)) {
    cJSON_Delete(cfg);
    mesh__xds_svc_fini(&e->s);
    return mesh__fail(c->st, MESH_ERR_NOMEM, "out of memory");
  }
  mesh__service_t *svc;
  int rc = mesh__service_add(f->m, c->name, cfg, &svc, c->st);
  if (rc == MESH_OK)
    rc = mesh__xds_ads_watch(f->ads, MESH__XDS_T_LDS, li);
  if (rc != MESH_OK) { /* a service added stays (unused) until mesh_free */
    mesh__xds_svc_fini(&e->s);
    return mesh__fail(c->st, rc, "xds: cannot subscribe \"%.128s\": %s",
                      c->name, mesh_strerror(rc));
  }
  mesh__xds_apply(f->m, f->ads, &e->s); /* the cache may have it already */
  update(f, e);
  atomic_store_explicit(&f->n, n + 1, memory_order_release);
  c->e = e;
  mesh__log(f->m, MESH_LOG_INFO, "xds_first_use", "name=%s subscribed "
            "(%zu of %zu)", c->name, n + 1, f->max);
  return MESH_OK;
}

static void create_cb(void *user) {
  struct create *c = user;
  pthread_mutex_lock(c->f->mu);
  c->e = find(c->f, c->name);
  c->rc = c->e ? MESH_OK : add(c);
  pthread_mutex_unlock(c->f->mu);
}

/* Wait (bounded) for e's resources; the result as mesh__service_use's. */
static int await(mesh__xds_fu_t *f, fent_t *e, int64_t timeout_ms,
                 mesh__service_t **out, mesh_status_t *st) {
  bool on_loop = mesh__loop_on_thread(f->m->loop); /* it cannot wait */
  int64_t wait = timeout_ms > 0 ? timeout_ms : f->dne_ms;
  int64_t dl = mesh__now_ms() + wait;
  char why[sizeof e->why], note[sizeof e->s.note];
  pthread_mutex_lock(f->mu);
  while (!on_loop && atomic_load(&e->state) == PENDING &&
         mesh__cond_wait_until(&f->cv, f->mu, CLOCK_MONOTONIC, dl) != ETIMEDOUT)
    ;
  int state = atomic_load(&e->state);
  mesh__strlcpy(why, e->why, sizeof why);
  mesh__strlcpy(note, e->s.note[0] ? e->s.note : "waiting for the listener",
                sizeof note);
  pthread_mutex_unlock(f->mu);
  *out = mesh__service_find(f->m, e->s.name);
  if (state == READY && *out)
    return MESH_OK;
  if (state == MISSING)
    return mesh__fail(st, MESH_ERR_UNKNOWN_SERVICE, "%s", why);
  return mesh__fail(st, on_loop ? MESH_ERR_NO_ENDPOINTS : MESH_ERR_TIMEOUT,
                    "xds: \"%.128s\": no usable configuration from the "
                    "control plane %s%lld ms (%.150s)", e->s.name,
                    on_loop ? "yet, after " : "within ",
                    (long long)(on_loop ? 0 : wait), note);
}

/* m->svc_resolve: see the top of the file. */
static int resolve(mesh_t *m, const char *name, int64_t timeout_ms,
                   mesh__service_t **out, mesh_status_t *st) {
  mesh__xds_fu_t *f = mesh__xds_fu_of(m);
  fent_t *e = find(f, name);
  if (!e && (!f || !f->max || !listener_of(name)))
    return *out ? MESH_OK : 1;
  if (!e) {
    struct create c = {f, name, NULL, st, MESH_OK};
    int rc = mesh__loop_call(m->loop, create_cb, &c);
    if (rc != MESH_OK || c.rc != MESH_OK)
      return rc != MESH_OK ? mesh__fail(st, rc, "xds: the loop is not "
                                        "running") : c.rc;
    e = c.e;
  }
  if (atomic_load(&e->state) == READY) { /* the usual case: no lock */
    *out = mesh__service_find(m, name);
    if (*out)
      return MESH_OK;
  }
  return await(f, e, timeout_ms, out, st);
}

int mesh__xds_fu_new(mesh_t *m, const cJSON *cfg, pthread_mutex_t *mu,
                     mesh__xds_ads_t *ads, mesh__xds_fu_t **out) {
  mesh__cfg_t c = {0};
  int64_t max, dne;
  mesh__cfg_int(&c, cfg, "xds", "first_use_max", 0, 4096, DEFAULT_MAX, &max);
  mesh__cfg_int(&c, cfg, "xds", "resource_timeout_ms", 10, 600000,
                DEFAULT_DNE_MS, &dne);
  mesh__xds_fu_t *f = calloc(1, sizeof *f);
  if (!f || !(f->v = calloc((size_t)max + 1, sizeof *f->v))) {
    free(f);
    return MESH_ERR_NOMEM;
  }
  f->m = m;
  f->mu = mu;
  f->ads = ads;
  f->max = cfg ? (size_t)max : 0; /* first use needs the section */
  f->dne_ms = dne;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  m->svc_resolve = resolve;
  m->svc_dyn_max = f->max;
  *out = f;
  tick(f); /* arms the does-not-exist timer (for every subscription) */
  return MESH_OK;
}

void mesh__xds_fu_free(mesh__xds_fu_t *f) {
  if (!f)
    return;
  if (f->timer > 0)
    mesh__loop_timer_cancel(f->m->loop, f->timer);
  f->m->svc_resolve = NULL;
  size_t n = atomic_load(&f->n);
  for (size_t i = 0; i < n; i++)
    mesh__xds_svc_fini(&f->v[i].s);
  free(f->v);
  pthread_cond_destroy(&f->cv);
  free(f);
}

void mesh__xds_fu_view(mesh__xds_fu_t *f, cJSON *v) {
  static const char *const names[] = {"pending", "ready", "does_not_exist"};
  if (!f)
    return;
  cJSON *o = cJSON_AddObjectToObject(v, "first_use");
  cJSON_AddNumberToObject(o, "max", (double)f->max);
  cJSON_AddNumberToObject(o, "resource_timeout_ms", (double)f->dne_ms);
  cJSON *ns = cJSON_AddObjectToObject(o, "names");
  size_t n = atomic_load(&f->n);
  for (size_t i = 0; i < n; i++) {
    const fent_t *e = &f->v[i];
    cJSON *x = cJSON_AddObjectToObject(ns, e->s.name);
    int st = atomic_load(&e->state);
    cJSON_AddStringToObject(x, "state", names[st]);
    if (st == MISSING)
      cJSON_AddStringToObject(x, "error", e->why);
    else if (e->s.note[0])
      cJSON_AddStringToObject(x, "pending", e->s.note);
  }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Per-service discovery: the "discovery" config key, the state behind
 * mesh__service_t.disc, publishing endpoint sets, fail-static error
 * accounting, readiness for the first dial, and change watchers. */
#include "discovery/discovery.h"

#include <mesh/discovery.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(MESH_HEALTH_UNKNOWN == MESH__HEALTH_UNKNOWN &&
                   MESH_HEALTH_HEALTHY == MESH__HEALTH_HEALTHY &&
                   MESH_HEALTH_UNHEALTHY == MESH__HEALTH_UNHEALTHY &&
                   MESH_HEALTH_DRAINING == MESH__HEALTH_DRAINING,
               "public and internal health values must match");

static const char *const type_names[] = {"static", "file", "dns", "etcd",
                                         "xds", NULL};

struct mesh__disc_watch {
  int id;
  mesh_endpoints_fn fn;
  void *user;
  bool removed;
  struct mesh__disc_watch *next;
};

static _Atomic int next_watch_id = 1;

/* ---- config ---------------------------------------------------------------- */

static void disc_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!v)
    return;
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path, "expected an object with a \"type\"");
    return;
  }
  int type;
  if (!mesh__cfg_enum(c, v, path, "type", type_names, -1, &type)) {
    if (!cJSON_GetObjectItemCaseSensitive(v, "type")) {
      char p[MESH__PATH_MAX];
      mesh__cfg_path(p, path, "type");
      mesh__cfg_error(c, p, "required (\"static\", \"file\", \"dns\", "
                      "\"etcd\" or \"xds\")");
    }
    return;
  }
  switch (type) {
  case MESH__DISC_STATIC:
    mesh__disc_check_static(c, v, path);
    break;
  case MESH__DISC_FILE:
    mesh__disc_check_file(c, v, path);
    break;
  case MESH__DISC_DNS:
    mesh__disc_check_dns(c, v, path);
    break;
  case MESH__DISC_XDS:
    mesh__disc_check_xds(c, v, path);
    break;
  default:
    mesh__disc_check_etcd(c, v, path);
    break;
  }
}

/* ---- helpers for sources ----------------------------------------------------- */

void mesh__disc_quote(char *out, size_t size, const char *s) {
  size_t o = 0;
  if (size < 3) {
    if (size)
      out[0] = '\0';
    return;
  }
  out[o++] = '"';
  /* Room is kept for the closing quote and the NUL. */
  for (; s && *s && o + 2 < size; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      if (o + 3 >= size)
        break;
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else {
      out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
  }
  out[o++] = '"';
  out[o] = '\0';
}

int64_t mesh__disc_backoff(int64_t base_ms, int64_t max_ms, unsigned attempt) {
  /* +-20% jitter (gRPC connection backoff) so that many clients that lost
   * the same registry do not come back in lockstep. */
  return mesh__backoff_jitter(base_ms, max_ms, attempt, 20, mesh__rand64());
}

static void set_ready(mesh__disc_svc_t *d, int rc) {
  if (atomic_load(&d->ready))
    return;
  pthread_mutex_lock(&d->mu);
  if (!atomic_load(&d->ready)) {
    d->first_rc = rc;
    atomic_store(&d->ready, true);
    pthread_cond_broadcast(&d->cv);
  }
  pthread_mutex_unlock(&d->mu);
}

static const char *source_name(const mesh__disc_svc_t *d) {
  return d->source ? d->source->name : "none";
}

void mesh__disc_error(mesh__disc_svc_t *d, const char *fmt, ...) {
  char msg[256], q[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* kept for /endpoints and logged: never a URL's userinfo */
  mesh__redact_userinfo(msg, sizeof msg);
  atomic_fetch_add(&d->n_errors, 1);
  mesh__counter_add(d->m_errors, 1);
  atomic_store(&d->last_error_ms, mesh__now_ms());
  atomic_store(&d->stale, true);
  pthread_mutex_lock(&d->mu);
  mesh__strlcpy(d->last_error, msg, sizeof d->last_error);
  pthread_mutex_unlock(&d->mu);
  mesh__disc_quote(q, sizeof q, msg);
  mesh__log(d->m, MESH_LOG_WARN, "discovery_error",
            "service=%s source=%s endpoints=%zu err=%s", d->svc->name,
            source_name(d), d->last ? d->last->n : (size_t)0, q);
  set_ready(d, MESH_ERR_DISCOVERY);
}

void mesh__disc_ok(mesh__disc_svc_t *d) {
  atomic_store(&d->stale, false);
  set_ready(d, MESH_OK);
}

static void sweep_watches(mesh__disc_svc_t *d) {
  for (struct mesh__disc_watch **pp = &d->watches; *pp;) {
    struct mesh__disc_watch *w = *pp;
    if (w->removed) {
      *pp = w->next;
      free(w);
    } else {
      pp = &w->next;
    }
  }
}

/* Call every watcher.  A callback may add or remove watches: removal only
 * marks during the round, the sweep after it frees. */
static void call_watches(mesh__disc_svc_t *d, struct mesh__disc_watch *only) {
  struct mesh_endpoints view = {.s = d->last};
  bool outer = !d->notifying;
  d->notifying = true;
  for (struct mesh__disc_watch *w = d->watches; w; w = w->next)
    if (!w->removed && (!only || w == only))
      w->fn(d->svc->name, &view, w->user);
  if (outer) {
    d->notifying = false;
    sweep_watches(d);
  }
}

static void notify(mesh__disc_svc_t *d) { call_watches(d, NULL); }

static int publish(mesh__disc_svc_t *d, mesh__snapshot_t *s, bool settle) {
  s->version = d->version + 1;
  if (d->svc->prepare_snapshot) {
    int rc = d->svc->prepare_snapshot(d->svc, s);
    if (rc != MESH_OK) {
      size_t n = s->n;
      mesh__snap_release(s);
      mesh__disc_error(d, "load balancer could not prepare %zu endpoints: %s",
                       n, mesh_strerror(rc));
      return rc;
    }
  }
  d->version = s->version;
  mesh__snap_ref(s);
  mesh__snap_publish(&d->ref, s);
  mesh__snap_release(d->last);
  d->last = s;
  atomic_fetch_add(&d->n_updates, 1);
  mesh__counter_add(d->m_updates, 1);
  atomic_store(&d->last_update_ms, mesh__now_ms());
  mesh__log(d->m, MESH_LOG_INFO, "discovery_update",
            "service=%s source=%s endpoints=%zu version=%llu", d->svc->name,
            source_name(d), s->n, (unsigned long long)s->version);
  if (settle)
    mesh__disc_ok(d);
  else
    set_ready(d, MESH_OK);
  notify(d);
  return MESH_OK;
}

int mesh__disc_publish_set(mesh__disc_svc_t *d, const mesh__ep_t *eps,
                           size_t n, bool settle) {
  mesh__snapshot_t *s = NULL;
  int rc = mesh__snap_build(d->last, eps, n, &s);
  if (rc != MESH_OK) {
    mesh__disc_error(d, "cannot build the endpoint set: %s",
                     mesh_strerror(rc));
    return rc;
  }
  if (!s) {
    if (settle)
      mesh__disc_ok(d);
    else
      set_ready(d, MESH_OK);
    return MESH_OK;
  }
  return publish(d, s, settle);
}

int mesh__disc_apply(mesh__disc_svc_t *d, const mesh__ep_t *eps, size_t n) {
  /* DNS answers are addresses already; other sources may name hosts. */
  if (d->type != MESH__DISC_DNS && mesh__disc_has_hostname(eps, n))
    return mesh__resolver_update(d, eps, n);
  mesh__resolver_release(d);
  return mesh__disc_publish_set(d, eps, n, true);
}

/* If lb's per-service init ran after ours, the set published at init has
 * no picker state: publish it again, prepared, on the first loop round. */
static void reprepare(mesh__disc_svc_t *d) {
  if (!d->last || d->last->lb || !d->svc->prepare_snapshot)
    return;
  mesh__disc_republish(d);
}

int mesh__disc_republish(mesh__disc_svc_t *d) {
  if (!d->last)
    return MESH_OK; /* the first set will be prepared with the new config */
  mesh__snapshot_t *s = mesh__snap_new(d->last->n);
  if (!s) {
    mesh__disc_error(d, "out of memory");
    return MESH_ERR_NOMEM;
  }
  for (size_t i = 0; i < d->last->n; i++) {
    mesh__host_ref(d->last->hosts[i]);
    s->hosts[s->n++] = d->last->hosts[i];
  }
  return publish(d, s, !atomic_load(&d->stale));
}

/* ---- metrics ------------------------------------------------------------------- */

/* The health an endpoint counts under: as mesh_endpoint_health(). */
static int effective_health(const mesh__host_t *h) {
  if (h->source_health == MESH__HEALTH_DRAINING)
    return MESH__HEALTH_DRAINING;
  int hc = atomic_load(&h->hc_health);
  int v = hc != MESH__HEALTH_UNKNOWN ? hc : h->source_health;
  return v >= MESH__HEALTH_UNKNOWN && v <= MESH__HEALTH_DRAINING
             ? v
             : MESH__HEALTH_UNKNOWN;
}

/* One computed gauge per health value: the scrape reads the current
 * snapshot (lock-free), so active health checks show without a publish. */
static double endpoints_by_health(void *user) {
  const mesh__disc_gauge_t *g = user;
  mesh__snapshot_t *s = mesh__snap_acquire(&g->d->ref);
  double n = 0;
  for (size_t i = 0; s && i < s->n; i++)
    n += effective_health(s->hosts[i]) == g->health;
  mesh__snap_release(s);
  return n;
}

static void metrics_init(mesh__disc_svc_t *d) {
  static const char *const health_names[4] = {"unknown", "healthy",
                                              "unhealthy", "draining"};
  char l[256];
  snprintf(l, sizeof l, "service=%s,source=%s", d->svc->name,
           source_name(d));
  d->m_updates = mesh__counter(d->m, "mesh_discovery_updates_total",
                               "Endpoint sets published (changes only).", l);
  d->m_errors = mesh__counter(
      d->m, "mesh_discovery_errors_total",
      "Failed resolutions or watches (the last good set was kept).", l);
  for (int i = 0; i < 4; i++) {
    d->gauges[i].d = d;
    d->gauges[i].health = i;
    snprintf(l, sizeof l, "service=%s,health=%s", d->svc->name,
             health_names[i]);
    d->m_endpoints[i] = mesh__gauge_func(
        d->m, "mesh_endpoints",
        "Endpoints of the service by health (source or active check).", l,
        endpoints_by_health, &d->gauges[i]);
  }
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void disc_free(mesh__disc_svc_t *d) {
  while (d->watches) {
    struct mesh__disc_watch *w = d->watches;
    d->watches = w->next;
    free(w);
  }
  mesh__snap_release(d->last);
  mesh__snapref_fini(&d->ref);
  pthread_cond_destroy(&d->cv);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

static void disc_fini(mesh_t *m, mesh__service_t *svc) {
  (void)m;
  mesh__disc_svc_t *d = svc->disc;
  if (!d)
    return;
  /* The registry outlives us: its gauges must stop reading d. */
  for (int i = 0; i < 4; i++)
    mesh__gauge_func_detach(d->m_endpoints[i]);
  if (d->source && d->source->stop)
    d->source->stop(d);
  mesh__resolver_free(d);
  if (d->reprepare_timer > 0)
    mesh__loop_timer_cancel(m->loop, d->reprepare_timer);
  disc_free(d);
  svc->disc = NULL;
}

static void reprepare_cb(void *user) {
  mesh__disc_svc_t *d = user;
  d->reprepare_timer = 0;
  reprepare(d);
}

static int disc_init(mesh_t *m, mesh__service_t *svc, const cJSON *v,
                     mesh_status_t *st) {
  mesh__disc_svc_t *d = calloc(1, sizeof *d);
  if (!d)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  d->m = m;
  d->svc = svc;
  d->cfg = v;
  d->type = MESH__DISC_NONE;
  mesh__snapref_init(&d->ref);
  pthread_mutex_init(&d->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
  svc->disc = d;
  if (!v) {
    /* No discovery: the service has no endpoints (dials say so at once). */
    mesh__disc_apply(d, NULL, 0);
    return MESH_OK;
  }
  mesh__cfg_t c = {0};
  mesh__cfg_enum(&c, v, "", "type", type_names, 0, &d->type);
  static const mesh__disc_source_t *const sources[] = {
      &mesh__disc_static, &mesh__disc_file, &mesh__disc_dns,
      &mesh__disc_etcd, &mesh__disc_xds};
  d->source = sources[d->type];
  metrics_init(d); /* before the first publish, which it counts */
  int rc = d->source->start(d, st);
  if (rc != MESH_OK)
    return rc; /* mesh_new calls fini for every service */
  int64_t t = mesh__loop_timer(m->loop, 0, reprepare_cb, d);
  d->reprepare_timer = t > 0 ? t : 0;
  return MESH_OK;
}

/* the etcd source's credentials sit in the section itself */
static const char *const disc_secrets[] = {"password", NULL};
const mesh__svc_part_t mesh__disc_part = {"discovery", disc_check, disc_init,
                                          disc_fini, disc_secrets};

/* ---- internal API ---------------------------------------------------------------- */

mesh__snapref_t *mesh__disc_snapref(mesh__service_t *svc) {
  return svc && svc->disc ? &svc->disc->ref : NULL;
}

static int ready_result(mesh__disc_svc_t *d) {
  mesh__snapshot_t *s = mesh__snap_acquire(&d->ref);
  int rc = s ? MESH_OK : MESH_ERR_DISCOVERY;
  mesh__snap_release(s);
  return rc;
}

int mesh__disc_wait_ready(mesh__service_t *svc, int timeout_ms) {
  if (!svc || !svc->disc)
    return MESH_ERR_INVALID_ARG;
  mesh__disc_svc_t *d = svc->disc;
  if (atomic_load(&d->ready))
    return ready_result(d);
  if (d->m->external_loop || timeout_ms <= 0 ||
      mesh__loop_on_thread(d->m->loop))
    return MESH_ERR_TIMEOUT;
  int64_t deadline = mesh__now_ms() + timeout_ms;
  pthread_mutex_lock(&d->mu);
  int err = 0;
  while (!atomic_load(&d->ready) && err != ETIMEDOUT)
    err = mesh__cond_wait_until(&d->cv, &d->mu, CLOCK_MONOTONIC, deadline);
  pthread_mutex_unlock(&d->mu);
  if (!atomic_load(&d->ready))
    return MESH_ERR_TIMEOUT;
  return ready_result(d);
}

int mesh__disc_stats(mesh__service_t *svc, mesh__disc_stats_t *out) {
  if (!svc || !svc->disc || !out)
    return MESH_ERR_INVALID_ARG;
  mesh__disc_svc_t *d = svc->disc;
  memset(out, 0, sizeof *out);
  out->updates = atomic_load(&d->n_updates);
  out->errors = atomic_load(&d->n_errors);
  out->stale = atomic_load(&d->stale);
  out->last_update_ms = atomic_load(&d->last_update_ms);
  out->last_error_ms = atomic_load(&d->last_error_ms);
  out->source = source_name(d);
  mesh__snapshot_t *s = mesh__snap_acquire(&d->ref);
  if (s) {
    out->version = s->version;
    out->endpoints = s->n;
  }
  mesh__snap_release(s);
  pthread_mutex_lock(&d->mu);
  mesh__strlcpy(out->last_error, d->last_error, sizeof out->last_error);
  pthread_mutex_unlock(&d->mu);
  return MESH_OK;
}

/* ---- public API -------------------------------------------------------------------- */

static mesh__disc_svc_t *find_disc(mesh_t *m, const char *service,
                                   mesh_status_t *st, int *rc) {
  *rc = MESH_OK;
  if (!m || !service) {
    *rc = mesh__fail(st, MESH_ERR_INVALID_ARG,
                     "mesh and service must not be NULL");
    return NULL;
  }
  mesh__service_t *svc = mesh__service_find(m, service);
  if (!svc || !svc->disc) {
    *rc = mesh__fail(st, MESH_ERR_UNKNOWN_SERVICE,
                     "service \"%s\" is not configured", service);
    return NULL;
  }
  return svc->disc;
}

int mesh_endpoints_get(mesh_t *m, const char *service, mesh_endpoints_t **out,
                       mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  int rc;
  mesh__disc_svc_t *d = find_disc(m, service, st, &rc);
  if (!d)
    return rc;
  if (!out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "out must not be NULL");
  mesh_endpoints_t *e = calloc(1, sizeof *e);
  if (!e)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  e->s = mesh__snap_acquire(&d->ref);
  *out = e;
  return MESH_OK;
}

int mesh_discovery_wait(mesh_t *m, const char *service, int timeout_ms,
                        mesh_status_t *st) {
  mesh__ok(st);
  int rc;
  mesh__disc_svc_t *d = find_disc(m, service, st, &rc);
  if (!d)
    return rc;
  rc = mesh__disc_wait_ready(d->svc, timeout_ms);
  if (rc == MESH_ERR_TIMEOUT)
    return mesh__fail(st, rc, "service \"%s\": no answer from %s discovery "
                              "within %d ms",
                      service, source_name(d), timeout_ms);
  if (rc == MESH_ERR_DISCOVERY) {
    pthread_mutex_lock(&d->mu);
    mesh__fail(st, rc, "service \"%s\": %s", service, d->last_error);
    pthread_mutex_unlock(&d->mu);
  }
  return rc;
}

struct watch_op {
  mesh_t *m;
  mesh__disc_svc_t *d;
  struct mesh__disc_watch *w;
  int id;
  int rc;
};

static void watch_add_on_loop(void *user) {
  struct watch_op *op = user;
  mesh__disc_svc_t *d = op->d;
  op->w->next = d->watches;
  d->watches = op->w;
  if (d->last)
    call_watches(d, op->w);
}

int mesh_discovery_watch(mesh_t *m, const char *service, mesh_endpoints_fn fn,
                         void *user, mesh_status_t *st) {
  mesh__ok(st);
  int rc;
  mesh__disc_svc_t *d = find_disc(m, service, st, &rc);
  if (!d)
    return rc;
  if (!fn)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "fn must not be NULL");
  struct mesh__disc_watch *w = calloc(1, sizeof *w);
  if (!w)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  w->id = atomic_fetch_add(&next_watch_id, 1);
  w->fn = fn;
  w->user = user;
  struct watch_op op = {.m = m, .d = d, .w = w};
  int id = w->id; /* the first call may unwatch (and free) w */
  rc = mesh__loop_call(m->loop, watch_add_on_loop, &op);
  if (rc != MESH_OK) {
    free(w);
    return mesh__fail(st, rc, "cannot reach the worker loop");
  }
  return id;
}

static void watch_del_on_loop(void *user) {
  struct watch_op *op = user;
  op->rc = MESH_ERR_NOT_FOUND;
  for (size_t i = 0; i < op->m->services->n; i++) {
    mesh__disc_svc_t *d = op->m->services->v[i]->disc;
    for (struct mesh__disc_watch *w = d ? d->watches : NULL; w; w = w->next) {
      if (w->id == op->id && !w->removed) {
        w->removed = true;
        op->rc = MESH_OK;
      }
    }
    if (d && !d->notifying)
      sweep_watches(d);
  }
}

int mesh_discovery_unwatch(mesh_t *m, int id) {
  if (!m || !m->services || id <= 0)
    return MESH_ERR_INVALID_ARG;
  struct watch_op op = {.m = m, .id = id};
  int rc = mesh__loop_call(m->loop, watch_del_on_loop, &op);
  return rc != MESH_OK ? rc : op.rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The "xds" config section and the context's ADS session: the bootstrap
 * (section, or the GRPC_XDS_BOOTSTRAP* environment), the services that
 * take their endpoints from xDS ("discovery": {"type": "xds"}) subscribed
 * at mesh_new, accepted EDS updates published into discovery, and the
 * admin view "xds".  The session is driven on the loop thread (feed). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "discovery/discovery.h"
#include "telemetry/telemetry.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

struct mesh__xds {
  mesh_t *m;
  pthread_mutex_t mu; /* the session: fed on the loop, read by the view */
  mesh__xds_bootstrap_t *boot;
  mesh__xds_ads_t *ads;
  mesh__xds_svc_t *svcs;
  size_t nsvcs;
  bool dirty; /* a response changed the cache: apply (loop thread) */
  mesh__xds_stream_t *stream; /* the transport, NULL until started */
  /* mesh_xds_updates_total, mesh_xds_nacks_total */
  mesh__metric_t *m_updates, *m_nacks;
  char *server_lds; /* the xDS-enabled server's Listener (server.c), or NULL */
  mesh__xds_srv_t *srv; /* its filter chains in force (server.c), or NULL */
  mesh__xds_fu_t *fu; /* names subscribed on first use (firstuse.c) */
  mesh__xds_pw_t *pw; /* certificate provider rotation (provwatch.c) */
  mesh__xds_ldns_t *ldns; /* LOGICAL_DNS clusters' resolvers */
};

mesh__xds_ldns_t *mesh__xds_ldns_of(mesh_t *m) {
  return m && m->xds ? m->xds->ldns : NULL;
}

const struct mesh__xds_bootstrap *mesh__xds_boot_of(mesh_t *m) {
  return m && m->xds ? m->xds->boot : NULL;
}

mesh__xds_srv_t *mesh__xds_srv_of(mesh_t *m) {
  return m && m->xds ? m->xds->srv : NULL;
}

mesh__xds_pw_t *mesh__xds_pw_of(mesh_t *m) {
  return m && m->xds ? m->xds->pw : NULL;
}

/* Does any service of root take its endpoints from xDS? */
static bool any_xds_service(const cJSON *root) {
  const cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root, "services")) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(s, "discovery"), "type");
    if (cJSON_IsString(t) && strcmp(t->valuestring, "xds") == 0)
      return true;
  }
  return false;
}

static void xds_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  static const char *const keys[] = {"bootstrap", "server_address",
                                     "first_use_max", "resource_timeout_ms",
                                     "logical_dns", NULL};
  if (cfg && !mesh__cfg_object(c, cfg, path, keys))
    return;
  mesh__xds_fu_check(c, cfg, path);
  mesh__xds_ldns_check(c, cfg, path);
  /* an identity from a certificate provider needs the bootstrap too */
  if (!cfg && !any_xds_service(c->root) &&
      !mesh__xds_identity_instance(c->root))
    return;
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_load(c, cfg, path);
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "bootstrap.xds_servers[0].channel_creds");
  if (b && b->servers[0].tls && !b->servers[0].tls_cert_file &&
      !cJSON_GetObjectItemCaseSensitive(c->root, "identity"))
    mesh__cfg_error(c, p, "\"tls\" without certificate files uses the mesh "
                    "identity, and there is no \"identity\" section");
  if (cfg)
    mesh__xds_server_check(c, cfg, path, b);
  mesh__xds_bootstrap_free(b);
}

static void publish(mesh__xds_t *x, const mesh__xds_svc_t *s,
                    const mesh__ep_t *eps, size_t n) {
  mesh__service_t *svc = mesh__service_find(x->m, s->name);
  if (svc && svc->disc)
    mesh__disc_apply(svc->disc, eps, n);
}

/* Accepted resources only mark the session: the services are applied
 * once the whole response is in the cache (a route and the clusters it
 * names may come in one response). */
static void on_lds(void *user, const char *name, const mesh__xds_lds_t *l) {
  mesh__xds_t *x = user;
  x->dirty = true;
  if (x->server_lds && strcmp(x->server_lds, name) == 0)
    mesh__xds_server_on_lds(x->m, x->srv, name, l);
}

static void on_rds(void *user, const char *name, const cJSON *r) {
  (void)name;
  (void)r;
  ((mesh__xds_t *)user)->dirty = true;
}

static void on_cds(void *user, const char *name, const mesh__xds_cds_t *c) {
  (void)name;
  (void)c; /* aggregates are flattened when applied (aggregate.c) */
  ((mesh__xds_t *)user)->dirty = true;
}

static void on_eds(void *user, const char *name, const mesh__xds_eds_t *e) {
  (void)name;
  (void)e;
  ((mesh__xds_t *)user)->dirty = true;
}

/* A cluster the control plane deleted: its services have no endpoints
 * (a split keeps its last state until its route stops naming it). */
static void on_removed(void *user, mesh__xds_type_t t, const char *name) {
  mesh__xds_t *x = user;
  for (size_t i = 0; t == MESH__XDS_T_CDS && i < x->nsvcs; i++)
    if (x->svcs[i].cluster && strcmp(x->svcs[i].cluster, name) == 0)
      publish(x, &x->svcs[i], NULL, 0);
}

/* ---- per-request routing (the hook of http.h) --------------------------*/

static double draw(void) {
  return (double)(mesh__rand64() >> 11) * (1.0 / 9007199254740992.0);
}

/* Lock-free: the service list is fixed at mesh_new, the table is read
 * through its epoch (route.c), and the decision is a copy. */
static int xroute(mesh_t *m, const char *service, const mesh__xroute_in_t *in,
                  mesh__xroute_t *out, mesh_status_t *st) {
  mesh__xds_t *x = m->xds;
  mesh__xds_svc_t *s = NULL;
  for (size_t i = 0; x && !s && i < x->nsvcs; i++)
    if (x->svcs[i].listener && strcmp(x->svcs[i].name, service) == 0)
      s = &x->svcs[i];
  if (x && !s)
    s = mesh__xds_fu_find(x->fu, service); /* subscribed on first use */
  if (!s)
    return 1;
  mesh__xds_rtab_t *t = mesh__xds_rtab_acquire(&s->routes);
  if (!t)
    return mesh__fail(st, MESH_ERR_NO_ENDPOINTS, "xds: no route table for "
                      "\"%s\" yet (listener \"%s\")", service, s->listener);
  double u[4] = {draw(), draw(), draw(), draw()};
  int rc = mesh__xds_rtab_route(t, in, u, out);
  mesh__xds_rtab_release(t);
  if (rc != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOT_FOUND, "xds: no route for \"%.200s\" "
                      "in listener \"%s\"'s virtual host", in->path ? in->path
                      : "/", s->listener);
  return MESH_OK;
}

static cJSON *view(mesh_t *m, void *user) {
  mesh__xds_t *x = user;
  pthread_mutex_lock(&x->mu);
  cJSON *v = mesh__xds_ads_view(x->ads);
  cJSON *sv = cJSON_AddObjectToObject(v, "services");
  for (size_t i = 0; i < x->nsvcs; i++) {
    const mesh__xds_svc_t *s = &x->svcs[i];
    cJSON *o = cJSON_AddObjectToObject(sv, s->name);
    cJSON_AddStringToObject(o, s->listener ? "listener" : "cluster",
                            s->listener ? s->listener : s->cluster);
    if (s->lb_cfg)
      cJSON_AddItemToObject(o, "applied", cJSON_Duplicate(s->lb_cfg, true));
    mesh__xds_rtab_t *t = mesh__xds_rtab_acquire((mesh__xds_rtpub_t *)&s->routes);
    if (t)
      cJSON_AddNumberToObject(o, "routes", (double)mesh__xds_rtab_size(t));
    mesh__xds_rtab_release(t);
    if (s->note[0])
      cJSON_AddStringToObject(o, "pending", s->note);
  }
  mesh__xds_fu_view(x->fu, v);
  mesh__xds_ldns_view(x->ldns, v);
  pthread_mutex_unlock(&x->mu);
  cJSON *srv = cJSON_AddArrayToObject(v, "servers");
  for (size_t i = 0; i < x->boot->nservers; i++)
    cJSON_AddItemToArray(srv, cJSON_CreateString(x->boot->servers[i].uri));
  return v;
}

static void xds_fini(mesh_t *m) {
  mesh__xds_t *x = m->xds;
  if (!x)
    return;
  mesh__http_set_xroute(m, NULL);
  mesh__xds_stream_stop(x->stream); /* before the session it feeds */
  mesh__xds_fu_free(x->fu);
  mesh__view_unregister(m, "xds");
  mesh__xds_ldns_free(x->ldns); /* after the view that reads it */
  mesh__xds_ads_free(x->ads);
  mesh__xds_provwatch_free(m, x->pw); /* before the bootstrap it names */
  mesh__xds_bootstrap_free(x->boot);
  free(x->server_lds);
  mesh__xds_server_free(m, x->srv);
  for (size_t i = 0; i < x->nsvcs; i++)
    mesh__xds_svc_fini(&x->svcs[i]);
  free(x->svcs);
  pthread_mutex_destroy(&x->mu);
  free(x);
  m->xds = NULL;
}

/* Subscribe every xds service's root: its cluster (CDS) or listener (LDS). */
static int subscribe(mesh__xds_t *x, const cJSON *root) {
  const cJSON *s;
  size_t n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "services"));
  x->svcs = calloc(n + 1, sizeof *x->svcs);
  if (!x->svcs)
    return MESH_ERR_NOMEM;
  cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root, "services")) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "discovery");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
    if (!cJSON_IsString(t) || strcmp(t->valuestring, "xds") != 0)
      continue;
    const char *cl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "cluster"));
    const char *li = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "listener"));
    mesh__xds_svc_t *v = &x->svcs[x->nsvcs++];
    v->name = mesh__strdup(s->string);
    if (li)
      v->listener = mesh__strdup(li);
    else
      v->cluster = mesh__strdup(cl ? cl : s->string);
    if (!v->name || (!v->listener && !v->cluster))
      return MESH_ERR_NOMEM;
    int rc = li ? mesh__xds_ads_watch(x->ads, MESH__XDS_T_LDS, v->listener)
                : mesh__xds_ads_watch(x->ads, MESH__XDS_T_CDS, v->cluster);
    if (rc)
      return rc;
  }
  return MESH_OK;
}

/* Apply every service again from the cache (session lock taken). */
static void apply_all(mesh__xds_t *x) {
  for (size_t i = 0; i < x->nsvcs; i++)
    mesh__xds_apply(x->m, x->ads, &x->svcs[i]);
  mesh__xds_fu_applied(x->fu, true);
}

/* A LOGICAL_DNS cluster's address changed (loop thread, no lock held). */
static void dns_changed(mesh_t *m) {
  mesh__xds_t *x = m->xds;
  if (!x || atomic_load(&m->closing))
    return;
  pthread_mutex_lock(&x->mu);
  apply_all(x);
  pthread_mutex_unlock(&x->mu);
}

static int xds_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  if (!cfg && !any_xds_service(m->config))
    return MESH_OK;
  mesh__cfg_t c = {.first = st};
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_load(&c, cfg, "xds");
  if (!b)
    return MESH_ERR_CONFIG;
  mesh__xds_t *x = calloc(1, sizeof *x);
  if (!x) {
    mesh__xds_bootstrap_free(b);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  x->m = m;
  x->boot = b;
  pthread_mutex_init(&x->mu, NULL);
  m->xds = x;
  mesh__xds_sink_t sink = {on_lds, on_rds, on_cds, on_eds, on_removed, x};
  x->ads = mesh__xds_ads_new(b, &sink);
  x->m_updates = mesh__counter(m, "mesh_xds_updates_total",
                               "xDS resources accepted (ACKed).", NULL);
  x->m_nacks = mesh__counter(m, "mesh_xds_nacks_total",
                             "xDS responses refused (NACKed).", NULL);
  int rc = x->ads ? subscribe(x, m->config) : MESH_ERR_NOMEM;
  mesh_status_t sst;
  if (rc == MESH_OK &&
      mesh__xds_server_start(m, x->ads, b, cfg, &x->server_lds, &x->srv,
                             &sst))
    return mesh__fail(st, sst.code, "%s", sst.message);
  if (rc == MESH_OK && mesh__xds_provwatch_start(m, b, &x->pw, &sst))
    return mesh__fail(st, sst.code, "%s", sst.message);
  if (rc == MESH_OK)
    rc = mesh__view_register(m, "xds", view, x);
  if (rc == MESH_OK)
    rc = mesh__xds_fu_new(m, cfg, &x->mu, x->ads, &x->fu);
  if (rc == MESH_OK)
    rc = mesh__xds_ldns_new(m, cfg, dns_changed, &x->ldns);
  mesh__http_set_xroute(m, xroute);
  if (rc)
    return mesh__fail(st, rc, "xds: %s", mesh_strerror(rc));
  return mesh__xds_stream_start(m, &b->servers[0], &x->stream, st);
}

mesh__xds_fu_t *mesh__xds_fu_of(mesh_t *m) {
  return m && m->xds ? m->xds->fu : NULL;
}

const mesh__part_t mesh__xds_part = {"xds", xds_check, xds_init, xds_fini,
                                     NULL};

/* ---- the transport's entry points (loop thread) --------------------------*/
struct feed {
  mesh__xds_t *x;
  const uint8_t *buf;
  size_t len;
  mesh_status_t *st;
  int rc;
};

static void feed_cb(void *user) {
  struct feed *f = user;
  uint64_t u0, n0, u1, n1;
  if (atomic_load(&f->x->m->closing)) {
    /* mesh_free has begun: services may be gone; publish nothing */
    f->rc = mesh__fail(f->st, MESH_ERR_CLOSED, "closing");
    return;
  }
  pthread_mutex_lock(&f->x->mu);
  mesh__xds_ads_counts(f->x->ads, &u0, &n0);
  f->rc = mesh__xds_ads_on_response(f->x->ads, f->buf, f->len, f->st);
  mesh__xds_ldns_sync(f->x->ldns, f->x->ads); /* LOGICAL_DNS resolvers */
  for (size_t i = 0; f->x->dirty && i < f->x->nsvcs; i++)
    mesh__xds_apply(f->x->m, f->x->ads, &f->x->svcs[i]);
  mesh__xds_fu_applied(f->x->fu, f->x->dirty); /* wakes first-use waiters */
  f->x->dirty = false;
  mesh__xds_ads_counts(f->x->ads, &u1, &n1);
  pthread_mutex_unlock(&f->x->mu);
  mesh__counter_add(f->x->m_updates, u1 - u0);
  mesh__counter_add(f->x->m_nacks, n1 - n0);
}

int mesh__xds_feed(mesh_t *m, const uint8_t *buf, size_t len,
                   mesh_status_t *st) {
  if (!m || !m->xds)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "xds is not configured");
  struct feed f = {m->xds, buf, len, st, MESH_OK};
  int rc = mesh__loop_call(m->loop, feed_cb, &f);
  return rc ? rc : f.rc;
}

void mesh__xds_reconnected(mesh_t *m) {
  pthread_mutex_lock(&m->xds->mu);
  mesh__xds_ads_on_reconnect(m->xds->ads);
  pthread_mutex_unlock(&m->xds->mu);
}

int mesh__xds_next_request(mesh_t *m, uint8_t **buf, size_t *len) {
  if (!m || !m->xds)
    return MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&m->xds->mu);
  int rc = mesh__xds_ads_next_request(m->xds->ads, buf, len);
  pthread_mutex_unlock(&m->xds->mu);
  return rc;
}

/* The stream thread's feed: the bytes go to the loop thread; the caller
 * waits for them to be processed, but never past stop (mesh_free stops
 * the loop before the parts: a job it never runs is run, and freed, by
 * mesh__loop_free, and then publishes nothing because the context is
 * closing).  Two references: the waiter's and the job's. */
struct job {
  mesh_t *m;
  uint8_t *buf;
  size_t len;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int refs;
};

static void job_unref(struct job *j) {
  pthread_mutex_lock(&j->mu);
  int left = --j->refs;
  pthread_mutex_unlock(&j->mu);
  if (left)
    return;
  free(j->buf);
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

static void job_run(void *user) {
  struct job *j = user;
  mesh_status_t st;
  if (j->m->xds) {
    struct feed f = {j->m->xds, j->buf, j->len, &st, MESH_OK};
    feed_cb(&f);
  }
  pthread_mutex_lock(&j->mu);
  j->done = true;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  job_unref(j);
}

int mesh__xds_feed_async(mesh_t *m, uint8_t *buf, size_t len,
                         _Atomic bool *stop) {
  struct job *j = calloc(1, sizeof *j);
  if (!j) {
    free(buf);
    return MESH_ERR_NOMEM;
  }
  *j = (struct job){.m = m, .buf = buf, .len = len, .refs = 2};
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  if (mesh__loop_post(m->loop, job_run, j) != MESH_OK) {
    j->refs = 1;
    job_unref(j);
    return MESH_ERR_CLOSED;
  }
  pthread_mutex_lock(&j->mu);
  while (!j->done && !atomic_load(stop)) /* stop is polled: 100 ms */
    mesh__cond_wait_until(&j->cv, &j->mu, CLOCK_REALTIME,
                          mesh__now_ms() + 100);
  pthread_mutex_unlock(&j->mu);
  job_unref(j);
  return MESH_OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The Workload API source: "identity.source": "workload_api".  Two server
 * streams, each on its own thread with its own h2c connection:
 * FetchX509SVID (SVIDs and bundles -> identity's rotation path), or with
 * "bundles_only" FetchX509Bundles (trust bundles, no own SVID), and
 * FetchJWTBundles (JWKS per trust domain -> identity's JWT bundle set).
 * Every message is a complete set: what it lacks is gone.  A stream that
 * fails is retried with go-spiffe's backoff (1 s, 2 s, 3 s ... 30 s, reset
 * by a message), on every status except INVALID_ARGUMENT (and CANCELLED),
 * as go-spiffe does; the last SVID stays published meanwhile (tls checks
 * its dates).  State: metrics mesh_workload_api_*, the "identity" view's
 * source_state, the "workload_api" view, one log line per change. */
#include "workload/workload.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/identity.h>

#include "telemetry/telemetry.h"

#define BACKOFF_STEP_MS 1000  /* go-spiffe: InitialDelay 1 s, linear */
#define BACKOFF_MAX_MS 30000  /* go-spiffe: MaxDelay 30 s */
#define POLL_MS 250           /* how often a blocked reader sees stop */

enum { ST_X509, ST_JWT, ST_N };
/* [bundles_only][kind] */
static const char *const stream_names[2][ST_N] = {
    {"x509_svid", "jwt_bundles"}, {"x509_bundles", "jwt_bundles"}};
static const char *const stream_methods[2][ST_N] = {
    {"FetchX509SVID", "FetchJWTBundles"},
    {"FetchX509Bundles", "FetchJWTBundles"}};

typedef struct wl_stream {
  struct mesh__wl *wl;
  int kind;
  pthread_t th;
  bool started;
  char state[300];           /* guarded by wl->mu */
  uint64_t updates;
  mesh__metric_t *m_updates, *m_errors, *g_up;
} wl_stream_t;

struct mesh__wl {
  mesh_t *m;
  char endpoint[4200];
  char *hint;
  bool bundles_only; /* FetchX509Bundles instead of FetchX509SVID */
  int timeout_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  wl_stream_t s[ST_N];
  /* wl_jwt.c's cache */
  pthread_mutex_t jmu;
  void *jcache;
};

static const char *stream_name_of(const struct mesh__wl *wl, int kind) {
  return stream_names[wl->bundles_only][kind];
}

const char *mesh__wl_endpoint(mesh_t *m) {
  return m && m->wl ? m->wl->endpoint : "";
}
const char *mesh__wl_hint(mesh_t *m) { return m && m->wl ? m->wl->hint : NULL; }
void mesh__wl_jwt_access(mesh_t *m, pthread_mutex_t **mu, void ***cache) {
  *mu = &m->wl->jmu;
  *cache = &m->wl->jcache;
}
int mesh__wl_timeout_ms(mesh_t *m) {
  return m && m->wl ? m->wl->timeout_ms : 10000;
}

/* One log line per change of a stream's state. */
static void set_state(wl_stream_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(wl_stream_t *s, int level, const char *fmt, ...) {
  char buf[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&s->wl->mu);
  bool same = !strcmp(buf, s->state);
  mesh__strlcpy(s->state, buf, sizeof s->state);
  pthread_mutex_unlock(&s->wl->mu);
  if (same)
    return;
  mesh__log(s->wl->m, level, "workload_api_state",
            "stream=%s endpoint=\"%s\" state=\"%s\"",
            stream_name_of(s->wl, s->kind),
            s->wl->endpoint, buf);
  if (s->kind == ST_X509) {
    char full[300];
    snprintf(full, sizeof full, "%s", buf);
    mesh__identity_set_source_state(s->wl->m, full);
  }
}

static bool stopping(struct mesh__wl *wl) {
  pthread_mutex_lock(&wl->mu);
  bool stop = wl->stop;
  pthread_mutex_unlock(&wl->mu);
  return stop;
}

/* Sleep ms unless stopped first.  @return true when stopping. */
static bool nap(struct mesh__wl *wl, int64_t ms) {
  int64_t until = mesh__now_ms() + ms;
  pthread_mutex_lock(&wl->mu);
  while (!wl->stop && mesh__now_ms() < until) {
    int64_t poll = mesh__now_ms() + POLL_MS;
    mesh__cond_wait_until(&wl->cv, &wl->mu, CLOCK_REALTIME,
                          poll < until ? poll : until);
  }
  bool stop = wl->stop;
  pthread_mutex_unlock(&wl->mu);
  return stop;
}

static void on_x509(wl_stream_t *s, const uint8_t *msg, size_t len) {
  mesh_t *m = s->wl->m;
  mesh__wl_x509_t x;
  mesh_status_t st;
  int rc = mesh__wl_x509_decode(msg, len, s->wl->hint, s->wl->endpoint, &x,
                                &st);
  if (rc == MESH_ERR_NOT_FOUND) {
    /* A complete set without our SVID: it is gone. */
    mesh__identity_clear(m, st.message);
    set_state(s, MESH_LOG_WARN, "connected: %s", st.message);
    return;
  }
  if (rc == MESH_OK)
    rc = mesh__identity_push(m, &x.der, &st);
  mesh__wl_x509_free(&x);
  if (rc != MESH_OK) {
    /* Discarded (spec: a bad message is reported, the last SVID kept). */
    mesh__counter_add(s->m_errors, 1);
    set_state(s, MESH_LOG_ERROR, "connected: update refused: %s %s",
              mesh_code_name(rc), st.message);
    return;
  }
  set_state(s, MESH_LOG_INFO, "connected");
}

/* FetchX509Bundles: a complete set of trust bundles, no SVID. */
static void on_x509_bundles(wl_stream_t *s, const uint8_t *msg, size_t len) {
  mesh__wl_bundles_t b;
  mesh_status_t st;
  mesh__creds_t *t = NULL;
  int rc = mesh__wl_x509_bundles_decode(msg, len, &b, &st);
  if (rc == MESH_OK)
    rc = mesh__creds_trust_from_der(b.v, b.n, s->wl->endpoint, 0, &t, &st);
  if (rc == MESH_OK)
    rc = mesh__identity_push_trust(s->wl->m, t);
  size_t n = b.n;
  mesh__wl_bundles_free(&b);
  if (rc != MESH_OK) { /* discarded, the last set kept */
    mesh__counter_add(s->m_errors, 1);
    set_state(s, MESH_LOG_ERROR, "connected: update refused: %s %s",
              mesh_code_name(rc), st.message);
    return;
  }
  set_state(s, MESH_LOG_INFO, "connected: %zu trust bundle%s", n,
            n == 1 ? "" : "s");
}

static void on_jwt(wl_stream_t *s, const uint8_t *msg, size_t len) {
  mesh__jwt_bundles_t *b;
  mesh_status_t st;
  if (mesh__wl_jwt_bundles_decode(msg, len, &b, &st) != MESH_OK) {
    mesh__counter_add(s->m_errors, 1);
    set_state(s, MESH_LOG_ERROR, "connected: update refused: %s",
              st.message);
    return;
  }
  mesh__identity_push_jwt_bundles(s->wl->m, b);
  set_state(s, MESH_LOG_INFO, "connected");
}

/* One connection's life: dial, call, messages until the stream ends.
 * @return the gRPC status that ended it (UNAVAILABLE for transport
 *         failures), -1 when stopping. */
static int run_once(wl_stream_t *s, bool *progress, char *why, size_t wlen) {
  struct mesh__wl *wl = s->wl;
  mesh__h2_session_t *sess = NULL;
  mesh_status_t st;
  int rc = mesh__wl_dial(wl->m, wl->endpoint, wl->timeout_ms, &sess, &st);
  if (rc != MESH_OK) {
    mesh__strlcpy(why, st.message, wlen);
    return MESH__GRPC_UNAVAILABLE;
  }
  mesh__wl_call_t c;
  rc = mesh__wl_call_start(&c, sess, stream_methods[wl->bundles_only][s->kind],
                           "", 0, true,
                           mesh__now_ms() + wl->timeout_ms, &st);
  int status = MESH__GRPC_UNAVAILABLE;
  mesh__strlcpy(why, st.message, wlen);
  while (rc == MESH_OK) {
    uint8_t *msg;
    size_t len;
    int r = mesh__wl_call_recv(&c, mesh__now_ms() + POLL_MS, &msg, &len, &st);
    if (r == MESH_ERR_TIMEOUT) {
      if (stopping(wl)) {
        status = -1;
        break;
      }
      continue;
    }
    if (r == 1) {
      *progress = true;
      s->updates++;
      mesh__counter_add(s->m_updates, 1);
      mesh__gauge_set(s->g_up, 1);
      if (s->kind == ST_JWT)
        on_jwt(s, msg, len);
      else if (wl->bundles_only)
        on_x509_bundles(s, msg, len);
      else
        on_x509(s, msg, len);
      free(msg);
      continue;
    }
    status = c.status >= 0 ? c.status : MESH__GRPC_UNAVAILABLE;
    mesh__strlcpy(why, c.message[0] ? c.message : st.message, wlen);
    break;
  }
  mesh__wl_call_end(&c);
  mesh__h2_session_free(sess);
  return status;
}

/* Wait d ms before the next try.  The last SVID stays published while it
 * is valid, no longer: once it expires it is withdrawn (a handshake with it
 * would fail at the peer anyway, and the error is clearer here).
 * @return true when stopping. */
static bool backoff(wl_stream_t *s, int64_t d) {
  int64_t end = mesh__now_ms() + d;
  for (;;) {
    if (s->kind == ST_X509 && mesh__identity_generation(s->wl->m) &&
        mesh_svid_expires_in(s->wl->m) != INT64_MIN &&
        mesh_svid_expires_in(s->wl->m) <= 0)
      mesh__identity_clear(s->wl->m, "expired while the Workload API is "
                                     "unavailable");
    int64_t left = end - mesh__now_ms();
    if (left <= 0)
      return false;
    if (nap(s->wl, left < 1000 ? left : 1000))
      return true;
  }
}

static void *stream_main(void *arg) {
  wl_stream_t *s = arg;
  int attempt = 0;
  set_state(s, MESH_LOG_INFO, "connecting");
  while (!stopping(s->wl)) {
    bool progress = false;
    char why[256] = "";
    int status = run_once(s, &progress, why, sizeof why);
    if (status < 0)
      break;
    mesh__gauge_set(s->g_up, 0);
    mesh__counter_add(s->m_errors, 1);
    if (status == MESH__GRPC_INVALID_ARGUMENT ||
        status == MESH__GRPC_CANCELLED) {
      /* go-spiffe gives up on these: the request itself is wrong. */
      set_state(s, MESH_LOG_ERROR, "failed: %s %s (not retried)",
                mesh__grpc_code_name(status), why);
      break;
    }
    if (progress)
      attempt = 0;
    int64_t d = (int64_t)BACKOFF_STEP_MS * ++attempt;
    if (d > BACKOFF_MAX_MS)
      d = BACKOFF_MAX_MS;
    set_state(s, MESH_LOG_WARN, "retrying in %lld ms: %s %s", (long long)d,
              mesh__grpc_code_name(status), why);
    if (backoff(s, d))
      break;
  }
  return NULL;
}

/* ---- the "workload_api" view ------------------------------------------------ */

static cJSON *wl_view(mesh_t *m, void *user) {
  (void)user;
  struct mesh__wl *wl = m->wl;
  cJSON *doc = cJSON_CreateObject();
  if (!doc || !wl)
    return doc;
  cJSON_AddStringToObject(doc, "endpoint", wl->endpoint);
  if (wl->hint)
    cJSON_AddStringToObject(doc, "svid_hint", wl->hint);
  cJSON_AddBoolToObject(doc, "bundles_only", wl->bundles_only);
  pthread_mutex_lock(&wl->mu);
  for (int k = 0; k < ST_N; k++) {
    cJSON *o = cJSON_AddObjectToObject(doc, stream_name_of(wl, k));
    if (!o)
      continue;
    cJSON_AddStringToObject(o, "state", wl->s[k].state);
    cJSON_AddNumberToObject(o, "updates", (double)wl->s[k].updates);
  }
  pthread_mutex_unlock(&wl->mu);
  return doc;
}

/* ---- part lifecycle --------------------------------------------------------------- */

static void wl_fini(mesh_t *m) {
  struct mesh__wl *wl = m->wl;
  if (!wl)
    return;
  pthread_mutex_lock(&wl->mu);
  wl->stop = true;
  pthread_cond_broadcast(&wl->cv);
  pthread_mutex_unlock(&wl->mu);
  for (int k = 0; k < ST_N; k++)
    if (wl->s[k].started)
      pthread_join(wl->s[k].th, NULL);
  mesh__view_unregister(m, "workload_api");
  mesh__identity_set_jwt_provider(m, NULL);
  mesh__wl_jwt_cache_free(m);
  m->wl = NULL;
  pthread_mutex_destroy(&wl->jmu);
  pthread_cond_destroy(&wl->cv);
  pthread_mutex_destroy(&wl->mu);
  free(wl->hint);
  free(wl);
}

static int wl_config(struct mesh__wl *wl, const cJSON *cfg,
                     mesh_status_t *st) {
  mesh__cfg_t c = {0}; /* validated by identity's check */
  const char *ep = NULL, *hint = NULL;
  int64_t v;
  mesh__cfg_string(&c, cfg, "identity", "endpoint", NULL, &ep);
  mesh__cfg_string(&c, cfg, "identity", "svid_hint", NULL, &hint);
  mesh__cfg_int(&c, cfg, "identity", "timeout_ms", 100, 600000, 10000, &v);
  wl->timeout_ms = (int)v;
  mesh__cfg_bool(&c, cfg, "identity", "bundles_only", false,
                 &wl->bundles_only);
  if (hint && !(wl->hint = mesh__strdup(hint)))
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (!ep || !*ep) {
    ep = getenv("SPIFFE_ENDPOINT_SOCKET");
    if (!ep || !*ep)
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "identity.endpoint: not set and "
                        "SPIFFE_ENDPOINT_SOCKET is empty (the Workload API "
                        "needs one)");
    if (mesh__wl_endpoint_check(ep, st) != MESH_OK) {
      char msg[sizeof st->message];
      mesh__strlcpy(msg, st->message, sizeof msg);
      return mesh__fail(st, MESH_ERR_CONFIG, "SPIFFE_ENDPOINT_SOCKET=%s: %s",
                        ep, msg);
    }
  }
  if (strlen(ep) >= sizeof wl->endpoint)
    return mesh__fail(st, MESH_ERR_CONFIG, "identity.endpoint: too long");
  mesh__strlcpy(wl->endpoint, ep, sizeof wl->endpoint);
  return MESH_OK;
}

static void wl_metrics(mesh_t *m, wl_stream_t *s) {
  struct mesh__wl *wl = s->wl;
  char lbl[64];
  snprintf(lbl, sizeof lbl, "stream=%s", stream_name_of(wl, s->kind));
  s->m_updates = mesh__counter(m, "mesh_workload_api_updates_total",
                               "Messages received from the Workload API.",
                               lbl);
  s->m_errors = mesh__counter(m, "mesh_workload_api_errors_total",
                              "Workload API stream failures and refused "
                              "updates.",
                              lbl);
  s->g_up = mesh__gauge(m, "mesh_workload_api_connected",
                        "1 while the Workload API stream delivers.", lbl);
}

static int wl_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  if (!cfg || strcmp(mesh__identity_source(m), "workload_api"))
    return MESH_OK;
  struct mesh__wl *wl = calloc(1, sizeof *wl);
  if (!wl)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  wl->m = m;
  pthread_mutex_init(&wl->mu, NULL);
  pthread_cond_init(&wl->cv, NULL);
  pthread_mutex_init(&wl->jmu, NULL);
  m->wl = wl;
  int rc = wl_config(wl, cfg, st);
  if (rc != MESH_OK)
    return rc; /* mesh_new() calls fini */
  mesh__view_register(m, "workload_api", wl_view, NULL);
  /* outbound calls of services with "jwt_svid" get their tokens here */
  mesh__identity_set_jwt_provider(m, mesh__wl_jwt_svid);
  for (int k = 0; k < ST_N; k++) {
    wl->s[k].wl = wl;
    wl->s[k].kind = k;
    wl_metrics(m, &wl->s[k]);
    if (pthread_create(&wl->s[k].th, NULL, stream_main, &wl->s[k]))
      return mesh__fail(st, MESH_ERR_NOMEM, "cannot start a thread");
    wl->s[k].started = true;
  }
  mesh__cfg_t c = {0};
  int64_t wait_ms;
  mesh__cfg_int(&c, cfg, "identity", "wait_ms", 0, 600000, 0, &wait_ms);
  if (wait_ms > 0 && !mesh__identity_wait(m, wait_ms)) {
    char state[300];
    mesh__identity_source_state(m, state, sizeof state);
    return mesh__fail(st, MESH_ERR_TIMEOUT,
                      "no %s from the Workload API at %s within "
                      "identity.wait_ms=%lld (%s)",
                      wl->bundles_only ? "trust bundle" : "SVID",
                      wl->endpoint, (long long)wait_ms, state);
  }
  return MESH_OK;
}

/* Same config key as identity (which checks it): this part only reads the
 * source's keys when "source" is "workload_api". */
const mesh__part_t mesh__wl_part = {
    .key = "identity",
    .init = wl_init,
    .fini = wl_fini,
};

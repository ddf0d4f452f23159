/* SPDX-License-Identifier: Apache-2.0 */
/* Sources that push credentials into identity (the Workload API part,
 * workload/, above): the config keys of "identity.source", publishing a
 * pushed set through the rotation path, waiting for the first SVID, and
 * the JWT bundle set handed to request authentication. */
#include "identity/ident_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

/* ---- config ------------------------------------------------------------------ */

/* "unix:///abs/path" or "tcp://IP:port" (SPIFFE Workload Endpoint 4: an IP
 * literal, no host name).  st gets the reason. */
int mesh__wl_endpoint_check(const char *ep, mesh_status_t *st) {
  if (!strncmp(ep, "unix://", 7)) {
    const char *p = ep + 7;
    if (p[0] != '/' || p[1] == '\0')
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "unix:// needs an absolute socket path "
                        "(unix:///run/spire/agent.sock)");
    if (strchr(p, '?') || strchr(p, '#'))
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "no query or fragment in a unix:// endpoint");
    return MESH_OK;
  }
  if (!strncmp(ep, "tcp://", 6)) {
    char host[64];
    uint16_t port = 0;
    if (mesh__hostport_split(ep + 6, host, sizeof host, 1, &port) != MESH__HP_OK ||
        port == 0)
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "tcp:// needs IP:port (tcp://127.0.0.1:8081)");
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 &&
        inet_pton(AF_INET6, host, buf) != 1)
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "tcp:// takes an IP address, not a host name");
    return MESH_OK;
  }
  return mesh__fail(st, MESH_ERR_CONFIG,
                    "expected unix:///path or tcp://IP:port");
}

static const char *const files_keys[] = {"cert", "key", "bundle", "bundles",
                                         "reload_interval_ms", NULL};
static const char *const push_keys[] = {"endpoint", "svid_hint", "wait_ms",
                                        "timeout_ms", "bundles_only", NULL};

bool mesh__identity_check_source(mesh__cfg_t *c, const cJSON *cfg,
                                 const char *path) {
  const char *src = "files";
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "source");
  mesh__cfg_string(c, cfg, path, "source", "files", &src);
  bool files = !strcmp(src, "files"), xds = !strcmp(src, "xds");
  if (!files && !xds && strcmp(src, "workload_api")) {
    mesh__cfg_error(c, p, "unknown source \"%s\" (files, workload_api, "
                    "xds)", src);
    return true;
  }
  for (int pass = 0; pass < 2; pass++) {
    /* files keys belong to "files", push keys to "workload_api" */
    const char *const *wrong = pass ? push_keys : files_keys;
    if (pass ? !files && !xds : files)
      continue;
    for (size_t i = 0; wrong[i]; i++) {
      if (!cJSON_GetObjectItemCaseSensitive(cfg, wrong[i]))
        continue;
      mesh__cfg_path(p, path, wrong[i]);
      mesh__cfg_error(c, p, "not used with \"source\": \"%s\"", src);
    }
  }
  mesh__cfg_path(p, path, "certificate_provider");
  const char *inst = NULL;
  if (!xds && cJSON_GetObjectItemCaseSensitive(cfg, "certificate_provider"))
    mesh__cfg_error(c, p, "only with \"source\": \"xds\"");
  else if (mesh__cfg_string(c, cfg, path, "certificate_provider", NULL,
                            &inst) && inst && !*inst)
    mesh__cfg_error(c, p, "must not be empty");
  if (files)
    return false;
  int64_t v;
  mesh__cfg_int(c, cfg, path, "expiry_warning_s", 0, 315360000, -1, &v);
  if (xds) /* the certificate provider's files: checked by xds/ */
    return true;
  const char *ep;
  mesh__cfg_path(p, path, "endpoint");
  mesh_status_t st;
  if (mesh__cfg_string(c, cfg, path, "endpoint", NULL, &ep) && ep &&
      mesh__wl_endpoint_check(ep, &st) != MESH_OK)
    mesh__cfg_error(c, p, "%s", st.message);
  const char *hint;
  mesh__cfg_path(p, path, "svid_hint");
  if (mesh__cfg_string(c, cfg, path, "svid_hint", NULL, &hint) && hint &&
      !*hint)
    mesh__cfg_error(c, p, "must not be empty");
  bool only = false;
  mesh__cfg_bool(c, cfg, path, "bundles_only", false, &only);
  if (only && hint)
    mesh__cfg_error(c, p, "not used with \"bundles_only\": true (no SVID "
                          "is fetched)");
  mesh__cfg_int(c, cfg, path, "wait_ms", 0, 600000, 0, &v);
  mesh__cfg_int(c, cfg, path, "timeout_ms", 100, 600000, 10000, &v);
  return true;
}

/* ---- pushing --------------------------------------------------------------------- */

const char *mesh__identity_source(mesh_t *m) {
  return m && m->identity ? m->identity->source : "";
}

int mesh__identity_push(mesh_t *m, const mesh__creds_der_t *src,
                        mesh_status_t *st) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return mesh__fail(st, MESH_ERR_NOT_FOUND, "no identity section");
  pthread_mutex_lock(&id->reload_mu);
  mesh__creds_t *c = NULL;
  int rc = mesh__creds_from_der(src, atomic_load(&id->generation) + 1, &c, st);
  if (rc == MESH_OK) {
    bool first = atomic_load(&id->generation) == 0;
    mesh__identity_publish(m, id, c);
    if (!first)
      mesh__counter_add(id->m_reload_ok, 1);
  } else {
    mesh__counter_add(id->m_reload_error, 1);
  }
  pthread_mutex_unlock(&id->reload_mu);
  return rc;
}

void mesh__identity_clear(mesh_t *m, const char *reason) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return;
  pthread_mutex_lock(&id->reload_mu);
  pthread_mutex_lock(&id->mu);
  mesh__creds_t *old = id->cur;
  id->cur = NULL;
  /* A new generation with no creds: tls drops its cached config. */
  if (old)
    atomic_fetch_add(&id->generation, 1);
  pthread_mutex_unlock(&id->mu);
  pthread_mutex_unlock(&id->reload_mu);
  if (!old)
    return;
  mesh__log(m, MESH_LOG_WARN, "svid_withdrawn", "id=\"%s\" reason=\"%s\"",
            old->id, reason);
  mesh__creds_release(old);
}

void mesh__identity_set_source_state(mesh_t *m, const char *state) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return;
  pthread_mutex_lock(&id->mu);
  mesh__strlcpy(id->source_state, state, sizeof id->source_state);
  pthread_mutex_unlock(&id->mu);
}

void mesh__identity_source_state(mesh_t *m, char *out, size_t len) {
  struct mesh__identity *id = m ? m->identity : NULL;
  out[0] = '\0';
  if (!id)
    return;
  pthread_mutex_lock(&id->mu);
  mesh__strlcpy(out, id->source_state, len);
  pthread_mutex_unlock(&id->mu);
}

bool mesh__identity_wait(mesh_t *m, int64_t timeout_ms) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return false;
  int64_t deadline = mesh__now_ms() + timeout_ms;
  pthread_mutex_lock(&id->mu);
  /* a bundles-only source publishes trust, never creds */
  while (!id->cur && !id->trust && timeout_ms > 0 &&
         !atomic_load(&m->closing)) {
    if (mesh__cond_wait_until(&id->cv, &id->mu, CLOCK_REALTIME, deadline) ==
        ETIMEDOUT)
      break;
  }
  bool have = id->cur || id->trust;
  pthread_mutex_unlock(&id->mu);
  return have;
}

/* ---- JWT-SVIDs for outbound calls ----------------------------------------------------- */

void mesh__identity_set_jwt_provider(mesh_t *m, mesh__jwt_svid_fn fn) {
  if (m && m->identity)
    atomic_store(&m->identity->jwt_provider, fn);
}

int mesh__identity_jwt_svid(mesh_t *m, const char *audience, char **token,
                            mesh_status_t *st) {
  *token = NULL;
  mesh__jwt_svid_fn fn =
      m && m->identity ? atomic_load(&m->identity->jwt_provider) : NULL;
  if (!fn)
    return mesh__fail(st, MESH_ERR_NOT_FOUND,
                      "no JWT-SVID source (identity.source \"workload_api\")");
  return fn(m, audience, token, st);
}

/* ---- bundles without an SVID ------------------------------------------------------ */

int mesh__identity_push_trust(mesh_t *m, mesh__creds_t *t) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id) {
    mesh__creds_release(t);
    return MESH_ERR_NOT_FOUND;
  }
  pthread_mutex_lock(&id->mu);
  mesh__creds_t *old = id->trust;
  t->generation = old ? old->generation + 1 : 1;
  id->trust = t;
  pthread_cond_broadcast(&id->cv);
  pthread_mutex_unlock(&id->mu);
  mesh__creds_release(old);
  return MESH_OK;
}

mesh__creds_t *mesh__identity_trust_acquire(mesh_t *m) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return NULL;
  pthread_mutex_lock(&id->mu);
  mesh__creds_t *t = mesh__creds_ref(id->trust);
  pthread_mutex_unlock(&id->mu);
  return t;
}

/* ---- JWT bundles ------------------------------------------------------------------ */

mesh__jwt_bundles_t *mesh__jwt_bundles_new(size_t n) {
  mesh__jwt_bundles_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->v = calloc(n ? n : 1, sizeof *b->v);
  if (!b->v) {
    free(b);
    return NULL;
  }
  atomic_init(&b->refs, 1);
  b->n = n;
  return b;
}

void mesh__jwt_bundles_release(mesh__jwt_bundles_t *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < b->n; i++)
    free(b->v[i].jwks);
  free(b->v);
  free(b);
}

const char *mesh__jwt_bundles_find(const mesh__jwt_bundles_t *b,
                                   const char *td) {
  for (size_t i = 0; b && td && i < b->n; i++)
    if (!strcmp(b->v[i].td, td))
      return b->v[i].jwks;
  return NULL;
}

mesh__jwt_bundles_t *mesh__identity_jwt_bundles(mesh_t *m) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return NULL;
  pthread_mutex_lock(&id->mu);
  mesh__jwt_bundles_t *b = id->jwt;
  if (b)
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&id->mu);
  return b;
}

int mesh__identity_push_jwt_bundles(mesh_t *m, mesh__jwt_bundles_t *b) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id) {
    mesh__jwt_bundles_release(b);
    return MESH_ERR_NOT_FOUND;
  }
  pthread_mutex_lock(&id->hook_mu);
  pthread_mutex_lock(&id->mu);
  mesh__jwt_bundles_t *old = id->jwt;
  b->generation = old ? old->generation + 1 : 1;
  id->jwt = b;
  pthread_mutex_unlock(&id->mu);
  if (id->jwt_hook)
    id->jwt_hook(b, id->jwt_hook_user);
  pthread_mutex_unlock(&id->hook_mu);
  mesh__jwt_bundles_release(old);
  return MESH_OK;
}

int mesh__identity_on_jwt_bundles(mesh_t *m, mesh__jwt_bundles_fn fn,
                                  void *user) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return MESH_ERR_NOT_FOUND;
  pthread_mutex_lock(&id->hook_mu);
  id->jwt_hook = fn;
  id->jwt_hook_user = user;
  /* id->jwt changes only under hook_mu: no reference needed here */
  if (fn && id->jwt)
    fn(id->jwt, user);
  pthread_mutex_unlock(&id->hook_mu);
  return MESH_OK;
}

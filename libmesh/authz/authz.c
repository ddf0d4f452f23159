/* SPDX-License-Identifier: Apache-2.0 */
/* The authz part: the "authz" config section, the current policy set
 * (published without a reader lock, swapped by reloads), the enforcement
 * hooks used at accept and per request, CUSTOM providers (callback, OPA),
 * counters and decision logs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "tls/tls.h"

enum counter {
  C_ALLOW = 0,
  C_DENY,
  C_CONN_DENY,
  C_DRY_RUN_DENY,
  C_CUSTOM_DENY,
  C_OPA_ERROR,
  C_OPA_CACHE_HIT,
  C_AUDIT,
  C_RELOAD,
  C_RELOAD_ERROR,
  C_COUNT
};

static const char *const counter_names[C_COUNT] = {
    "allow",      "deny",          "conn_deny", "dry_run_deny",
    "custom_deny", "opa_error",    "opa_cache_hit", "audit",
    "reload",     "reload_error"};

struct mesh__authz {
  /* Readers announce themselves in the current epoch's slot, load the
   * pointer and take a reference; a reload swaps the pointer, flips the
   * epoch and waits for the old slot to drain before dropping its own
   * reference.  No reader ever waits on a lock. */
  _Atomic(mesh__authz_set_t *) cur;
  /* the policy a part above set (xDS RBAC, mesh__authz_set_external):
   * evaluated after cur, read through the same epochs */
  _Atomic(mesh__authz_set_t *) ext;
  _Atomic uint32_t epoch;
  _Atomic uint32_t readers[2];
  pthread_mutex_t wmu; /* reloads only */
  uint64_t generation;

  pthread_mutex_t cbmu;
  mesh_authz_fn cb;
  void *cb_user;

  mesh__opa_t *opa;
  _Atomic uint64_t counters[C_COUNT];
  int path_norm; /* set at init, never changed (reloads must agree) */
};

/* ---- publication ------------------------------------------------------------ */

static mesh__authz_set_t *slot_acquire(struct mesh__authz *a,
                                       _Atomic(mesh__authz_set_t *) *slot) {
  for (;;) {
    uint32_t e = atomic_load(&a->epoch);
    atomic_fetch_add(&a->readers[e & 1], 1);
    if (atomic_load(&a->epoch) != e) {
      atomic_fetch_sub(&a->readers[e & 1], 1);
      continue;
    }
    mesh__authz_set_t *s = atomic_load(slot);
    mesh__authz_set_ref(s);
    atomic_fetch_sub(&a->readers[e & 1], 1);
    return s;
  }
}

static mesh__authz_set_t *set_acquire(struct mesh__authz *a) {
  return slot_acquire(a, &a->cur);
}

/* Swap *slot to s (may be NULL) and wait until no reader can still be
 * taking a reference to the old set; then drop it. */
static uint64_t slot_publish(struct mesh__authz *a,
                             _Atomic(mesh__authz_set_t *) *slot,
                             mesh__authz_set_t *s) {
  pthread_mutex_lock(&a->wmu);
  uint64_t gen = ++a->generation;
  if (s)
    s->generation = gen;
  mesh__authz_set_t *old = atomic_exchange(slot, s);
  uint32_t e = atomic_fetch_add(&a->epoch, 1);
  for (unsigned spins = 0; atomic_load(&a->readers[e & 1]) != 0; spins++)
    if (spins > 64)
      sched_yield();
  pthread_mutex_unlock(&a->wmu);
  mesh__authz_set_unref(old);
  return gen;
}

static uint64_t set_publish(struct mesh__authz *a, mesh__authz_set_t *s) {
  return slot_publish(a, &a->cur, s);
}

static void count(struct mesh__authz *a, int c) {
  atomic_fetch_add_explicit(&a->counters[c], 1, memory_order_relaxed);
}

/* ---- metrics ------------------------------------------------------------------- */

static void register_series(mesh_t *m, const char *policy, mesh__metric_t **allow,
                            mesh__metric_t **deny, mesh__metric_t **dry) {
  static const char help[] =
      "Authorization decisions by outcome and deciding policy.";
  char labels[200];
  snprintf(labels, sizeof labels, "action=allow,policy=%s", policy);
  *allow = mesh__counter(m, "mesh_authz_decisions_total", help, labels);
  snprintf(labels, sizeof labels, "action=deny,policy=%s", policy);
  *deny = mesh__counter(m, "mesh_authz_decisions_total", help, labels);
  snprintf(labels, sizeof labels, "action=dry_run_deny,policy=%s", policy);
  *dry = mesh__counter(m, "mesh_authz_decisions_total", help, labels);
}

/* Series are registered once per policy name, before the set is published
 * (registration locks and allocates; counting later does neither). */
static void register_metrics(mesh_t *m, mesh__authz_set_t *s) {
  register_series(m, "", &s->m_allow, &s->m_deny, &s->m_dry_run);
  for (size_t i = 0; i < s->n; i++) {
    mesh__az_policy_t *p = &s->policies[i];
    if (p->action != MESH__AZ_AUDIT)
      register_series(m, p->name, &p->m_allow, &p->m_deny, &p->m_dry_run);
  }
}

/* ---- the part ---------------------------------------------------------------- */

static void authz_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  mesh__authz_set_build(c, cfg, path, NULL);
}

static void authz_fini(mesh_t *m) {
  struct mesh__authz *a = m->authz;
  if (!a)
    return;
  mesh__authz_set_unref(atomic_exchange(&a->cur, NULL));
  mesh__authz_set_unref(atomic_exchange(&a->ext, NULL));
  mesh__opa_free(a->opa);
  pthread_mutex_destroy(&a->wmu);
  pthread_mutex_destroy(&a->cbmu);
  free(a);
  m->authz = NULL;
}

static int authz_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  struct mesh__authz *a = calloc(1, sizeof *a);
  if (!a)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&a->wmu, NULL);
  pthread_mutex_init(&a->cbmu, NULL);
  m->authz = a;
  a->path_norm = MESH__PATH_NORM_DEFAULT;
  /* inbound connections are authorized through tls's hook */
  mesh__tls_set_conn_authz(m, mesh__authz_check_conn);
  int rc = mesh__opa_new(&a->opa);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "authz: cannot initialize libcurl");
  mesh__cfg_t c = {.first = st};
  mesh__authz_set_t *s = NULL;
  rc = mesh__authz_set_build(&c, cfg, "authz", &s);
  if (rc != MESH_OK)
    return rc == MESH_ERR_NOMEM ? mesh__fail(st, rc, "out of memory") : rc;
  if (s) {
    a->path_norm = s->path_norm;
    register_metrics(m, s);
    set_publish(a, s);
    mesh__log(m, MESH_LOG_INFO, "authz_loaded",
              "policies=%zu allow=%zu deny=%zu custom=%zu dry_run=%s", s->n,
              s->nallow, s->ndeny, s->ncustom, s->dry_run ? "true" : "false");
  }
  return MESH_OK;
}

const mesh__part_t mesh__authz_part = {
    .key = "authz",
    .check = authz_check,
    .init = authz_init,
    .fini = authz_fini,
};

/* ---- decisions ------------------------------------------------------------------ */

/* Wire-supplied text in a log line: printable ASCII only, no quotes, capped,
 * so a request cannot forge log fields. */
static void log_safe(const char *in, char *out, size_t len) {
  size_t w = 0;
  for (; in && *in && w + 1 < len; in++) {
    unsigned char c = (unsigned char)*in;
    out[w++] = (c < 0x21 || c > 0x7e || c == '"' || c == '\\') ? '?' : (char)c;
  }
  out[w] = '\0';
}

static void log_decision(mesh_t *m, const mesh_authz_request_t *r,
                         const char *stage, bool allow, bool dry,
                         const char *policy, const char *reason) {
  int level = dry && !allow ? MESH_LOG_INFO : MESH_LOG_DEBUG;
  if (!mesh__log_on(m, level))
    return;
  char principal[160], path[160], method[24], ip[64];
  log_safe(r->principal, principal, sizeof principal);
  log_safe(r->path, path, sizeof path);
  log_safe(r->method, method, sizeof method);
  mesh__ip_format(r->src.ss_family ? (const struct sockaddr *)&r->src : NULL,
                  ip, sizeof ip);
  mesh__log(m, level, dry && !allow ? "authz_dry_run_deny" : "authz_decision",
            "stage=%s decision=%s policy=\"%s\" reason=\"%s\" principal=\"%s\" "
            "source_ip=%s port=%d method=\"%s\" path=\"%s\"",
            stage, allow ? "allow" : "deny", policy, reason, principal,
            ip[0] ? ip : "-", r->port, method, path);
}

/* This workload's own SPIFFE ID for the OPA input (destination.principal);
 * "" without an SVID. */
static const char *self_id(mesh_t *m, char *buf, size_t len) {
  if (!m->identity || mesh_self_id(m, buf, len) != MESH_OK)
    buf[0] = '\0';
  return buf;
}

/* Ask one CUSTOM provider.  @return true to allow. */
static bool ask_provider(mesh_t *m, struct mesh__authz *a,
                         const mesh__authz_set_t *s,
                         const mesh__az_policy_t *p,
                         const mesh_authz_request_t *r, const char **why) {
  if (p->provider == MESH__AZ_PROVIDER_CALLBACK) {
    pthread_mutex_lock(&a->cbmu);
    mesh_authz_fn fn = a->cb;
    void *user = a->cb_user;
    pthread_mutex_unlock(&a->cbmu);
    if (!fn) {
      *why = "no callback authorizer installed";
      return false;
    }
    *why = "denied by the callback authorizer";
    return fn(r, p->name, user) == MESH_AUTHZ_ALLOW;
  }
  char self[MESH_SPIFFE_ID_MAX + 1];
  bool cached = false;
  mesh_status_t err = {0};
  int out = mesh__opa_check(a->opa, &s->opa, s->generation, r,
                            self_id(m, self, sizeof self), &cached, &err);
  if (cached)
    count(a, C_OPA_CACHE_HIT);
  if (out == MESH__OPA_ERROR) {
    count(a, C_OPA_ERROR);
    mesh__log(m, MESH_LOG_WARN, "authz_opa_error",
              "policy=\"%s\" fail_open=%s error=\"%s\"", p->name,
              s->opa.fail_open ? "true" : "false", err.message);
    *why = s->opa.fail_open ? "OPA unavailable (fail open)"
                            : "OPA unavailable (fail closed)";
    return s->opa.fail_open;
  }
  *why = "denied by OPA";
  return out == MESH__OPA_ALLOW;
}

/* Turn an evaluation into the enforced outcome: CUSTOM providers first
 * (Istio's order), then the native decision; count, log, apply dry-run. */
static int finish(mesh_t *m, struct mesh__authz *a, const mesh__authz_set_t *s,
                  const mesh_authz_request_t *r, const mesh__authz_result_t *res,
                  const char *stage, mesh_status_t *st) {
  bool allow = res->decision == MESH__AZ_DECIDE_ALLOW;
  const mesh__az_policy_t *decider = res->decider;
  const char *policy = res->policy, *reason = res->reason;
  for (int i = 0; i < 2; i++) {
    const mesh__az_policy_t *p = res->custom[i];
    const char *why = "";
    if (p && !ask_provider(m, a, s, p, r, &why)) {
      count(a, C_CUSTOM_DENY);
      allow = false;
      decider = p;
      policy = p->name;
      reason = why;
      break;
    }
  }
  if (res->audit) {
    count(a, C_AUDIT);
    mesh__log(m, MESH_LOG_INFO, "authz_audit", "policy=\"%s\" stage=%s",
              res->audit, stage);
  }
  bool dry = s && s->dry_run;
  log_decision(m, r, stage, allow, dry, policy, reason);
  if (allow) {
    count(a, C_ALLOW);
    mesh__counter_add(decider ? decider->m_allow : s->m_allow, 1);
    return MESH_OK;
  }
  if (dry) {
    count(a, C_DRY_RUN_DENY);
    mesh__counter_add(decider ? decider->m_dry_run : s->m_dry_run, 1);
    return MESH_OK;
  }
  count(a, C_DENY);
  mesh__counter_add(decider ? decider->m_deny : s->m_deny, 1);
  if (strcmp(stage, "conn") == 0)
    count(a, C_CONN_DENY);
  if (policy[0])
    return mesh__fail(st, MESH_ERR_DENIED, "denied by policy \"%s\": %s",
                      policy, reason);
  return mesh__fail(st, MESH_ERR_DENIED, "denied: %s", reason);
}

/* The configured set decides first; when it allows, the external set
 * (xDS RBAC) may still deny.  Each set is one version for the request. */
static int check(mesh_t *m, const mesh_authz_request_t *r, int stage,
                 const char *label, mesh_status_t *st) {
  mesh__ok(st);
  struct mesh__authz *a = m ? m->authz : NULL;
  if (!a)
    return MESH_OK;
  mesh__authz_set_t *s = set_acquire(a), *x = slot_acquire(a, &a->ext);
  /* The external set is xDS RBAC, an HTTP filter (gRFC A41): it judges
   * requests, never the bare connection, so a principals-only DENY is a
   * 403 / PERMISSION_DENIED per request and the connection stays open. */
  if (x && stage == MESH__AZ_STAGE_CONN && x->protocol == MESH__AZ_PROTO_HTTP) {
    mesh__authz_set_unref(x);
    x = NULL;
  }
  if (!s && !x) {
    count(a, C_ALLOW);
    return MESH_OK;
  }
  const mesh__authz_set_t *fs = s ? s : x;
  int st0 = stage;
  if (stage == MESH__AZ_STAGE_CONN && fs->protocol == MESH__AZ_PROTO_TCP)
    stage = MESH__AZ_STAGE_TCP;
  mesh__authz_result_t res;
  mesh__authz_eval(fs, r, stage, &res);
  if (s && x && res.decision == MESH__AZ_DECIDE_ALLOW) {
    mesh__authz_result_t xr;
    mesh__authz_eval(x, r, st0, &xr);
    if (xr.decision == MESH__AZ_DECIDE_DENY) {
      res = xr;
      fs = x;
    }
  }
  int rc = finish(m, a, fs, r, &res, label, st);
  mesh__authz_set_unref(s);
  mesh__authz_set_unref(x);
  return rc;
}

int mesh__authz_set_external(mesh_t *m, const cJSON *doc, const char *origin,
                             mesh_status_t *st) {
  mesh__ok(st);
  struct mesh__authz *a = m ? m->authz : NULL;
  if (!a)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "authz is not set up");
  mesh__authz_set_t *s = NULL;
  if (doc) {
    mesh__cfg_t c = {.first = st};
    int rc = mesh__authz_set_build(&c, doc, "authz", &s);
    if (rc != MESH_OK || !s) {
      count(a, C_RELOAD_ERROR);
      return rc == MESH_ERR_NOMEM ? mesh__fail(st, rc, "out of memory")
                                  : (rc ? rc : MESH_ERR_INTERNAL);
    }
    s->path_norm = a->path_norm; /* the context's, fixed at init */
    register_metrics(m, s);
  }
  size_t n = s ? s->n : 0;
  uint64_t gen = slot_publish(a, &a->ext, s);
  count(a, C_RELOAD);
  mesh__log(m, MESH_LOG_INFO, "authz_external",
            "origin=\"%s\" policies=%zu generation=%llu state=%s", origin, n,
            (unsigned long long)gen, s ? "set" : "cleared");
  return MESH_OK;
}

int mesh__authz_check_conn(mesh_t *m, const char *peer_id,
                           const struct sockaddr *peer, int local_port,
                           mesh_status_t *st) {
  mesh_authz_request_t r;
  mesh__az_req_init(&r);
  mesh__az_req_set_principal(&r, peer_id ? peer_id : "");
  if (peer && peer->sa_family == AF_INET)
    memcpy(&r.src, peer, sizeof(struct sockaddr_in));
  else if (peer && peer->sa_family == AF_INET6)
    memcpy(&r.src, peer, sizeof(struct sockaddr_in6));
  r.port = local_port;
  return check(m, &r, MESH__AZ_STAGE_CONN, "conn", st);
}

int mesh__authz_check_request(mesh_t *m, const mesh_authz_request_t *r,
                              mesh_status_t *st) {
  if (!r)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "request is NULL");
  return check(m, r, MESH__AZ_STAGE_REQUEST, "request", st);
}

int mesh__authz_path_norm(mesh_t *m) {
  return m && m->authz ? m->authz->path_norm : MESH__PATH_NORM_DEFAULT;
}

bool mesh__authz_active(mesh_t *m) {
  struct mesh__authz *a = m ? m->authz : NULL;
  if (!a)
    return false;
  mesh__authz_set_t *s = set_acquire(a), *x = slot_acquire(a, &a->ext);
  bool on = (s && s->n > 0) || x;
  mesh__authz_set_unref(s);
  mesh__authz_set_unref(x);
  return on;
}

/* ---- public API -------------------------------------------------------------------- */

int mesh_authz_check(mesh_t *m, const mesh_authz_request_t *req,
                     mesh_status_t *st) {
  if (!m || !req)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_authz_check: m and req must not be NULL");
  int mode = mesh__authz_path_norm(m);
  if (!req->http || !mesh__az_req_built(req) || req->path_norm == mode)
    return check(m, req, MESH__AZ_STAGE_REQUEST, "request", st);
  /* The builder normalized with the default mode: judge the path the
   * configured mode makes, as the HTTP server would. */
  mesh_authz_request_t r = *req;
  char *path = mesh__az_req_normalize(req->target, mode);
  if (!path)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  r.path = path;
  r.path_norm = mode;
  int rc = check(m, &r, MESH__AZ_STAGE_REQUEST, "request", st);
  free(path);
  return rc;
}

int mesh_authz_set_callback(mesh_t *m, mesh_authz_fn fn, void *user) {
  if (!m || !m->authz)
    return MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&m->authz->cbmu);
  m->authz->cb = fn;
  m->authz->cb_user = fn ? user : NULL;
  pthread_mutex_unlock(&m->authz->cbmu);
  return MESH_OK;
}

int mesh_authz_reload(mesh_t *m, const char *json, mesh_status_t *st) {
  mesh__ok(st);
  if (!m || !m->authz || !json)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_authz_reload: m and json must not be NULL");
  struct mesh__authz *a = m->authz;
  mesh__json_err_t je;
  cJSON *root = mesh__json_parse(json, strlen(json), &je);
  if (!root) {
    count(a, C_RELOAD_ERROR);
    return mesh__fail(st, MESH_ERR_CONFIG, "authz: %s", je.message);
  }
  mesh__cfg_t c = {.first = st};
  mesh__authz_set_t *s = NULL;
  int rc = mesh__authz_set_build(&c, root, "authz", &s);
  cJSON_Delete(root);
  if (rc != MESH_OK) {
    count(a, C_RELOAD_ERROR);
    if (st && c.nerr > 1) {
      size_t len = strlen(st->message);
      snprintf(st->message + len, sizeof st->message - len,
               " (and %d more error%s)", c.nerr - 1, c.nerr > 2 ? "s" : "");
    }
    mesh__log(m, MESH_LOG_WARN, "authz_reload_failed",
              "errors=%d kept=previous", c.nerr);
    return rc == MESH_ERR_NOMEM ? mesh__fail(st, rc, "out of memory") : rc;
  }
  if (!s) /* cannot happen: root is non-NULL */
    return mesh__fail(st, MESH_ERR_INTERNAL, "authz: no set built");
  if (s->path_norm_given && s->path_norm != a->path_norm) {
    count(a, C_RELOAD_ERROR);
    mesh__fail(st, MESH_ERR_CONFIG,
               "authz.path_normalization: fixed at startup (\"%s\"); a "
               "reload cannot change it",
               mesh__path_norm_name(a->path_norm));
    mesh__authz_set_unref(s);
    return MESH_ERR_CONFIG;
  }
  s->path_norm = a->path_norm;
  size_t n = s->n;
  register_metrics(m, s);
  uint64_t gen = set_publish(a, s);
  mesh__opa_flush(a->opa);
  count(a, C_RELOAD);
  mesh__log(m, MESH_LOG_INFO, "authz_reloaded", "policies=%zu generation=%llu",
            n, (unsigned long long)gen);
  return MESH_OK;
}

int mesh_authz_counter(mesh_t *m, const char *name, uint64_t *out) {
  if (!m || !m->authz || !name || !out)
    return MESH_ERR_INVALID_ARG;
  for (int i = 0; i < C_COUNT; i++)
    if (strcmp(counter_names[i], name) == 0) {
      *out = atomic_load(&m->authz->counters[i]);
      return MESH_OK;
    }
  return MESH_ERR_NOT_FOUND;
}

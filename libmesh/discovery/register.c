/* SPDX-License-Identifier: Apache-2.0 */
/* Service registration in etcd: the top-level "register" key.  The
 * service's own endpoint is put under a lease (key "<service>/<address>",
 * value in the layout of etcd's Go naming package) and the lease is kept
 * alive from the worker loop every ttl/3.  If the lease is lost (etcd
 * unreachable for longer than the TTL) a new one is granted and the key put
 * again.  mesh_free() revokes the lease, which deletes the key; a process
 * that dies without mesh_free() disappears when the lease expires. */
#include "discovery/discovery.h"
#include "discovery/etcd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_TTL_DEFAULT_S 10
#define REG_MAX_METADATA 65536
#define REG_REVOKE_TIMEOUT_MS 2000

enum reg_step { STEP_GRANT, STEP_PUT, STEP_KEEPALIVE };

typedef struct reg {
  mesh_t *m;
  mesh__etcd_t *cli;
  char *key, *value; /* plain text */
  char *b64_key, *b64_value;
  int64_t ttl_s, timeout_ms;
  int64_t lease;  /* 0: none */
  int step;
  int64_t timer;
  unsigned failures;
  mesh__etcd_req_t *req;
  _Atomic bool registered;
  _Atomic uint64_t errors;
} reg_t;

/* The context has no slot for this part: keep (mesh, state) pairs here. */
typedef struct reg_entry {
  mesh_t *m;
  reg_t *r;
  struct reg_entry *next;
} reg_entry_t;

static pthread_mutex_t regs_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_entry_t *regs;

/* ---- config ---------------------------------------------------------------- */

static void reg_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"etcd", "service", "address", "ttl_s",
                                     "metadata", NULL};
  static const char *const etcd_keys[] = {"endpoints", "ca",       "cert",
                                          "key",       "username", "password",
                                          "timeout_ms", NULL};
  if (!v)
    return;
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  char p[MESH__PATH_MAX];
  const cJSON *etcd = cJSON_GetObjectItemCaseSensitive(v, "etcd");
  mesh__cfg_path(p, path, "etcd");
  if (!etcd)
    mesh__cfg_error(c, p, "required: the etcd cluster to register in");
  else if (mesh__cfg_object(c, etcd, p, etcd_keys))
    mesh__etcd_check(c, etcd, p);
  const char *addr;
  mesh__cfg_path(p, path, "address");
  if (!mesh__cfg_string(c, v, path, "address", NULL, &addr)) {
    if (!cJSON_GetObjectItemCaseSensitive(v, "address"))
      mesh__cfg_error(c, p, "required: this service's \"host:port\"");
  } else {
    char host[MESH__DISC_MAX_HOSTNAME + 1], why[128];
    uint16_t port;
    if (mesh__disc_split_hostport(addr, host, sizeof host, &port, why,
                                  sizeof why) != MESH_OK)
      mesh__cfg_error(c, p, "%s", why);
  }
  int64_t ttl;
  mesh__cfg_int(c, v, path, "ttl_s", 1, 86400, REG_TTL_DEFAULT_S, &ttl);
  const cJSON *md = cJSON_GetObjectItemCaseSensitive(v, "metadata");
  if (md) {
    mesh__cfg_path(p, path, "metadata");
    mesh__ep_t attrs;
    if (cJSON_IsObject(md))
      mesh__ep_parse_attrs(c, md, p, &attrs);
    char *txt = cJSON_PrintUnformatted(md);
    if (txt && strlen(txt) > REG_MAX_METADATA)
      mesh__cfg_error(c, p, "larger than %d bytes", REG_MAX_METADATA);
    free(txt);
  }
  /* The key is "<service>/<address>": the name, register.service or
   * else the top-level "name", is a service name like any other. */
  const char *svc;
  mesh__cfg_path(p, path, "service");
  if (mesh__cfg_string(c, v, path, "service", NULL, &svc)) {
    if (!mesh__name_valid(svc))
      mesh__cfg_error(c, p, "invalid service name (1-128 of A-Z a-z 0-9 - _ "
                            ".)");
  } else if (!cJSON_GetObjectItemCaseSensitive(v, "service") && c->root &&
             !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c->root,
                                                              "name"))) {
    mesh__cfg_error(c, p, "required when the top-level \"name\" is not set");
  }
}

/* ---- the protocol ------------------------------------------------------------ */

static void reg_error(reg_t *r, const char *what, const char *err) {
  char q[300];
  atomic_fetch_add(&r->errors, 1);
  mesh__disc_quote(q, sizeof q, err ? err : "failed");
  mesh__log(r->m, MESH_LOG_WARN, "register_error", "key=%s step=%s err=%s",
            r->key, what, q);
}

static void run_step(void *user);

static void schedule(reg_t *r, int64_t delay_ms) {
  int64_t t = mesh__loop_timer(r->m->loop, delay_ms, run_step, r);
  r->timer = t > 0 ? t : 0;
}

static int64_t keepalive_period(const reg_t *r) {
  int64_t p = r->ttl_s * 1000 / 3;
  return p < 100 ? 100 : p;
}

static void retry(reg_t *r) {
  int64_t cap = keepalive_period(r);
  if (r->step != STEP_KEEPALIVE)
    cap = 30000;
  schedule(r, mesh__disc_backoff(200, cap, r->failures++));
}

static void grant_done(int rc, const cJSON *body, const char *err, void *user) {
  reg_t *r = user;
  r->req = NULL;
  int64_t id = 0;
  if (rc == MESH_OK && (!mesh__etcd_int(body, "ID", &id) || id == 0)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(body, "error");
    rc = MESH_ERR_DISCOVERY;
    err = cJSON_IsString(e) ? e->valuestring : "no lease ID in the answer";
  }
  if (rc != MESH_OK) {
    reg_error(r, "grant", err);
    retry(r);
    return;
  }
  r->lease = id;
  r->step = STEP_PUT;
  r->failures = 0;
  schedule(r, 0);
}

static void put_done(int rc, const cJSON *body, const char *err, void *user) {
  (void)body;
  reg_t *r = user;
  r->req = NULL;
  if (rc != MESH_OK) {
    reg_error(r, "put", err);
    /* A lease that expired meanwhile cannot be used: start over. */
    if (err && strstr(err, "lease not found")) {
      r->step = STEP_GRANT;
      r->lease = 0;
    }
    retry(r);
    return;
  }
  if (!atomic_exchange(&r->registered, true))
    mesh__log(r->m, MESH_LOG_INFO, "registered", "key=%s lease=%llx ttl_s=%lld",
              r->key, (unsigned long long)r->lease, (long long)r->ttl_s);
  r->step = STEP_KEEPALIVE;
  r->failures = 0;
  schedule(r, keepalive_period(r));
}

static void keepalive_done(int rc, const cJSON *body, const char *err,
                           void *user) {
  reg_t *r = user;
  r->req = NULL;
  if (rc != MESH_OK) {
    reg_error(r, "keepalive", err);
    retry(r);
    return;
  }
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(body, "result");
  int64_t ttl = 0;
  if (!mesh__etcd_int(cJSON_IsObject(res) ? res : body, "TTL", &ttl) ||
      ttl <= 0) {
    /* etcd forgot the lease (expired while we could not reach it). */
    reg_error(r, "keepalive", "lease expired: registering again");
    atomic_store(&r->registered, false);
    r->lease = 0;
    r->step = STEP_GRANT;
    r->failures = 0;
    schedule(r, 0);
    return;
  }
  r->failures = 0;
  schedule(r, keepalive_period(r));
}

static void run_step(void *user) {
  reg_t *r = user;
  r->timer = 0;
  cJSON *b = cJSON_CreateObject();
  char id[32];
  snprintf(id, sizeof id, "%lld", (long long)r->lease);
  const char *api;
  mesh__etcd_done_fn done;
  if (r->step == STEP_GRANT) {
    cJSON_AddNumberToObject(b, "TTL", (double)r->ttl_s);
    api = "/v3/lease/grant";
    done = grant_done;
  } else if (r->step == STEP_PUT) {
    cJSON_AddStringToObject(b, "key", r->b64_key);
    cJSON_AddStringToObject(b, "value", r->b64_value);
    cJSON_AddStringToObject(b, "lease", id);
    api = "/v3/kv/put";
    done = put_done;
  } else {
    cJSON_AddStringToObject(b, "ID", id);
    api = "/v3/lease/keepalive";
    done = keepalive_done;
  }
  char *body = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  if (!body || mesh__etcd_call(r->cli, api, body, done, r, &r->req) != MESH_OK) {
    reg_error(r, "request", "out of memory");
    retry(r);
  }
  free(body);
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void reg_free(reg_t *r) {
  if (r->timer > 0)
    mesh__loop_timer_cancel(r->m->loop, r->timer);
  mesh__etcd_free(r->cli);
  free(r->key);
  free(r->value);
  free(r->b64_key);
  free(r->b64_value);
  free(r);
}

/* "{"Op":0,"Addr":...,"Metadata":...}" exactly as Go's json.Marshal of the
 * naming package's internal Update writes it (Metadata null when unset). */
static char *make_value(const char *addr, const cJSON *md) {
  cJSON *v = cJSON_CreateObject();
  if (!v)
    return NULL;
  cJSON_AddNumberToObject(v, "Op", 0);
  cJSON_AddStringToObject(v, "Addr", addr);
  cJSON *mdc = md ? cJSON_Duplicate(md, 1) : cJSON_CreateNull();
  if (mdc)
    cJSON_AddItemToObject(v, "Metadata", mdc);
  char *s = mdc ? cJSON_PrintUnformatted(v) : NULL;
  cJSON_Delete(v);
  return s;
}

static int reg_init(mesh_t *m, const cJSON *v, mesh_status_t *st) {
  mesh__disc_register_views(m);
  if (!v)
    return MESH_OK;
  mesh__cfg_t c = {0};
  const char *svc, *addr;
  mesh__cfg_string(&c, v, "", "service", m->self_name, &svc);
  mesh__cfg_string(&c, v, "", "address", "", &addr);
  if (!svc) /* unreachable: check() requires one of the two */
    return mesh__fail(st, MESH_ERR_CONFIG,
                      "register.service: required when the top-level "
                      "\"name\" is not set");
  reg_t *r = calloc(1, sizeof *r);
  reg_entry_t *ent = calloc(1, sizeof *ent);
  if (!r || !ent) {
    free(r);
    free(ent);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  r->m = m;
  mesh__cfg_int(&c, v, "", "ttl_s", 1, 86400, REG_TTL_DEFAULT_S, &r->ttl_s);
  size_t kl = strlen(svc) + 1 + strlen(addr) + 1;
  r->key = malloc(kl);
  if (r->key)
    snprintf(r->key, kl, "%s/%s", svc, addr);
  r->value = make_value(addr, cJSON_GetObjectItemCaseSensitive(v, "metadata"));
  r->b64_key = r->key ? mesh__b64_encode(r->key, strlen(r->key)) : NULL;
  r->b64_value =
      r->value ? mesh__b64_encode(r->value, strlen(r->value)) : NULL;
  int rc = MESH_OK;
  if (!r->b64_key || !r->b64_value)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK)
    rc = mesh__etcd_new(m, cJSON_GetObjectItemCaseSensitive(v, "etcd"),
                        &r->cli, st);
  if (rc == MESH_OK) {
    mesh__cfg_int(&c, cJSON_GetObjectItemCaseSensitive(v, "etcd"), "",
                  "timeout_ms", 10, 600000, MESH__ETCD_TIMEOUT_DEFAULT_MS,
                  &r->timeout_ms);
    r->step = STEP_GRANT;
    schedule(r, 0);
    if (r->timer == 0)
      rc = mesh__fail(st, MESH_ERR_NOMEM, "cannot arm the register timer");
  }
  if (rc != MESH_OK) {
    reg_free(r);
    free(ent);
    return rc;
  }
  ent->m = m;
  ent->r = r;
  pthread_mutex_lock(&regs_mu);
  ent->next = regs;
  regs = ent;
  pthread_mutex_unlock(&regs_mu);
  return MESH_OK;
}

static reg_t *take_reg(mesh_t *m) {
  reg_t *r = NULL;
  pthread_mutex_lock(&regs_mu);
  for (reg_entry_t **pp = &regs; *pp; pp = &(*pp)->next) {
    if ((*pp)->m == m) {
      reg_entry_t *e = *pp;
      *pp = e->next;
      r = e->r;
      free(e);
      break;
    }
  }
  pthread_mutex_unlock(&regs_mu);
  return r;
}

static void reg_fini(mesh_t *m) {
  reg_t *r = take_reg(m);
  if (!r)
    return;
  /* The loop has stopped: cancel the in-flight step, then revoke the
   * lease with a bounded blocking call so the key goes away now rather
   * than at TTL expiry. */
  if (r->req)
    mesh__etcd_cancel(r->cli, r->req);
  r->req = NULL;
  if (r->lease) {
    char body[64], err[300];
    snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", (long long)r->lease);
    cJSON *resp = NULL;
    int to = r->timeout_ms < REG_REVOKE_TIMEOUT_MS ? (int)r->timeout_ms
                                                    : REG_REVOKE_TIMEOUT_MS;
    int rc = mesh__etcd_call_sync(r->cli, "/v3/lease/revoke", body, to, &resp,
                                  err, sizeof err);
    cJSON_Delete(resp);
    if (rc == MESH_OK)
      mesh__log(m, MESH_LOG_INFO, "deregistered", "key=%s", r->key);
    else
      reg_error(r, "revoke", err);
  }
  reg_free(r);
}

static const char *const reg_secrets[] = {"etcd.password", NULL};
const mesh__part_t mesh__register_part = {"register", reg_check, reg_init,
                                          reg_fini, reg_secrets};

bool mesh__register_state(mesh_t *m, bool *registered, uint64_t *errors) {
  bool found = false;
  pthread_mutex_lock(&regs_mu);
  for (reg_entry_t *e = regs; e; e = e->next) {
    if (e->m == m) {
      *registered = atomic_load(&e->r->registered);
      *errors = atomic_load(&e->r->errors);
      found = true;
    }
  }
  pthread_mutex_unlock(&regs_mu);
  return found;
}

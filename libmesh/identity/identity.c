/* SPDX-License-Identifier: Apache-2.0 */
/* The identity part: the "identity" config section, the published creds,
 * rotation by polling the files from the worker loop, and the public
 * accessors (mesh_self_id, mesh_svid_expires_in, mesh_identity_reload). */
#include "identity/ident_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- config --------------------------------------------------------------- */

static void check_path(mesh__cfg_t *c, const cJSON *obj, const char *path,
                       const char *key, bool required) {
  const char *v;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  bool present = mesh__cfg_string(c, obj, path, key, NULL, &v);
  if (present && !*v)
    mesh__cfg_error(c, p, "must not be empty");
  else if (required && !cJSON_GetObjectItemCaseSensitive(obj, key))
    mesh__cfg_error(c, p, "required (path of a PEM file)");
}

static void check_bundles(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!v)
    return;
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path,
                    "expected an object of trust domain -> bundle file");
    return;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, it->string);
    mesh_status_t st;
    if (mesh__spiffe_td_validate(it->string, &st) != MESH_OK)
      mesh__cfg_error(c, p, "%s", st.message);
    else if (!cJSON_IsString(it) || !it->valuestring)
      mesh__cfg_error(c, p, "expected a string (path of a PEM bundle)");
    else if (!*it->valuestring)
      mesh__cfg_error(c, p, "must not be empty");
  }
}

static void identity_check(mesh__cfg_t *c, const cJSON *cfg,
                           const char *path) {
  static const char *const keys[] = {
      "cert",    "key", "bundle", "bundles", "reload_interval_ms",
      "expiry_warning_s", "source", "endpoint", "svid_hint", "wait_ms",
      "timeout_ms", "bundles_only", "certificate_provider", NULL};
  if (!cfg || !mesh__cfg_object(c, cfg, path, keys))
    return;
  if (mesh__identity_check_source(c, cfg, path))
    return; /* a pushing source: no files */
  check_path(c, cfg, path, "cert", true);
  check_path(c, cfg, path, "key", true);
  check_path(c, cfg, path, "bundle", false);
  const cJSON *bundles = cJSON_GetObjectItemCaseSensitive(cfg, "bundles");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "bundles");
  check_bundles(c, bundles, p);
  if (!cJSON_GetObjectItemCaseSensitive(cfg, "bundle") &&
      (!cJSON_IsObject(bundles) || cJSON_GetArraySize(bundles) == 0))
    mesh__cfg_error(c, path,
                    "needs \"bundle\" or \"bundles\" (trust bundles to verify "
                    "peers and the own SVID)");
  int64_t v;
  mesh__cfg_path(p, path, "reload_interval_ms");
  if (mesh__cfg_int(c, cfg, path, "reload_interval_ms", 0, 86400000,
                    RELOAD_INTERVAL_MS_DEF, &v) &&
      v > 0 && v < 10)
    mesh__cfg_error(c, p, "must be 0 (no polling) or at least 10");
  mesh__cfg_int(c, cfg, path, "expiry_warning_s", 0, 315360000,
                EXPIRY_WARNING_S_DEF, &v);
}

/* ---- published creds -------------------------------------------------------- */

mesh__creds_t *mesh__creds_acquire(mesh_t *m) {
  if (!m || !m->identity)
    return NULL;
  struct mesh__identity *id = m->identity;
  pthread_mutex_lock(&id->mu);
  mesh__creds_t *c = mesh__creds_ref(id->cur);
  pthread_mutex_unlock(&id->mu);
  return c;
}

uint64_t mesh__identity_generation(mesh_t *m) {
  if (!m || !m->identity)
    return 0;
  return atomic_load(&m->identity->generation);
}

int mesh__identity_on_change(mesh_t *m, mesh__identity_change_fn fn,
                             void *user) {
  if (!m || !fn)
    return MESH_ERR_INVALID_ARG;
  struct mesh__identity *id = m->identity;
  if (!id)
    return MESH_ERR_NOT_FOUND;
  pthread_mutex_lock(&id->reload_mu);
  int rc = MESH_ERR_NOMEM;
  if (id->nwatchers < MAX_WATCHERS) {
    id->watchers[id->nwatchers++] = (watcher_t){fn, user};
    rc = MESH_OK;
  }
  pthread_mutex_unlock(&id->reload_mu);
  return rc;
}

/* ---- logging helpers ----------------------------------------------------------- */

/* Copy s as a log value: double quotes become single ones so the line
 * stays parseable as key="value". */
static void log_value(char *out, size_t len, const char *s) {
  size_t k = 0;
  for (; *s && k + 1 < len; s++)
    out[k++] = *s == '"' ? '\'' : (*s == '\n' ? ' ' : *s);
  out[k] = '\0';
}

static void fmt_utc(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  if (strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    out[0] = '\0';
}

/* ---- file signatures --------------------------------------------------------- */

filesig_t mesh__filesig_of(const char *path) {
  struct stat sb;
  filesig_t s = {0};
  if (stat(path, &sb) != 0)
    return s;
  s.ok = true;
  s.dev = sb.st_dev;
  s.ino = sb.st_ino;
  s.size = sb.st_size;
  s.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
  s.ctime_ns = (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec;
  return s;
}

static const char *watched_path(struct mesh__identity *id, size_t i) {
  const char *fixed[4];
  size_t n = 0;
  fixed[n++] = id->cert;
  fixed[n++] = id->key;
  if (id->bundle)
    fixed[n++] = id->bundle;
  if (id->bundle_map)
    fixed[n++] = id->bundle_map;
  return i < n ? fixed[i] : id->paths[i - n];
}

bool mesh__filesig_eq(const filesig_t *a, const filesig_t *b) {
  return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino &&
         a->size == b->size && a->mtime_ns == b->mtime_ns &&
         a->ctime_ns == b->ctime_ns;
}

/* stat() every watched file into id->scratch; true when any differs from
 * the recorded signatures. */
static bool sigs_take(struct mesh__identity *id) {
  bool changed = false;
  for (size_t i = 0; i < id->nsigs; i++) {
    id->scratch[i] = mesh__filesig_of(watched_path(id, i));
    if (!mesh__filesig_eq(&id->scratch[i], &id->sigs[i]))
      changed = true;
  }
  return changed;
}

/* ---- (re)loading ------------------------------------------------------------- */

static void key_permissions(mesh_t *m, struct mesh__identity *id) {
  struct stat sb;
  if (stat(id->key, &sb) != 0 || !(sb.st_mode & 077))
    return;
  char p[512];
  log_value(p, sizeof p, id->key);
  mesh__log(m, MESH_LOG_WARN, "svid_key_permissions",
            "path=\"%s\" mode=%04o reason=\"private key is readable by group "
            "or others (chmod 600)\"",
            p, (unsigned)(sb.st_mode & 07777));
}

static void expiry_check(mesh_t *m, struct mesh__identity *id) {
  mesh__creds_t *c = mesh__creds_acquire(m);
  if (!c)
    return;
  int64_t left = c->not_after - mesh__wall_s();
  int64_t now = mesh__now_ms();
  /* The moment it expires is reported at once, even right after an
   * "expiring" warning: the repeat interval applies to one kind only. */
  bool due = c->generation != id->warned_gen ||
             (left <= 0) != id->warned_expired ||
             now - id->last_warn_ms >= WARN_EVERY_MS;
  /* Expired is always reported; "expiring soon" only when asked for. */
  int64_t window = id->warn_s >= 0 ? id->warn_s
                                   : (c->not_after - c->not_before) / 3;
  bool report = left <= 0 || (window > 0 && left <= window);
  if (report && due) {
    char na[32], v[512];
    fmt_utc(c->not_after, na);
    log_value(v, sizeof v, c->id);
    mesh__log(m, left <= 0 ? MESH_LOG_ERROR : MESH_LOG_WARN,
              left <= 0 ? "svid_expired" : "svid_expiring",
              "id=\"%s\" not_after=%s expires_in_s=%lld generation=%llu", v,
              na, (long long)left, (unsigned long long)c->generation);
    id->warned_gen = c->generation;
    id->warned_expired = left <= 0;
    id->last_warn_ms = now;
  }
  mesh__creds_release(c);
}

void mesh__identity_publish(mesh_t *m, struct mesh__identity *id,
                            mesh__creds_t *c) {
  pthread_mutex_lock(&id->mu);
  mesh__creds_t *old = id->cur;
  id->cur = c;
  atomic_store(&id->generation, c->generation);
  pthread_cond_broadcast(&id->cv);
  pthread_mutex_unlock(&id->mu);
  mesh__creds_release(old); /* in-flight handshakes keep their own refs */
  char na[32], v[512];
  fmt_utc(c->not_after, na);
  log_value(v, sizeof v, c->id);
  mesh__log(m, MESH_LOG_INFO, old ? "svid_reloaded" : "svid_loaded",
            "id=\"%s\" generation=%llu not_after=%s bundles=%zu", v,
            (unsigned long long)c->generation, na, c->nbundles);
  for (size_t i = 0; i < id->nwatchers; i++)
    id->watchers[i].fn(m, c, id->watchers[i].user);
}

static void reload_failed(mesh_t *m, struct mesh__identity *id, int rc,
                          const mesh_status_t *st) {
  /* A failure that repeats (retried each poll) is logged and counted
   * once. */
  if (id->retry && strcmp(id->last_err, st->message) == 0)
    return;
  mesh__counter_add(id->m_reload_error, 1);
  mesh__strlcpy(id->last_err, st->message, sizeof id->last_err);
  char v[400];
  log_value(v, sizeof v, st->message);
  mesh__log(m, MESH_LOG_ERROR, "svid_reload_failed",
            "code=%s reason=\"%s\" generation=%llu kept=%s",
            mesh_code_name(rc), v,
            (unsigned long long)atomic_load(&id->generation),
            id->cur ? "old" : "none");
}

/* Caller holds reload_mu. */
static int reload_locked(mesh_t *m, struct mesh__identity *id, bool initial,
                         mesh_status_t *st) {
  /* Record what the files look like before reading them: a write racing
   * with the read changes the signature and is picked up next poll. */
  sigs_take(id);
  memcpy(id->sigs, id->scratch, id->nsigs * sizeof *id->sigs);
  mesh__creds_src_t src = {
      .cert = id->cert,
      .key = id->key,
      .bundle = id->bundle,
      .bundle_tds = (const char *const *)id->tds,
      .bundle_paths = (const char *const *)id->paths,
      .nbundles = id->nbundles,
      .bundle_map = id->bundle_map,
      .allow_expired = initial,
  };
  mesh__creds_t *c = NULL;
  int rc = mesh__creds_load(&src, atomic_load(&id->generation) + 1, &c, st);
  if (rc != MESH_OK) {
    if (!initial)
      reload_failed(m, id, rc, st);
    /* Retried on every poll, changed or not (gRPC's file_watcher): not
     * yet valid heals with time alone, a read that ran out of file
     * descriptors or met a pair mid-rotation with no further write the
     * signatures can see.  Logged once per distinct error. */
    id->retry = true;
    return rc;
  }
  id->retry = false;
  id->last_err[0] = '\0';
  key_permissions(m, id);
  mesh__identity_publish(m, id, c);
  if (!initial)
    mesh__counter_add(id->m_reload_ok, 1);
  expiry_check(m, id);
  return MESH_OK;
}

int mesh_identity_reload(mesh_t *m, mesh_status_t *st) {
  mesh__ok(st);
  if (!m)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "mesh_identity_reload: NULL");
  struct mesh__identity *id = m->identity;
  if (!id)
    return mesh__fail(st, MESH_ERR_NOT_FOUND,
                      "no identity configured (config key \"identity\")");
  mesh_status_t local;
  pthread_mutex_lock(&id->reload_mu);
  int rc = reload_locked(m, id, false, st ? st : &local);
  pthread_mutex_unlock(&id->reload_mu);
  return rc;
}

static void poll_cb(void *user) {
  mesh_t *m = user;
  struct mesh__identity *id = m->identity;
  id->timer = 0;
  if (atomic_load(&m->closing))
    return;
  pthread_mutex_lock(&id->reload_mu);
  if (sigs_take(id) || id->retry) {
    mesh_status_t st;
    reload_locked(m, id, false, &st);
  }
  expiry_check(m, id);
  pthread_mutex_unlock(&id->reload_mu);
  int64_t t = mesh__loop_timer(m->loop, id->interval_ms, poll_cb, m);
  id->timer = t > 0 ? t : 0;
}

/* ---- public accessors ------------------------------------------------------ */

int64_t mesh_svid_expires_in(mesh_t *m) {
  mesh__creds_t *c = mesh__creds_acquire(m);
  if (!c)
    return INT64_MIN;
  int64_t left = c->not_after - mesh__wall_s();
  mesh__creds_release(c);
  return left;
}

int mesh_self_id(mesh_t *m, char *buf, size_t len) {
  if (!m || !buf || len == 0)
    return MESH_ERR_INVALID_ARG;
  mesh__creds_t *c = mesh__creds_acquire(m);
  if (!c) {
    buf[0] = '\0';
    return MESH_ERR_NOT_FOUND;
  }
  size_t n = mesh__strlcpy(buf, c->id, len);
  mesh__creds_release(c);
  return n < len ? MESH_OK : MESH_ERR_BUFFER;
}

/* ---- part lifecycle ---------------------------------------------------------- */

static void identity_free(struct mesh__identity *id) {
  if (!id)
    return;
  mesh__creds_release(id->cur);
  mesh__jwt_bundles_release(id->jwt);
  mesh__creds_release(id->trust);
  pthread_cond_destroy(&id->cv);
  for (size_t i = 0; i < id->nbundles; i++) {
    free(id->tds[i]);
    free(id->paths[i]);
  }
  free(id->tds);
  free(id->paths);
  free(id->cert);
  free(id->key);
  free(id->bundle);
  free(id->bundle_map);
  free(id->sigs);
  free(id->scratch);
  pthread_mutex_destroy(&id->mu);
  pthread_mutex_destroy(&id->reload_mu);
  pthread_mutex_destroy(&id->hook_mu);
  free(id);
}

static int copy_bundles(struct mesh__identity *id, const cJSON *bundles) {
  size_t n = cJSON_IsObject(bundles) ? (size_t)cJSON_GetArraySize(bundles) : 0;
  id->tds = calloc(n ? n : 1, sizeof *id->tds);
  id->paths = calloc(n ? n : 1, sizeof *id->paths);
  if (!id->tds || !id->paths)
    return MESH_ERR_NOMEM;
  if (n == 0)
    return MESH_OK;
  const cJSON *it;
  cJSON_ArrayForEach(it, bundles) {
    id->tds[id->nbundles] = strdup(it->string);
    id->paths[id->nbundles] = strdup(it->valuestring);
    id->nbundles++;
    if (!id->tds[id->nbundles - 1] || !id->paths[id->nbundles - 1])
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

static int identity_build(struct mesh__identity *id, const cJSON *cfg) {
  mesh__cfg_t c = {0}; /* validated already: getters cannot fail here */
  const char *s;
  mesh__cfg_string(&c, cfg, "identity", "cert", NULL, &s);
  id->cert = mesh__strdup(s);
  mesh__cfg_string(&c, cfg, "identity", "key", NULL, &s);
  id->key = mesh__strdup(s);
  mesh__cfg_string(&c, cfg, "identity", "bundle", NULL, &s);
  id->bundle = mesh__strdup(s);
  mesh__cfg_int(&c, cfg, "identity", "reload_interval_ms", 0, 86400000,
                RELOAD_INTERVAL_MS_DEF, &id->interval_ms);
  mesh__cfg_int(&c, cfg, "identity", "expiry_warning_s", 0, 315360000,
                EXPIRY_WARNING_S_DEF, &id->warn_s);
  if (!id->cert || !id->key || (s && !id->bundle))
    return MESH_ERR_NOMEM;
  int rc = copy_bundles(id, cJSON_GetObjectItemCaseSensitive(cfg, "bundles"));
  if (rc != MESH_OK)
    return rc;
  id->nsigs = 2 + (id->bundle ? 1 : 0) + id->nbundles;
  id->sigs = calloc(id->nsigs, sizeof *id->sigs);
  id->scratch = calloc(id->nsigs, sizeof *id->scratch);
  return id->sigs && id->scratch ? MESH_OK : MESH_ERR_NOMEM;
}

static int identity_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  mesh__identity_register_gauges(m); /* "no SVID" reads NaN */
  if (!cfg)
    return MESH_OK; /* no identity: plaintext-only or client-less uses */
  struct mesh__identity *id = calloc(1, sizeof *id);
  if (!id)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&id->mu, NULL);
  pthread_mutex_init(&id->reload_mu, NULL);
  pthread_mutex_init(&id->hook_mu, NULL);
  pthread_cond_init(&id->cv, NULL);
  static const char help[] = "SVID rotations (reloads after the first "
                              "load) by outcome.";
  id->m_reload_ok =
      mesh__counter(m, "mesh_svid_reloads_total", help, "outcome=ok");
  id->m_reload_error =
      mesh__counter(m, "mesh_svid_reloads_total", help, "outcome=error");
  const cJSON *src = cJSON_GetObjectItemCaseSensitive(cfg, "source");
  mesh__strlcpy(id->source, cJSON_IsString(src) ? src->valuestring : "files",
                sizeof id->source);
  if (strcmp(id->source, "files")) {
    mesh__cfg_t c = {0}; /* validated already */
    mesh__cfg_int(&c, cfg, "identity", "expiry_warning_s", 0, 315360000,
                  EXPIRY_WARNING_S_DEF, &id->warn_s);
    /* the source part (workload/, xds/) pushes the SVIDs or names the
     * files to watch (mesh__identity_watch_files) */
    m->identity = id;
    return MESH_OK;
  }
  if (identity_build(id, cfg) != MESH_OK) {
    identity_free(id);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  m->identity = id;
  pthread_mutex_lock(&id->reload_mu);
  int rc = reload_locked(m, id, true, st);
  pthread_mutex_unlock(&id->reload_mu);
  if (rc != MESH_OK)
    return rc; /* mesh_new() calls fini */
  if (id->interval_ms > 0) {
    int64_t t = mesh__loop_timer(m->loop, id->interval_ms, poll_cb, m);
    if (t < 0)
      return mesh__fail(st, (int)t, "cannot arm the SVID reload timer");
    id->timer = t;
  }
  return MESH_OK;
}

/* Keep a copy of s in *out (NULL stays NULL). */
static int dup_opt(char **out, const char *s) {
  *out = s ? mesh__strdup(s) : NULL;
  return s && !*out ? MESH_ERR_NOMEM : MESH_OK;
}

int mesh__identity_watch_files(mesh_t *m, const mesh__identity_files_t *f,
                               mesh_status_t *st) {
  struct mesh__identity *id = m ? m->identity : NULL;
  if (!id)
    return mesh__fail(st, MESH_ERR_NOT_FOUND, "no identity section");
  if (!f || !f->cert || !f->key || (!f->bundle && !f->bundle_map) ||
      f->interval_ms <= 0 || !strcmp(id->source, "files") || id->cert)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh__identity_watch_files: bad arguments");
  pthread_mutex_lock(&id->reload_mu);
  int rc = dup_opt(&id->cert, f->cert);
  if (rc == MESH_OK)
    rc = dup_opt(&id->key, f->key);
  if (rc == MESH_OK) /* A87: with a bundle map the CA file is not read */
    rc = dup_opt(&id->bundle, f->bundle_map ? NULL : f->bundle);
  if (rc == MESH_OK)
    rc = dup_opt(&id->bundle_map, f->bundle_map);
  id->interval_ms = f->interval_ms;
  id->nsigs = 2 + (id->bundle ? 1 : 0) + (id->bundle_map ? 1 : 0);
  id->sigs = calloc(id->nsigs, sizeof *id->sigs);
  id->scratch = calloc(id->nsigs, sizeof *id->scratch);
  if (rc == MESH_OK && (!id->sigs || !id->scratch))
    rc = MESH_ERR_NOMEM;
  if (rc != MESH_OK) {
    pthread_mutex_unlock(&id->reload_mu);
    return mesh__fail(st, rc, "out of memory");
  }
  mesh__identity_set_source_state(m, f->origin ? f->origin : "files");
  rc = reload_locked(m, id, true, st);
  pthread_mutex_unlock(&id->reload_mu);
  if (rc != MESH_OK)
    return rc; /* mesh_new() calls fini */
  int64_t t = mesh__loop_timer(m->loop, id->interval_ms, poll_cb, m);
  if (t < 0)
    return mesh__fail(st, (int)t, "cannot arm the SVID reload timer");
  id->timer = t;
  return MESH_OK;
}

static void identity_fini(mesh_t *m) {
  struct mesh__identity *id = m->identity;
  if (!id)
    return;
  /* The loop is stopped before parts are torn down: the timer cannot fire
   * any more, cancelling just drops it from the heap. */
  if (id->timer > 0)
    mesh__loop_timer_cancel(m->loop, id->timer);
  m->identity = NULL;
  identity_free(id);
}

const mesh__part_t mesh__identity_part = {
    .key = "identity",
    .check = identity_check,
    .init = identity_init,
    .fini = identity_fini,
};

/* SPDX-License-Identifier: Apache-2.0 */
/* The context: parse and validate the config, set up every part in order,
 * run the worker, tear down in reverse. */
#include "core/parts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         "trace", NULL};
static const char *const worker_modes[] = {"thread", "external", NULL};

/* ---- validation ------------------------------------------------------------ */

static void check_log(mesh__cfg_t *c, const cJSON *v, int *level) {
  static const char *const keys[] = {"level", NULL};
  *level = MESH_LOG_WARN; /* quiet when embedded: say what needs attention */
  if (!v || !mesh__cfg_object(c, v, "log", keys))
    return;
  mesh__cfg_enum(c, v, "log", "level", log_levels, MESH_LOG_WARN, level);
}

static void check_worker(mesh__cfg_t *c, const cJSON *v, int *mode) {
  static const char *const keys[] = {"mode", NULL};
  *mode = 0;
  if (!v || !mesh__cfg_object(c, v, "worker", keys))
    return;
  mesh__cfg_enum(c, v, "worker", "mode", worker_modes, 0, mode);
}

static void check_peers(mesh__cfg_t *c, const cJSON *svc, const char *path) {
  const cJSON *peers;
  if (!mesh__cfg_strings(c, svc, path, "peers", &peers) || !peers)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "peers");
  if (cJSON_GetArraySize(peers) == 0)
    mesh__cfg_error(c, p, "must list at least one pattern (\"*\" for any)");
}

static void check_service(mesh__cfg_t *c, const cJSON *svc, const char *path) {
  const char *keys[32];
  size_t k = 0;
  keys[k++] = "peers";
  for (size_t i = 0; mesh__svc_parts[i] && k < 31; i++)
    keys[k++] = mesh__svc_parts[i]->key;
  keys[k] = NULL;
  if (!mesh__cfg_object(c, svc, path, keys))
    return;
  check_peers(c, svc, path);
  c->svc = svc;
  c->svc_name = svc->string;
  for (size_t i = 0; mesh__svc_parts[i]; i++) {
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(svc, mesh__svc_parts[i]->key);
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, mesh__svc_parts[i]->key);
    if (mesh__svc_parts[i]->check)
      mesh__svc_parts[i]->check(c, v, p);
  }
  c->svc = NULL;
  c->svc_name = NULL;
}

static void check_services(mesh__cfg_t *c, const cJSON *v) {
  if (!v)
    return;
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, "services", "expected an object of services");
    return;
  }
  const cJSON *svc;
  cJSON_ArrayForEach(svc, v) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, "services", svc->string);
    if (!mesh__name_valid(svc->string)) {
      mesh__cfg_error(c, p,
                      "invalid service name (1-128 of A-Z a-z 0-9 - _ .)");
      continue;
    }
    check_service(c, svc, p);
  }
}

/* Validate the whole document; returns the number of errors. */
static int check_all(mesh__cfg_t *c, const cJSON *root, int *log_level,
                     int *worker_mode) {
  const char *keys[40];
  size_t k = 0;
  keys[k++] = "name";
  keys[k++] = "log";
  keys[k++] = "worker";
  keys[k++] = "services";
  for (size_t i = 0; mesh__parts[i] && k < 39; i++)
    if (mesh__parts[i]->key)
      keys[k++] = mesh__parts[i]->key;
  keys[k] = NULL;
  if (!mesh__cfg_object(c, root, "", keys))
    return c->nerr;
  c->root = root;
  const char *name;
  if (mesh__cfg_string(c, root, "", "name", NULL, &name) &&
      !mesh__name_valid(name))
    mesh__cfg_error(c, "name",
                    "invalid service name (1-128 of A-Z a-z 0-9 - _ .)");
  check_log(c, cJSON_GetObjectItemCaseSensitive(root, "log"), log_level);
  check_worker(c, cJSON_GetObjectItemCaseSensitive(root, "worker"),
               worker_mode);
  check_services(c, cJSON_GetObjectItemCaseSensitive(root, "services"));
  for (size_t i = 0; mesh__parts[i]; i++) {
    const mesh__part_t *p = mesh__parts[i];
    if (p->check)
      p->check(c, p->key ? cJSON_GetObjectItemCaseSensitive(root, p->key)
                         : NULL,
               p->key ? p->key : "");
  }
  c->root = NULL;
  return c->nerr;
}

static void on_dup(const char *path, const char *key, void *user) {
  (void)key;
  mesh__cfg_error(user, path,
                  "duplicate key (JSON readers disagree on which one counts)");
}

/* The size cap first (nothing is parsed past it), then the one JSON entry
 * point: syntax, trailing garbage, every duplicate key. */
static cJSON *parse_json(const char *json, mesh__cfg_t *c) {
  size_t max = mesh__config_max_bytes();
  size_t len = strnlen(json, max + 1);
  char msg[sizeof(((mesh_status_t *)0)->message)];
  if (mesh__config_size_error(len, msg, sizeof msg)) {
    mesh__cfg_error(c, "", "%s", msg);
    return NULL;
  }
  mesh__json_err_t e;
  cJSON *root = mesh__json_parse_dups(json, len, &e, on_dup, c);
  if (!root && e.kind == MESH__JSON_SYNTAX)
    mesh__cfg_error(c, "", "%s", e.message);
  else if (!root && e.kind == MESH__JSON_NOMEM)
    mesh__cfg_error(c, "", "out of memory");
  return root;
}

int mesh_config_check(const char *json, mesh_config_error_fn fn, void *user) {
  if (!json)
    return MESH_ERR_INVALID_ARG;
  mesh__cfg_t c = {.fn = fn, .user = user};
  cJSON *root = parse_json(json, &c);
  if (root) {
    int lv, wm;
    check_all(&c, root, &lv, &wm);
    cJSON_Delete(root);
  }
  return c.nerr;
}

/* ---- services ---------------------------------------------------------------- */

static int cmp_svc(const void *a, const void *b) {
  const mesh__service_t *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

mesh__service_t *mesh__service_find(mesh_t *m, const char *name) {
  if (!m || !name || !m->services)
    return NULL;
  size_t lo = 0, hi = m->services->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int r = strcmp(name, m->services->v[mid]->name);
    if (r == 0)
      return m->services->v[mid];
    if (r < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  size_t nd = atomic_load_explicit(&m->services->ndyn, memory_order_acquire);
  for (size_t i = 0; i < nd; i++)
    if (strcmp(name, m->services->dyn[i]->name) == 0)
      return m->services->dyn[i];
  return NULL;
}

static void services_fini(mesh_t *m) {
  struct mesh__services *ss = m->services;
  if (!ss)
    return;
  mesh__services_dyn_fini(m);
  size_t nparts = 0;
  while (mesh__svc_parts[nparts])
    nparts++;
  for (size_t i = 0; i < ss->n; i++) {
    mesh__service_t *s = ss->v[i];
    for (size_t j = nparts; j-- > 0;)
      if (mesh__svc_parts[j]->fini)
        mesh__svc_parts[j]->fini(m, s);
    free(s->name);
    free(s);
  }
  free(ss->v);
  free(ss);
  m->services = NULL;
}

static int services_init(mesh_t *m, mesh_status_t *st) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, "services");
  struct mesh__services *ss = calloc(1, sizeof *ss);
  if (!ss)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  m->services = ss;
  size_t n = v ? (size_t)cJSON_GetArraySize(v) : 0;
  ss->v = calloc(n ? n : 1, sizeof *ss->v);
  ss->dyn = calloc(m->svc_dyn_max + 1, sizeof *ss->dyn);
  if (!ss->v || !ss->dyn)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    mesh__service_t *s = calloc(1, sizeof *s);
    if (!s)
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    s->name = strdup(it->string);
    s->cfg = it;
    s->peers = cJSON_GetObjectItemCaseSensitive(it, "peers");
    ss->v[ss->n++] = s;
    if (!s->name)
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  qsort(ss->v, ss->n, sizeof *ss->v, cmp_svc);
  for (size_t i = 0; i < ss->n; i++) {
    mesh__service_t *s = ss->v[i];
    for (size_t j = 0; mesh__svc_parts[j]; j++) {
      const mesh__svc_part_t *p = mesh__svc_parts[j];
      if (!p->init)
        continue;
      int rc = p->init(m, s, cJSON_GetObjectItemCaseSensitive(s->cfg, p->key),
                       st);
      if (rc != MESH_OK)
        return rc;
    }
  }
  return MESH_OK;
}

/* ---- lifecycle ---------------------------------------------------------------- */

static size_t nparts(void) {
  size_t n = 0;
  while (mesh__parts[n])
    n++;
  return n;
}

void mesh_free(mesh_t *m) {
  if (!m)
    return;
  atomic_store(&m->closing, true);
  /* Background work stops first so no callback sees a half-freed part. */
  mesh__loop_stop(m->loop);
  services_fini(m);
  for (size_t i = nparts(); i-- > 0;)
    if (mesh__parts[i]->fini)
      mesh__parts[i]->fini(m);
  mesh__loop_free(m->loop);
  free(m->config); /* packed: one block */
  free(m->self_name);
  pthread_mutex_destroy(&m->log.mu);
  free(m);
}

/* The first error's message, with " (and N more errors)" appended; when
 * that does not fit, room is made after a whole word, as mesh__cfg_error()
 * cuts. */
static void append_more_errors(mesh_status_t *st, int nerr) {
  if (!st || nerr <= 1)
    return;
  char more[48];
  int k = snprintf(more, sizeof more, " (and %d more error%s)", nerr - 1,
                   nerr > 2 ? "s" : "");
  size_t len = strlen(st->message), cap = sizeof st->message;
  if (k > 0 && len + (size_t)k >= cap) {
    len = cap - (size_t)k - sizeof " [...]";
    while (len > 0 && st->message[len - 1] != ' ' &&
           st->message[len - 1] != ',')
      len--;
    while (len > 0 &&
           (st->message[len - 1] == ' ' || st->message[len - 1] == ','))
      len--;
    memcpy(st->message + len, " [...]", 6);
    len += 6;
  }
  if (k > 0)
    memcpy(st->message + len, more, (size_t)k + 1);
}

int mesh_new(const char *json, mesh_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (!json || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_new: json and out must not be NULL");
  *out = NULL;
  mesh__cfg_t c = {.first = st};
  cJSON *root = parse_json(json, &c);
  if (!root)
    return MESH_ERR_CONFIG;
  int log_level = MESH_LOG_WARN, worker_mode = 0;
  if (check_all(&c, root, &log_level, &worker_mode) > 0) {
    cJSON_Delete(root);
    append_more_errors(st, c.nerr);
    return MESH_ERR_CONFIG;
  }
  /* Kept for the context's life in one block: mesh_free is one free()
   * instead of one per node and string. */
  cJSON *packed = mesh__json_pack(root);
  cJSON_Delete(root);
  root = packed;
  mesh_t *m = root ? calloc(1, sizeof *m) : NULL;
  if (!m) {
    free(root);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  m->config = root;
  pthread_mutex_init(&m->log.mu, NULL);
  atomic_store(&m->log.level, log_level);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
  m->self_name = cJSON_IsString(name) ? strdup(name->valuestring) : NULL;
  m->external_loop = worker_mode == 1;
  int rc = mesh__loop_new(&m->loop);
  if (rc != MESH_OK) {
    mesh__fail(st, rc, "cannot create the worker loop: %s",
               mesh_strerror(rc));
    mesh_free(m);
    return rc;
  }
  for (size_t i = 0; mesh__parts[i]; i++) {
    const mesh__part_t *p = mesh__parts[i];
    if (!p->init)
      continue;
    rc = p->init(m, p->key ? cJSON_GetObjectItemCaseSensitive(root, p->key)
                           : NULL,
                 st);
    if (rc != MESH_OK) {
      mesh_free(m);
      return rc;
    }
  }
  rc = services_init(m, st);
  if (rc == MESH_OK && !m->external_loop) {
    rc = mesh__loop_start_thread(m->loop);
    if (rc != MESH_OK)
      mesh__fail(st, rc, "cannot start the worker thread");
  }
  if (rc != MESH_OK) {
    mesh_free(m);
    return rc;
  }
  *out = m;
  return MESH_OK;
}

int mesh_new_from_file(const char *path, mesh_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (!path || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_new_from_file: path and out must not be NULL");
  *out = NULL;
  /* Regular files only, refused without blocking (a FIFO would hang). */
  int fd;
  int orc = mesh__file_open(path, &fd, st);
  if (orc != MESH_OK)
    return orc;
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: %s", path, strerror(errno));
  }
  /* The size cap holds before anything is read: a file one byte over it
   * is refused after reading at most cap + 1 bytes. */
  size_t max = mesh__config_max_bytes();
  char msg[sizeof(((mesh_status_t *)0)->message)];
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len > max && mesh__config_size_error(len, msg, sizeof msg)) {
      fclose(f);
      free(buf);
      return mesh__fail(st, MESH_ERR_CONFIG, "%s: %s", path, msg);
    }
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        fclose(f);
        free(buf);
        return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
      }
      buf = nb;
    }
    size_t want = cap - len - 1;
    if (want > max + 1 - len)
      want = max + 1 - len;
    size_t r = fread(buf + len, 1, want, f);
    len += r;
    if (r == 0 && len <= max)
      break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    return mesh__fail(st, MESH_ERR_IO, "%s: read error", path);
  }
  buf[len] = '\0';
  int rc = mesh_new(buf, out, st);
  free(buf);
  return rc;
}

/* ---- external loop tier ----------------------------------------------------- */

int mesh_backend_fd(mesh_t *m) {
  if (!m || !m->external_loop)
    return -1;
  return mesh__loop_fd(m->loop);
}

int mesh_backend_timeout(mesh_t *m) {
  if (!m || !m->external_loop)
    return -1;
  return mesh__loop_timeout(m->loop);
}

int mesh_process(mesh_t *m) {
  if (!m || !m->external_loop)
    return MESH_ERR_INVALID_ARG;
  mesh__loop_run_once(m->loop, 0);
  return MESH_OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* File source: a JSON file of endpoints, polled with stat() on the worker
 * loop and reloaded when its identity, size or mtime changes.  A file that
 * is missing, unreadable or malformed keeps the last good set. */
#include "discovery/discovery.h"
#include "discovery/etcd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_POLL_DEFAULT_MS 1000

typedef struct file_src {
  mesh__disc_svc_t *d;
  const char *path; /* borrowed from the config */
  int64_t poll_ms;
  int64_t timer;
  bool have_stat;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  int last_errno; /* errno of the last failed stat (0: none) */
} file_src_t;

void mesh__disc_check_file(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"type", "path", "poll_interval_ms",
                                     "resolver", NULL};
  mesh__cfg_object(c, v, path, keys);
  mesh__disc_check_resolver(c, v, path);
  const char *p;
  if (!mesh__cfg_string(c, v, path, "path", NULL, &p) &&
      !cJSON_GetObjectItemCaseSensitive(v, "path")) {
    char jp[MESH__PATH_MAX];
    mesh__cfg_path(jp, path, "path");
    mesh__cfg_error(c, jp, "required for type \"file\"");
  } else if (p && !*p) {
    char jp[MESH__PATH_MAX];
    mesh__cfg_path(jp, path, "path");
    mesh__cfg_error(c, jp, "must not be empty");
  }
  int64_t ms;
  mesh__cfg_int(c, v, path, "poll_interval_ms", 10, 3600000,
                FILE_POLL_DEFAULT_MS, &ms);
}

/* Read at most MESH__DISC_MAX_FILE bytes; NUL-terminated.  NULL with
 * err set on failure. */
static char *read_all(const char *path, size_t *len, char *err, size_t errlen) {
  /* Regular files only, refused without blocking (a FIFO would hang the
   * worker thread). */
  int fd;
  mesh_status_t st;
  if (mesh__file_open(path, &fd, &st) != MESH_OK) {
    const char *msg = st.message; /* "<path>: why": the caller adds path */
    size_t pl = strlen(path);
    if (strncmp(msg, path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ')
      msg += pl + 2;
    mesh__strlcpy(err, msg, errlen);
    return NULL;
  }
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n + 1 >= cap) {
      if (cap > MESH__DISC_MAX_FILE) {
        snprintf(err, errlen, "larger than %u bytes", MESH__DISC_MAX_FILE);
        free(buf);
        buf = NULL;
        break;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      snprintf(err, errlen, "read error: %s", strerror(errno));
      free(buf);
      buf = NULL;
      break;
    }
    if (r == 0) {
      buf[n] = '\0';
      *len = n;
      break;
    }
    n += (size_t)r;
  }
  if (!buf && !*err)
    snprintf(err, errlen, "out of memory");
  close(fd);
  return buf;
}

/* The endpoints array: the document itself, or its "endpoints" member. */
static const cJSON *endpoints_of(const cJSON *doc) {
  if (cJSON_IsObject(doc))
    return cJSON_GetObjectItemCaseSensitive(doc, "endpoints");
  return doc;
}

static void load(file_src_t *f) {
  char err[200] = "";
  size_t len = 0;
  char *text = read_all(f->path, &len, err, sizeof err);
  if (!text) {
    mesh__disc_error(f->d, "%s: %s", f->path, err);
    return;
  }
  mesh__json_err_t je;
  cJSON *doc = mesh__json_parse(text, len, &je);
  if (!doc) {
    free(text);
    if (je.kind == MESH__JSON_SYNTAX)
      mesh__disc_error(f->d, "%s: JSON syntax error at byte %zu", f->path,
                       je.offset);
    else
      mesh__disc_error(f->d, "%s: %s", f->path, je.message);
    return;
  }
  free(text);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__ep_t *eps = NULL;
  size_t n = 0;
  int rc = mesh__ep_parse_list(&c, endpoints_of(doc), "endpoints", &eps, &n);
  /* If the set could not be published (out of memory, the picker refused
   * it), forget the file's identity so the next poll tries again. */
  if (rc == MESH_OK) {
    if (mesh__disc_apply(f->d, eps, n) != MESH_OK)
      f->have_stat = false;
  } else if (rc == MESH_ERR_NOMEM)
    mesh__disc_error(f->d, "%s: out of memory", f->path);
  else
    mesh__disc_error(f->d, "%s: %s%s", f->path, st.message,
                     c.nerr > 1 ? " (and more)" : "");
  free(eps);
  cJSON_Delete(doc);
}

static void poll_once(file_src_t *f) {
  struct stat sb;
  if (stat(f->path, &sb) != 0) {
    /* Report each new failure once, not on every poll. */
    if (errno != f->last_errno)
      mesh__disc_error(f->d, "%s: %s", f->path, strerror(errno));
    f->last_errno = errno;
    f->have_stat = false;
    return;
  }
  f->last_errno = 0;
  if (f->have_stat && sb.st_dev == f->dev && sb.st_ino == f->ino &&
      sb.st_size == f->size && sb.st_mtim.tv_sec == f->mtime.tv_sec &&
      sb.st_mtim.tv_nsec == f->mtime.tv_nsec)
    return;
  f->have_stat = true;
  f->dev = sb.st_dev;
  f->ino = sb.st_ino;
  f->size = sb.st_size;
  f->mtime = sb.st_mtim;
  load(f);
}

static void poll_cb(void *user) {
  file_src_t *f = user;
  f->timer = 0;
  poll_once(f);
  int64_t t = mesh__loop_timer(f->d->m->loop, f->poll_ms, poll_cb, f);
  f->timer = t > 0 ? t : 0;
}

static int file_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  file_src_t *f = calloc(1, sizeof *f);
  if (!f)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mesh__cfg_t c = {0};
  mesh__cfg_string(&c, d->cfg, "", "path", "", &f->path);
  mesh__cfg_int(&c, d->cfg, "", "poll_interval_ms", 10, 3600000,
                FILE_POLL_DEFAULT_MS, &f->poll_ms);
  f->d = d;
  d->src = f;
  /* The first load is synchronous: a local file answers at once, so the
   * service has its endpoints when mesh_new() returns. */
  poll_once(f);
  int64_t t = mesh__loop_timer(d->m->loop, f->poll_ms, poll_cb, f);
  if (t < 0)
    return mesh__fail(st, (int)t, "cannot arm the file poll timer");
  f->timer = t;
  return MESH_OK;
}

static void file_stop(mesh__disc_svc_t *d) {
  file_src_t *f = d->src;
  if (!f)
    return;
  if (f->timer > 0)
    mesh__loop_timer_cancel(d->m->loop, f->timer);
  free(f);
  d->src = NULL;
}

const mesh__disc_source_t mesh__disc_file = {"file", file_start, file_stop};

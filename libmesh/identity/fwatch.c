/* SPDX-License-Identifier: Apache-2.0 */
/* More file sets watched the way the identity's own files are (same stat()
 * signatures, same "record, then read" order): a part above names the
 * files of a certificate provider instance that is not the identity's
 * (xds: gRFC A29 file_watcher instances named by filter chains and
 * clusters) and is told on the loop thread, every interval_ms, when any
 * of them changed.  Loading them is the caller's business: it keeps its
 * last good credentials when the new files do not load.  A write that
 * races with the caller's read changes the signature again and is seen
 * at the next interval.
 *
 * A failed load is tried again at every interval, changed or not (gRPC's
 * file_watcher re-reads every refresh_interval): a failure may heal with
 * no write to the files at all (a certificate not valid yet, a pair read
 * mid-rotation whose fixing write the signature cannot tell apart, file
 * descriptors or memory that ran out).  Files that loaded are only
 * stat()ed until they change: a good set is never re-read for nothing. */
#include "identity/ident_int.h"

#include <stdatomic.h>
#include <stdlib.h>

struct mesh__fwatch {
  mesh_t *m;
  char **paths;
  size_t n;
  filesig_t *sigs;
  int64_t interval_ms;
  int64_t timer; /* loop thread only */
  mesh__fwatch_fn fn;
  void *user;
  _Atomic bool failed; /* the last load failed: call fn every interval */
};

static bool take(mesh__fwatch_t *w) {
  bool changed = false;
  for (size_t i = 0; i < w->n; i++) {
    filesig_t s = mesh__filesig_of(w->paths[i]);
    if (!mesh__filesig_eq(&s, &w->sigs[i]))
      changed = true;
    w->sigs[i] = s;
  }
  return changed;
}

static void tick(void *user) {
  mesh__fwatch_t *w = user;
  w->timer = 0;
  if (atomic_load(&w->m->closing))
    return;
  /* stat() first, always: the signatures recorded are those of the files
   * the attempt reads (a write racing with it is seen next interval) */
  bool changed = take(w);
  if (changed || atomic_load(&w->failed))
    atomic_store(&w->failed, !w->fn(w->m, changed, w->user));
  int64_t t = mesh__loop_timer(w->m->loop, w->interval_ms, tick, w);
  w->timer = t > 0 ? t : 0;
}

void mesh__fwatch_retry(mesh__fwatch_t *w) {
  if (w)
    atomic_store(&w->failed, true);
}

bool mesh__fwatch_failed(const mesh__fwatch_t *w) {
  return w && atomic_load(&w->failed);
}

void mesh__fwatch_free(mesh_t *m, mesh__fwatch_t *w) {
  if (!w)
    return;
  /* the loop is stopped before parts are torn down: cancelling only drops
   * the timer from the heap */
  if (w->timer > 0)
    mesh__loop_timer_cancel(m->loop, w->timer);
  for (size_t i = 0; i < w->n; i++)
    free(w->paths[i]);
  free(w->paths);
  free(w->sigs);
  free(w);
}

int mesh__fwatch_new(mesh_t *m, const char *const *paths, size_t n,
                     int64_t interval_ms, mesh__fwatch_fn fn, void *user,
                     mesh__fwatch_t **out, mesh_status_t *st) {
  *out = NULL;
  if (!m || !fn || !n || interval_ms <= 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh__fwatch_new: bad arguments");
  mesh__fwatch_t *w = calloc(1, sizeof *w);
  if (w) {
    w->paths = calloc(n, sizeof *w->paths);
    w->sigs = calloc(n, sizeof *w->sigs);
  }
  if (!w || !w->paths || !w->sigs) {
    mesh__fwatch_free(m, w);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  *w = (mesh__fwatch_t){.m = m, .paths = w->paths, .sigs = w->sigs,
                        .interval_ms = interval_ms, .fn = fn, .user = user};
  for (; w->n < n; w->n++)
    if (!(w->paths[w->n] = mesh__strdup(paths[w->n]))) {
      mesh__fwatch_free(m, w);
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    }
  take(w); /* the files as the caller has just read them */
  int64_t t = mesh__loop_timer(m->loop, interval_ms, tick, w);
  if (t < 0) {
    mesh__fwatch_free(m, w);
    return mesh__fail(st, (int)t, "cannot arm the file watch timer");
  }
  w->timer = t;
  *out = w;
  return MESH_OK;
}

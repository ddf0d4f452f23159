/* SPDX-License-Identifier: Apache-2.0 */
/* A libcurl multi handle on the worker loop (libcurl's "multi_socket"
 * interface): libcurl says which sockets to watch and when to call it
 * back; the loop watches and times; curl_multi_socket_action does the
 * work; finished transfers go to their completion callbacks. */
#include "core/curl_loop.h"

#include <stdlib.h>

typedef struct xfer {
  struct mesh__curlm *cm;
  CURL *easy;
  mesh__curlm_done_fn done;
  void *user;
  struct xfer *prev, *next;
} xfer_t;

struct mesh__curlm {
  mesh_t *m;
  CURLM *multi;
  int64_t timer;
  bool detached; /* driven by mesh__curlm_drive: the loop is not used */
  int *fds;      /* sockets watched on the loop */
  size_t nfds, capfds;
  xfer_t *xfers;
  size_t n;
};

/* ---- watched sockets ------------------------------------------------------ */

static void fd_forget(mesh__curlm_t *cm, int fd) {
  for (size_t i = 0; i < cm->nfds; i++) {
    if (cm->fds[i] == fd) {
      cm->fds[i] = cm->fds[--cm->nfds];
      return;
    }
  }
}

static bool fd_remember(mesh__curlm_t *cm, int fd) {
  for (size_t i = 0; i < cm->nfds; i++)
    if (cm->fds[i] == fd)
      return true;
  if (cm->nfds == cm->capfds) {
    size_t cap = cm->capfds ? cm->capfds * 2 : 8;
    int *v = realloc(cm->fds, cap * sizeof *v);
    if (!v)
      return false;
    cm->fds = v;
    cm->capfds = cap;
  }
  cm->fds[cm->nfds++] = fd;
  return true;
}

/* Leave the loop: no timer, no watches, from now on. */
static void detach(mesh__curlm_t *cm) {
  if (cm->timer > 0)
    mesh__loop_timer_cancel(cm->m->loop, cm->timer);
  cm->timer = 0;
  for (size_t i = 0; i < cm->nfds; i++)
    mesh__loop_unwatch(cm->m->loop, cm->fds[i]);
  cm->nfds = 0;
  cm->detached = true;
}

/* ---- transfers -------------------------------------------------------------- */

static void unlink_xfer(mesh__curlm_t *cm, xfer_t *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    cm->xfers = x->next;
  if (x->next)
    x->next->prev = x->prev;
  cm->n--;
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
  free(x);
}

static xfer_t *xfer_of(mesh__curlm_t *cm, CURL *easy) {
  char *p = NULL;
  if (!easy || curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK)
    return NULL;
  xfer_t *x = (xfer_t *)(void *)p;
  return x && x->cm == cm && x->easy == easy ? x : NULL;
}

/* Hand every finished transfer to its callback. */
static void process(mesh__curlm_t *cm) {
  int left;
  for (CURLMsg *msg = curl_multi_info_read(cm->multi, &left); msg;
       msg = curl_multi_info_read(cm->multi, &left)) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    xfer_t *x = xfer_of(cm, easy);
    curl_multi_remove_handle(cm->multi, easy);
    if (!x)
      continue;
    mesh__curlm_done_fn done = x->done;
    void *user = x->user;
    unlink_xfer(cm, x);
    done(easy, result, user);
  }
}

/* ---- libcurl <-> loop ---------------------------------------------------------- */

static void on_timer(void *user) {
  mesh__curlm_t *cm = user;
  cm->timer = 0;
  int running;
  curl_multi_socket_action(cm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  process(cm);
}

static void on_io(int fd, unsigned ev, void *user) {
  mesh__curlm_t *cm = user;
  int flags = 0, running;
  if (ev & MESH__IO_READ)
    flags |= CURL_CSELECT_IN;
  if (ev & MESH__IO_WRITE)
    flags |= CURL_CSELECT_OUT;
  if (ev & MESH__IO_ERROR)
    flags |= CURL_CSELECT_ERR;
  curl_multi_socket_action(cm->multi, fd, flags, &running);
  process(cm);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *user) {
  (void)multi;
  mesh__curlm_t *cm = user;
  if (cm->detached)
    return 0; /* curl_multi_wait keeps time */
  if (cm->timer > 0)
    mesh__loop_timer_cancel(cm->m->loop, cm->timer);
  cm->timer = 0;
  if (timeout_ms < 0)
    return 0;
  int64_t t = mesh__loop_timer(cm->m->loop, timeout_ms, on_timer, cm);
  cm->timer = t > 0 ? t : 0;
  return t > 0 ? 0 : -1;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *user,
                     void *sockp) {
  (void)easy;
  (void)sockp;
  mesh__curlm_t *cm = user;
  if (cm->detached)
    return 0; /* curl_multi_wait polls */
  if (what == CURL_POLL_REMOVE) {
    mesh__loop_unwatch(cm->m->loop, s);
    fd_forget(cm, s);
    return 0;
  }
  unsigned ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    ev |= MESH__IO_READ;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    ev |= MESH__IO_WRITE;
  /* A socket the loop cannot watch would hang its transfer: fail it (and,
   * libcurl being what it is, the others in this handle) at once. */
  if (!fd_remember(cm, s))
    return -1;
  if (mesh__loop_watch(cm->m->loop, s, ev, on_io, cm) != MESH_OK) {
    fd_forget(cm, s);
    mesh__log(cm->m, MESH_LOG_ERROR, "curl_watch_failed", "fd=%d", (int)s);
    return -1;
  }
  return 0;
}

/* ---- API ---------------------------------------------------------------------- */

mesh__curlm_t *mesh__curlm_new(mesh_t *m) {
  if (!m || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return NULL;
  mesh__curlm_t *cm = calloc(1, sizeof *cm);
  if (!cm) {
    curl_global_cleanup();
    return NULL;
  }
  cm->m = m;
  cm->multi = curl_multi_init();
  if (!cm->multi) {
    free(cm);
    curl_global_cleanup();
    return NULL;
  }
  curl_multi_setopt(cm->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(cm->multi, CURLMOPT_SOCKETDATA, cm);
  curl_multi_setopt(cm->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(cm->multi, CURLMOPT_TIMERDATA, cm);
  return cm;
}

int mesh__curlm_add(mesh__curlm_t *cm, CURL *easy, mesh__curlm_done_fn done,
                    void *user) {
  if (!cm || !easy || !done)
    return MESH_ERR_INVALID_ARG;
  /* Our record in CURLOPT_PRIVATE means easy is running somewhere:
   * libcurl would refuse it, and overwriting the record would orphan the
   * running transfer. */
  char *busy = NULL;
  if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &busy) != CURLE_OK || busy)
    return MESH_ERR_INVALID_ARG;
  xfer_t *x = calloc(1, sizeof *x);
  if (!x)
    return MESH_ERR_NOMEM;
  x->cm = cm;
  x->easy = easy;
  x->done = done;
  x->user = user;
  x->next = cm->xfers;
  if (cm->xfers)
    cm->xfers->prev = x;
  cm->xfers = x;
  cm->n++;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
  CURLMcode mc = curl_multi_add_handle(cm->multi, easy);
  if (mc != CURLM_OK) {
    unlink_xfer(cm, x);
    return mc == CURLM_OUT_OF_MEMORY ? MESH_ERR_NOMEM : MESH_ERR_INTERNAL;
  }
  return MESH_OK;
}

void mesh__curlm_remove(mesh__curlm_t *cm, CURL *easy) {
  if (!cm)
    return;
  xfer_t *x = xfer_of(cm, easy);
  if (!x)
    return;
  curl_multi_remove_handle(cm->multi, easy);
  unlink_xfer(cm, x);
}

size_t mesh__curlm_running(const mesh__curlm_t *cm) { return cm ? cm->n : 0; }

size_t mesh__curlm_drive(mesh__curlm_t *cm, int64_t deadline_ms) {
  if (!cm)
    return 0;
  if (!cm->detached)
    detach(cm);
  while (cm->n > 0 && mesh__now_ms() < deadline_ms) {
    int running;
    curl_multi_perform(cm->multi, &running);
    process(cm);
    if (cm->n == 0)
      break;
    int64_t left = deadline_ms - mesh__now_ms();
    int wait = left < 50 ? (left > 0 ? (int)left : 1) : 50;
    curl_multi_wait(cm->multi, NULL, 0, wait, NULL);
  }
  return cm->n;
}

void mesh__curlm_free(mesh__curlm_t *cm) {
  if (!cm)
    return;
  detach(cm);
  while (cm->xfers) {
    curl_multi_remove_handle(cm->multi, cm->xfers->easy);
    unlink_xfer(cm, cm->xfers);
  }
  curl_multi_cleanup(cm->multi);
  free(cm->fds);
  free(cm);
  curl_global_cleanup();
}

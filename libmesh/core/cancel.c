/* SPDX-License-Identifier: Apache-2.0 */
/* Cancel tokens (include/mesh/cancel.h): an atomic flag plus a pipe whose
 * read end turns readable when the token fires, so that a wait can poll
 * it.  Anything written to the write end fires the token too (a signal
 * handler's wakeup byte, e.g. Python's signal.set_wakeup_fd). */
#include <mesh/cancel.h>
#include <mesh/error.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "cancel_int.h"
#include "core.h"

struct mesh_cancel {
  atomic_int fired;
  int rfd, wfd;
};

int mesh_cancel_new(mesh_cancel_t **out) {
  if (!out)
    return MESH_ERR_INVALID_ARG;
  *out = NULL;
  mesh_cancel_t *c = malloc(sizeof *c);
  if (!c)
    return MESH_ERR_NOMEM;
  atomic_init(&c->fired, 0);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    int e = errno;
    free(c);
    return e == EMFILE || e == ENFILE ? MESH_ERR_FD_LIMIT : MESH_ERR_NOMEM;
  }
  c->rfd = fds[0];
  c->wfd = fds[1];
  *out = c;
  return MESH_OK;
}

void mesh_cancel_free(mesh_cancel_t *c) {
  if (!c)
    return;
  close(c->rfd);
  close(c->wfd);
  free(c);
}

int mesh_cancel_fire(mesh_cancel_t *c) {
  if (!c)
    return MESH_ERR_INVALID_ARG;
  if (atomic_exchange(&c->fired, 1))
    return MESH_OK;
  char one = 1;
  ssize_t n;
  do
    n = write(c->wfd, &one, 1);
  while (n < 0 && errno == EINTR);
  return MESH_OK;
}

/* Fired by mesh_cancel_fire() or by a byte written to the wakeup fd. */
int mesh_cancel_fired(const mesh_cancel_t *c) {
  if (!c)
    return 0;
  mesh_cancel_t *w = (mesh_cancel_t *)c;
  if (atomic_load(&w->fired))
    return 1;
  struct pollfd p = {.fd = c->rfd, .events = POLLIN};
  if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
    atomic_store(&w->fired, 1);
    return 1;
  }
  return 0;
}

int mesh_cancel_fd(const mesh_cancel_t *c) { return c ? c->rfd : -1; }

int mesh_cancel_wakeup_fd(const mesh_cancel_t *c) { return c ? c->wfd : -1; }

bool mesh__cancel_sleep(const mesh_cancel_t *c, int64_t ms) {
  int64_t end = mesh__now_ms() + ms;
  for (;;) {
    if (mesh_cancel_fired(c))
      return true;
    int64_t left = end - mesh__now_ms();
    if (left <= 0)
      return false;
    struct pollfd p = {.fd = mesh_cancel_fd(c), .events = POLLIN};
    int slice = left > 1000 ? 1000 : (int)left;
    if (poll(c ? &p : NULL, c ? 1 : 0, slice) < 0 && errno != EINTR)
      return mesh_cancel_fired(c); /* poll failed: the flag still decides */
  }
}

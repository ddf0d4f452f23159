/* SPDX-License-Identifier: Apache-2.0 */
/* Cancel tokens (include/mesh/cancel.h): an atomic flag plus an eventfd
 * that turns readable when the flag is set, so that a wait can poll it. */
#include <mesh/cancel.h>
#include <mesh/error.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cancel_int.h"
#include "core.h"

struct mesh_cancel {
  atomic_int fired;
  int fd;
};

int mesh_cancel_new(mesh_cancel_t **out) {
  if (!out)
    return MESH_ERR_INVALID_ARG;
  *out = NULL;
  mesh_cancel_t *c = malloc(sizeof *c);
  if (!c)
    return MESH_ERR_NOMEM;
  atomic_init(&c->fired, 0);
  c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->fd < 0) {
    int e = errno;
    free(c);
    return e == EMFILE || e == ENFILE ? MESH_ERR_FD_LIMIT : MESH_ERR_NOMEM;
  }
  *out = c;
  return MESH_OK;
}

void mesh_cancel_free(mesh_cancel_t *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

int mesh_cancel_fire(mesh_cancel_t *c) {
  if (!c)
    return MESH_ERR_INVALID_ARG;
  if (atomic_exchange(&c->fired, 1))
    return MESH_OK;
  uint64_t one = 1;
  ssize_t n;
  do
    n = write(c->fd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  return MESH_OK;
}

int mesh_cancel_fired(const mesh_cancel_t *c) {
  return c && atomic_load(&((mesh_cancel_t *)c)->fired) ? 1 : 0;
}

int mesh_cancel_fd(const mesh_cancel_t *c) { return c ? c->fd : -1; }

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

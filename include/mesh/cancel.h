/* SPDX-License-Identifier: Apache-2.0 */
/** @file cancel.h
 *  Cancel tokens: cut a blocking call short from another thread or a
 *  signal handler (Ctrl-C in Python, a Go context).  A token is a
 *  one-shot flag backed by a pipe: once fired, every wait that
 *  observes it (a call's retry backoff) ends at once, and the descriptor
 *  is readable, so an application's own poll loop can watch it too. */
#ifndef MESH_CANCEL_H
#define MESH_CANCEL_H

#include <mesh/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_cancel mesh_cancel_t;

/** A new, unfired token in *out.  @return MESH_OK, MESH_ERR_INVALID_ARG
 *  (out NULL), MESH_ERR_NOMEM, MESH_ERR_FD_LIMIT.  Free with
 *  mesh_cancel_free(). */
MESH_EXTERN int mesh_cancel_new(mesh_cancel_t **out);
/** NULL is a no-op.  No call may still observe the token. */
MESH_EXTERN void mesh_cancel_free(mesh_cancel_t *c);
/** Fire the token (idempotent).  Thread-safe and async-signal-safe (one
 *  atomic store and one write(2)).  @return MESH_OK or
 *  MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_cancel_fire(mesh_cancel_t *c);
/** 1 once fired (mesh_cancel_fire() or a byte written to
 *  mesh_cancel_wakeup_fd()), else 0 (also for NULL). */
MESH_EXTERN int mesh_cancel_fired(const mesh_cancel_t *c);
/** A descriptor that becomes readable when the token fires (owned by the
 *  token: do not read or close it); -1 for NULL. */
MESH_EXTERN int mesh_cancel_fd(const mesh_cancel_t *c);
/** A non-blocking descriptor whose writing fires the token: give it to
 *  a signal handler that writes a byte (Python's signal.set_wakeup_fd, a
 *  self-pipe), so that Ctrl-C cancels a call blocked in C.  Owned by the
 *  token; -1 for NULL. */
MESH_EXTERN int mesh_cancel_wakeup_fd(const mesh_cancel_t *c);

#ifdef __cplusplus
}
#endif
#endif

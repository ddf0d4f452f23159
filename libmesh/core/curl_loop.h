/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: a libcurl multi handle driven by the worker loop.
 *
 * libcurl's socket callback becomes loop watches, its timer callback one
 * loop timer, and both end in curl_multi_socket_action; finished transfers
 * are handed to a per-transfer completion callback.  Nothing blocks the
 * loop.  Used by the etcd client (discovery) and the span exporters
 * (observe).
 *
 * Threads: like the loop's watches and timers, a mesh__curlm_t is used on
 * the loop thread only, or before the loop starts, or after it stopped
 * (mesh__curlm_drive, mesh__curlm_free). */
#ifndef MESH_CORE_CURL_LOOP_H
#define MESH_CORE_CURL_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "core/core.h"

typedef struct mesh__curlm mesh__curlm_t;

/** A transfer finished with result.  It has left the multi handle: easy is
 *  the caller's again (read its info, then clean it up or add it again).
 *  Runs on the loop thread, or inside mesh__curlm_drive.  May add and
 *  remove transfers; must not free the mesh__curlm_t. */
typedef void (*mesh__curlm_done_fn)(CURL *easy, CURLcode result, void *user);

/** A multi handle on m's loop.  Holds a reference to libcurl's global
 *  state (curl_global_init, thread-safe in libcurl >= 7.84) until
 *  mesh__curlm_free.
 *  @return the handle, or NULL (out of memory, or libcurl could not
 *          initialise). */
mesh__curlm_t *mesh__curlm_new(mesh_t *m);

/** Start the transfer easy (set up by the caller, who keeps owning it).
 *  The module uses easy's CURLOPT_PRIVATE: callers must not set it.
 *  done runs once when the transfer ends, unless it is removed first.
 *  @return MESH_OK, MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG (NULL argument,
 *          or easy already running), MESH_ERR_INTERNAL (libcurl refused
 *          the handle); on error done will not run. */
int mesh__curlm_add(mesh__curlm_t *cm, CURL *easy, mesh__curlm_done_fn done,
                    void *user);

/** Abort the transfer easy: its done callback will not run; easy stays
 *  the caller's.  A no-op when easy is not running in cm (finished,
 *  removed, never added). */
void mesh__curlm_remove(mesh__curlm_t *cm, CURL *easy);

/** Transfers running in cm. */
size_t mesh__curlm_running(const mesh__curlm_t *cm);

/** For teardown, once the loop has stopped: drive the running transfers
 *  on the caller's thread (curl_multi_perform/curl_multi_wait) until none
 *  is left or the monotonic clock reaches deadline_ms; done callbacks run
 *  here.  From the first call on, cm no longer touches the loop.
 *  @return the number of transfers still running. */
size_t mesh__curlm_drive(mesh__curlm_t *cm, int64_t deadline_ms);

/** Stop watching, remove the transfers still running (no callbacks; their
 *  easy handles stay the callers'), free.  The loop must not be running
 *  on another thread.  NULL is a no-op. */
void mesh__curlm_free(mesh__curlm_t *cm);

#endif /* MESH_CORE_CURL_LOOP_H */

/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: a small etcd v3 client over the HTTP/JSON gateway
 * (libcurl multi driven by the worker loop), and the pure helpers it needs
 * (base64, a splitter for streamed JSON messages). */
#ifndef MESH_DISCOVERY_ETCD_H
#define MESH_DISCOVERY_ETCD_H

#include <string.h>

#include <cjson/cJSON.h>

#include "core/core.h"

#define MESH__ETCD_TIMEOUT_DEFAULT_MS 5000
#define MESH__ETCD_MAX_BODY (64u << 20)   /* unary responses */
#define MESH__ETCD_MAX_MESSAGE (16u << 20) /* one streamed message */

typedef struct mesh__etcd mesh__etcd_t;
typedef struct mesh__etcd_req mesh__etcd_req_t;

/** A unary call finished: rc MESH_OK with the parsed body (borrowed for
 *  the call), or an error code with err.  Runs on the loop thread; may
 *  start new requests and cancel others. */
typedef void (*mesh__etcd_done_fn)(int rc, const cJSON *body, const char *err,
                                   void *user);
/** One message of a stream (borrowed).  Runs inside libcurl's write
 *  callback: it must not start or cancel requests.  Return false to end
 *  the stream (its done function then gets MESH_ERR_CLOSED). */
typedef bool (*mesh__etcd_msg_fn)(const cJSON *msg, void *user);

/** Validate the client keys of obj ("endpoints", "ca", "cert", "key",
 *  "username", "password", "timeout_ms"); unknown keys are the caller's
 *  business (mesh__cfg_object with its full list). */
/** Copy the "endpoints" URLs (a final "/" dropped) into *urls, and each
 *  without its userinfo into *shown (for messages); *n counts both.
 *  @return false when out of memory (what was copied is in urls/shown). */
bool mesh__etcd_urls(const cJSON *eps, char ***urls, char ***shown,
                     size_t *n);
void mesh__etcd_check(mesh__cfg_t *c, const cJSON *obj, const char *path);

/** A client for the etcd cluster described by obj (validated). */
int mesh__etcd_new(mesh_t *m, const cJSON *obj, mesh__etcd_t **out,
                   mesh_status_t *st);
/** Cancel every request (no callbacks) and free.  NULL is a no-op. */
void mesh__etcd_free(mesh__etcd_t *e);

/** POST body (JSON text, copied) to api (e.g. "/v3/kv/range").
 *  @param out  optional: the request, for mesh__etcd_cancel.
 *  @return MESH_OK or MESH_ERR_NOMEM (done is then not called). */
int mesh__etcd_call(mesh__etcd_t *e, const char *api, const char *body,
                    mesh__etcd_done_fn done, void *user,
                    mesh__etcd_req_t **out);
/** As mesh__etcd_call for a streaming API (/v3/watch): msg for each
 *  message, then done once when the stream ends (rc MESH_OK when the
 *  server closed it cleanly). */
int mesh__etcd_stream(mesh__etcd_t *e, const char *api, const char *body,
                      mesh__etcd_msg_fn msg, mesh__etcd_done_fn done,
                      void *user, mesh__etcd_req_t **out);
/** Abort a request; its callbacks will not run.  Not from a msg fn. */
void mesh__etcd_cancel(mesh__etcd_t *e, mesh__etcd_req_t *r);
/** Blocking call for teardown (the loop is stopped): at most timeout_ms.
 *  *resp (caller deletes) on success. */
int mesh__etcd_call_sync(mesh__etcd_t *e, const char *api, const char *body,
                         int timeout_ms, cJSON **resp, char *err,
                         size_t errlen);
/** The endpoint URL requests go to now (for logs). */
const char *mesh__etcd_current(const mesh__etcd_t *e);

/* ---- the bound on concurrent lists of a context (etcd_lists.c) -------- */

/* Lists (range requests over a prefix) one context keeps in flight at
 * once, over all its etcd sources; the others queue (FIFO).  No etcd
 * client or Envoy setting names this, hence a constant: 16 keeps one
 * member busy without letting a burst of thousands of services run into
 * the request timeout together. */
#define MESH__ETCD_MAX_LISTS 16

/* A source that lists: start() runs (loop thread) once it holds a slot. */
typedef struct mesh__etcd_waiter {
  void (*start)(struct mesh__etcd_waiter *w);
  struct mesh__etcd_waiter *next;
  bool queued, holding;
} mesh__etcd_waiter_t;

/** A new etcd source of m (start).  @return MESH_OK or MESH_ERR_NOMEM. */
int mesh__etcd_lists_ref(mesh_t *m);
/** The source stops: its slot or queue place goes without starting
 *  others (teardown); the last one frees the state. */
void mesh__etcd_lists_unref(mesh_t *m, mesh__etcd_waiter_t *w);
/** Run w->start now if a slot is free, else when one frees (FIFO).  A
 *  no-op while w holds a slot or waits. */
void mesh__etcd_lists_acquire(mesh_t *m, mesh__etcd_waiter_t *w);
/** The list of w finished (answer or failure): free its slot and start
 *  the next waiters. */
void mesh__etcd_lists_release(mesh_t *m, mesh__etcd_waiter_t *w);

/** The head of m's shared etcd clusters (etcd_watch.c), which live while
 *  the sources holding a reference do; NULL without one. */
struct mesh__etcd_cluster **mesh__etcd_lists_clusters(mesh_t *m);

/* ---- helpers (no I/O) ------------------------------------------------ */

/** Base64 of len bytes (standard, padded, as the gateway's JSON mapping
 *  of bytes), NUL-terminated, malloc'd; NULL on OOM. */
static inline char *mesh__b64_encode(const void *data, size_t len) {
  char *out = NULL;
  return mesh__b64_enc(data, len, MESH__B64_PAD, &out) == MESH_OK ? out
                                                                  : NULL;
}
/** Decode standard base64 (padded or not); *out malloc'd and
 *  NUL-terminated.  @return MESH_OK, MESH_ERR_PARSE, MESH_ERR_NOMEM. */
static inline int mesh__b64_decode(const char *s, char **out, size_t *len) {
  return mesh__b64_dec(s, s ? strlen(s) : 0, MESH__B64_PAD, (uint8_t **)out,
                       len);
}
/** An int64 as etcd's gateway encodes it: a JSON string of digits, or a
 *  number.  @return true with *out set, false when absent or malformed. */
bool mesh__etcd_int(const cJSON *obj, const char *key, int64_t *out);

/** Parse exactly len bytes as one JSON value (trailing whitespace only;
 *  a NUL byte inside is an error).  NULL on error, with the byte offset
 *  where parsing stopped in *err_off (optional). */
cJSON *mesh__json_parse_exact(const char *buf, size_t len, size_t *err_off);

/* Splits a byte stream into top-level JSON values (objects), whatever the
 * separators between them. */
typedef struct mesh__jsplit {
  char *buf;
  size_t len, cap;
  size_t scan;  /* bytes of buf already scanned */
  int depth;    /* nesting depth at `scan` */
  bool in_str, esc;
  size_t max;   /* largest message accepted */
} mesh__jsplit_t;

typedef bool (*mesh__jsplit_fn)(const char *msg, size_t len, void *user);

void mesh__jsplit_init(mesh__jsplit_t *j, size_t max);
void mesh__jsplit_free(mesh__jsplit_t *j);
/** Feed bytes; calls fn for each complete value.  Stops when fn returns
 *  false.  @return MESH_OK, MESH_ERR_CLOSED (fn said stop),
 *  MESH_ERR_PARSE (a message over max or bytes outside any value other
 *  than whitespace), MESH_ERR_NOMEM. */
int mesh__jsplit_feed(mesh__jsplit_t *j, const char *data, size_t n,
                      mesh__jsplit_fn fn, void *user);

#endif

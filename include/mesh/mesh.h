/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — a proxyless service mesh in a C library.
 *
 * Threading rule: a mesh_t is safe to share between threads for every call
 * that takes it (dial, listen, call, lookups, metrics).  A connection
 * (mesh_conn_t) or listener belongs to one thread at a time.  Callbacks
 * registered with the library run on the library's worker thread unless
 * documented otherwise; they must not call mesh_free().
 *
 * Ownership: strings passed in are copied unless stated; strings returned as
 * `const char *` are borrowed from the handle they came from and stay valid
 * until that handle is freed.  Every `_new` has a `_free`, and `_free(NULL)`
 * is a no-op.
 */
#ifndef MESH_MESH_H
#define MESH_MESH_H

#include <stddef.h>
#include <stdint.h>

#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;

/** Runtime version string, e.g. "0.1.0". */
MESH_EXTERN const char *mesh_version(void);
/** Runtime version as MESH_VERSION_NUM. */
MESH_EXTERN unsigned mesh_version_num(void);

/** Create a context from a JSON configuration string (see docs/config.md).
 *  Starts the worker thread unless `"worker": {"mode": "external"}`.
 *  @param json  NUL-terminated JSON text (copied as needed).
 *  @param out   receives the context on success.
 *  @param st    optional: on failure the first error, with its JSON path.
 *  @return MESH_OK, MESH_ERR_CONFIG, MESH_ERR_PEM, MESH_ERR_SVID,
 *          MESH_ERR_IO, MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_new(const char *json, mesh_t **out, mesh_status_t *st);

/** As mesh_new(), reading the JSON from a file.  The file must be a
 *  regular file (or a symbolic link to one): a FIFO, a device or a
 *  directory is refused at once with MESH_ERR_IO, never waited on; so are
 *  the identity, bundle and file-source files the configuration names. */
MESH_EXTERN int mesh_new_from_file(const char *path, mesh_t **out,
                                   mesh_status_t *st);

/** Stop the worker, deregister, close everything, free.  NULL is a no-op.
 *  Connections and listeners must be closed first. */
MESH_EXTERN void mesh_free(mesh_t *m);

/** Called once per configuration error found by mesh_config_check(). */
typedef void (*mesh_config_error_fn)(const char *path_and_reason, void *user);

/** Validate a configuration without creating a context or touching files
 *  beyond what validation needs.  Reports every error, not just the first.
 *  @return the number of errors (0 = valid), or a negative code. */
MESH_EXTERN int mesh_config_check(const char *json, mesh_config_error_fn fn,
                                  void *user);

/** Default cap on the size of configuration text (4 MiB). */
#define MESH_CONFIG_MAX_BYTES_DEFAULT ((size_t)4 << 20)

/** Set the largest configuration text that mesh_new(), mesh_new_from_file()
 *  and mesh_config_check() accept (process-wide; any thread).  Larger text
 *  is refused with MESH_ERR_CONFIG before it is parsed.  0 restores the
 *  default: $MESH_CONFIG_MAX_BYTES when set to a positive number, else
 *  MESH_CONFIG_MAX_BYTES_DEFAULT.
 *  @return the cap in force before the call. */
MESH_EXTERN size_t mesh_config_set_max_bytes(size_t max);
/** The cap in force (see mesh_config_set_max_bytes()). */
MESH_EXTERN size_t mesh_config_max_bytes(void);

/* ---- logging ---------------------------------------------------------- */

typedef enum mesh_log_level {
  MESH_LOG_ERROR = 0,
  MESH_LOG_WARN = 1,
  MESH_LOG_INFO = 2,
  MESH_LOG_DEBUG = 3,
  MESH_LOG_TRACE = 4
} mesh_log_level_t;

/** One structured line per event: `level=warn event=svid_reload ... `.
 *  Called from whichever thread logged (the caller's or the worker); must be
 *  thread-safe and must not call back into the library. */
typedef void (*mesh_log_fn)(int level, const char *line, void *user);

/** Route log lines at or below `level` to `fn` (NULL: stderr).  Lines are
 *  never longer than 1 KiB; secrets never appear in them. */
MESH_EXTERN void mesh_set_log(mesh_t *m, int level, mesh_log_fn fn,
                              void *user);

/** Name of a log level ("error", "warn", ...). */
MESH_EXTERN const char *mesh_log_level_name(int level);

/* ---- event-loop integration (c-ares style tiers) ----------------------- *
 * Default: the library runs its own worker thread.  With
 * `"worker": {"mode": "external"}` nothing runs in the background and the
 * application drives the work from its own loop: poll mesh_backend_fd() for
 * readability with at most mesh_backend_timeout() ms, then mesh_process(). */

/** File descriptor that becomes readable when work is due; -1 if the
 *  library runs its own thread. */
MESH_EXTERN int mesh_backend_fd(mesh_t *m);
/** Milliseconds until the next timer is due (-1: none). */
MESH_EXTERN int mesh_backend_timeout(mesh_t *m);
/** Run due timers and ready I/O without blocking.  External mode only.
 *  @return MESH_OK or MESH_ERR_INVALID_ARG (worker thread mode). */
MESH_EXTERN int mesh_process(mesh_t *m);

#ifdef __cplusplus
}
#endif

#include <mesh/identity.h>
#include <mesh/conn.h>
#include <mesh/authz.h>
#include <mesh/metrics.h>
#include <mesh/trace.h>
#include <mesh/call.h>
#include <mesh/discovery.h>
#include <mesh/http.h>
#include <mesh/grpc.h>

#endif /* MESH_MESH_H */

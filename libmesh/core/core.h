/* libmesh internal: the context, config helpers, logging, the worker loop.
 * Cross-file internal names start with mesh__; nothing here is exported. */
#ifndef MESH_CORE_CORE_H
#define MESH_CORE_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <mesh/mesh.h>

/* ---- status helpers ---------------------------------------------------- */

/** Set st (if non-NULL) to code and a printf-style message; returns code. */
int mesh__fail(mesh_status_t *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Clear st to MESH_OK. */
void mesh__ok(mesh_status_t *st);

/* ---- clocks ------------------------------------------------------------ */

/** Monotonic time in ns / ms. */
int64_t mesh__now_ns(void);
int64_t mesh__now_ms(void);
/** Wall clock, Unix seconds. */
int64_t mesh__wall_s(void);

/* ---- bounded strings --------------------------------------------------- */

/** strlcpy semantics: always NUL-terminates; returns strlen(src). */
size_t mesh__strlcpy(char *dst, const char *src, size_t size);
/** snprintf that returns MESH_ERR_BUFFER on truncation, else length. */
int mesh__snprintf(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** strdup that returns NULL for NULL. */
char *mesh__strdup(const char *s);

/* ---- files the library reads (core/file.c) ----------------------------- */

/** Open path for reading, refusing anything but a regular file (a FIFO, a
 *  device, a socket, a directory) without blocking on it.  *fd_out is a
 *  blocking, close-on-exec descriptor on MESH_OK, -1 otherwise.
 *  @return MESH_OK, MESH_ERR_IO (cannot open, not a regular file; the
 *          message names path and why), MESH_ERR_INVALID_ARG (empty path). */
int mesh__file_open(const char *path, int *fd_out, mesh_status_t *st);
/** mesh__file_open() and close: may this path be handed to a reader that
 *  opens it itself (libcurl's CA and client certificate files)? */
int mesh__file_check(const char *path, mesh_status_t *st);

/* ---- localhost names (core/localhost.c) --------------------------------- */

/** Is name "localhost" or "<label>.localhost" (any case, optional final
 *  dot)?  RFC 6761 §6.3: such names are always loopback, never asked of
 *  DNS. */
bool mesh__is_localhost(const char *name);
struct sockaddr_storage;
/** The addresses a localhost name resolves to, with port: 127.0.0.1
 *  (family AF_UNSPEC or AF_INET), then ::1 (AF_UNSPEC or AF_INET6) when
 *  this host has IPv6 loopback.  Writes at most max entries of out.
 *  @return how many were written. */
size_t mesh__localhost_addrs(int family, int port,
                             struct sockaddr_storage *out, size_t max);

/* ---- logging ------------------------------------------------------------ *
 * One line per event: `level=info event=NAME key=value ...`.  Callers pass
 * the key=value tail already formatted; values with spaces are quoted by the
 * caller (mesh__log_quote helps).  Never pass key material or tokens. */

typedef struct mesh__logger {
  _Atomic int level;
  mesh_log_fn fn; /* NULL: stderr */
  void *user;
  pthread_mutex_t mu; /* guards fn/user swaps */
} mesh__logger_t;

void mesh__log(mesh_t *m, int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Will a line at `level` be emitted?  Cheap; check before costly formatting. */
bool mesh__log_on(mesh_t *m, int level);

/* ---- worker loop --------------------------------------------------------
 * A single-threaded event loop (epoll + timers + cross-thread posts).  All
 * callbacks run on the loop's thread: the worker, or the application's
 * thread inside mesh_process() in external mode.  Watches and timers may be
 * added and removed only from the loop thread, or before the loop starts;
 * other threads use mesh__loop_post(). */

typedef struct mesh__loop mesh__loop_t;
typedef void (*mesh__timer_fn)(void *user);
typedef void (*mesh__io_fn)(int fd, unsigned events, void *user);
typedef void (*mesh__post_fn)(void *user);

#define MESH__IO_READ 1u
#define MESH__IO_WRITE 2u
#define MESH__IO_ERROR 4u

int mesh__loop_new(mesh__loop_t **out);
void mesh__loop_free(mesh__loop_t *l);
/** Start a thread running the loop until mesh__loop_stop(). */
int mesh__loop_start_thread(mesh__loop_t *l);
/** Stop and join the thread (no-op in external mode). Pending posts run. */
void mesh__loop_stop(mesh__loop_t *l);
/** The epoll fd (for mesh_backend_fd). */
int mesh__loop_fd(mesh__loop_t *l);
/** ms until the next timer (-1: none, 0: due or posts pending). */
int mesh__loop_timeout(mesh__loop_t *l);
/** Run one non-blocking round: ready I/O, due timers, posts. */
void mesh__loop_run_once(mesh__loop_t *l, int wait_ms);
/** True when called on the loop's own thread. */
bool mesh__loop_on_thread(mesh__loop_t *l);

/** One-shot timer after delay_ms; returns an id > 0 or a negative code.
 *  A callback may re-arm itself by adding a new timer. */
int64_t mesh__loop_timer(mesh__loop_t *l, int64_t delay_ms, mesh__timer_fn fn,
                         void *user);
/** Cancel a timer that has not fired; unknown ids are ignored. */
void mesh__loop_timer_cancel(mesh__loop_t *l, int64_t id);
/** Watch fd for MESH__IO_READ|WRITE (replaces an existing watch). */
int mesh__loop_watch(mesh__loop_t *l, int fd, unsigned events, mesh__io_fn fn,
                     void *user);
void mesh__loop_unwatch(mesh__loop_t *l, int fd);
/** Run fn(user) on the loop thread soon.  Any thread. */
int mesh__loop_post(mesh__loop_t *l, mesh__post_fn fn, void *user);
/** Run fn(user) on the loop thread and wait for it to finish.  Any thread
 *  but the loop's own (there it just calls fn). */
int mesh__loop_call(mesh__loop_t *l, mesh__post_fn fn, void *user);

/* ---- configuration helpers ----------------------------------------------
 * Every parser collects all errors (it does not stop at the first) so that
 * `meshctl check-config` can list them.  Paths use dots: services.a.lb.policy */

typedef struct mesh__cfg {
  int nerr;
  mesh_status_t *first; /* receives the first error */
  mesh_config_error_fn fn; /* optional: every error */
  void *user;
} mesh__cfg_t;

#define MESH__PATH_MAX 256

void mesh__cfg_error(mesh__cfg_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** out = base + "." + key (or key alone when base is ""). */
void mesh__cfg_path(char *out, const char *base, const char *key);
/** node must be an object whose keys are all in allowed (NULL-terminated).
 *  @return true if node is an object (unknown keys are reported, not fatal). */
bool mesh__cfg_object(mesh__cfg_t *c, const cJSON *node, const char *path,
                      const char *const allowed[]);
/** Typed getters: absent key -> default; wrong type or range -> error and
 *  default.  Return true when the key was present and valid. */
bool mesh__cfg_string(mesh__cfg_t *c, const cJSON *obj, const char *path,
                      const char *key, const char *def, const char **out);
bool mesh__cfg_int(mesh__cfg_t *c, const cJSON *obj, const char *path,
                   const char *key, int64_t min, int64_t max, int64_t def,
                   int64_t *out);
bool mesh__cfg_double(mesh__cfg_t *c, const cJSON *obj, const char *path,
                      const char *key, double min, double max, double def,
                      double *out);
bool mesh__cfg_bool(mesh__cfg_t *c, const cJSON *obj, const char *path,
                    const char *key, bool def, bool *out);
/** values: NULL-terminated; out is the index (def if absent). */
bool mesh__cfg_enum(mesh__cfg_t *c, const cJSON *obj, const char *path,
                    const char *key, const char *const values[], int def,
                    int *out);
/** Array of strings; *out points into the cJSON tree (borrowed). */
bool mesh__cfg_strings(mesh__cfg_t *c, const cJSON *obj, const char *path,
                       const char *key, const cJSON **out);

/* ---- the context --------------------------------------------------------
 * Each part owns its state behind a pointer; parts are set up in order by
 * mesh_new() and torn down in reverse by mesh_free(). */

struct mesh__identity;   /* identity/identity.h */
struct mesh__tls;        /* tls/tls.h */
struct mesh__services;   /* discovery + lb + resilience, per service */
struct mesh__observe;    /* observe/ */
struct mesh__authz;      /* authz/ */
struct mesh__admin;      /* observe/admin */
struct mesh__http;       /* http/ */

struct mesh_ctx {
  cJSON *config;          /* the parsed configuration, owned */
  char *self_name;        /* "name": this service's own name, may be NULL */
  mesh__logger_t log;
  mesh__loop_t *loop;
  bool external_loop;
  _Atomic bool closing;

  struct mesh__identity *identity;
  struct mesh__tls *tls;
  struct mesh__services *services;
  struct mesh__observe *observe;
  struct mesh__authz *authz;
  struct mesh__admin *admin;
  struct mesh__http *http;     /* http/ (settings, top-level routes) */
};

/* A part of the library: parse (validate config, no side effects), init
 * (build state, start background work on m->loop), fini (stop and free).
 * cfg is the part's top-level section (may be NULL when absent). */
typedef struct mesh__part {
  const char *key; /* top-level config key, or NULL if none */
  /* Validate the section; report errors through c. m is NULL when only
   * checking (mesh_config_check). */
  void (*check)(mesh__cfg_t *c, const cJSON *cfg, const char *path);
  int (*init)(mesh_t *m, const cJSON *cfg, mesh_status_t *st);
  void (*fini)(mesh_t *m);
} mesh__part_t;

/* ---- services (core/service.c) ----------------------------------------
 * The `services` section: one entry per named upstream.  Each part keeps
 * its per-service state behind its own pointer. */

struct mesh__disc_svc;   /* discovery/ */
struct mesh__lb_svc;     /* lb/ */
struct mesh__res_svc;    /* resilience/ */
struct mesh__http_svc;   /* http/ (routes) */

typedef struct mesh__service {
  char *name;
  const cJSON *cfg;            /* borrowed from mesh->config */
  const cJSON *peers;          /* "peers": array of patterns, or NULL */
  struct mesh__disc_svc *disc;
  struct mesh__lb_svc *lb;
  struct mesh__res_svc *res;
  struct mesh__http_svc *http;
  /* Set by lb/ at init: builds picker state for a snapshot before
   * discovery publishes it (snap->lb).  NULL: no per-snapshot state. */
  int (*prepare_snapshot)(struct mesh__service *svc, void *snap);
} mesh__service_t;

struct mesh__services {
  size_t n;
  mesh__service_t **v;         /* sorted by name */
};

/** Look up a configured service; NULL if unknown.  Lock-free (the set is
 *  fixed for the life of the context). */
mesh__service_t *mesh__service_find(mesh_t *m, const char *name);

/* A per-service config key owned by one part.  check() validates the value
 * (m == NULL when only checking); init() builds the part's state for svc;
 * fini() frees it.  Registered in core/parts.c. */
typedef struct mesh__svc_part {
  const char *key;
  void (*check)(mesh__cfg_t *c, const cJSON *v, const char *path);
  int (*init)(mesh_t *m, mesh__service_t *svc, const cJSON *v,
              mesh_status_t *st);
  void (*fini)(mesh_t *m, mesh__service_t *svc);
} mesh__svc_part_t;

/* ---- dial options (the public mesh_dial_opts_t) -------------------------*/

#define MESH__MAX_PEERS 16
struct mesh_dial_opts {
  int timeout_ms;              /* <= 0: config default */
  char *peers[MESH__MAX_PEERS];
  size_t npeers;
  char *alpn;                  /* comma-separated, or NULL */
  bool nonblocking;
  char *hash_key;
  size_t hash_key_len;
  /* Trace parent of the dial's span (mesh_dial_opts_set_trace_parent; the
   * call layer sets its try's context here).  Internal dials
   * (mesh__tls_dial_addr) open spans only under a parent, so that health
   * checks start no traces. */
  bool has_parent;
  mesh_trace_ctx_t parent;
  /* Internal: the configured service being dialed (borrowed; NULL for a
   * "host:port" dial), the `service` label of the connection metrics. */
  const char *service;
};

/** Dial a configured service by name: pick, pool, breakers, then TLS.
 *  Implemented by the call layer (resilience/). */
int mesh__dial_service(mesh_t *m, mesh__service_t *svc,
                       const mesh_dial_opts_t *opts, mesh_conn_t **out,
                       mesh_status_t *st);

#endif /* MESH_CORE_CORE_H */

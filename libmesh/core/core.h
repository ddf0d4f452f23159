/* SPDX-License-Identifier: Apache-2.0 */
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
/** Wait on cv (mu held) until deadline_ms (mesh__now_ms() time) at the
 *  latest; clk is the clock cv was made with (CLOCK_REALTIME by default,
 *  CLOCK_MONOTONIC with pthread_condattr_setclock).
 *  @return pthread_cond_timedwait's result; ETIMEDOUT at once when the
 *  deadline has passed. */
int mesh__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                          clockid_t clk, int64_t deadline_ms);

/* ---- bounded strings --------------------------------------------------- */

/** strlcpy semantics: always NUL-terminates; returns strlen(src). */
size_t mesh__strlcpy(char *dst, const char *src, size_t size);
/** snprintf that returns MESH_ERR_BUFFER on truncation, else length. */
int mesh__snprintf(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** strdup that returns NULL for NULL. */
char *mesh__strdup(const char *s);

/* ---- request targets and paths (path.c) ---------------------------------
 * Pure functions shared by every protocol part (HTTP/1.1, HTTP/2, routes)
 * and by authz, so that all of them see one path per request. */

/* Istio's MeshConfig.pathNormalization, in its order (docs/config/authz.md). */
enum mesh__path_norm {
  MESH__PATH_NONE = 0,          /* as sent (query removed); %00 still refused */
  MESH__PATH_BASE,              /* RFC 3986 dot segments, unreserved %XX, "\" */
  MESH__PATH_MERGE_SLASHES,     /* BASE, then "//" merged: libmesh's default */
  MESH__PATH_DECODE_AND_MERGE_SLASHES, /* %2F %5C decoded first */
};
#define MESH__PATH_NORM_DEFAULT MESH__PATH_MERGE_SLASHES

/** The mode names, NULL-terminated, indexed by mode (for mesh__cfg_enum). */
const char *const *mesh__path_norm_names(void);
/** Name of a mode ("" when out of range). */
const char *mesh__path_norm_name(int mode);

enum mesh__target_form {
  MESH__TARGET_ORIGIN = 0, /* "/p?q" */
  MESH__TARGET_ABSOLUTE,   /* "http://host/p?q" */
  MESH__TARGET_AUTHORITY,  /* "host:port" (CONNECT) */
  MESH__TARGET_ASTERISK,   /* "*" (OPTIONS) */
};

/* Pieces of a request target, borrowed from it (not NUL-terminated). */
typedef struct mesh__target {
  int form;
  const char *authority; /* ABSOLUTE, AUTHORITY; NULL otherwise */
  size_t authority_n;
  const char *path;      /* up to "?"; n == 0 in "http://h" and "http://h?q" */
  size_t path_n;
  const char *query;     /* after "?", NULL when there is none */
  size_t query_n;
} mesh__target_t;

/** Split a request target (RFC 9112 3.2).  A fragment ("#...") is dropped
 *  first; in absolute-form the authority ends at the first "/" or "?", and
 *  userinfo ("@") or an empty authority is refused.
 *  @return MESH_OK, MESH_ERR_HTTP_PARSE, MESH_ERR_INVALID_ARG. */
int mesh__target_split(const char *t, size_t n, mesh__target_t *out);

/** Normalize the path of a request target (query dropped) with mode into
 *  out[len] (NUL-terminated; len >= n + 2 always suffices).  "*" stays
 *  "*"; an absolute-form target without a path is "/".  Idempotent; with a
 *  mode other than NONE the result has no "\\", no "/./" or "/../"
 *  segment, no "%00" and no unreserved %XX; with MERGE modes no "//".
 *  Thread-safe, no allocation.
 *  @param out_n   receives the length (may be NULL)
 *  @return MESH_OK; MESH_ERR_HTTP_PARSE (%00, a bad %XX, not a path: the
 *          server answers 400); MESH_ERR_BUFFER; MESH_ERR_INVALID_ARG. */
int mesh__path_normalize(const char *target, size_t n, int mode, char *out,
                         size_t len, size_t *out_n);

/** Is c a tchar (RFC 9110 5.6.2)? */
bool mesh__is_tchar(unsigned char c);
/** Is s[0..n) a non-empty token? */
bool mesh__token_valid(const char *s, size_t n);
/* ---- base64 (core/b64.c) ----------------------------------------------- */
enum {
  MESH__B64_URL = 1,    /* encode with '-' '_'; decode accepts only them */
  MESH__B64_ANY = 2,    /* decode: accept both alphabets */
  MESH__B64_PAD = 4,    /* encode: pad with '='; decode: accept padding */
  MESH__B64_STRICT = 8, /* decode: the last character's unused bits are 0 */
};

/** Encode len bytes; *out malloc'd and NUL-terminated.  MESH_OK or
 *  MESH_ERR_NOMEM. */
int mesh__b64_enc(const void *in, size_t len, unsigned flags, char **out);

/** Decode len characters into out (room for len / 4 * 3 + 2 bytes).
 *  @return the byte count, or -1 when the text is not base64 as the flags
 *  spell it. */
long mesh__b64_dec_into(const char *in, size_t len, unsigned flags,
                        uint8_t *out);

/** Decode into a malloc'd buffer, NUL-terminated after *out_len bytes.
 *  MESH_OK, MESH_ERR_PARSE (not base64; in NULL), MESH_ERR_NOMEM. */
int mesh__b64_dec(const char *in, size_t len, unsigned flags, uint8_t **out,
                  size_t *out_len);

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

/* ---- redaction (core/redact.c) ------------------------------------------
 * Exact: secrets are named (each part's config paths in .secrets, the
 * userinfo of URLs, a list of credential-only field names), not guessed
 * from the spelling of a key. */

/** Replace the userinfo of every URL in s ("scheme://user:pass@host" ->
 *  "scheme://[REDACTED]@host"), in place within cap.  @return how many. */
int mesh__redact_userinfo(char *s, size_t cap);
/** A malloc'd copy of s with mesh__redact_userinfo() applied (NULL: out of
 *  memory); for URLs kept to be shown. */
char *mesh__redact_userinfo_dup(const char *s);
/** A log line: URL userinfo, values of credential-only fields (`k=v`,
 *  `k: v`, whole names such as password, token, authorization, cookie;
 *  not `key`), the word after "Bearer "/"Basic ", PEM private-key blocks.
 *  In place; NUL-terminated within cap (the tail cut if it must grow).
 *  @return the number of values redacted. */
int mesh__log_redact(char *line, size_t cap);
/** Redact a copy of the configuration in place (the admin /config view):
 *  every path the parts name as secret, URL userinfo and private keys in
 *  every string. */
void mesh__json_redact(cJSON *root);
/** Is this (whole) field name one that only carries credentials? */
bool mesh__secret_key(const char *key, size_t len);

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
  /* Cross-references (a route's service, a split's subset, the name a
   * registration uses) are checked by check(), like everything else, so
   * that mesh_new() runs exactly mesh_config_check()'s validation before
   * it builds anything: */
  const cJSON *root; /* the whole document while checking it, else NULL */
  const cJSON *svc;  /* per-service check(): the service's object */
  const char *svc_name; /* per-service check(): its name */
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

/* ---- JSON (core/json.c) --------------------------------------------------
 * Every cJSON parse in the library goes through mesh__json_parse(): trailing
 * garbage and duplicate object keys are errors (cJSON would keep the first
 * of two equal keys where other readers keep the last). */

enum { MESH__JSON_OK, MESH__JSON_SYNTAX, MESH__JSON_DUPLICATE,
       MESH__JSON_NOMEM };

typedef struct mesh__json_err {
  int kind;              /* MESH__JSON_* */
  size_t offset;         /* SYNTAX: byte offset of the error */
  int line, column;      /* SYNTAX: 1-based position */
  char path[MESH__PATH_MAX]; /* DUPLICATE: JSON path of the key */
  char message[MESH__PATH_MAX + 96]; /* "path: duplicate key ..." etc. */
} mesh__json_err_t;

typedef void (*mesh__json_dup_fn)(const char *path, const char *key,
                                  void *user);

/** Parse exactly buf[0, len) (white space may follow the value).
 *  @return the tree (caller frees with cJSON_Delete) or NULL with *err set
 *  (err may be NULL). */
cJSON *mesh__json_parse(const char *buf, size_t len, mesh__json_err_t *err);

/** Call fn(path, key) once per key that appears twice (or more) in one
 *  object of the tree.  @return how many, or MESH_ERR_NOMEM. */
int mesh__json_dups(const cJSON *root, mesh__json_dup_fn fn, void *user);

/** A read-only copy of root's tree (not its siblings) in one allocation:
 *  nodes first, then their strings.  The copy is read with the cJSON
 *  getters as usual and freed with free() -- never cJSON_Delete, nor any
 *  cJSON call that adds, detaches or replaces items in it.  Freeing a
 *  configuration of 5,000 services was ~340,000 free() calls (a third of
 *  mesh_free).  @return the copy, or NULL (root NULL or out of memory). */
cJSON *mesh__json_pack(const cJSON *root);

/** As mesh__json_parse(), calling fn (may be NULL) for every duplicated
 *  key, not only the first (err holds the first). */
cJSON *mesh__json_parse_dups(const char *buf, size_t len,
                             mesh__json_err_t *err, mesh__json_dup_fn fn,
                             void *user);

/** The size cap of configuration text: mesh_config_set_max_bytes(), else
 *  $MESH_CONFIG_MAX_BYTES, else MESH_CONFIG_MAX_BYTES_DEFAULT. */
size_t mesh__config_max_bytes(void);
/** len over the cap: write the error into msg and return 1; else 0. */
int mesh__config_size_error(size_t len, char *msg, size_t cap);

/* ---- the context --------------------------------------------------------
 * Each part owns its state behind a pointer; parts are set up in order by
 * mesh_new() and torn down in reverse by mesh_free(). */

struct mesh__identity;   /* identity/identity.h */
struct mesh__tls;        /* tls/tls.h */
struct mesh__services;   /* discovery + lb + resilience, per service */
struct mesh__observe;    /* observe/ */
struct mesh__authz;      /* authz/ */
struct mesh__authn;      /* authn/ */
struct mesh__admin;      /* observe/admin */
struct mesh__http;       /* http/ */
struct mesh__xds;        /* xds/ */
struct mesh__wl;         /* workload/ */
struct mesh__etcd_lists; /* discovery/src_etcd.c */
struct mesh__service;    /* below */

struct mesh_ctx {
  cJSON *config;          /* the parsed configuration, owned, packed
                             (mesh__json_pack): read-only, free() */
  char *self_name;        /* "name": this service's own name, may be NULL */
  mesh__logger_t log;
  mesh__loop_t *loop;
  bool external_loop;
  _Atomic bool closing;

  struct mesh__identity *identity;
  struct mesh__wl *wl;     /* the Workload API source, NULL when unused */
  struct mesh__tls *tls;
  struct mesh__services *services;
  _Atomic(struct mesh__observe *) observe;
  struct mesh__authz *authz;
  struct mesh__authn *authn;    /* authn/ (request authentication) */
  struct mesh__admin *admin;
  struct mesh__http *http;     /* http/ (settings, top-level routes) */
  struct mesh__xds *xds;       /* xds/ (ADS session), NULL when unused */
  /* discovery/src_etcd.c: the bound on concurrent etcd lists, shared by
   * the context's etcd sources (NULL when it has none) */
  struct mesh__etcd_lists *etcd_lists;
  /* Names not in the services section: a part above that creates
   * services on first use (xds) resolves them (core/svcdyn.c).  Set by
   * that part's init, before any thread runs; NULL: none. */
  int (*svc_resolve)(mesh_t *m, const char *name, int64_t timeout_ms,
                     struct mesh__service **out, mesh_status_t *st);
  size_t svc_dyn_max; /* how many services it may add (0: none) */
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
  /* NULL-terminated JSON paths under the section whose values are secrets
   * ("*" matches any member or element), redacted wherever the config is
   * shown (core/redact.c).  NULL: none. */
  const char *const *secrets;
} mesh__part_t;

/* ---- services (core/mesh.c) ----------------------------------------
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
  /* Added at run time by mesh__service_add (its config, owned), else
   * NULL: a service of the services section. */
  cJSON *own_cfg;
} mesh__service_t;

struct mesh__services {
  size_t n;
  mesh__service_t **v;         /* sorted by name */
  /* Services added at run time: append-only until mesh_free, at most
   * m->svc_dyn_max; readers load ndyn (acquire) and read dyn[0..ndyn). */
  mesh__service_t **dyn;
  _Atomic size_t ndyn;
};

/** Look up a service (configured, or added at run time); NULL if
 *  unknown.  Lock-free (configured services are fixed for the life of
 *  the context; added ones stay until mesh_free). */
mesh__service_t *mesh__service_find(mesh_t *m, const char *name);
/** The service a call or dial names (core/svcdyn.c): a configured one,
 *  else what m->svc_resolve makes of the name (xds: subscribed on first
 *  use, waiting at most timeout_ms, <= 0: the resolver's own bound).
 *  @return MESH_OK (*out set), 1 (unknown: the caller says so in its own
 *  words), or the resolver's error with st set. */
int mesh__service_use(mesh_t *m, const char *name, int64_t timeout_ms,
                      mesh__service_t **out, mesh_status_t *st);
/** Add a service named name with config cfg (taken, freed on failure
 *  too) and run every per-service part's init for it.  Loop thread (or
 *  serialized by the caller; the caller vets the name: 1..512 bytes).
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (name taken or empty),
 *  MESH_ERR_UNSUPPORTED (m->svc_dyn_max reached), a part's init error,
 *  MESH_ERR_NOMEM. */
int mesh__service_add(mesh_t *m, const char *name, cJSON *cfg,
                      mesh__service_t **out, mesh_status_t *st);
/** Free the services added at run time (mesh_free, core/mesh.c). */
void mesh__services_dyn_fini(mesh_t *m);

/* A per-service config key owned by one part.  check() validates the value
 * (m == NULL when only checking); init() builds the part's state for svc;
 * fini() frees it.  Registered in core/parts.c. */
typedef struct mesh__svc_part {
  const char *key;
  void (*check)(mesh__cfg_t *c, const cJSON *v, const char *path);
  int (*init)(mesh_t *m, mesh__service_t *svc, const cJSON *v,
              mesh_status_t *st);
  void (*fini)(mesh_t *m, mesh__service_t *svc);
  const char *const *secrets; /* as mesh__part_t.secrets, under the key */
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

/* ---- randomness and backoff (core/rand.c) --------------------------------- */

/** A pseudo-random stream (xoshiro256**); zero-initialized it seeds itself
 *  from the kernel on first use.  Not for secrets. */
typedef struct mesh__prng {
  uint64_t s[4];
  bool ready;
} mesh__prng_t;
/** Seed p reproducibly (tests). */
void mesh__prng_seed(mesh__prng_t *p, uint64_t seed);
/** Seed p from the kernel (clock and address when it does not answer). */
void mesh__prng_seed_auto(mesh__prng_t *p);
/** Next value of p (xoshiro256**).  Inline: it sits on the pick and span
 *  paths, which call it from other translation units. */
static inline uint64_t mesh__prng_next(mesh__prng_t *p) {
  if (__builtin_expect(!p->ready, 0))
    mesh__prng_seed_auto(p);
  uint64_t *s = p->s;
  uint64_t x = s[1] * 5;
  uint64_t r = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return r;
}
/** Next value of the calling thread's own stream (lock-free). */
uint64_t mesh__rand64(void);

/** base * 2^attempt, capped at max (no jitter). */
int64_t mesh__backoff_cap(int64_t base_ms, int64_t max_ms, uint32_t attempt);
/** Pure: the backoff before retry number `retry` (0 = first retry): uniform
 *  in [0, min(base * 2^retry, max)) using rnd (full jitter, as Envoy's
 *  JitteredExponentialBackOffStrategy).  Returns 0 when base is 0. */
int64_t mesh__backoff_ms(int64_t base_ms, int64_t max_ms, uint32_t retry,
                         uint64_t rnd);
/** Pure: base * 2^attempt capped at max, then +-pct% jitter from rnd (gRPC
 *  connection backoff); at least 1 (base <= 0 counts as 1). */
int64_t mesh__backoff_jitter(int64_t base_ms, int64_t max_ms, uint32_t attempt,
                             int pct, uint64_t rnd);

/* ---- error classes (core/errclass.c) -------------------------------------- */

enum mesh__err_flag {
  MESH__EF_HOST_FAULT = 1u << 0, /* says something about the endpoint */
  MESH__EF_IDENTITY = 1u << 1,   /* a peer or own identity failure */
  MESH__EF_BROKEN = 1u << 2,     /* the connection broke: a try's "reset" */
  MESH__EF_RESET = 1u << 3,      /* reset or closed by the peer */
  MESH__EF_SETUP = 1u << 4,      /* connection setup failed (connect, TLS) */
};
/** The MESH__EF_* flags of an error code (0 for codes of no class). */
unsigned mesh__err_class(int code);

/* ---- addresses (core/addr.c) ---------------------------------------------- */

/* Verdicts of mesh__hostport_split (the caller words the message). */
enum mesh__hostport_verdict {
  MESH__HP_OK = 0,
  MESH__HP_EMPTY,    /* NULL or "" */
  MESH__HP_BRACKETS, /* "[" without "]:" */
  MESH__HP_NO_PORT,  /* no ":port", or an IPv6 address without brackets */
  MESH__HP_HOST_LEN, /* host empty or not shorter than hostlen */
  MESH__HP_PORT,     /* port not 1..5 digits in [min_port, 65535] */
};
/** Split "host:port" or "[v6]:port" into host (NUL-terminated, brackets
 *  removed) and port.  Pure syntax: the host is not validated.
 *  @return a mesh__hostport_verdict; host and port are set only on OK. */
int mesh__hostport_split(const char *s, char *host, size_t hostlen,
                         long min_port, uint16_t *port);

/* ---- text helpers (core/text.c) ------------------------------------------ */

/** Shortest round-tripping decimal for v; NaN, +Inf, -Inf spelled as
 *  Prometheus wants them.  buf >= 32 bytes. */
void mesh__fmt_double(char *buf, size_t len, double v);
/* Lower-case hex only (HEXDIGLC), stored as value + 1 so that the
 * zero-initialized rest means "not hex" (0 - 1 = 0xff after the cast). */
extern const uint8_t mesh__hexval[256];
/** Value of a hex digit (either case), -1 for anything else. */
static inline int mesh__hex_digit(unsigned char c) {
  if (c >= 'A' && c <= 'F')
    c = (unsigned char)(c - 'A' + 'a');
  return (int)mesh__hexval[c] - 1;
}
/** Decode n lower-case hex digits (n even) into n/2 bytes; false on any
 *  other character (out may be partly written).  Inline: trace-context
 *  parsing runs it on every request. */
static inline bool mesh__hex_decode(const char *s, size_t n, uint8_t *out) {
  const unsigned char *u = (const unsigned char *)s;
  uint8_t bad = 0;
  /* One check for the whole run: invalid digits set the high bits. */
  for (size_t i = 0; i < n / 2; i++) {
    uint8_t hi = (uint8_t)(mesh__hexval[u[2 * i]] - 1);
    uint8_t lo = (uint8_t)(mesh__hexval[u[2 * i + 1]] - 1);
    bad |= hi | lo;
    out[i] = (uint8_t)((hi << 4) | (lo & 0x0f));
  }
  return (bad & 0xf0) == 0;
}
/** Encode n bytes as 2n lower-case hex digits (no NUL). */
void mesh__hex_encode(const uint8_t *in, size_t n, char *out);
/** Are the n bytes at p all zero? */
static inline bool mesh__is_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}
/** A name of the config (service, policy, route): 1..128 of [A-Za-z0-9._-]. */
bool mesh__name_valid(const char *s);

/* The one set of validators behind mesh_dial_opts_* and mesh_call_opts_*
 * (core/opts.c): same input, same verdict.  Each returns MESH_OK,
 * MESH_ERR_INVALID_ARG (o NULL or the value out of its rule) or
 * MESH_ERR_NOMEM; on error o is unchanged. */
#define MESH__ALPN_MAX 8       /* names in one ALPN list */
#define MESH__HASH_KEY_MAX 1024 /* bytes of a hash-balancing key */
/** alpn: 1..MESH__ALPN_MAX comma-separated names of 1..255 bytes; NULL
 *  resets to the config's list.  Copied. */
int mesh__opts_set_alpn(mesh_dial_opts_t *o, const char *alpn);
/** key: 0..MESH__HASH_KEY_MAX bytes (NULL only with len 0).  Copied. */
int mesh__opts_set_hash_key(mesh_dial_opts_t *o, const void *key,
                            size_t len);
/** ctx copied (all-zero ids keep only the sampling decision); NULL clears. */
int mesh__opts_set_trace_parent(mesh_dial_opts_t *o,
                                const mesh_trace_ctx_t *ctx);
/** Free what o owns (peers, alpn, hash key), not o itself. */
void mesh__opts_fini(mesh_dial_opts_t *o);

/* A publication point for an immutable refcounted object (core/publish.c).
 * Readers (any thread, no lock, never waiting on a writer) take a reference
 * with mesh__pub_acquire(); writers (serialized inside) swap in a new object
 * and get the old one back, no reader left between its load and its ref, to
 * drop their reference.  cur starts NULL. */
typedef struct mesh__pub {
  _Atomic(void *) cur;
  _Atomic uint32_t epoch;
  _Atomic uint32_t readers[2];
  pthread_mutex_t wmu; /* writers only */
} mesh__pub_t;

void mesh__pub_init(mesh__pub_t *p);
/** Destroy the writer lock; the object still published is the caller's
 *  (take it with mesh__pub_swap(p, NULL) first). */
void mesh__pub_fini(mesh__pub_t *p);
/** The current object with ref(obj) applied, or NULL.  Lock-free. */
void *mesh__pub_acquire(mesh__pub_t *p, void (*ref)(void *obj));
/** The current pointer without a reference: only to compare it with one
 *  the caller holds (never to dereference). */
void *mesh__pub_peek(mesh__pub_t *p);
/** Publish obj (the caller's reference moves in) and return the previous
 *  object, whose reference the caller now owns (NULL: none). */
void *mesh__pub_swap(mesh__pub_t *p, void *obj);

/* The libcurl multi loop on the worker (etcd, OPA, exporters): one more
 * section of core's surface, kept in its own header for its curl types. */
#include "core/curl_loop.h"

/* Cancel tokens (core/cancel.c) in their own header, part of the surface. */
#include "core/cancel_int.h"

#endif /* MESH_CORE_CORE_H */

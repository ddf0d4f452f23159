/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the resilience part — outlier detection, active health
 * checks, circuit breakers, retries (backoff and budget), deadlines and
 * hedging, the idle connection pool, and the call layer built on them.
 *
 * Split between pure logic and glue: the functions marked "pure" take plain
 * numbers and return decisions (no I/O, no clocks, no globals) so tests drive
 * them from tables; the glue applies them to live hosts on the calling
 * thread (counters, breakers) or on the worker loop (sweeps, checks). */
#ifndef MESH_RESILIENCE_RESILIENCE_H
#define MESH_RESILIENCE_RESILIENCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "endpoint/endpoint.h"

/* ---- configuration (resilience/config.c) -------------------------------- */

/* Outlier detection: Envoy's OutlierDetection fields and defaults. */
typedef struct mesh__od_cfg {
  bool enabled;                 /* key present */
  uint32_t consecutive_5xx;     /* 5; 0 disables */
  uint32_t consecutive_gateway_failure; /* 5; 0 disables */
  int64_t interval_ms;          /* 10000 */
  int64_t base_ejection_time_ms; /* 30000 */
  int64_t max_ejection_time_ms; /* max(300000, base) */
  int64_t max_ejection_time_jitter_ms; /* 0 */
  uint32_t max_ejection_percent; /* 10 */
  bool always_eject_one_host;   /* true (Envoy: false; see the docs) */
  uint32_t success_rate_minimum_hosts;  /* 5 */
  uint32_t success_rate_request_volume; /* 100 */
  uint32_t success_rate_stdev_factor;   /* 1900 (= 1.9) */
  uint32_t failure_percentage_threshold; /* 85 */
  uint32_t failure_percentage_minimum_hosts;  /* 5 */
  uint32_t failure_percentage_request_volume; /* 50 */
  uint32_t enforcing_consecutive_5xx;   /* 100 */
  uint32_t enforcing_consecutive_gateway_failure; /* 0 */
  uint32_t enforcing_success_rate;      /* 100 */
  uint32_t enforcing_failure_percentage; /* 0 */
  bool successful_active_health_check_uneject_host; /* true */
} mesh__od_cfg_t;

enum mesh__hc_type { MESH__HC_TCP = 0, MESH__HC_TLS = 1, MESH__HC_HTTP = 2 };

typedef struct mesh__hc_cfg {
  bool enabled;
  int type;                     /* enum mesh__hc_type; default tcp */
  char path[256];               /* http: "/healthz" */
  int64_t interval_ms;          /* 10000 */
  int64_t timeout_ms;           /* 1000 */
  uint32_t healthy_threshold;   /* 1 */
  uint32_t unhealthy_threshold; /* 3 */
} mesh__hc_cfg_t;

typedef struct mesh__cb_cfg {
  int64_t max_connections;      /* 1024 */
  int64_t max_pending_requests; /* 1024 */
  int64_t max_requests;         /* 1024 */
  int64_t max_retries;          /* 3 */
} mesh__cb_cfg_t;

/* retry_on bits */
#define MESH__RETRY_CONNECT_FAILURE 0x01u
#define MESH__RETRY_RESET 0x02u
#define MESH__RETRY_5XX 0x04u
#define MESH__RETRY_GATEWAY_ERROR 0x08u
#define MESH__RETRY_STATUS_CODES 0x10u

#define MESH__MAX_RETRY_CODES 32

typedef struct mesh__retry_cfg {
  unsigned retry_on;            /* default: connect-failure */
  int codes[MESH__MAX_RETRY_CODES];
  size_t ncodes;
  uint32_t num_retries;         /* 1 */
  int64_t base_interval_ms;     /* 25 */
  int64_t max_interval_ms;      /* 10 x base = 250 */
  bool budget;                  /* true: budget replaces max_retries */
  double budget_percent;        /* 20.0 */
  uint32_t min_retry_concurrency; /* 3 */
} mesh__retry_cfg_t;

typedef struct mesh__timeout_cfg {
  int64_t connect_ms;           /* 5000 */
  int64_t per_try_ms;           /* 0: none */
  int64_t overall_ms;           /* 15000; 0: none */
} mesh__timeout_cfg_t;

typedef struct mesh__hedge_cfg {
  bool enabled;
  int64_t delay_ms;             /* 0 */
  uint32_t max_attempts;        /* 2 (1..5) */
} mesh__hedge_cfg_t;

typedef struct mesh__pool_cfg {
  uint32_t max_idle;            /* 16 per endpoint; 0 disables pooling */
  int64_t idle_timeout_ms;      /* 3600000 */
  int64_t check_after_ms;       /* younger idle conns skip the check (10) */
} mesh__pool_cfg_t;

typedef struct mesh__res_cfg {
  mesh__od_cfg_t od;
  mesh__hc_cfg_t hc;
  mesh__cb_cfg_t cb;
  mesh__retry_cfg_t retry;
  mesh__timeout_cfg_t to;
  mesh__hedge_cfg_t hedge;
  mesh__pool_cfg_t pool;
} mesh__res_cfg_t;

/** Parse every resilience key of one service (svc is the service object).
 *  Errors go to c; out always receives defaults for what is absent/bad. */
void mesh__res_cfg_parse(mesh__cfg_t *c, const cJSON *svc, const char *path,
                         mesh__res_cfg_t *out);
/** Validate one key's value (v may be NULL: absent) for the part table. */
void mesh__res_cfg_check_key(mesh__cfg_t *c, const char *key, const cJSON *v,
                             const char *path);
/** Defaults only (for services without config and for tests). */
void mesh__res_cfg_defaults(mesh__res_cfg_t *out);

/* ---- randomness (core/rand.c) ------------------------------------------- */

/** The calling thread's stream of the core generator (core/rand.c); for
 *  jitter and enforcement percentages, never for secrets. */
static inline uint64_t mesh__res_rand(void) { return mesh__rand64(); }

/* ---- outcomes ------------------------------------------------------------ */

/* How a try ended, as the call layer reports it (same values as the public
 * mesh_call_outcome_t). */
enum mesh__outcome {
  MESH__OUT_OK = 0,           /* response complete, connection reusable */
  MESH__OUT_OK_CLOSE = 1,     /* response complete, connection not reusable */
  MESH__OUT_CONNECT_FAILURE = 2,
  MESH__OUT_RESET = 3,        /* reset or closed before the response ended */
  MESH__OUT_TIMEOUT = 4,      /* per-try timeout waiting for the response */
  MESH__OUT_PROTOCOL_ERROR = 5, /* malformed response */
  MESH__OUT_CANCELLED = 6,    /* abandoned by the caller: no verdict */
  MESH__OUT_MAX_ = 7,
};

/** The HTTP-like status the outcome counts as for outlier detection (pure):
 *  Envoy's mapping without split_external_local_origin_errors: connect
 *  failure and reset 503, timeout 504, protocol error 500, OK -> status
 *  (200 when status is 0).  Returns 0 for CANCELLED (not counted). */
int mesh__outcome_status(int outcome, int status);

/* ---- metrics (resilience/stats.c) ---------------------------------------- */

struct mesh__metric; /* telemetry/metrics.h */

/* Result labels of mesh_calls_total. */
enum mesh__res_result {
  MESH__RES_OK = 0,
  MESH__RES_ERROR,        /* an error status (MESH_ERR_UPSTREAM) */
  MESH__RES_CONNECT,
  MESH__RES_RESET,
  MESH__RES_TIMEOUT,
  MESH__RES_DEADLINE,
  MESH__RES_PROTOCOL,
  MESH__RES_NO_ENDPOINTS,
  MESH__RES_CIRCUIT_OPEN,
  MESH__RES_RETRY_BUDGET,
  MESH__RES_OTHER,
  MESH__RES_MAX_
};

/* Outlier detectors (ejection reasons), in metric-label order. */
enum mesh__od_type {
  MESH__OD_CONSECUTIVE_5XX = 0,
  MESH__OD_CONSECUTIVE_GATEWAY = 1,
  MESH__OD_SUCCESS_RATE = 2,
  MESH__OD_FAILURE_PERCENTAGE = 3,
  MESH__OD_TYPES_ /* count */
};

/* The circuit breaker limits, in metric-label order. */
enum mesh__br_limit {
  MESH__BR_CONNECTIONS = 0,
  MESH__BR_PENDING = 1,
  MESH__BR_REQUESTS = 2,
  MESH__BR_RETRIES = 3,
  MESH__BR_LIMITS_ /* count */
};

typedef struct mesh__res_stats {
  struct mesh__metric *retries, *budget, *call_s, *try_s, *ejected, *pooled;
  struct mesh__metric *replays;      /* stale pooled connections replayed */
  struct mesh__metric *overflow[MESH__BR_LIMITS_]; /* by enum mesh__br_limit */
  struct mesh__metric *ejections[MESH__OD_TYPES_]; /* by enum mesh__od_type */
  struct mesh__metric *hc[2];        /* [0] success, [1] failure */
  _Atomic(struct mesh__metric *) calls_none[MESH__RES_MAX_]; /* no endpoint */
} mesh__res_stats_t;

/* ---- circuit breakers (resilience/breaker.c) ---------------------------- */

typedef struct mesh__breakers {
  _Atomic int64_t connections;  /* open upstream connections we track */
  _Atomic int64_t pending;      /* calls waiting for a connection */
  _Atomic int64_t requests;     /* calls in flight */
  _Atomic int64_t retries;      /* retries (and hedges) in flight */
  /* overflow counters, for metrics */
  _Atomic uint64_t ov_connections, ov_pending, ov_requests, ov_retries;
  /* A cluster's own counters (group.c) live on the heap, shared by the
   * live versions that name the cluster, the calls bound to it and the
   * connection pools of its hosts (refs); the service's own (rs->br) are
   * embedded and never freed (heap false, refs unused). */
  bool heap;
  bool mx_done;                 /* series looked up once (stats.c) */
  _Atomic uint32_t refs;
  /* the cluster's outlier sweep (outlier.c), under the service's od_mu */
  int64_t od_last_sweep_ms;
  double sr_mean, sr_threshold;
  /* A cluster's metric series (stats.c: its name as a `cluster` label),
   * set before the version naming it is published; NULL: the service's
   * series count it (embedded counters, no context, or over
   * MESH__RES_GRP_SERIES_MAX).  Owned; a pointer so that the counters
   * every service embeds grow by 8 bytes only. */
  struct mesh__grp_mx *mx;
} mesh__breakers_t;

/* The handles of a cluster's series. */
typedef struct mesh__grp_mx {
  struct mesh__metric *ov[MESH__BR_LIMITS_]; /* by enum mesh__br_limit */
  struct mesh__metric *ej[MESH__OD_TYPES_];  /* by enum mesh__od_type */
} mesh__grp_mx_t;

/** Counters of a new group (refs = 1), or NULL on OOM. */
mesh__breakers_t *mesh__breakers_new(void);
/** Take / drop a reference (no-ops for embedded counters and NULL). */
void mesh__breakers_ref(mesh__breakers_t *b);
void mesh__breakers_unref(mesh__breakers_t *b);
/** The pool ops' close: give back one unit of user's connections (user is
 *  the mesh__breakers_t of the pool, may be NULL). */
void mesh__breakers_conn_closed(void *user);

/** Take one unit of *ctr if it stays <= max; exact under contention (CAS).
 *  Counts an overflow in *ov on refusal.  @return true if taken. */
bool mesh__breaker_take(_Atomic int64_t *ctr, int64_t max,
                        _Atomic uint64_t *ov);
/** Give back one unit (never below zero). */
void mesh__breaker_give(_Atomic int64_t *ctr);

/* ---- retries (resilience/retry.c) --------------------------------------- */

/* mesh__backoff_ms(): core/core.h (core/rand.c). */

/** Pure: does policy ask to retry a try that ended so? */
bool mesh__retry_wanted(const mesh__retry_cfg_t *rc, int outcome, int status);

/** Pure: is the final status an error to report (5xx or a listed code)? */
bool mesh__status_is_error(const mesh__retry_cfg_t *rc, int status);

/** Pure: how many retries may be in flight: with a budget, max(min_conc,
 *  percent% of (active + pending)); without, max_retries. */
int64_t mesh__retry_limit(const mesh__retry_cfg_t *rc, const mesh__cb_cfg_t *cb,
                          int64_t active, int64_t pending);

/** Admission of one retry (or hedge) against the budget / max_retries. */
bool mesh__retry_admit(mesh__breakers_t *b, const mesh__retry_cfg_t *rc,
                       const mesh__cb_cfg_t *cb);

/* ---- outlier detection: pure algorithms (resilience/outlier.c) ---------- */


/** One host's last-interval counts as the statistical algorithms see them. */
typedef struct mesh__od_sample {
  uint64_t success;
  uint64_t total;
  bool ejected;                 /* already ejected: not evaluated */
} mesh__od_sample_t;

#define MESH__OD_FLAG_SR 1u     /* success-rate outlier */
#define MESH__OD_FLAG_FP 2u     /* failure-percentage outlier */

/** Pure: which hosts each statistical algorithm flags (Envoy's
 *  processSuccessRateEjections).  flags[i] receives MESH__OD_FLAG_*.
 *  *sr_mean / *sr_threshold receive -1 when success rate did not run. */
void mesh__od_detect(const mesh__od_cfg_t *cfg, const mesh__od_sample_t *s,
                     size_t n, unsigned *flags, double *sr_mean,
                     double *sr_threshold);

/** Pure: may one more host be ejected when `ejected` of `total` already
 *  are?  Envoy's rule: 100 * (ejected + 1) / total <= max_percent; with
 *  always_one, the first ejection is always allowed (unless max_percent
 *  is 0, which disables ejection). */
bool mesh__od_may_eject(size_t total, size_t ejected, uint32_t max_percent,
                        bool always_one);

/** Pure: the ejection time multiplier after one more ejection (Envoy grows
 *  it while multiplier * base < max + base, so it stops just past the cap). */
uint32_t mesh__od_backoff_next(const mesh__od_cfg_t *cfg, uint32_t backoff);

/** Pure: how long an ejection with this multiplier lasts:
 *  min(base * multiplier, max) + jitter. */
int64_t mesh__od_ejection_ms(const mesh__od_cfg_t *cfg, uint32_t multiplier,
                             int64_t jitter_ms);

/* ---- per-host state (outlier.c, health.c) -------------------------------- */

typedef struct mesh__od_bucket {
  _Atomic uint64_t success;
  _Atomic uint64_t total;
} mesh__od_bucket_t;

typedef struct mesh__res_host {
  /* written by calls on any thread */
  _Atomic uint32_t cons_5xx;
  _Atomic uint32_t cons_gateway;
  mesh__od_bucket_t bucket[2];
  _Atomic uint32_t active_bucket;
  /* outlier bookkeeping: under the service's od mutex */
  uint32_t backoff;             /* ejection time multiplier */
  uint32_t num_ejections;
  int64_t last_ejection_ms;
  int64_t last_unejection_ms;   /* 0: never */
  bool ejected;                 /* mirrors ejected_until_ms != 0 */
  double success_rate;          /* last interval, -1 if not computed */
  /* active health checks: worker thread only */
  uint32_t hc_ok_streak, hc_fail_streak;
  void *hc_inflight;            /* the running check, or NULL */
  /* mesh_calls_total handles for this endpoint, by enum mesh__res_result */
  _Atomic(struct mesh__metric *) calls[MESH__RES_MAX_];
} mesh__res_host_t;

/* ---- settings a control plane changes live (resilience/live.c) ----------
 * Outlier detection, circuit breaker thresholds and the connect timeout of
 * a service may be replaced while calls run (xDS CDS).  They live in an
 * immutable, reference-counted object published like endpoint snapshots:
 * a reader announces itself in the current epoch, loads the pointer, takes
 * a reference and leaves; the writer swaps the pointer, flips the epoch and
 * waits for the old epoch's readers before it drops its reference.  A
 * reader therefore sees one whole version, never a mix, and never a freed
 * one.  The rest of mesh__res_cfg_t is fixed at mesh_new. */
/* A group of a service's hosts with its own outlier detection, breaker
 * thresholds and counters and connect timeout: an xDS cluster when a
 * route splits a service across clusters (Envoy keeps all three per
 * cluster).  Hosts belong to the group their label `grp_label` names; a
 * call is bound to one group for all its tries (its subset, or one drawn
 * by weight, as Envoy's router picks a weighted cluster per request). */
typedef struct mesh__res_grp {
  char *name;                   /* owned */
  uint32_t weight;              /* share of calls without a subset */
  mesh__od_cfg_t od;
  mesh__cb_cfg_t cb;
  int64_t connect_ms;
  mesh__breakers_t *br;         /* reference; kept across versions while
                                   the group keeps its name */
} mesh__res_grp_t;

typedef struct mesh__res_live {
  _Atomic uint32_t refs;
  mesh__od_cfg_t od;
  mesh__cb_cfg_t cb;
  int64_t connect_ms;
  /* groups (group.c); none for services configured locally */
  char *grp_label;              /* owned; NULL when ngrp is 0 */
  size_t ngrp;
  mesh__res_grp_t *grp;         /* owned */
  uint64_t grp_weight;          /* sum of the weights */
} mesh__res_live_t;

struct mesh__hc_run; /* health.c */

typedef struct mesh__res_svc {
  mesh_t *m;                    /* may be NULL in unit tests */
  mesh__service_t *svc;         /* may be NULL in unit tests */
  const char *name;             /* for logs */
  /* od, cb, to.connect_ms: initial only; read them through
   * mesh__res_live_acquire().  Services whose settings are all defaults
   * share one copy (688 B each otherwise); any other is owned. */
  const mesh__res_cfg_t *cfg;
  _Atomic(mesh__res_live_t *) live; /* current live settings (owned ref) */
  _Atomic uint32_t live_epoch;
  _Atomic uint32_t live_readers[2];
  pthread_mutex_t live_mu;      /* serializes writers */
  /* The service's "alpn" (an Istio preset or a list, comma-separated),
   * offered by every dial of the service that sets none; NULL: tls.alpn.
   * Owned. */
  char *alpn;
  mesh__breakers_t br;
  pthread_mutex_t od_mu;        /* ejection decisions and sweeps */
  double sr_mean, sr_threshold; /* last sweep, under od_mu */
  int64_t od_timer, pool_timer, hc_timer; /* worker loop timer ids, 0 none */
  struct mesh__hc_run *hc;      /* running checks (worker thread) */
  /* counters for metrics: by enum mesh__od_type */
  _Atomic uint64_t od_detected[MESH__OD_TYPES_], od_enforced[MESH__OD_TYPES_];
  _Atomic uint64_t od_overflow;
  _Atomic uint64_t retries, retry_overflow, hedges;
  _Atomic uint64_t replays;     /* tries replayed after a stale pooled conn */
  _Atomic uint64_t grpc_buffered; /* bytes hedged gRPC streams hold for
                                   * replay (the channel's retryBufferSize) */
  _Atomic int64_t grpc_tokens_missing; /* gRPC retryThrottling (grpc.h) */
  mesh__res_stats_t mx;         /* metric handles (NULL without a context) */
  /* cluster names given series of their own (stats.c), at most
   * MESH__RES_GRP_SERIES_MAX; loop thread (reconfigure) only.  Owned. */
  char **grp_series;
  uint32_t ngrp_series;
} mesh__res_svc_t;

/** The current live settings of rs, with a reference the caller drops
 *  with mesh__res_live_release().  Any thread, lock-free; never NULL for a
 *  state built by mesh__res_svc_new. */
mesh__res_live_t *mesh__res_live_acquire(mesh__res_svc_t *rs);
void mesh__res_live_release(mesh__res_live_t *l);
/** A live object from cfg's od, cb and to.connect_ms (refs = 1); NULL on
 *  OOM. */
mesh__res_live_t *mesh__res_live_new(const mesh__res_cfg_t *cfg);
/** Publish l as rs's live settings (takes over the caller's reference;
 *  waits only for readers inside acquire, a few instructions). */
void mesh__res_live_publish(mesh__res_svc_t *rs, mesh__res_live_t *l);
/** Replace svc's outlier detection, circuit breakers and connect timeout
 *  with what svc_cfg (a "services.NAME" object: "outlier_detection",
 *  "circuit_breakers", "timeouts") says; absent keys mean the defaults
 *  (Envoy's: no outlier detection, 1024 thresholds, 5 s connect).  Calls
 *  already started keep the thresholds they began with; the outlier sweep
 *  is re-armed with the new interval.  Loop thread (the sweep timer lives
 *  there), or before the loop runs.
 *  @return MESH_OK, MESH_ERR_CONFIG (svc_cfg breaks a rule: st says where;
 *  nothing changed), MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG (no state). */
int mesh__res_reconfigure(mesh__service_t *svc, const cJSON *svc_cfg,
                          mesh_status_t *st);
/** Parse svc_cfg's "group_label" and "groups" ({NAME: {"weight": W,
 *  "outlier_detection", "circuit_breakers", "timeouts"}}) into l, keeping
 *  the counters of the groups `cur` already has by name (cur may be
 *  NULL).  Validates with the resilience checkers; paths "groups.NAME.KEY".
 *  @return MESH_OK, MESH_ERR_CONFIG (st says where), MESH_ERR_NOMEM. */
int mesh__res_grp_parse(mesh__res_live_t *l, const mesh__res_live_t *cur,
                        const cJSON *svc_cfg, mesh_status_t *st);
/** Free l's groups (group.c; live.c's release). */
void mesh__res_grp_free(mesh__res_live_t *l);
/** The group called name, or NULL. */
const mesh__res_grp_t *mesh__res_grp_find(const mesh__res_live_t *l,
                                          const char *name);
/** The group of host h (its label grp_label), or NULL. */
const mesh__res_grp_t *mesh__res_grp_of(const mesh__res_live_t *l,
                                        const mesh__host_t *h);
/** A group drawn by weight with the uniform r; NULL without groups or when
 *  every weight is 0. */
const mesh__res_grp_t *mesh__res_grp_draw(const mesh__res_live_t *l,
                                          uint64_t r);
/** Cancel and re-arm the outlier sweep per the live settings (svc.c). */
void mesh__res_od_timer_reset(mesh__res_svc_t *rs);

/** Register rs's metrics (no-op without a context). */
void mesh__res_stats_init(mesh__res_svc_t *rs);
/** Detach the computed gauges before rs is freed. */
void mesh__res_stats_fini(mesh__res_svc_t *rs);
/* Distinct cluster names per service with series of their own.  Series are
 * carved from registry chunks and live until mesh_free (telemetry), so a
 * control plane that renames clusters forever must not grow them without
 * bound: 8 series per name (4 limits, 4 reasons), 32 names per service.
 * Later names count in the service's series (no cluster label). */
#define MESH__RES_GRP_SERIES_MAX 32
/** Register the "resilience" view (views.c; admin /resilience). */
void mesh__res_register_views(mesh_t *m);
/** Give the groups of l whose counters have no series yet their
 *  `cluster`-labelled breaker-overflow and ejection series.  Call before
 *  publishing l (loop thread). */
void mesh__res_stats_groups(mesh__res_svc_t *rs, mesh__res_live_t *l);
/** Count one breaker overflow of limit (enum mesh__br_limit) for the
 *  counters br (a cluster's or the service's). */
void mesh__res_count_overflow(mesh__res_svc_t *rs, const mesh__breakers_t *br,
                              int limit);
/** The mesh_calls_total result label of a call's return code. */
int mesh__res_result_of(int rc);
/** Count one finished logical call (last: the endpoint of its last try,
 *  NULL if none) and observe its duration. */
void mesh__res_count_call(mesh__res_svc_t *rs, mesh__host_t *last, int rc,
                          int64_t start_ns);

/** Build the state of one service from its config (already validated).
 *  m and svc may be NULL (unit tests: no timers). */
int mesh__res_svc_new(mesh_t *m, mesh__service_t *svc, const char *name,
                      const mesh__res_cfg_t *cfg, mesh__res_svc_t **out);
void mesh__res_svc_free(mesh__res_svc_t *rs);

/* Registered per-service parts (core/parts.c), defined in svc.c: the
 * "outlier_detection" entry's init/fini build and free the whole state (it
 * runs for every service, key present or not); the others only validate. */
extern const mesh__svc_part_t mesh__res_part_outlier, mesh__res_part_health,
    mesh__res_part_breakers, mesh__res_part_retry, mesh__res_part_timeouts,
    mesh__res_part_hedge, mesh__res_part_pool, mesh__res_part_alpn;

int mesh__res_svc_init(mesh_t *m, mesh__service_t *svc, const cJSON *v,
                       mesh_status_t *st);
void mesh__res_svc_fini(mesh_t *m, mesh__service_t *svc);

/** The current endpoint snapshot of a service (a reference the caller
 *  releases), or NULL when discovery has published none. */
mesh__snapshot_t *mesh__res_snapshot(mesh__service_t *svc);

/* ---- active health checks (resilience/health.c) ----------------------- */

/** Start the periodic checks of rs (no-op without health_check config or a
 *  loop).  Called before the worker starts or on the worker. */
void mesh__hc_start(mesh__res_svc_t *rs);
/** Cancel the timer and abort checks in flight (worker stopped or on it). */
void mesh__hc_stop(mesh__res_svc_t *rs);

/* ---- outlier detection: live (resilience/outlier.c) --------------------- */

/** Record how a try on h ended; on reaching a consecutive-error threshold,
 *  eject h (subject to the cap), counting ejections among snap's hosts.
 *  Any thread.  snap may be NULL (then the cap counts h alone). */
void mesh__od_report(mesh__res_svc_t *rs, mesh__snapshot_t *snap,
                     mesh__host_t *h, int outcome, int status);
/** One interval sweep over snap: return hosts whose time is up, rotate the
 *  counters, run success rate and failure percentage, decay multipliers. */
void mesh__od_sweep(mesh__res_svc_t *rs, mesh__snapshot_t *snap,
                    int64_t now_ms);
/** An active health check passed: return h if outlier detection ejected it
 *  (Envoy's successful_active_health_check_uneject_host). */
void mesh__od_hc_passed(mesh__res_svc_t *rs, mesh__host_t *h, int64_t now_ms);
/** Is h ejected at now_ms? */
bool mesh__od_ejected(const mesh__host_t *h, int64_t now_ms);

/* ---- per-host resources ------------------------------------------------- */

/** The resilience state of a host, created on first use (any thread, lock-
 *  free: the loser of a race frees its copy).  NULL only when out of memory. */
mesh__res_host_t *mesh__res_host(mesh__host_t *h);
/** Register with the endpoint model how hosts free resilience's per-host
 *  state and pools (idempotent; state.c). */
void mesh__res_host_ops_register(void);

/* ---- the idle connection pool (resilience/pool.c) -----------------------
 * Generic over the connection type so it is testable with plain sockets:
 * ops give the fd (for the liveness check) and how to close. */

typedef struct mesh__pool_ops {
  int (*fd)(void *conn);
  /* optional: replaces the fd check (TLS also holds buffered records) */
  bool (*alive)(void *conn);
  void (*close)(void *conn, void *user);
  /* optional: the pool is freed, user is no longer needed */
  void (*drop)(void *user);
  /* optional: per-request buffers (TLS records): keep them (at put: it is
   * reused soon, under load) or give them back (a sweep finds it parked
   * for MESH__POOL_TRIM_MS or more) */
  void (*buffers)(void *conn, bool keep);
} mesh__pool_ops_t;

/* A connection parked this long gives back its per-request buffers at the
 * next sweep (TLS record buffers: ~34 KiB with OpenSSL). */
#define MESH__POOL_TRIM_MS 1000

typedef struct mesh__pool mesh__pool_t;

/** user is passed to ops->close (the call layer counts connections). */
mesh__pool_t *mesh__pool_new(const mesh__pool_ops_t *ops, void *user);
/** The user the pool was made with (NULL for NULL). */
void *mesh__pool_user(const mesh__pool_t *p);
/** Close every idle connection and free.  NULL is a no-op. */
void mesh__pool_free(mesh__pool_t *p);
/** Park conn as idle.  When max_idle are already parked the conn is closed
 *  instead.  @return true if parked. */
bool mesh__pool_put(mesh__pool_t *p, void *conn, int64_t now_ms,
                    uint32_t max_idle);
/** Take the most recently parked live connection, or NULL.  Expired ones
 *  (idle >= idle_timeout_ms) and ones whose peer closed or sent unexpected
 *  bytes (readable while idle) are closed on the way; one parked less than
 *  check_after_ms ago is returned without that check. */
void *mesh__pool_take(mesh__pool_t *p, int64_t now_ms, int64_t idle_timeout_ms,
                      int64_t check_after_ms);
/** Close expired and dead idle connections.  @return how many. */
size_t mesh__pool_sweep(mesh__pool_t *p, int64_t now_ms,
                        int64_t idle_timeout_ms);
/** Close all idle connections (host ejected or removed), and the shared
 *  sessions no call uses.  @return how many idle connections. */
size_t mesh__pool_clear(mesh__pool_t *p);

/* Shared (multiplexed) connections, e.g. HTTP/2 sessions: many calls use
 * one at a time.  The protocol layer above supplies the ops. */
typedef struct mesh__mux_ops {
  /* how many calls it may carry at once now (the peer's
   * MAX_CONCURRENT_STREAMS; 0 once it can take no new call) */
  uint32_t (*capacity)(void *sess);
  /* false: GOAWAY or dead, closed once its calls are done */
  bool (*alive)(void *sess);
  /* close the session and its connection (user: the pool's) */
  void (*close)(void *sess, void *user);
} mesh__mux_ops_t;

/** A shared session with room for one more call, counted as in use; NULL
 *  when none (dial a new connection).  Dead and expired idle ones are
 *  closed on the way.  With dial != NULL one caller at a time dials: when
 *  there is no session with room and nobody is dialing, *dial = true (the
 *  caller dials and then calls mesh__pool_mux_dialed(), whatever came of
 *  it); when somebody is, the caller waits for that dial (until
 *  wait_until_ms, absolute mesh__now_ms()) and looks again, so callers
 *  arriving together share one handshake.  NULL with *dial false: the wait
 *  ran out (dial on your own). */
void *mesh__pool_mux_get(mesh__pool_t *p, int64_t now_ms,
                         int64_t idle_timeout_ms, int64_t wait_until_ms,
                         bool *dial);
/** The dial announced by mesh__pool_mux_get()'s *dial is over (its session
 *  added, or it failed, or it was not a shared protocol): wake the
 *  waiters.  plain: the connection is not shared (HTTP/1.1); until a
 *  session is added again, callers dial without waiting for each other. */
void mesh__pool_mux_dialed(mesh__pool_t *p, bool plain);
/** Add a new session, in use by the caller's call (counted once).
 *  @return false when the endpoint has MUX_MAX (64) already: the caller
 *          keeps it for its call and closes it. */
bool mesh__pool_mux_add(mesh__pool_t *p, void *sess,
                        const mesh__mux_ops_t *ops, int64_t now_ms);
/** A call is done with sess. */
void mesh__pool_mux_put(mesh__pool_t *p, void *sess, int64_t now_ms);
/** Shared sessions held (for tests and metrics). */
size_t mesh__pool_mux_count(mesh__pool_t *p);
size_t mesh__pool_idle(mesh__pool_t *p);
/** The idle pool of mesh_conn_t of host h, created on first use (NULL on
 *  OOM, and when h's pool counts its connections in other breakers than
 *  br: a host whose group changed keeps dialing rather than mix counters).  Lives and dies with the host; closing a pooled connection gives
 *  back a max_connections slot of br (the service's counters, or its
 *  group's, which the pool holds a reference on), so the service's fini
 *  clears the pools of its hosts while rs is alive. */
mesh__pool_t *mesh__res_pool(mesh__breakers_t *br, mesh__host_t *h);
/** The pool of h if one exists (never creates). */
mesh__pool_t *mesh__res_pool_peek(mesh__host_t *h);

/** Is an idle socket still usable: not readable (no EOF, RST or stray
 *  bytes) and without error?  Pure syscall check, no reads. */
bool mesh__pool_fd_alive(int fd);

/* The call layer (call.c, dial.c, calldo.c): part of the surface, in its
 * own header because it needs tls and lb types. */
#include "resilience/call.h"

#endif /* MESH_RESILIENCE_RESILIENCE_H */

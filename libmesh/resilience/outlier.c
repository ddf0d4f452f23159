/* SPDX-License-Identifier: Apache-2.0 */
/* Outlier detection: the pure algorithms (Envoy's consecutive-error,
 * success-rate and failure-percentage detectors, the ejection cap and the
 * ejection time backoff), and further down the live part that applies
 * them to hosts (mesh__od_report and the periodic sweep). */
#include "lb/lb.h"
#include "telemetry/telemetry.h"
#include "resilience/resilience.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mesh__outcome_status(int outcome, int status) {
  switch (outcome) {
  case MESH__OUT_OK:
  case MESH__OUT_OK_CLOSE:
    return status > 0 ? status : 200;
  case MESH__OUT_CONNECT_FAILURE:
  case MESH__OUT_RESET:
    return 503;
  case MESH__OUT_TIMEOUT:
    return 504;
  case MESH__OUT_PROTOCOL_ERROR:
    return 500;
  default:
    return 0;
  }
}

/* Success rates in percent, over hosts with enough volume. */
static void detect_success_rate(const mesh__od_cfg_t *cfg,
                                const mesh__od_sample_t *s, size_t n,
                                unsigned *flags, double *mean_out,
                                double *thr_out) {
  size_t valid = 0;
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i].ejected || s[i].total == 0 ||
        s[i].total < cfg->success_rate_request_volume)
      continue;
    sum += 100.0 * (double)s[i].success / (double)s[i].total;
    valid++;
  }
  if (valid == 0 || valid < cfg->success_rate_minimum_hosts)
    return;
  double mean = sum / (double)valid;
  double var = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i].ejected || s[i].total == 0 ||
        s[i].total < cfg->success_rate_request_volume)
      continue;
    double d = 100.0 * (double)s[i].success / (double)s[i].total - mean;
    var += d * d;
  }
  var /= (double)valid;
  double thr = mean - (cfg->success_rate_stdev_factor / 1000.0) * sqrt(var);
  *mean_out = mean;
  *thr_out = thr;
  for (size_t i = 0; i < n; i++) {
    if (s[i].ejected || s[i].total == 0 ||
        s[i].total < cfg->success_rate_request_volume)
      continue;
    if (100.0 * (double)s[i].success / (double)s[i].total < thr)
      flags[i] |= MESH__OD_FLAG_SR;
  }
}

static void detect_failure_percentage(const mesh__od_cfg_t *cfg,
                                      const mesh__od_sample_t *s, size_t n,
                                      unsigned *flags) {
  size_t valid = 0;
  for (size_t i = 0; i < n; i++)
    if (!s[i].ejected && s[i].total > 0 &&
        s[i].total >= cfg->failure_percentage_request_volume)
      valid++;
  if (valid == 0 || valid < cfg->failure_percentage_minimum_hosts)
    return;
  for (size_t i = 0; i < n; i++) {
    if (s[i].ejected || s[i].total == 0 ||
        s[i].total < cfg->failure_percentage_request_volume)
      continue;
    double sr = 100.0 * (double)s[i].success / (double)s[i].total;
    if (100.0 - sr >= (double)cfg->failure_percentage_threshold)
      flags[i] |= MESH__OD_FLAG_FP;
  }
}

void mesh__od_detect(const mesh__od_cfg_t *cfg, const mesh__od_sample_t *s,
                     size_t n, unsigned *flags, double *sr_mean,
                     double *sr_threshold) {
  double mean = -1, thr = -1;
  for (size_t i = 0; i < n; i++)
    flags[i] = 0;
  /* Envoy skips both algorithms when the service is smaller than both
   * minimums, before looking at volumes. */
  if (n >= cfg->success_rate_minimum_hosts ||
      n >= cfg->failure_percentage_minimum_hosts) {
    detect_success_rate(cfg, s, n, flags, &mean, &thr);
    detect_failure_percentage(cfg, s, n, flags);
  }
  if (sr_mean)
    *sr_mean = mean;
  if (sr_threshold)
    *sr_threshold = thr;
}

bool mesh__od_may_eject(size_t total, size_t ejected, uint32_t max_percent,
                        bool always_one) {
  /* 0% turns ejection off even with always_one (Envoy would still eject
   * one host there; nobody writes 0 meaning "one"). */
  if (total == 0 || max_percent == 0)
    return false;
  if (always_one && ejected == 0)
    return true;
  uint32_t pct = max_percent > 100 ? 100 : max_percent;
  /* Integer form of 100 * (ejected + 1) / total <= pct: no rounding. */
  return 100u * ((uint64_t)ejected + 1) <= (uint64_t)pct * total;
}

uint32_t mesh__od_backoff_next(const mesh__od_cfg_t *cfg, uint32_t backoff) {
  int64_t base = cfg->base_ejection_time_ms;
  if (base <= 0)
    return backoff; /* config forbids it; a 0 ms ejection needs no growth */
  if ((int64_t)backoff * base < cfg->max_ejection_time_ms + base)
    return backoff + 1;
  return backoff;
}

int64_t mesh__od_ejection_ms(const mesh__od_cfg_t *cfg, uint32_t multiplier,
                             int64_t jitter_ms) {
  int64_t t = cfg->base_ejection_time_ms * (int64_t)multiplier;
  if (t > cfg->max_ejection_time_ms)
    t = cfg->max_ejection_time_ms;
  return t + (jitter_ms > 0 ? jitter_ms : 0);
}

/* ---- live: applying the algorithms to hosts -------------------------------- */

static const char *const od_type_names[] = {
    "consecutive_5xx", "consecutive_gateway_failure", "success_rate",
    "failure_percentage"};

bool mesh__od_ejected(const mesh__host_t *h, int64_t now_ms) {
  int64_t until =
      atomic_load_explicit(&h->ejected_until_ms, memory_order_relaxed);
  return until != 0 && until > now_ms;
}

static uint32_t enforcing(const mesh__od_cfg_t *c, int type) {
  switch (type) {
  case MESH__OD_CONSECUTIVE_5XX:
    return c->enforcing_consecutive_5xx;
  case MESH__OD_CONSECUTIVE_GATEWAY:
    return c->enforcing_consecutive_gateway_failure;
  case MESH__OD_SUCCESS_RATE:
    return c->enforcing_success_rate;
  default:
    return c->enforcing_failure_percentage;
  }
}

/* Does h belong to the same group as the value v of label key (key NULL:
 * no groups, every host)?  Hosts without the label are a group too. */
static bool same_group(const mesh__host_t *h, const char *key, const char *v) {
  if (!key)
    return true;
  const char *hv = mesh__host_label(h, key);
  return hv && v ? strcmp(hv, v) == 0 : !hv && !v;
}

/* The hosts of snap in h's group (key: the live version's group label),
 * and how many of them are ejected: the max_ejection_percent cap is per
 * group (per cluster, as Envoy's outlier detector). */
static size_t count_group(mesh__snapshot_t *snap, const char *key,
                          const mesh__host_t *h, int64_t now, size_t *ejected) {
  const char *v = key ? mesh__host_label(h, key) : NULL;
  size_t n = 0;
  *ejected = 0;
  for (size_t i = 0; snap && i < snap->n; i++)
    if (same_group(snap->hosts[i], key, v)) {
      n++;
      *ejected += mesh__od_ejected(snap->hosts[i], now);
    }
  return n;
}

/* Eject h if the cap and the enforcement percentage allow.  od_mu held.
 * key: the group label (NULL without groups); gbr: h's group's counters
 * (their metric series), NULL without groups. */
static bool eject_locked(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                         mesh__snapshot_t *snap, const char *key,
                         const mesh__breakers_t *gbr, mesh__host_t *h,
                         int type, int64_t now) {
  mesh__res_host_t *rh = mesh__res_host(h);
  if (!rh || mesh__od_ejected(h, now))
    return false;
  atomic_fetch_add(&rs->od_detected[type], 1);
  size_t ejected;
  size_t total = count_group(snap, key, h, now, &ejected);
  if (total == 0)
    total = 1;
  if (!mesh__od_may_eject(total, ejected, c->max_ejection_percent,
                          c->always_eject_one_host)) {
    atomic_fetch_add(&rs->od_overflow, 1);
    mesh__log(rs->m, MESH_LOG_INFO, "outlier_cap",
              "service=%s host=%s type=%s ejected=%zu hosts=%zu "
              "max_ejection_percent=%u",
              rs->name, h->key, od_type_names[type], ejected, total,
              c->max_ejection_percent);
    return false;
  }
  uint32_t enf = enforcing(c, type);
  if (enf < 100 && mesh__res_rand() % 100 >= enf) {
    mesh__log(rs->m, MESH_LOG_INFO, "outlier_detected",
              "service=%s host=%s type=%s enforced=false", rs->name, h->key,
              od_type_names[type]);
    return false;
  }
  rh->backoff = mesh__od_backoff_next(c, rh->backoff);
  rh->num_ejections++;
  rh->last_ejection_ms = now;
  rh->ejected = true;
  int64_t jitter = c->max_ejection_time_jitter_ms > 0
                       ? (int64_t)(mesh__res_rand() %
                                   (uint64_t)(c->max_ejection_time_jitter_ms + 1))
                       : 0;
  int64_t dur = mesh__od_ejection_ms(c, rh->backoff, jitter);
  atomic_store(&h->ejected_until_ms, now + (dur > 0 ? dur : 1));
  atomic_fetch_add(&rs->od_enforced[type], 1);
  struct mesh__metric *ej = gbr && gbr->mx ? gbr->mx->ej[type] : NULL;
  mesh__counter_add(ej ? ej : rs->mx.ejections[type], 1);
  /* Idle connections to an ejected host would be handed out again when it
   * returns, long after the peer timed them out. */
  mesh__pool_clear(mesh__res_pool_peek(h));
  if (snap)
    mesh__lb_refresh(snap, now); /* pickers stop using it at once */
  mesh__log(rs->m, MESH_LOG_WARN, "outlier_eject",
            "service=%s host=%s type=%s ejections=%u duration_ms=%lld",
            rs->name, h->key, od_type_names[type], rh->num_ejections,
            (long long)dur);
  return true;
}

static void consecutive_hit(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                            mesh__snapshot_t *snap, const char *key,
                            const mesh__breakers_t *gbr, mesh__host_t *h,
                            mesh__res_host_t *rh, int type) {
  int64_t now = mesh__now_ms();
  pthread_mutex_lock(&rs->od_mu);
  eject_locked(rs, c, snap, key, gbr, h, type, now);
  /* Envoy resets the counter whether or not the host was ejected, so a new
   * run of errors is needed for the next detection. */
  if (type == MESH__OD_CONSECUTIVE_5XX)
    atomic_store(&rh->cons_5xx, 0);
  else
    atomic_store(&rh->cons_gateway, 0);
  pthread_mutex_unlock(&rs->od_mu);
}

/* The settings in force for the whole report (live.c). */
static void report(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                   mesh__snapshot_t *snap, const char *key,
                   const mesh__breakers_t *gbr, mesh__host_t *h, int outcome,
                   int status);

/* The outlier settings of h: its group's, else the service's. */
static const mesh__od_cfg_t *od_of(const mesh__res_live_t *l,
                                   const mesh__host_t *h) {
  const mesh__res_grp_t *g = mesh__res_grp_of(l, h);
  return g ? &g->od : &l->od;
}

void mesh__od_report(mesh__res_svc_t *rs, mesh__snapshot_t *snap,
                     mesh__host_t *h, int outcome, int status) {
  if (!rs || !h)
    return;
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  const mesh__res_grp_t *g = mesh__res_grp_of(l, h);
  const mesh__od_cfg_t *c = g ? &g->od : &l->od;
  if (c->enabled)
    report(rs, c, snap, l->ngrp ? l->grp_label : NULL, g ? g->br : NULL, h,
           outcome, status);
  mesh__res_live_release(l);
}

static void report(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                   mesh__snapshot_t *snap, const char *key,
                   const mesh__breakers_t *gbr, mesh__host_t *h, int outcome,
                   int status) {
  int code = mesh__outcome_status(outcome, status);
  if (code == 0)
    return;
  mesh__res_host_t *rh = mesh__res_host(h);
  if (!rh)
    return;
  mesh__od_bucket_t *b = &rh->bucket[atomic_load(&rh->active_bucket) & 1];
  atomic_fetch_add_explicit(&b->total, 1, memory_order_relaxed);
  if (code < 500 || code > 599) {
    atomic_fetch_add_explicit(&b->success, 1, memory_order_relaxed);
    atomic_store_explicit(&rh->cons_5xx, 0, memory_order_relaxed);
    atomic_store_explicit(&rh->cons_gateway, 0, memory_order_relaxed);
    return;
  }
  /* Exactly one thread sees the counter reach the threshold (== as in
   * Envoy), so one ejection attempt per run of errors. */
  if (code >= 502 && code <= 504) {
    if (atomic_fetch_add(&rh->cons_gateway, 1) + 1 ==
        c->consecutive_gateway_failure)
      consecutive_hit(rs, c, snap, key, gbr, h, rh,
                      MESH__OD_CONSECUTIVE_GATEWAY);
  } else {
    atomic_store_explicit(&rh->cons_gateway, 0, memory_order_relaxed);
  }
  if (atomic_fetch_add(&rh->cons_5xx, 1) + 1 == c->consecutive_5xx)
    consecutive_hit(rs, c, snap, key, gbr, h, rh, MESH__OD_CONSECUTIVE_5XX);
}

static void uneject_locked(mesh__res_svc_t *rs, mesh__host_t *h,
                           mesh__res_host_t *rh, int64_t now,
                           const char *why) {
  atomic_store(&h->ejected_until_ms, 0);
  atomic_store(&rh->cons_5xx, 0);
  atomic_store(&rh->cons_gateway, 0);
  rh->ejected = false;
  rh->last_unejection_ms = now;
  mesh__log(rs->m, MESH_LOG_INFO, "outlier_return",
            "service=%s host=%s reason=%s ejections=%u", rs->name, h->key, why,
            rh->num_ejections);
}

/* Worst case a service has many hosts; samples live on the heap then. */
#define SWEEP_STACK 64

/* One group's sweep: its hosts among snap's (hosts[], n) and where its
 * success-rate statistics go. */
typedef struct sweep_set {
  mesh__host_t **hosts;
  size_t n;
  const char *key;              /* group label; NULL without groups */
  double *sr_mean, *sr_threshold;
  const mesh__breakers_t *br;   /* the group's counters; NULL: none */
} sweep_set_t;

static void sweep(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                  mesh__snapshot_t *snap, const sweep_set_t *set, int64_t now);

/* Sweep the hosts of snap that od_of() gives the settings c, if c is on
 * and (groups only) its interval is due: a service's groups may have
 * different intervals while the timer ticks at the shortest (svc.c). */
static void sweep_group(mesh__res_svc_t *rs, const mesh__res_live_t *l,
                        const mesh__res_grp_t *g, mesh__snapshot_t *snap,
                        int64_t now) {
  const mesh__od_cfg_t *c = g ? &g->od : &l->od;
  if (!c->enabled)
    return;
  if (g) { /* due?  (a test may sweep beside the loop's timer) */
    pthread_mutex_lock(&rs->od_mu);
    int64_t last = g->br->od_last_sweep_ms;
    bool due = !last || now - last >= c->interval_ms - c->interval_ms / 4;
    if (due)
      g->br->od_last_sweep_ms = now;
    pthread_mutex_unlock(&rs->od_mu);
    if (!due)
      return;
  }
  mesh__host_t **v = malloc(sizeof *v * (snap->n ? snap->n : 1));
  if (!v)
    return;
  sweep_set_t set = {v, 0, l->ngrp ? l->grp_label : NULL,
                     g ? &g->br->sr_mean : &rs->sr_mean,
                     g ? &g->br->sr_threshold : &rs->sr_threshold,
                     g ? g->br : NULL};
  for (size_t i = 0; i < snap->n; i++)
    if (mesh__res_grp_of(l, snap->hosts[i]) == g)
      v[set.n++] = snap->hosts[i];
  sweep(rs, c, snap, &set, now);
  free(v);
}

void mesh__od_sweep(mesh__res_svc_t *rs, mesh__snapshot_t *snap,
                    int64_t now) {
  if (!rs || !snap)
    return;
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  if (!l->ngrp && l->od.enabled) {
    sweep_set_t set = {snap->hosts, snap->n, NULL, &rs->sr_mean,
                       &rs->sr_threshold, NULL};
    sweep(rs, &l->od, snap, &set, now);
  } else if (l->ngrp) {
    for (size_t i = 0; i < l->ngrp; i++)
      sweep_group(rs, l, &l->grp[i], snap, now);
    sweep_group(rs, l, NULL, snap, now); /* hosts of no group */
  }
  mesh__res_live_release(l);
}

/* Envoy's interval work over one set of hosts (a service's, or one of its
 * groups'): ejections that ran out end, counters rotate, the statistical
 * detectors run, multipliers decay. */
static void sweep(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                  mesh__snapshot_t *snap, const sweep_set_t *set, int64_t now) {
  size_t n = set->n;
  mesh__od_sample_t s_stack[SWEEP_STACK] = {{0, 0, false}};
  unsigned f_stack[SWEEP_STACK] = {0};
  mesh__od_sample_t *s = n <= SWEEP_STACK ? s_stack : calloc(n, sizeof *s);
  unsigned *flags = n <= SWEEP_STACK ? f_stack : calloc(n, sizeof *flags);
  if (!s || !flags) {
    if (s != s_stack)
      free(s);
    if (flags != f_stack)
      free(flags);
    return;
  }
  bool changed = false;
  pthread_mutex_lock(&rs->od_mu);
  for (size_t i = 0; i < n; i++) {
    mesh__host_t *h = set->hosts[i];
    mesh__res_host_t *rh = mesh__res_host(h);
    s[i] = (mesh__od_sample_t){0, 0, false};
    if (!rh)
      continue;
    int64_t until = atomic_load(&h->ejected_until_ms);
    if (until != 0 && until <= now) {
      uneject_locked(rs, h, rh, now, "time");
      changed = true;
    }
    else if (until != 0)
      rh->ejected = true; /* inherited by a host that changed attributes */
    /* Rotate: clear the idle bucket, then direct writers to it; the one
     * they leave holds exactly the last interval. */
    uint32_t old = atomic_load(&rh->active_bucket) & 1, nw = old ^ 1;
    atomic_store(&rh->bucket[nw].success, 0);
    atomic_store(&rh->bucket[nw].total, 0);
    atomic_store(&rh->active_bucket, nw);
    s[i].success = atomic_load(&rh->bucket[old].success);
    s[i].total = atomic_load(&rh->bucket[old].total);
    s[i].ejected = mesh__od_ejected(h, now);
    rh->success_rate =
        s[i].total ? 100.0 * (double)s[i].success / (double)s[i].total : -1;
  }
  mesh__od_detect(c, s, n, flags, set->sr_mean, set->sr_threshold);
  for (size_t i = 0; i < n; i++) {
    if (flags[i] & MESH__OD_FLAG_SR)
      eject_locked(rs, c, snap, set->key, set->br, set->hosts[i],
                   MESH__OD_SUCCESS_RATE, now);
    if ((flags[i] & MESH__OD_FLAG_FP) && !mesh__od_ejected(set->hosts[i], now))
      eject_locked(rs, c, snap, set->key, set->br, set->hosts[i],
                   MESH__OD_FAILURE_PERCENTAGE, now);
  }
  /* A host that stayed in service for a whole interval since it came back
   * earns one step of its ejection multiplier back (Envoy). */
  for (size_t i = 0; i < n; i++) {
    mesh__res_host_t *rh = mesh__res_host(set->hosts[i]);
    if (!rh || mesh__od_ejected(set->hosts[i], now) || rh->backoff == 0)
      continue;
    if (rh->last_unejection_ms != 0 &&
        now - rh->last_unejection_ms >= c->interval_ms)
      rh->backoff--;
  }
  pthread_mutex_unlock(&rs->od_mu);
  if (changed)
    mesh__lb_refresh(snap, now);
  if (s != s_stack)
    free(s);
  if (flags != f_stack)
    free(flags);
}

void mesh__od_hc_passed(mesh__res_svc_t *rs, mesh__host_t *h, int64_t now) {
  if (!rs || !h)
    return;
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  const mesh__od_cfg_t *c = od_of(l, h);
  bool on = c->enabled && c->successful_active_health_check_uneject_host;
  mesh__res_live_release(l);
  if (!on)
    return;
  if (!mesh__od_ejected(h, now))
    return;
  mesh__res_host_t *rh = mesh__res_host(h);
  if (!rh)
    return;
  pthread_mutex_lock(&rs->od_mu);
  bool back = mesh__od_ejected(h, now);
  if (back)
    uneject_locked(rs, h, rh, now, "health_check");
  pthread_mutex_unlock(&rs->od_mu);
  mesh__snapshot_t *snap = back ? mesh__res_snapshot(rs->svc) : NULL;
  if (snap)
    mesh__lb_refresh(snap, now);
  mesh__snap_release(snap);
}

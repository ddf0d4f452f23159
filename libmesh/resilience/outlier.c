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

static size_t count_ejected(mesh__snapshot_t *snap, int64_t now) {
  size_t n = 0;
  for (size_t i = 0; snap && i < snap->n; i++)
    if (mesh__od_ejected(snap->hosts[i], now))
      n++;
  return n;
}

/* Eject h if the cap and the enforcement percentage allow.  od_mu held. */
static bool eject_locked(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                         mesh__snapshot_t *snap, mesh__host_t *h, int type,
                         int64_t now) {
  mesh__res_host_t *rh = mesh__res_host(h);
  if (!rh || mesh__od_ejected(h, now))
    return false;
  atomic_fetch_add(&rs->od_detected[type], 1);
  size_t total = snap && snap->n ? snap->n : 1;
  size_t ejected = count_ejected(snap, now);
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
  mesh__counter_add(rs->mx.ejections[type], 1);
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
                            mesh__snapshot_t *snap, mesh__host_t *h,
                            mesh__res_host_t *rh, int type) {
  int64_t now = mesh__now_ms();
  pthread_mutex_lock(&rs->od_mu);
  eject_locked(rs, c, snap, h, type, now);
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
                   mesh__snapshot_t *snap, mesh__host_t *h, int outcome,
                   int status);

void mesh__od_report(mesh__res_svc_t *rs, mesh__snapshot_t *snap,
                     mesh__host_t *h, int outcome, int status) {
  if (!rs || !h)
    return;
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  if (l->od.enabled)
    report(rs, &l->od, snap, h, outcome, status);
  mesh__res_live_release(l);
}

static void report(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                   mesh__snapshot_t *snap, mesh__host_t *h, int outcome,
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
      consecutive_hit(rs, c, snap, h, rh, MESH__OD_CONSECUTIVE_GATEWAY);
  } else {
    atomic_store_explicit(&rh->cons_gateway, 0, memory_order_relaxed);
  }
  if (atomic_fetch_add(&rh->cons_5xx, 1) + 1 == c->consecutive_5xx)
    consecutive_hit(rs, c, snap, h, rh, MESH__OD_CONSECUTIVE_5XX);
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

static void sweep(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                  mesh__snapshot_t *snap, int64_t now);

void mesh__od_sweep(mesh__res_svc_t *rs, mesh__snapshot_t *snap,
                    int64_t now) {
  if (!rs || !snap)
    return;
  mesh__res_live_t *l = mesh__res_live_acquire(rs);
  if (l->od.enabled)
    sweep(rs, &l->od, snap, now);
  mesh__res_live_release(l);
}

static void sweep(mesh__res_svc_t *rs, const mesh__od_cfg_t *c,
                  mesh__snapshot_t *snap, int64_t now) {
  size_t n = snap->n;
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
    mesh__host_t *h = snap->hosts[i];
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
  mesh__od_detect(c, s, n, flags, &rs->sr_mean, &rs->sr_threshold);
  for (size_t i = 0; i < n; i++) {
    if (flags[i] & MESH__OD_FLAG_SR)
      eject_locked(rs, c, snap, snap->hosts[i], MESH__OD_SUCCESS_RATE, now);
    if ((flags[i] & MESH__OD_FLAG_FP) && !mesh__od_ejected(snap->hosts[i], now))
      eject_locked(rs, c, snap, snap->hosts[i], MESH__OD_FAILURE_PERCENTAGE,
                   now);
  }
  /* A host that stayed in service for a whole interval since it came back
   * earns one step of its ejection multiplier back (Envoy). */
  for (size_t i = 0; i < n; i++) {
    mesh__res_host_t *rh = mesh__res_host(snap->hosts[i]);
    if (!rh || mesh__od_ejected(snap->hosts[i], now) || rh->backoff == 0)
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
  bool on = l->od.enabled && l->od.successful_active_health_check_uneject_host;
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

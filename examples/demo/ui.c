/* SPDX-License-Identifier: Apache-2.0 */
/* Terminal output: the banner, a progress line per second, events as they
 * happen, and the final report.  Colours only on a terminal (and never
 * with NO_COLOR or TERM=dumb); box-drawing characters only in a UTF-8
 * locale. */
#include "demo.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *esc(const demo_t *d, const char *code) {
  return d->color ? code : "";
}

#define RESET(d) esc(d, "\033[0m")
#define BOLD(d) esc(d, "\033[1m")
#define DIM(d) esc(d, "\033[2m")
#define RED(d) esc(d, "\033[31m")
#define GREEN(d) esc(d, "\033[32m")
#define YELLOW(d) esc(d, "\033[33m")
#define CYAN(d) esc(d, "\033[36m")

#define BAR(d) ((d)->utf8 ? "\u2502" : "|")
#define ARROW(d) ((d)->utf8 ? "\u25b8" : ">")
#define CHECK(d) ((d)->utf8 ? "\u2713" : "ok")
#define CROSS(d) ((d)->utf8 ? "\u2717" : "FAIL")

static bool locale_utf8(void) {
  const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
  for (size_t i = 0; i < 3; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v)
      return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") ||
             strstr(v, "utf-8");
  }
  return false;
}

void ui_init(demo_t *d, bool no_color) {
  const char *term = getenv("TERM");
  d->color = !no_color && isatty(STDOUT_FILENO) && !getenv("NO_COLOR") &&
             !(term && strcmp(term, "dumb") == 0);
  d->utf8 = locale_utf8();
}

void ui_banner(const demo_t *d, int admin_port) {
  printf("\n%slibmesh demo%s: a proxyless service mesh on loopback\n\n",
         BOLD(d), RESET(d));
  printf("  %-14s %s  %s(development CA: %s/ca.crt)%s\n", "trust domain",
         DEMO_TD, DIM(d), d->show, RESET(d));
  for (size_t i = 0; i < d->neps; i++) {
    const demo_ep_t *e = &d->eps[i];
    printf("  %-14s %s%-5s%s %-16s pid %d\n",
           i ? "" : "service " DEMO_SERVICE, BOLD(d), e->name, RESET(d),
           e->key, (int)e->pid);
  }
  printf("  %-14s one process and one SVID each: %s\n", "", DEMO_ID_WORK);
  printf("  %-14s %s, %d threads, HTTP/1.1 over mTLS\n", "client",
         DEMO_ID_CLIENT, d->workers);
  if (d->xds_script) {
    printf("  %-14s route, clusters and endpoints from the control plane "
           "(xDS, listener \"work\"),\n  %-14s which shifts the canary "
           "90/10 -> 50/50 -> 0/100 and adds v2-b\n", "", "");
  } else {
    printf("  %-14s split v1 90 / v2 10, least_request, retries, outlier "
           "detection\n",
           "");
    printf("  %-14s %s, not allowed by the backends' policy \"%s\"\n",
           "intruder", DEMO_ID_INTRUDER, DEMO_POLICY);
  }
  if (admin_port > 0)
    printf("  %-14s http://127.0.0.1:%d/   %s(meshctl resolve %s --admin "
           "127.0.0.1:%d)%s\n",
           "client admin", admin_port, DIM(d), DEMO_SERVICE, admin_port,
           RESET(d));
  if (d->xds_script)
    printf("  %-14s pushes at %.1fs, %.1fs and %.1fs, stop at %.0fs\n\n", "plan",
           0.30 * d->seconds, 0.55 * d->seconds, 0.75 * d->seconds,
           d->seconds);
  else
    printf("  %-14s intruder at %.0fs, SIGKILL %s at %.0fs, stop at %.0fs\n\n",
           "plan", d->t_intruder, d->eps[d->victim].name, d->t_kill,
           d->seconds);
  fflush(stdout);
}

void ui_progress(demo_t *d, double t, unsigned long *prev) {
  unsigned long calls = atomic_load(&d->calls);
  unsigned long failed = atomic_load(&d->failed);
  printf("  %s%3.0fs%s %s calls %6lu %s(+%lu/s)%s %s %serrors %lu%s %s "
         "retries %-3lu %s",
         BOLD(d), t, RESET(d), BAR(d), calls, DIM(d), calls - prev[0],
         RESET(d), BAR(d), failed ? RED(d) : GREEN(d), failed, RESET(d),
         BAR(d), atomic_load(&d->retries), BAR(d));
  prev[0] = calls;
  if (d->xds_script) {
    /* the live split: shares of the last second's answered tries */
    unsigned long v1 = 0, all = 0;
    for (size_t i = 0; i < d->neps; i++) {
      unsigned long n = atomic_load(&d->eps[i].ok_tries) - prev[i + 1];
      all += n;
      v1 += strncmp(d->eps[i].name, "v1", 2) == 0 ? n : 0;
    }
    printf(" split v1 %3.0f%% v2 %3.0f%% %s", all ? 100.0 * v1 / all : 0,
           all ? 100.0 * (all - v1) / all : 0, BAR(d));
  }
  for (size_t i = 0; i < d->neps; i++) {
    demo_ep_t *e = &d->eps[i];
    unsigned long ok = atomic_load(&e->ok_tries);
    const char *mark = "", *color = "";
    if (e->ejected_at >= 0) {
      mark = " ejected";
      color = YELLOW(d);
    } else if (e->killed_at >= 0) {
      mark = " killed";
      color = RED(d);
    }
    printf(" %s%s %4lu/s%s%s", color, e->name, ok - prev[i + 1], mark,
           RESET(d));
    prev[i + 1] = ok;
  }
  printf("\n");
  fflush(stdout);
}

void ui_event(const demo_t *d, double t, const char *line) {
  printf("  %s%s %4.1fs  %s%s\n", CYAN(d), ARROW(d), t, line, RESET(d));
  fflush(stdout);
}

/* ---- the report ---------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

double ui_percentile_ms(demo_ep_t *e, int p) {
  pthread_mutex_lock(&e->mu);
  size_t n = e->nlat;
  double v = 0;
  if (n > 0) {
    qsort(e->lat_us, n, sizeof *e->lat_us, cmp_u32);
    size_t rank = (n * (size_t)p + 99) / 100; /* nearest rank, 1-based */
    v = e->lat_us[rank > 0 ? rank - 1 : 0] / 1000.0;
  }
  pthread_mutex_unlock(&e->mu);
  return v;
}

static void ep_state(const demo_t *d, const demo_ep_t *e, char *out,
                     size_t len) {
  if (e->killed_at < 0) {
    snprintf(out, len, "%sup%s", GREEN(d), RESET(d));
    return;
  }
  if (e->ejected_at < 0) {
    snprintf(out, len, "%skilled at %.1fs, not ejected%s", RED(d),
             e->killed_at, RESET(d));
    return;
  }
  snprintf(out, len, "%skilled at %.1fs, ejected at %.1fs%s", YELLOW(d),
           e->killed_at, e->ejected_at, RESET(d));
}

static void table(demo_t *d) {
  printf("  %s%-6s %-6s %-16s %7s %7s %8s %8s %9s  %s%s\n", BOLD(d),
         "NAME", "SUBSET", "ENDPOINT", "CALLS", "FAILED", "P50", "P99",
         "EJECTIONS", "STATE", RESET(d));
  unsigned long calls = 0, failed = 0, ejections = 0;
  for (size_t i = 0; i < d->neps; i++) {
    demo_ep_t *e = &d->eps[i];
    char state[128];
    ep_state(d, e, state, sizeof state);
    unsigned long ok = atomic_load(&e->ok_tries);
    unsigned long bad = atomic_load(&e->failed_tries);
    unsigned long ej = atomic_load(&e->ejections);
    printf("  %-6s %-6s %-16s %7lu %s%7lu%s %6.2fms %6.2fms %9lu  %s\n",
           e->name, e->subset, e->key, ok, bad ? YELLOW(d) : "", bad,
           RESET(d), ui_percentile_ms(e, 50), ui_percentile_ms(e, 99), ej,
           state);
    calls += ok;
    failed += bad;
    ejections += ej;
  }
  printf("  %s%-6s %-6s %-16s %7lu %7lu %8s %8s %9lu%s\n", DIM(d), "all",
         "", "", calls, failed, "", "", ejections, RESET(d));
  printf("  %sCALLS: answered tries.  FAILED: tries that failed there and "
         "were retried.\n  P50/P99: try latency, a new connection's "
         "handshake included.%s\n\n",
         DIM(d), RESET(d));
}

static void split_line(const demo_t *d) {
  unsigned long v1 = 0, v2 = 0;
  for (size_t i = 0; i < d->neps; i++) {
    unsigned long ok = atomic_load(&d->eps[i].ok_tries);
    if (strcmp(d->eps[i].subset, "v1") == 0)
      v1 += ok;
    else
      v2 += ok;
  }
  double all = (double)(v1 + v2);
  printf("  %-10s v1 %.1f%% / v2 %.1f%% of calls (configured 90 / 10)\n",
         "split", all > 0 ? 100.0 * (double)v1 / all : 0,
         all > 0 ? 100.0 * (double)v2 / all : 0);
}

static bool verdict(const demo_t *d, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool verdict(const demo_t *d, bool ok, const char *fmt, ...) {
  printf("  %s%s%s ", ok ? GREEN(d) : RED(d), ok ? CHECK(d) : CROSS(d),
         RESET(d));
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  return ok;
}

bool ui_report(demo_t *d, unsigned long backend_denials,
               const span_stats_t *spans) {
  printf("\n%sResults%s  %s(%.0f s of calls, %d client threads)%s\n\n",
         BOLD(d), RESET(d), DIM(d), d->seconds, d->workers, RESET(d));
  table(d);
  split_line(d);
  printf("  %-10s %d calls from %s: %s %s(backends counted %lu "
         "denials)%s\n",
         "denied", d->intruder_denied, DEMO_ID_INTRUDER,
         d->intruder_reason[0] ? d->intruder_reason : "-", DIM(d),
         backend_denials, RESET(d));
  printf("  %-10s %s/spans.jsonl: %lu spans from %d processes, %lu traces\n\n",
         "traces", d->show, spans->lines, spans->processes, spans->traces);

  unsigned long calls = atomic_load(&d->calls);
  unsigned long failed = atomic_load(&d->failed);
  const demo_ep_t *v = &d->eps[d->victim];
  bool all = true;
  if (failed)
    all &= verdict(d, false, "%lu of %lu calls failed; last: %s", failed,
                   calls, d->last_error);
  else
    all &= verdict(d, calls > 0, "%lu calls, none failed (%lu retries)",
                   calls, atomic_load(&d->retries));
  if (v->killed_at >= 0 && v->ejected_at >= 0)
    all &= verdict(d, true,
                   "%s was killed at %.1fs and ejected by outlier detection "
                   "%.0f ms later",
                   v->name, v->killed_at,
                   (v->ejected_at - v->killed_at) * 1000);
  else
    all &= verdict(d, false, "%s was %s", v->name,
                   v->killed_at < 0 ? "not killed" : "killed but not ejected");
  bool denied = d->intruder_attempts > 0 &&
                d->intruder_denied == d->intruder_attempts &&
                d->intruder_allowed == 0 && backend_denials > 0;
  all &= verdict(d, denied, "the wrong identity was denied %d of %d times",
                 d->intruder_denied, d->intruder_attempts);
  all &= verdict(d, spans->lines > 0 && spans->bad == 0,
                 "%lu spans written to %s/spans.jsonl%s", spans->lines,
                 d->show, spans->bad ? " (with malformed lines)" : "");
  printf("\n");
  fflush(stdout);
  return all;
}

/* One phase of the xDS act: observed shares against the route's weights
 * (binomial tolerance: 5 standard deviations, at least 3 points). */
static bool xds_phase(const demo_t *d, const struct demo_phase *p) {
  unsigned long all = p->v1 + p->v2;
  double want = (double)p->w2 / (p->w1 + p->w2), got = all ? (double)p->v2 / all : 0;
  double tol = all ? 5 * sqrt(want * (1 - want) / all) : 0;
  if (tol < 0.03)
    tol = 0.03;
  bool ok = all > 0 && got >= want - tol && got <= want + tol;
  return verdict(d, ok, "split %-13s v1 %5.1f%% / v2 %5.1f%% of %lu calls "
                 "(route %d/%d)", p->label, all ? 100.0 * p->v1 / all : 0,
                 100.0 * got, all, p->w1, p->w2);
}

bool ui_xds_report(demo_t *d) {
  printf("\n%sResults%s  %s(%.0f s of calls, %d client threads, routes "
         "and endpoints from the control plane)%s\n\n", BOLD(d), RESET(d),
         DIM(d), d->seconds, d->workers, RESET(d));
  table(d);
  unsigned long calls = atomic_load(&d->calls);
  unsigned long failed = atomic_load(&d->failed);
  bool all = true;
  if (failed)
    all &= verdict(d, false, "%lu of %lu calls failed; last: %s", failed,
                   calls, d->last_error);
  else
    all &= verdict(d, calls > 0, "%lu calls, none failed across %zu pushes",
                   calls, d->nphase);
  for (size_t i = 0; i < d->nphase; i++)
    all &= xds_phase(d, &d->phase[i]);
  const struct demo_phase *last = d->nphase ? &d->phase[d->nphase - 1] : NULL;
  all &= verdict(d, last && last->by[3] > 0,
                 "%s, added by the control plane, served %lu calls",
                 d->eps[3].name, last ? last->by[3] : 0);
  printf("\n");
  fflush(stdout);
  return all;
}

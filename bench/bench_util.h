/* SPDX-License-Identifier: Apache-2.0 */
/* Clocks, medians and RSS for the bench programs (one copy, not one per
 * program). */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline int64_t bench_clock_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wall time (monotonic). */
static inline int64_t wall_ns(void) { return bench_clock_ns(CLOCK_MONOTONIC); }
/* CPU time of the calling thread: time spent preempted by other processes
 * on a shared machine does not count as the cost of the code. */
static inline int64_t thread_ns(void) {
  return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}
/* CPU time of the whole process (every thread, the worker's too). */
static inline int64_t cpu_ns(void) {
  return bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static inline int bench_cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v); 0 for none. */
static inline double median(double *v, int n) {
  if (n <= 0)
    return 0;
  qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Resident set size of this process, KiB. */
static inline long rss_kib(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &res) != 2)
    res = 0;
  if (f)
    fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif

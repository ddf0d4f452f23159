/* SPDX-License-Identifier: Apache-2.0 */
/* Clocks and bounded string helpers. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t mesh__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mesh__now_ms(void) { return mesh__now_ns() / 1000000; }

int64_t mesh__wall_s(void) { return (int64_t)time(NULL); }

int mesh__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                          clockid_t clk, int64_t deadline_ms) {
  int64_t left = deadline_ms - mesh__now_ms();
  if (left <= 0)
    return ETIMEDOUT;
  struct timespec ts;
  clock_gettime(clk, &ts);
  ts.tv_sec += (time_t)(left / 1000);
  ts.tv_nsec += (long)(left % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return pthread_cond_timedwait(cv, mu, &ts);
}

size_t mesh__strlcpy(char *dst, const char *src, size_t size) {
  size_t n = strlen(src);
  if (size) {
    size_t k = n < size - 1 ? n : size - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
  }
  return n;
}

int mesh__snprintf(char *dst, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, size, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= size)
    return MESH_ERR_BUFFER;
  return n;
}

char *mesh__strdup(const char *s) { return s ? strdup(s) : NULL; }

const char *mesh_version(void) { return MESH_VERSION_STRING; }

unsigned mesh_version_num(void) { return MESH_VERSION_NUM; }

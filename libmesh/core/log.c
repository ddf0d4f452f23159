/* SPDX-License-Identifier: Apache-2.0 */
/* Structured logging: one `level=... event=... k=v` line per event. */
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

const char *mesh_log_level_name(int level) {
  if (level < MESH_LOG_ERROR || level > MESH_LOG_TRACE)
    return "unknown";
  return level_names[level];
}

bool mesh__log_on(mesh_t *m, int level) {
  if (!m)
    return level <= MESH_LOG_WARN;
  return level <= atomic_load_explicit(&m->log.level, memory_order_relaxed);
}

void mesh__log(mesh_t *m, int level, const char *event, const char *fmt, ...) {
  if (!mesh__log_on(m, level))
    return;
  char line[1024];
  int n = snprintf(line, sizeof line, "level=%s event=%s",
                   mesh_log_level_name(level), event);
  if (n < 0)
    return;
  if (fmt && *fmt && (size_t)n < sizeof line - 1) {
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
  }
  /* Defence in depth: whatever a caller formatted, secrets do not leave. */
  mesh__log_redact(line, sizeof line);
  mesh_log_fn fn = NULL;
  void *user = NULL;
  if (m) {
    pthread_mutex_lock(&m->log.mu);
    fn = m->log.fn;
    user = m->log.user;
    pthread_mutex_unlock(&m->log.mu);
  }
  if (fn) {
    fn(level, line, user);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s\n",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
          tm.tm_sec, ts.tv_nsec / 1000000, line);
}

void mesh_set_log(mesh_t *m, int level, mesh_log_fn fn, void *user) {
  if (!m)
    return;
  if (level < MESH_LOG_ERROR)
    level = MESH_LOG_ERROR;
  if (level > MESH_LOG_TRACE)
    level = MESH_LOG_TRACE;
  pthread_mutex_lock(&m->log.mu);
  m->log.fn = fn;
  m->log.user = user;
  pthread_mutex_unlock(&m->log.mu);
  atomic_store(&m->log.level, level);
}

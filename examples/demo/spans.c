/* SPDX-License-Identifier: Apache-2.0 */
/* Span hooks: every sampled span becomes one JSON object on one line of a
 * shared file (the demo's trace output), and the client's "mesh.try" spans
 * also feed the per-endpoint numbers of the report: which endpoint each
 * try went to, whether it failed, how long it took.  The hooks run on the
 * thread that ended the span, so they only append. */
#include "demo.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384
#define MAX_HOOKS 4

typedef struct hook_ctx {
  demo_t *d;
  char process[32];
} hook_ctx_t;

static int spans_fd = -1;
static hook_ctx_t hooks[MAX_HOOKS];
static atomic_int nhooks;

/* ---- a bounded JSON line builder ----------------------------------------- */

typedef struct line {
  char buf[LINE_MAX_BYTES];
  size_t len;
  bool overflow;
} line_t;

static void put(line_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(line_t *l, const char *fmt, ...) {
  if (l->overflow)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof l->buf - l->len)
    l->overflow = true;
  else
    l->len += (size_t)n;
}

/* A JSON string: quotes, backslashes and controls escaped; bytes outside
 * ASCII become '?' (attribute values may come from the wire and need not
 * be UTF-8). */
static void put_str(line_t *l, const char *s) {
  put(l, "\"");
  for (; s && *s && !l->overflow; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      put(l, "\\%c", c);
    else if (c < 0x20)
      put(l, "\\u%04x", c);
    else
      put(l, "%c", c < 0x80 ? c : '?');
  }
  put(l, "\"");
}

static void put_hex(line_t *l, const uint8_t *b, size_t n) {
  put(l, "\"");
  for (size_t i = 0; i < n; i++)
    put(l, "%02x", b[i]);
  put(l, "\"");
}

static bool all_zero(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return false;
  return true;
}

static const char *kind_name(mesh_span_kind_t k) {
  switch (k) {
  case MESH_SPAN_SERVER: return "server";
  case MESH_SPAN_CLIENT: return "client";
  default: return "internal";
  }
}

static void put_attrs(line_t *l, const mesh_span_t *s) {
  put(l, "\"attributes\":{");
  size_t n = mesh_span_attr_count(s);
  for (size_t i = 0; i < n; i++) {
    const char *key = NULL, *str = NULL;
    int64_t num = 0;
    double dbl = 0;
    int type = mesh_span_attr(s, i, &key, &str, &num, &dbl);
    if (type < 0 || !key)
      continue;
    put(l, "%s", i ? "," : "");
    put_str(l, key);
    put(l, ":");
    if (type == MESH_ATTR_STRING)
      put_str(l, str);
    else if (type == MESH_ATTR_INT)
      put(l, "%lld", (long long)num);
    else if (type == MESH_ATTR_BOOL)
      put(l, "%s", num ? "true" : "false");
    else
      put(l, "%.17g", dbl);
  }
  put(l, "}");
}

static void write_span(const hook_ctx_t *h, const mesh_span_t *s) {
  line_t *l = malloc(sizeof *l);
  if (!l)
    return;
  l->len = 0;
  l->overflow = false;
  mesh_trace_ctx_t ctx;
  mesh_span_context(s, &ctx);
  const char *msg = "";
  mesh_span_status_t status = mesh_span_status(s, &msg);
  uint64_t start = mesh_span_start_ns(s), end = mesh_span_end_ns(s);
  put(l, "{\"process\":");
  put_str(l, h->process);
  put(l, ",\"name\":");
  put_str(l, mesh_span_name(s));
  put(l, ",\"kind\":\"%s\",\"trace_id\":", kind_name(mesh_span_kind(s)));
  put_hex(l, ctx.trace_id, sizeof ctx.trace_id);
  put(l, ",\"span_id\":");
  put_hex(l, ctx.span_id, sizeof ctx.span_id);
  if (!all_zero(ctx.parent_span_id, sizeof ctx.parent_span_id)) {
    put(l, ",\"parent_span_id\":");
    put_hex(l, ctx.parent_span_id, sizeof ctx.parent_span_id);
  }
  put(l, ",\"start_unix_ns\":%llu,\"end_unix_ns\":%llu,\"duration_ms\":%.3f",
      (unsigned long long)start, (unsigned long long)end,
      end > start ? (double)(end - start) / 1e6 : 0.0);
  put(l, ",\"status\":\"%s\"",
      status == MESH_SPAN_STATUS_ERROR ? "error"
      : status == MESH_SPAN_STATUS_OK  ? "ok"
                                       : "unset");
  if (msg && *msg) {
    put(l, ",\"status_message\":");
    put_str(l, msg);
  }
  put(l, ",");
  put_attrs(l, s);
  put(l, "}\n");
  /* One write per line: with O_APPEND, lines of several processes do not
   * interleave.  An oversized span is dropped rather than cut. */
  if (!l->overflow && spans_fd >= 0) {
    ssize_t w = write(spans_fd, l->buf, l->len);
    (void)w; /* a lost line shows in the report, which counts the file */
  }
  free(l);
}

/* ---- per-endpoint numbers from the client's tries ------------------------ */

static void record_try(demo_t *d, const mesh_span_t *s) {
  char peer[64];
  if (mesh_span_attr_text(s, "network.peer.address", peer, sizeof peer) < 0)
    return;
  demo_ep_t *e = demo_ep_by_key(d, peer);
  if (!e)
    return;
  char attempt[16];
  if (mesh_span_attr_text(s, "mesh.try", attempt, sizeof attempt) > 0 &&
      strcmp(attempt, "0") != 0)
    atomic_fetch_add(&d->retries, 1);
  const char *msg = "";
  if (mesh_span_status(s, &msg) == MESH_SPAN_STATUS_ERROR) {
    if (strcmp(msg, "cancelled") != 0)
      atomic_fetch_add(&e->failed_tries, 1);
    return;
  }
  atomic_fetch_add(&e->ok_tries, 1);
  uint64_t us = (mesh_span_end_ns(s) - mesh_span_start_ns(s)) / 1000;
  pthread_mutex_lock(&e->mu);
  if (e->nlat == e->caplat) {
    size_t cap = e->caplat ? e->caplat * 2 : 4096;
    uint32_t *n = realloc(e->lat_us, cap * sizeof *n);
    if (n) {
      e->lat_us = n;
      e->caplat = cap;
    }
  }
  if (e->nlat < e->caplat)
    e->lat_us[e->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  pthread_mutex_unlock(&e->mu);
}

static void on_span_end(const mesh_span_t *s, void *user) {
  const hook_ctx_t *h = user;
  write_span(h, s);
  if (h->d && strcmp(mesh_span_name(s), "mesh.try") == 0)
    record_try(h->d, s);
}

int demo_spans_attach(mesh_t *m, const char *path, const char *process,
                      demo_t *d) {
  if (spans_fd < 0)
    spans_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (spans_fd < 0)
    return MESH_ERR_IO;
  int i = atomic_fetch_add(&nhooks, 1);
  if (i >= MAX_HOOKS)
    return MESH_ERR_INVALID_ARG;
  hooks[i].d = d;
  snprintf(hooks[i].process, sizeof hooks[i].process, "%s", process);
  return mesh_set_span_hooks(m, NULL, on_span_end, &hooks[i]);
}

void demo_spans_close(void) {
  if (spans_fd >= 0)
    close(spans_fd);
  spans_fd = -1;
}

/* ---- reading the file back ----------------------------------------------- */

static bool one_object(const char *line, size_t len) {
  return len >= 2 && line[0] == '{' && line[len - 1] == '}';
}

bool demo_spans_scan(const char *path, span_stats_t *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  char procs[8][32];
  char *line = NULL;
  size_t cap = 0;
  for (;;) {
    ssize_t n = getline(&line, &cap, f);
    if (n <= 0)
      break;
    size_t len = (size_t)n;
    if (line[len - 1] == '\n')
      len--;
    out->lines++;
    if (!one_object(line, len)) {
      out->bad++;
      continue;
    }
    if (strstr(line, "\"process\":\"frontend\",\"name\":\"mesh.call\""))
      out->traces++;
    char proc[32];
    if (sscanf(line, "{\"process\":\"%31[^\"]\"", proc) != 1)
      continue;
    bool seen = false;
    for (int i = 0; i < out->processes; i++)
      seen = seen || strcmp(procs[i], proc) == 0;
    if (!seen && out->processes < 8)
      snprintf(procs[out->processes++], sizeof procs[0], "%s", proc);
  }
  free(line);
  fclose(f);
  return true;
}

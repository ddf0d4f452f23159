/* SPDX-License-Identifier: Apache-2.0 */
/* Span export: a bounded queue filled by any thread, drained in batches on
 * the worker loop by libcurl's multi interface (core/curl_loop.c: libcurl's
 * sockets and timers on the loop, so nothing ever blocks the caller or the
 * loop).  Retries 429 and 5xx (and transport errors) with exponential
 * backoff, honouring Retry-After; counts every dropped span. */
#include "core/core.h"
#include "observe/observe.h"
#include "observe/exporter.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHUTDOWN_CAP_MS 5000

enum drop_reason { DROP_QUEUE_FULL, DROP_RETRIES, DROP_REJECTED, DROP_SHUTDOWN,
                   DROP_N };
static const char *const drop_names[DROP_N] = {"queue_full",
                                               "retries_exhausted",
                                               "rejected", "shutdown"};

struct mesh__exporter {
  mesh_t *m;
  struct mesh__tracer *t;
  char *name, *url;
  int64_t timeout_ms, max_batch, max_delay_ms, qcap;
  int64_t backoff_initial_ms, backoff_max_ms, max_attempts;
  mesh__encode_fn encode;
  struct curl_slist *headers;
  mesh__curlm_t *cm;

  /* the queue: any thread */
  pthread_mutex_t mu;
  struct mesh_span **q;
  size_t qhead, qlen;
  _Atomic bool flush_posted;

  /* loop thread only */
  CURL *easy;
  char *body;
  size_t body_len;
  struct mesh_span **batch;
  size_t nbatch;
  int64_t attempt;
  int64_t retry_after_ms;
  bool waiting_retry;
  int64_t delay_timer, retry_timer;
  bool shutting_down;
  char errbuf[CURL_ERROR_SIZE];

  mesh__metric_t *exported, *dropped[DROP_N], *queue_gauge;
};

/* ---- metrics ---------------------------------------------------------------- */

static double queue_len(void *user) {
  mesh__exporter_t *e = user;
  pthread_mutex_lock(&e->mu);
  size_t n = e->qlen;
  pthread_mutex_unlock(&e->mu);
  return (double)n;
}

static void register_metrics(mesh__exporter_t *e) {
  char labels[96];
  snprintf(labels, sizeof labels, "exporter=%s", e->name);
  e->exported = mesh__counter(e->m, "mesh_trace_export_spans_total",
                              "Spans delivered to a collector.", labels);
  for (int i = 0; i < DROP_N; i++) {
    snprintf(labels, sizeof labels, "exporter=%s,reason=%s", e->name,
             drop_names[i]);
    e->dropped[i] = mesh__counter(e->m, "mesh_trace_export_dropped_spans_total",
                                  "Spans dropped before delivery, by reason.",
                                  labels);
  }
  snprintf(labels, sizeof labels, "exporter=%s", e->name);
  e->queue_gauge =
      mesh__gauge_func(e->m, "mesh_trace_export_queue_spans",
                       "Spans waiting in the export queue.", labels,
                       queue_len, e);
}

static void count_request(mesh__exporter_t *e, long code) {
  char labels[96];
  if (code > 0)
    snprintf(labels, sizeof labels, "exporter=%s,code=%ld", e->name, code);
  else
    snprintf(labels, sizeof labels, "exporter=%s,code=error", e->name);
  mesh__counter_add(mesh__counter(e->m, "mesh_trace_export_requests_total",
                                  "Export requests by HTTP status.", labels),
                    1);
}

/* ---- the queue ----------------------------------------------------------- */

static void post_flush(void *user);

void mesh__exporter_push(mesh__exporter_t *e, struct mesh_span *r) {
  if (!e || !r)
    return;
  pthread_mutex_lock(&e->mu);
  if ((int64_t)e->qlen == e->qcap || e->shutting_down) {
    pthread_mutex_unlock(&e->mu);
    mesh__counter_add(e->dropped[DROP_QUEUE_FULL], 1);
    return;
  }
  mesh__span_rec_ref(r);
  e->q[(e->qhead + e->qlen) % (size_t)e->qcap] = r;
  e->qlen++;
  bool full = (int64_t)e->qlen >= e->max_batch;
  pthread_mutex_unlock(&e->mu);
  /* One wake-up per full batch, not one per span. */
  if (full && !atomic_exchange(&e->flush_posted, true))
    if (mesh__loop_post(e->m->loop, post_flush, e) != MESH_OK)
      atomic_store(&e->flush_posted, false);
}

static size_t take_batch(mesh__exporter_t *e, struct mesh_span **out) {
  pthread_mutex_lock(&e->mu);
  size_t n = e->qlen < (size_t)e->max_batch ? e->qlen : (size_t)e->max_batch;
  for (size_t i = 0; i < n; i++) {
    out[i] = e->q[e->qhead];
    e->qhead = (e->qhead + 1) % (size_t)e->qcap;
  }
  e->qlen -= n;
  pthread_mutex_unlock(&e->mu);
  return n;
}

static void drop_batch(mesh__exporter_t *e, int reason) {
  mesh__counter_add(e->dropped[reason], e->nbatch);
  if (e->nbatch)
    mesh__log(e->m, MESH_LOG_WARN, "trace_export_drop",
              "exporter=%s spans=%zu reason=%s", e->name, e->nbatch,
              drop_names[reason]);
  for (size_t i = 0; i < e->nbatch; i++)
    mesh__span_rec_unref(e->batch[i]);
  e->nbatch = 0;
  free(e->body);
  e->body = NULL;
}

static void on_done(CURL *c, CURLcode res, void *user);

/* ---- one request ------------------------------------------------------------ */

static size_t discard(char *p, size_t sz, size_t n, void *user) {
  (void)p;
  (void)user;
  return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *user) {
  mesh__exporter_t *e = user;
  size_t len = sz * n;
  static const char key[] = "retry-after:";
  if (len > sizeof key - 1 && strncasecmp(p, key, sizeof key - 1) == 0) {
    long secs = strtol(p + sizeof key - 1, NULL, 10); /* delta-seconds */
    if (secs > 0 && secs < 3600)
      e->retry_after_ms = secs * 1000;
  }
  return len;
}

static int send_batch(mesh__exporter_t *e, int64_t timeout_ms) {
  CURL *c = curl_easy_init();
  if (!c)
    return MESH_ERR_NOMEM;
  e->retry_after_ms = 0;
  e->errbuf[0] = '\0';
  curl_easy_setopt(c, CURLOPT_URL, e->url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, e->body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->body_len);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, e);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, e->errbuf);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  int rc = mesh__curlm_add(e->cm, c, on_done, e);
  if (rc != MESH_OK) {
    curl_easy_cleanup(c);
    return rc;
  }
  e->easy = c;
  return MESH_OK;
}

static void start_batch(mesh__exporter_t *e, int64_t timeout_ms) {
  if (e->easy || e->waiting_retry)
    return;
  e->nbatch = take_batch(e, e->batch);
  if (!e->nbatch)
    return;
  e->attempt = 0;
  if (e->encode(e->t, e->batch, e->nbatch, &e->body, &e->body_len) !=
          MESH_OK ||
      send_batch(e, timeout_ms) != MESH_OK)
    drop_batch(e, DROP_REJECTED);
}

static void on_retry(void *user) {
  mesh__exporter_t *e = user;
  e->retry_timer = 0;
  e->waiting_retry = false;
  if (send_batch(e, e->timeout_ms) != MESH_OK)
    drop_batch(e, DROP_RETRIES);
}

static int64_t backoff_ms(const mesh__exporter_t *e) {
  if (e->retry_after_ms > 0)
    return e->retry_after_ms < e->backoff_max_ms ? e->retry_after_ms
                                                 : e->backoff_max_ms;
  double d = (double)e->backoff_initial_ms;
  for (int64_t i = 1; i < e->attempt; i++)
    d *= 1.5; /* OpenTelemetry's retry multiplier */
  return d < (double)e->backoff_max_ms ? (int64_t)d : e->backoff_max_ms;
}

static void finished(mesh__exporter_t *e, CURLcode res, long code) {
  count_request(e, res == CURLE_OK ? code : 0);
  if (res == CURLE_OK && code >= 200 && code < 300) {
    mesh__counter_add(e->exported, e->nbatch);
    for (size_t i = 0; i < e->nbatch; i++)
      mesh__span_rec_unref(e->batch[i]);
    e->nbatch = 0;
    free(e->body);
    e->body = NULL;
    return;
  }
  bool retryable = res != CURLE_OK || code == 429 || code >= 500;
  if (!retryable) {
    mesh__log(e->m, MESH_LOG_WARN, "trace_export_rejected",
              "exporter=%s code=%ld", e->name, code);
    drop_batch(e, DROP_REJECTED);
    return;
  }
  e->attempt++;
  if (e->shutting_down) {
    drop_batch(e, DROP_SHUTDOWN);
    return;
  }
  if (e->attempt >= e->max_attempts) {
    drop_batch(e, DROP_RETRIES);
    return;
  }
  int64_t wait = backoff_ms(e);
  mesh__log(e->m, MESH_LOG_DEBUG, "trace_export_retry",
            "exporter=%s code=%ld error=\"%s\" attempt=%lld backoff_ms=%lld",
            e->name, code, res == CURLE_OK ? "" : curl_easy_strerror(res),
            (long long)e->attempt, (long long)wait);
  int64_t id = mesh__loop_timer(e->m->loop, wait, on_retry, e);
  if (id < 0) {
    drop_batch(e, DROP_RETRIES);
    return;
  }
  e->retry_timer = id;
  e->waiting_retry = true;
}

static void on_done(CURL *c, CURLcode res, void *user) {
  mesh__exporter_t *e = user;
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if (c != e->easy)
    return; /* not ours: only one request is ever in flight */
  e->easy = NULL;
  finished(e, res, code);
  /* A full batch waiting: send it now rather than at the next tick. */
  if (!e->easy && !e->waiting_retry && !e->shutting_down) {
    pthread_mutex_lock(&e->mu);
    bool more = (int64_t)e->qlen >= e->max_batch;
    pthread_mutex_unlock(&e->mu);
    if (more)
      start_batch(e, e->timeout_ms);
  }
}

/* ---- scheduling ------------------------------------------------------------ */

static void post_flush(void *user) {
  mesh__exporter_t *e = user;
  atomic_store(&e->flush_posted, false);
  if (!e->shutting_down)
    start_batch(e, e->timeout_ms);
}

static void on_delay(void *user) {
  mesh__exporter_t *e = user;
  e->delay_timer = 0;
  start_batch(e, e->timeout_ms);
  int64_t id = mesh__loop_timer(e->m->loop, e->max_delay_ms, on_delay, e);
  e->delay_timer = id > 0 ? id : 0;
}

/* ---- life cycle ------------------------------------------------------------- */

static struct curl_slist *build_headers(const mesh__export_cfg_t *cfg) {
  char line[1024];
  snprintf(line, sizeof line, "Content-Type: %s", cfg->content_type);
  struct curl_slist *h = curl_slist_append(NULL, line);
  /* No "Expect: 100-continue" round trip for large batches. */
  struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
  if (!h2) {
    curl_slist_free_all(h);
    return NULL;
  }
  h = h2;
  const cJSON *it;
  cJSON_ArrayForEach(it, cfg->headers) {
    if (!cJSON_IsString(it))
      continue;
    snprintf(line, sizeof line, "%s: %s", it->string, it->valuestring);
    struct curl_slist *n = curl_slist_append(h, line);
    if (!n) {
      curl_slist_free_all(h);
      return NULL;
    }
    h = n;
  }
  return h;
}

int mesh__exporter_new(mesh_t *m, struct mesh__tracer *t,
                       const mesh__export_cfg_t *cfg, mesh__exporter_t **out,
                       mesh_status_t *st) {
  mesh__exporter_t *e = calloc(1, sizeof *e);
  if (!e)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  e->m = m;
  e->t = t;
  e->name = strdup(cfg->name);
  e->url = strdup(cfg->url);
  e->timeout_ms = cfg->timeout_ms;
  e->max_batch = cfg->max_batch;
  e->max_delay_ms = cfg->max_delay_ms;
  e->qcap = cfg->queue_size;
  e->backoff_initial_ms = cfg->backoff_initial_ms;
  e->backoff_max_ms = cfg->backoff_max_ms;
  e->max_attempts = cfg->max_attempts;
  e->encode = cfg->encode;
  pthread_mutex_init(&e->mu, NULL);
  e->q = calloc((size_t)e->qcap, sizeof *e->q);
  e->batch = calloc((size_t)e->max_batch, sizeof *e->batch);
  e->headers = build_headers(cfg);
  e->cm = mesh__curlm_new(m); /* holds libcurl's global state too */
  if (!e->name || !e->url || !e->q || !e->batch || !e->headers || !e->cm) {
    mesh__exporter_free(e);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  register_metrics(e);
  /* init runs before the worker starts: arming a timer is allowed. */
  int64_t id = mesh__loop_timer(m->loop, e->max_delay_ms, on_delay, e);
  if (id < 0) {
    mesh__exporter_free(e);
    return mesh__fail(st, (int)id, "cannot arm the export timer");
  }
  e->delay_timer = id;
  *out = e;
  return MESH_OK;
}

void mesh__exporter_free(mesh__exporter_t *e) {
  if (!e)
    return;
  if (e->cm) {
    pthread_mutex_lock(&e->mu);
    e->shutting_down = true;
    pthread_mutex_unlock(&e->mu);
    /* The worker is stopped: nobody else touches the loop now, and the
     * transfers below run on this thread (mesh__curlm_drive). */
    mesh__loop_timer_cancel(e->m->loop, e->delay_timer);
    mesh__loop_timer_cancel(e->m->loop, e->retry_timer);
    int64_t budget = e->timeout_ms < SHUTDOWN_CAP_MS ? e->timeout_ms
                                                     : SHUTDOWN_CAP_MS;
    int64_t deadline = mesh__now_ms() + budget;
    if (e->waiting_retry) { /* one last try, now */
      e->waiting_retry = false;
      if (send_batch(e, budget) != MESH_OK)
        drop_batch(e, DROP_SHUTDOWN);
    }
    mesh__curlm_drive(e->cm, deadline);
    while (!e->easy && mesh__now_ms() < deadline) {
      start_batch(e, deadline - mesh__now_ms());
      if (!e->easy)
        break;
      mesh__curlm_drive(e->cm, deadline);
    }
    if (e->easy) {
      mesh__curlm_remove(e->cm, e->easy);
      curl_easy_cleanup(e->easy);
      e->easy = NULL;
    }
    drop_batch(e, DROP_SHUTDOWN);
    mesh__curlm_free(e->cm);
  }
  if (e->q) {
    size_t left = 0;
    while (e->qlen) {
      mesh__span_rec_unref(e->q[e->qhead]);
      e->qhead = (e->qhead + 1) % (size_t)e->qcap;
      e->qlen--;
      left++;
    }
    mesh__counter_add(e->dropped[DROP_SHUTDOWN], left);
  }
  mesh__gauge_func_detach(e->queue_gauge);
  curl_slist_free_all(e->headers);
  pthread_mutex_destroy(&e->mu);
  free(e->q);
  free(e->batch);
  free(e->body);
  free(e->name);
  free(e->url);
  free(e);
}

static void sink_push(void *ctx, struct mesh_span *r) {
  mesh__exporter_push(ctx, r);
}
static void sink_free(void *ctx) { mesh__exporter_free(ctx); }

mesh__span_sink_t mesh__exporter_sink(mesh__exporter_t *e) {
  mesh__span_sink_t s = {sink_push, sink_free, e};
  return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The client side: worker threads that call the service "work" through
 * the call API (mesh_call_do: the library picks the subset and the
 * endpoint, pools connections and retries; we speak HTTP/1.1 over the
 * connection it hands us), and the intruder, a second context whose SVID
 * the backends' policy does not allow. */
#include "demo.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define PACE_MS 8 /* pause between two calls of one worker */

typedef struct try_ctx {
  int status;
  char body[64];
} try_ctx_t;

static int set_header(const char *key, const char *value, void *user) {
  return mesh_http_request_add_header(user, key, value) == MESH_OK ? 0 : 1;
}

/* One try: GET /work over the call's connection, with the try's trace
 * context so the backend's span joins the trace. */
static int try_once(mesh_call_t *call, mesh_conn_t *conn, int *status,
                    void *user) {
  try_ctx_t *t = user;
  mesh_http_request_t *req = mesh_http_request_new("GET", "/work");
  if (!req)
    return MESH_ERR_NOMEM;
  mesh_trace_ctx_t ctx;
  if (mesh_call_trace_context(call, &ctx) == MESH_OK)
    mesh_trace_inject(&ctx, MESH_PROPAGATE_TRACECONTEXT, set_header, req);
  mesh_http_response_t *resp = NULL;
  int keep = 0;
  mesh_status_t st;
  int rc = mesh_http_exchange(conn, DEMO_SERVICE, req, &resp, &keep, &st);
  mesh_http_request_free(req);
  if (rc == MESH_ERR_HTTP_PARSE || rc == MESH_ERR_HTTP_TOO_LARGE)
    return MESH_CALL_PROTOCOL_ERROR;
  if (rc != MESH_OK)
    return rc; /* reset, EOF, timeout: the library maps and retries them */
  t->status = mesh_http_response_status(resp);
  *status = t->status;
  size_t len = 0;
  const char *body = mesh_http_response_body(resp, &len);
  snprintf(t->body, sizeof t->body, "%.*s", (int)len, body ? body : "");
  for (size_t n = strlen(t->body); n > 0 && t->body[n - 1] <= ' '; n--)
    t->body[n - 1] = '\0';
  mesh_http_response_free(resp);
  return keep ? MESH_CALL_OK : MESH_CALL_OK_CLOSE;
}

typedef struct worker {
  demo_t *d;
  mesh_t *m;
} worker_t;

static worker_t workers[64];

static void *worker_main(void *arg) {
  worker_t *w = arg;
  demo_t *d = w->d;
  while (!atomic_load(&d->stop)) {
    try_ctx_t t = {0, ""};
    mesh_status_t st;
    int rc = mesh_call_do(w->m, DEMO_SERVICE, NULL, try_once, &t, &st);
    atomic_fetch_add(&d->calls, 1);
    if (rc != MESH_OK || t.status != 200) {
      atomic_fetch_add(&d->failed, 1);
      pthread_mutex_lock(&d->err_mu);
      if (rc != MESH_OK)
        snprintf(d->last_error, sizeof d->last_error, "%s: %s",
                 mesh_code_name(rc), st.message);
      else
        snprintf(d->last_error, sizeof d->last_error, "status %d: %s",
                 t.status, t.body);
      pthread_mutex_unlock(&d->err_mu);
    }
    nanosleep(&(struct timespec){0, PACE_MS * 1000000L}, NULL);
  }
  return NULL;
}

int demo_client_start(demo_t *d, mesh_t *m, pthread_t *threads) {
  int n = d->workers < 64 ? d->workers : 64;
  for (int i = 0; i < n; i++) {
    workers[i] = (worker_t){d, m};
    if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0)
      return i;
  }
  return n;
}

/* The backends enforce the policy at accept, in the handshake: the
 * intruder's dial fails with a TLS alert (bad_certificate).  A policy that
 * needs the request (method, path) denies per request instead: 403. */
static bool refused_at_connection(int rc, const mesh_status_t *st) {
  return rc == MESH_ERR_DENIED ||
         (rc == MESH_ERR_TLS && strstr(st->message, "bad_certificate"));
}

void demo_intruder(demo_t *d, mesh_t *m, int n) {
  /* One try per call: a retry on another backend would only be denied
   * again, and one denial per call keeps the counts comparable. */
  mesh_call_opts_t *o = mesh_call_opts_new();
  mesh_call_opts_set_max_retries(o, 0);
  for (int i = 0; i < n; i++) {
    try_ctx_t t = {0, ""};
    mesh_status_t st;
    int rc = mesh_call_do(m, DEMO_SERVICE, o, try_once, &t, &st);
    d->intruder_attempts++;
    if (rc == MESH_OK && t.status == 403) {
      d->intruder_denied++;
      snprintf(d->intruder_reason, sizeof d->intruder_reason, "%d %s",
               t.status, t.body);
    } else if (rc == MESH_OK && t.status >= 200 && t.status < 300) {
      d->intruder_allowed++;
      snprintf(d->intruder_reason, sizeof d->intruder_reason,
               "allowed: %d %s", t.status, t.body);
    } else if (refused_at_connection(rc, &st)) {
      d->intruder_denied++;
      snprintf(d->intruder_reason, sizeof d->intruder_reason, "%s",
               rc == MESH_ERR_TLS ? "TLS alert bad_certificate in the handshake"
                                  : "MESH_ERR_DENIED");
    } else {
      snprintf(d->intruder_reason, sizeof d->intruder_reason, "%s: %s",
               rc ? mesh_code_name(rc) : "status", rc ? st.message : t.body);
    }
  }
  mesh_call_opts_free(o);
}

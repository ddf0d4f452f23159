/* SPDX-License-Identifier: Apache-2.0 */
/* tls instrumentation and accept-time authorization, through the public
 * API against the library's own server on loopback:
 *   - the reserved metrics (handshakes full/resumed, failures by reason,
 *     duration, connections by service) read back from mesh_metrics_text()
 *     and checked by promtool;
 *   - the "mesh.dial" / "mesh.handshake" / "mesh.accept" spans, parented
 *     by mesh_dial_opts_set_trace_parent();
 *   - connection-level policies (principal, IP block, port, ALLOW-only,
 *     dry run, a reload seen on resumption, PERMISSIVE plaintext);
 *   - mesh_svid_reloads_total. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_tls_peer.h"
#include "tls/tls.h"

#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))
#define CLIENT2_ID "spiffe://example.org/ns/default/sa/client2"

static void certs(void) {
  static bool done;
  tp_certs();
  if (done)
    return;
  done = true;
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "expired", -7200, -3600, 0));
  CU_ASSERT_FATAL(th_svid(TD, CLIENT2_ID, "client2", 0, 0, 0));
}

/* ---- reading /metrics ------------------------------------------------------ */

static char *metrics(mesh_t *m) {
  size_t need = 0;
  int rc = mesh_metrics_text(m, NULL, 0, &need);
  CU_ASSERT_EQUAL(rc, MESH_ERR_BUFFER);
  char *buf = malloc(need + 1024);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  rc = mesh_metrics_text(m, buf, need + 1024, NULL);
  CU_ASSERT(rc >= 0);
  return buf;
}

/* Value of the series whose line starts with key (name{labels}); NaN when
 * absent. */
static double series(const char *text, const char *key) {
  size_t n = strlen(key);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, key, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
    const char *eol = strchr(p, '\n');
    p = eol ? eol + 1 : NULL;
  }
  return NAN;
}

static double value(mesh_t *m, const char *key) {
  char *t = metrics(m);
  double v = series(t, key);
  free(t);
  return v;
}

/* Wait until a series reads want: bounded by that, with a cap of at
 * least TH_CAP_MS (a loaded machine only takes longer). */
static bool value_becomes(mesh_t *m, const char *key, double want, int ms) {
  int64_t end = th_now_ms() + (ms > TH_CAP_MS ? ms : TH_CAP_MS);
  while (th_now_ms() < end) {
    if (value(m, key) == want)
      return true;
    usleep(10000);
  }
  fprintf(stderr, "\n  %s is %g, want %g\n", key, value(m, key), want);
  return false;
}

#define SERIES_EQ(text, key, want)                                            \
  do {                                                                        \
    double v_ = series((text), (key));                                        \
    if (v_ != (want))                                                         \
      fprintf(stderr, "\n  %s = %g, want %g\n", (key), v_, (double)(want));   \
    CU_ASSERT(v_ == (want));                                                  \
  } while (0)

static void promtool_ok(const char *text, const char *name) {
  if (!th_require("promtool", "prometheus"))
    return;
  const char *path = th_path(name);
  CU_ASSERT_FATAL(th_write(path, text));
  char cmd[512];
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
  int rc = th_sh(cmd);
  if (rc != 0)
    fprintf(stderr, "promtool rejected:\n%s\n", text);
  CU_ASSERT_EQUAL(rc, 0);
}

/* ---- spans ------------------------------------------------------------------- */

#define MAX_SPANS 32

typedef struct cap_span {
  char name[32];
  int kind;
  int status;
  mesh_trace_ctx_t ctx;
  char peer_id[256];
  char error[64];
  char policy[64];
  char addr[64];
} cap_span_t;

typedef struct spans {
  pthread_mutex_t mu;
  int n;
  cap_span_t v[MAX_SPANS];
} spans_t;

static void attr(const mesh_span_t *sp, const char *key, char *buf,
                 size_t len) {
  if (mesh_span_attr_text(sp, key, buf, len) < 0)
    buf[0] = '\0';
}

static void on_end(const mesh_span_t *sp, void *user) {
  spans_t *c = user;
  pthread_mutex_lock(&c->mu);
  if (c->n < MAX_SPANS) {
    cap_span_t *s = &c->v[c->n++];
    snprintf(s->name, sizeof s->name, "%s", mesh_span_name(sp));
    s->kind = mesh_span_kind(sp);
    s->status = mesh_span_status(sp, NULL);
    mesh_span_context(sp, &s->ctx);
    attr(sp, "mesh.peer.spiffe_id", s->peer_id, sizeof s->peer_id);
    attr(sp, "error.type", s->error, sizeof s->error);
    attr(sp, "mesh.authz.policy", s->policy, sizeof s->policy);
    attr(sp, s->kind == MESH_SPAN_SERVER ? "client.address" : "server.address",
         s->addr, sizeof s->addr);
  }
  pthread_mutex_unlock(&c->mu);
}

/* The last captured span called name, or NULL. */
static const cap_span_t *find(spans_t *c, const char *name) {
  const cap_span_t *r = NULL;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->v[i].name, name) == 0)
      r = &c->v[i];
  pthread_mutex_unlock(&c->mu);
  return r;
}

static int count(spans_t *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->n;
  pthread_mutex_unlock(&c->mu);
  return n;
}

static const cap_span_t *wait_span(spans_t *c, const char *name, int ms) {
  for (int i = 0; i <= ms / 10; i++) {
    const cap_span_t *s = find(c, name);
    if (s)
      return s;
    usleep(10000);
  }
  return NULL;
}

static void hook(mesh_t *m, spans_t *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  CU_ASSERT_EQUAL(mesh_set_span_hooks(m, NULL, on_end, c), MESH_OK);
}

static void unhook(mesh_t *m, spans_t *c) {
  mesh_set_span_hooks(m, NULL, NULL, NULL);
  pthread_mutex_destroy(&c->mu);
}

static mesh_trace_ctx_t parent_ctx(bool sampled) {
  mesh_trace_ctx_t p;
  memset(&p, 0, sizeof p);
  for (int i = 0; i < 16; i++)
    p.trace_id[i] = (uint8_t)(0x10 + i);
  for (int i = 0; i < 8; i++)
    p.span_id[i] = (uint8_t)(0xb0 + i);
  p.flags = sampled ? MESH_TRACE_FLAG_SAMPLED : 0;
  p.sampling = sampled ? MESH_SAMPLING_ACCEPT : MESH_SAMPLING_DENY;
  p.has_ids = 1;
  snprintf(p.tracestate, sizeof p.tracestate, "vendor=abc");
  return p;
}

/* ---- the reason label --------------------------------------------------------- */

static void test_mesh__tls_reason(void) {
  static const struct {
    int code;
    const char *want;
  } cases[] = {
      {MESH_ERR_CERT_EXPIRED, "cert_expired"},
      {MESH_ERR_DENIED, "denied"},
      {MESH_ERR_TIMEOUT, "timeout"},
      {MESH_ERR_PLAINTEXT_PEER, "plaintext_peer"},
      {-9999, "unknown"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[48];
    mesh__tls_reason(cases[i].code, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, cases[i].want);
  }
  char tiny[4];
  mesh__tls_reason(MESH_ERR_CERT_EXPIRED, tiny, sizeof tiny);
  CU_ASSERT_STRING_EQUAL(tiny, "cer");
}

/* ---- metrics after full, resumed and failing handshakes --------------------- */

static void test_mesh_handshakes_total(void) {
  certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *em = tp_mesh("expired", TD, NULL); /* loads: initial load */
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && em != NULL && cm != NULL);
  tp_server_t srv, exp;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  CU_ASSERT_FATAL(tp_server_start(&exp, em, NULL, TP_ONESHOT));
  mesh_status_t st;
  int resumed[3] = {-1, -1, -1};
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "hi", &st, NULL, 0,
                                 &resumed[i]),
                    MESH_OK);
  CU_ASSERT(resumed[0] == 0 && resumed[1] == 1 && resumed[2] == 1);
  CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(exp.port), "hi", &st, NULL, 0,
                               NULL),
                  MESH_ERR_CERT_EXPIRED);
  CU_ASSERT_FATAL(tp_server_wait(&srv, 3, 5000));
  CU_ASSERT_FATAL(tp_server_wait(&exp, 1, 5000));
  tp_server_stop(&srv);
  tp_server_stop(&exp);

  char *ct = metrics(cm);
  double sum;
  SERIES_EQ(ct, "mesh_handshakes_total{direction=\"client\",resumed=\"false\"}",
            1);
  SERIES_EQ(ct, "mesh_handshakes_total{direction=\"client\",resumed=\"true\"}",
            2);
  SERIES_EQ(ct, "mesh_handshakes_total{direction=\"server\",resumed=\"false\"}",
            0);
  SERIES_EQ(ct,
            "mesh_handshake_failures_total{direction=\"client\",reason=\"cert_"
            "expired\"}",
            1);
  SERIES_EQ(ct, "mesh_handshake_duration_seconds_count{direction=\"client\"}",
            3);
  sum = series(ct, "mesh_handshake_duration_seconds_sum{direction=\"client\"}");
  CU_ASSERT(sum > 0 && sum < 10);
  /* dials to host:port: service="", all closed again */
  SERIES_EQ(ct, "mesh_connections_active{service=\"\"}", 0);
  promtool_ok(ct, "client-metrics.txt");
  free(ct);

  char *stext = metrics(sm);
  SERIES_EQ(stext,
            "mesh_handshakes_total{direction=\"server\",resumed=\"false\"}", 1);
  SERIES_EQ(stext, "mesh_handshakes_total{direction=\"server\",resumed=\"true\"}",
            2);
  SERIES_EQ(stext, "mesh_handshake_duration_seconds_count{direction=\"server\"}",
            3);
  /* timed from the handshake's start (three loopback handshakes) */
  sum = series(stext, "mesh_handshake_duration_seconds_sum{direction="
                             "\"server\"}");
  CU_ASSERT(sum > 0 && sum < 10);
  SERIES_EQ(stext, "mesh_connections_active{service=\"inbound\"}", 0);
  promtool_ok(stext, "server-metrics.txt");
  free(stext);

  /* The expired server hears our certificate_expired alert: a TLS failure
   * on its side, and it counted no handshake. */
  char *et = metrics(em);
  SERIES_EQ(et, "mesh_handshake_failures_total{direction=\"server\",reason="
                "\"tls\"}",
            1);
  SERIES_EQ(et, "mesh_handshakes_total{direction=\"server\",resumed=\"false\"}",
            0);
  free(et);
  mesh_free(cm);
  mesh_free(sm);
  mesh_free(em);
}

/* A refused TCP connect is not a handshake failure (nothing was
 * negotiated); the dial span still reports it. */
static void test_mesh_handshake_failures_connect(void) {
  certs();
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(cm != NULL);
  spans_t cap;
  hook(cm, &cap);
  mesh_status_t st;
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_dial(cm, tp_addr(th_free_port()), NULL, &c, &st),
                  MESH_ERR_CONNECT);
  char *t = metrics(cm);
  CU_ASSERT_PTR_NULL(strstr(t, "mesh_handshake_failures_total{"));
  free(t);
  const cap_span_t *d = find(&cap, "mesh.dial");
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_EQUAL(d->status, MESH_SPAN_STATUS_ERROR);
  CU_ASSERT_STRING_EQUAL(d->error, "MESH_ERR_CONNECT");
  CU_ASSERT_PTR_NULL(find(&cap, "mesh.handshake"));
  unhook(cm, &cap);
  mesh_free(cm);
}

/* ---- mesh_connections_active while open ------------------------------------ */

static void test_mesh_connections_active(void) {
  certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL);
  /* one: answers once and closes; held: keeps its connection open */
  tp_server_t one, held;
  CU_ASSERT_FATAL(tp_server_start(&one, sm, NULL, TP_ONESHOT));
  CU_ASSERT_FATAL(tp_server_start(&held, sm, NULL, TP_ECHO));
  char extra[512];
  snprintf(extra, sizeof extra,
           "\"services\":{\"echo\":{\"discovery\":{\"type\":\"static\","
           "\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":%d}]}}}",
           one.port);
  mesh_t *cm = tp_mesh("client", TD, extra);
  CU_ASSERT_FATAL(cm != NULL);
  mesh_status_t st;
  const char *targets[3] = {"echo", "echo", tp_addr(held.port)};
  mesh_conn_t *c[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, targets[i], NULL, &c[i], &st),
                          MESH_OK);
    /* a round trip: the server has finished its side of the handshake */
    char buf[8];
    mesh_conn_set_timeouts(c[i], 5000, 5000);
    CU_ASSERT_EQUAL(mesh_conn_write_all(c[i], "x", 1), MESH_OK);
    CU_ASSERT_EQUAL(mesh_conn_read(c[i], buf, sizeof buf), 1);
  }
  char *t = metrics(cm);
  SERIES_EQ(t, "mesh_connections_active{service=\"echo\"}", 2);
  SERIES_EQ(t, "mesh_connections_active{service=\"\"}", 1);
  free(t);
  /* the one-shot server closed its two, the other holds one */
  CU_ASSERT(value_becomes(sm, "mesh_connections_active{service=\"inbound\"}",
                          1, 2000));
  for (int i = 0; i < 3; i++)
    mesh_conn_close(c[i]);
  t = metrics(cm);
  SERIES_EQ(t, "mesh_connections_active{service=\"echo\"}", 0);
  SERIES_EQ(t, "mesh_connections_active{service=\"\"}", 0);
  free(t);
  CU_ASSERT(value_becomes(sm, "mesh_connections_active{service=\"inbound\"}",
                          0, 2000));
  tp_server_stop(&one);
  tp_server_stop(&held);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- spans --------------------------------------------------------------------- */

static void test_mesh_dial_opts_set_trace_parent(void) {
  certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && cm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  spans_t cs, ss;
  hook(cm, &cs);
  hook(sm, &ss);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(NULL, NULL),
                  MESH_ERR_INVALID_ARG);
  mesh_trace_ctx_t p = parent_ctx(true);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(o, &p), MESH_OK);
  memset(&p, 0, sizeof p); /* copied */
  p = parent_ctx(true);
  mesh_status_t st;
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), o, &c, &st), MESH_OK);
  mesh_conn_close(c);

  const cap_span_t *d = find(&cs, "mesh.dial");
  const cap_span_t *h = find(&cs, "mesh.handshake");
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_EQUAL(d->kind, MESH_SPAN_CLIENT);
  CU_ASSERT_EQUAL(memcmp(d->ctx.trace_id, p.trace_id, 16), 0);
  CU_ASSERT_EQUAL(memcmp(d->ctx.parent_span_id, p.span_id, 8), 0);
  CU_ASSERT_STRING_EQUAL(d->ctx.tracestate, "vendor=abc");
  CU_ASSERT_STRING_EQUAL(d->addr, "127.0.0.1");
  CU_ASSERT_STRING_EQUAL(d->peer_id, SERVER_ID);
  CU_ASSERT_NOT_EQUAL(d->status, MESH_SPAN_STATUS_ERROR);
  CU_ASSERT_EQUAL(h->kind, MESH_SPAN_INTERNAL);
  CU_ASSERT_EQUAL(memcmp(h->ctx.trace_id, p.trace_id, 16), 0);
  CU_ASSERT_EQUAL(memcmp(h->ctx.parent_span_id, d->ctx.span_id, 8), 0);
  CU_ASSERT_STRING_EQUAL(h->peer_id, SERVER_ID);

  /* the server: a root SERVER span per accepted connection, its handshake
   * under it, the client's SPIFFE ID on both */
  const cap_span_t *a = wait_span(&ss, "mesh.accept", 3000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  h = find(&ss, "mesh.handshake");
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_EQUAL(a->kind, MESH_SPAN_SERVER);
  CU_ASSERT_STRING_EQUAL(a->peer_id, CLIENT_ID);
  CU_ASSERT_STRING_EQUAL(a->addr, "127.0.0.1");
  CU_ASSERT(a->ctx.parent_span_id[0] == 0 &&
            memcmp(a->ctx.parent_span_id, a->ctx.parent_span_id + 1, 7) == 0);
  CU_ASSERT_EQUAL(memcmp(h->ctx.parent_span_id, a->ctx.span_id, 8), 0);
  CU_ASSERT_STRING_EQUAL(h->peer_id, CLIENT_ID);

  /* an unsampled parent: nothing recorded on our side */
  int before = count(&cs);
  p = parent_ctx(false);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(o, &p), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), o, &c, &st), MESH_OK);
  mesh_conn_close(c);
  CU_ASSERT_EQUAL(count(&cs), before);

  /* ids all zero: "none", the sampling decision alone is kept */
  mesh_trace_ctx_t z;
  memset(&z, 0, sizeof z);
  z.has_ids = 1;
  z.sampling = MESH_SAMPLING_ACCEPT;
  z.flags = MESH_TRACE_FLAG_SAMPLED;
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(o, &z), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), o, &c, &st), MESH_OK);
  mesh_conn_close(c);
  d = find(&cs, "mesh.dial");
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_EQUAL(count(&cs), before + 2);
  static const uint8_t zero16[16];
  CU_ASSERT_NOT_EQUAL(memcmp(d->ctx.trace_id, zero16, 16), 0);
  CU_ASSERT_EQUAL(memcmp(d->ctx.parent_span_id, zero16, 8), 0);
  before = count(&cs);

  /* cleared: a dial to host:port is a new trace (root span) */
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(o, NULL), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(srv.port), o, &c, &st), MESH_OK);
  mesh_conn_close(c);
  d = find(&cs, "mesh.dial");
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT(count(&cs) == before + 2);
  CU_ASSERT_NOT_EQUAL(memcmp(d->ctx.trace_id, p.trace_id, 16), 0);
  static const uint8_t zero[8];
  CU_ASSERT_EQUAL(memcmp(d->ctx.parent_span_id, zero, 8), 0);

  /* a failed handshake: both spans in error with the code */
  mesh_t *em = tp_mesh("expired", TD, NULL);
  tp_server_t exp;
  CU_ASSERT_FATAL(em != NULL && tp_server_start(&exp, em, NULL, TP_ONESHOT));
  CU_ASSERT_EQUAL(mesh_dial(cm, tp_addr(exp.port), NULL, &c, &st),
                  MESH_ERR_CERT_EXPIRED);
  d = find(&cs, "mesh.dial");
  h = find(&cs, "mesh.handshake");
  CU_ASSERT_FATAL(d != NULL && h != NULL);
  CU_ASSERT_EQUAL(d->status, MESH_SPAN_STATUS_ERROR);
  CU_ASSERT_STRING_EQUAL(d->error, "MESH_ERR_CERT_EXPIRED");
  CU_ASSERT_EQUAL(h->status, MESH_SPAN_STATUS_ERROR);
  CU_ASSERT_STRING_EQUAL(h->error, "MESH_ERR_CERT_EXPIRED");
  tp_server_stop(&exp);
  mesh_free(em);

  mesh_dial_opts_free(o);
  tp_server_stop(&srv);
  unhook(cm, &cs);
  unhook(sm, &ss);
  mesh_free(cm);
  mesh_free(sm);
}

/* A non-blocking dial keeps its spans in the connection: the parent's
 * storage (the options) may be gone before the handshake ends. */
static void test_mesh_dial_nonblocking_spans(void) {
  certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && cm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  spans_t cs;
  hook(cm, &cs);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_trace_ctx_t p = parent_ctx(true);
  mesh_dial_opts_set_trace_parent(o, &p);
  mesh_dial_opts_set_nonblocking(o, 1);
  mesh_status_t st;
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(cm, tp_addr(srv.port), o, &c, &st);
  mesh_dial_opts_free(o); /* the connection must not borrow from it */
  for (int i = 0; i < 500 && (rc == MESH_ERR_WANT_READ ||
                              rc == MESH_ERR_WANT_WRITE);
       i++) {
    usleep(2000);
    rc = mesh_conn_handshake(c, &st);
  }
  CU_ASSERT_EQUAL(rc, MESH_OK);
  const cap_span_t *d = find(&cs, "mesh.dial");
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_EQUAL(memcmp(d->ctx.trace_id, p.trace_id, 16), 0);
  CU_ASSERT_STRING_EQUAL(d->ctx.tracestate, "vendor=abc");
  const cap_span_t *h = find(&cs, "mesh.handshake");
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_STRING_EQUAL(h->ctx.tracestate, "vendor=abc");
  mesh_conn_close(c);

  /* abandoned mid-handshake: spans end (in error), no failure counted */
  o = mesh_dial_opts_new();
  mesh_dial_opts_set_trace_parent(o, &p);
  mesh_dial_opts_set_nonblocking(o, 1);
  int lport;
  int lfd = tp_raw_listen(&lport); /* accepts nothing: stays pending */
  CU_ASSERT_FATAL(lfd >= 0);
  int before = count(&cs);
  rc = mesh_dial(cm, tp_addr(lport), o, &c, &st);
  mesh_dial_opts_free(o);
  CU_ASSERT(rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE);
  mesh_conn_close(c);
  CU_ASSERT_EQUAL(count(&cs), before + 2);
  close(lfd);
  char *t = metrics(cm);
  CU_ASSERT_PTR_NULL(strstr(t, "mesh_handshake_failures_total{"));
  free(t);
  tp_server_stop(&srv);
  unhook(cm, &cs);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- authorization at accept ------------------------------------------------ */

typedef struct az_case {
  const char *what;
  const char *authz;  /* "authz" section; %d = the listener's port */
  const char *client; /* SVID name */
  int server_rc;      /* what mesh_accept returns */
  const char *policy; /* deciding policy of a denial */
} az_case_t;

#define DENY_CLIENT                                                           \
  "{\"name\":\"deny-client\",\"action\":\"DENY\",\"rules\":[{\"from\":[{"   \
  "\"source\":{\"principals\":[\"example.org/ns/default/sa/client\"]}}]}]}"

static const az_case_t az_cases[] = {
    {"DENY principal: denied", "{\"policies\":[" DENY_CLIENT "]}", "client",
     MESH_ERR_DENIED, "deny-client"},
    {"DENY principal: other allowed", "{\"policies\":[" DENY_CLIENT "]}",
     "client2", MESH_OK, NULL},
    {"DENY ipBlock: denied",
     "{\"policies\":[{\"name\":\"deny-lo\",\"action\":\"DENY\",\"rules\":[{"
     "\"from\":[{\"source\":{\"ipBlocks\":[\"127.0.0.0/8\"]}}]}]}]}",
     "client2", MESH_ERR_DENIED, "deny-lo"},
    {"DENY ipBlock: other allowed",
     "{\"policies\":[{\"name\":\"deny-other\",\"action\":\"DENY\",\"rules\":[{"
     "\"from\":[{\"source\":{\"ipBlocks\":[\"127.10.0.0/16\"]}}]}]}]}",
     "client", MESH_OK, NULL},
    {"DENY port: denied",
     "{\"policies\":[{\"name\":\"deny-port\",\"action\":\"DENY\",\"rules\":[{"
     "\"to\":[{\"operation\":{\"ports\":[\"%d\"]}}]}]}]}",
     "client", MESH_ERR_DENIED, "deny-port"},
    {"DENY port: other allowed",
     "{\"policies\":[{\"name\":\"deny-port\",\"action\":\"DENY\",\"rules\":[{"
     "\"to\":[{\"operation\":{\"ports\":[\"1\"]}}]}]}]}",
     "client", MESH_OK, NULL},
    {"ALLOW principal: unmatched denied",
     "{\"policies\":[{\"name\":\"only-client2\",\"rules\":[{\"from\":[{"
     "\"source\":{\"principals\":[\"example.org/ns/default/sa/client2\"]}}]}"
     "]}]}",
     "client", MESH_ERR_DENIED, ""},
    {"ALLOW principal: matched allowed",
     "{\"policies\":[{\"name\":\"only-client2\",\"rules\":[{\"from\":[{"
     "\"source\":{\"principals\":[\"example.org/ns/default/sa/client2\"]}}]}"
     "]}]}",
     "client2", MESH_OK, NULL},
    {"dry run: reported, allowed",
     "{\"dry_run\":true,\"policies\":[" DENY_CLIENT "]}", "client", MESH_OK,
     NULL},
};

/* tmpl with "%d" replaced by port. */
static void subst_port(char *out, size_t len, const char *tmpl, int port) {
  const char *p = strstr(tmpl, "%d");
  if (!p) {
    snprintf(out, len, "%s", tmpl);
    return;
  }
  snprintf(out, len, "%.*s%d%s", (int)(p - tmpl), tmpl, port, p + 2);
}

static void run_az_case(const az_case_t *tc) {
  int port = th_free_port();
  char az[1024], extra[1200], listen[32];
  subst_port(az, sizeof az, tc->authz, port);
  snprintf(extra, sizeof extra, "\"authz\":%s", az);
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  mesh_t *sm = tp_mesh("server", TD, extra);
  mesh_t *cm = tp_mesh(tc->client, TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && cm != NULL);
  spans_t ss;
  hook(sm, &ss);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, listen, TP_ONESHOT));
  mesh_status_t st;
  int rc = tp_echo_once(cm, tp_addr(port), "hi", &st, NULL, 0, NULL);
  CU_ASSERT_FATAL(tp_server_wait(&srv, 1, 5000));
  tp_result_t r = tp_server_result(&srv, 0);
  tp_server_stop(&srv);
  if (r.rc != tc->server_rc)
    fprintf(stderr, "\n  %s: server %s (%s)\n", tc->what,
            mesh_code_name(r.rc), r.msg);
  CU_ASSERT_EQUAL(r.rc, tc->server_rc);
  char *t = metrics(sm);
  double denied = series(t, "mesh_handshake_failures_total{direction=\"server\","
                            "reason=\"denied\"}");
  uint64_t n = 0;
  if (tc->server_rc == MESH_ERR_DENIED) {
    /* refused in the handshake: the client learns why from the alert */
    CU_ASSERT_EQUAL(rc, MESH_ERR_TLS);
    /* the same alert under every backend (mesh__tls_refusal_alert) */
    CONTAINS(st.message, "bad_certificate, 42");
    if (tc->policy[0])
      CONTAINS(r.msg, tc->policy);
    CU_ASSERT(denied == 1);
    CU_ASSERT_EQUAL(mesh_authz_counter(sm, "conn_deny", &n), MESH_OK);
    CU_ASSERT_EQUAL(n, 1);
    const cap_span_t *a = wait_span(&ss, "mesh.accept", 2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->status, MESH_SPAN_STATUS_ERROR);
    CU_ASSERT_STRING_EQUAL(a->error, "MESH_ERR_DENIED");
    CU_ASSERT_STRING_EQUAL(a->policy, tc->policy);
    CU_ASSERT_PTR_NOT_NULL(strstr(a->peer_id, "/sa/client"));
  } else {
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT(isnan(denied));
    CU_ASSERT_EQUAL(mesh_authz_counter(sm, "conn_deny", &n), MESH_OK);
    CU_ASSERT_EQUAL(n, 0);
  }
  if (strstr(tc->what, "dry run")) {
    CU_ASSERT_EQUAL(mesh_authz_counter(sm, "dry_run_deny", &n), MESH_OK);
    CU_ASSERT_EQUAL(n, 1);
    SERIES_EQ(t, "mesh_authz_decisions_total{action=\"dry_run_deny\","
                 "policy=\"deny-client\"}",
              1);
  }
  free(t);
  unhook(sm, &ss);
  mesh_free(cm);
  mesh_free(sm);
}

static void test_mesh__authz_check_conn_at_accept(void) {
  certs();
  for (size_t i = 0; i < sizeof az_cases / sizeof az_cases[0]; i++)
    run_az_case(&az_cases[i]);
}

/* A reload that denies a peer applies to its next connection even when
 * that resumes an earlier session (no certificate is exchanged then). */
static void test_authz_reload_on_resumption(void) {
  certs();
  mesh_t *sm = tp_mesh("server", TD, "\"authz\":{\"policies\":[]}");
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && cm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  mesh_status_t st;
  CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "hi", &st, NULL, 0,
                               NULL),
                  MESH_OK);
  CU_ASSERT_EQUAL_FATAL(
      mesh_authz_reload(sm, "{\"policies\":[" DENY_CLIENT "]}", &st), MESH_OK);
  int resumed = -1;
  CU_ASSERT_NOT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "hi", &st, NULL, 0,
                                   &resumed),
                      MESH_OK);
  CU_ASSERT_FATAL(tp_server_wait(&srv, 2, 5000));
  tp_result_t r = tp_server_result(&srv, 1);
  CU_ASSERT_EQUAL(r.rc, MESH_ERR_DENIED);
  CONTAINS(r.msg, "deny-client");
  CU_ASSERT_EQUAL(resumed, 1); /* the client finished first: no alert yet */
  tp_server_stop(&srv);
  mesh_free(cm);
  mesh_free(sm);
}

/* PERMISSIVE: a plaintext peer has no principal; a policy that wants one
 * closes it at accept, while an mTLS peer gets in. */
static void test_authz_plaintext_peer(void) {
  certs();
  mesh_t *sm = tp_mesh(
      "server", TD,
      "\"inbound\":{\"mode\":\"PERMISSIVE\"},\"authz\":{\"policies\":[{"
      "\"name\":\"mtls-only\",\"rules\":[{\"from\":[{\"source\":{"
      "\"principals\":[\"*\"]}}]}]}]}");
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL && cm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  int fd = tp_raw_connect(srv.port);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_EQUAL(write(fd, "hello\n", 6), 6);
  CU_ASSERT_FATAL(tp_server_wait(&srv, 1, 5000));
  char b[16];
  CU_ASSERT(read(fd, b, sizeof b) <= 0); /* closed, nothing echoed */
  close(fd);
  tp_result_t r = tp_server_result(&srv, 0);
  CU_ASSERT_EQUAL(r.rc, MESH_ERR_DENIED);
  CONTAINS(r.msg, "plaintext peer");
  CONTAINS(r.msg, "no ALLOW policy matched");
  mesh_status_t st;
  CU_ASSERT_EQUAL(tp_echo_once(cm, tp_addr(srv.port), "hi", &st, NULL, 0,
                               NULL),
                  MESH_OK);
  CU_ASSERT_FATAL(tp_server_wait(&srv, 2, 5000));
  CU_ASSERT_EQUAL(tp_server_result(&srv, 1).rc, MESH_OK);
  tp_server_stop(&srv);
  char *t = metrics(sm);
  SERIES_EQ(t, "mesh_handshake_failures_total{direction=\"server\","
               "reason=\"denied\"}",
            1);
  SERIES_EQ(t, "mesh_handshakes_total{direction=\"server\",resumed=\"false\"}",
            1);
  SERIES_EQ(t, "mesh_connections_active{service=\"inbound\"}", 0);
  free(t);
  mesh_free(cm);
  mesh_free(sm);
}

/* ---- identity: rotations counted -------------------------------------------- */

static void test_mesh_svid_reloads_total(void) {
  certs();
  CU_ASSERT_FATAL(th_svid(TD, SERVER_ID, "reload", 0, 0, 0));
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\",\"reload_interval_ms\":0}}",
           th_path("reload.crt"), th_path("reload.key"),
           th_path(TD "-ca.crt"));
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, &st), MESH_OK);
  char *t = metrics(m);
  SERIES_EQ(t, "mesh_svid_reloads_total{outcome=\"ok\"}", 0);
  SERIES_EQ(t, "mesh_svid_reloads_total{outcome=\"error\"}", 0);
  free(t);
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
  CU_ASSERT_FATAL(th_write(th_path("reload.crt"), "not a certificate\n"));
  CU_ASSERT_NOT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
  t = metrics(m);
  SERIES_EQ(t, "mesh_svid_reloads_total{outcome=\"ok\"}", 1);
  SERIES_EQ(t, "mesh_svid_reloads_total{outcome=\"error\"}", 1);
  free(t);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls_observe", NULL, NULL);
  CU_add_test(s, "mesh__tls_reason", test_mesh__tls_reason);
  CU_add_test(s, "mesh_handshakes_total", test_mesh_handshakes_total);
  CU_add_test(s, "mesh_handshake_failures_total on connect",
              test_mesh_handshake_failures_connect);
  CU_add_test(s, "mesh_connections_active", test_mesh_connections_active);
  CU_add_test(s, "mesh_dial_opts_set_trace_parent",
              test_mesh_dial_opts_set_trace_parent);
  CU_add_test(s, "non-blocking dial spans", test_mesh_dial_nonblocking_spans);
  CU_add_test(s, "mesh__authz_check_conn at accept",
              test_mesh__authz_check_conn_at_accept);
  CU_add_test(s, "authz reload on resumption", test_authz_reload_on_resumption);
  CU_add_test(s, "authz plaintext peer", test_authz_plaintext_peer);
  CU_add_test(s, "mesh_svid_reloads_total", test_mesh_svid_reloads_total);
}

int main(void) { return th_run_suites("test_tls_observe", add); }

/* SPDX-License-Identifier: Apache-2.0 */
/* http/h2: HTTP/2 sessions and streams between a libmesh client and a
 * libmesh server over socket pairs, unix sockets and TCP (h2c prior
 * knowledge): headers, bodies beyond every flow-control window, trailers,
 * many threads on one session, MAX_CONCURRENT_STREAMS, RST_STREAM, GOAWAY
 * drain, PING; and mesh_http_serve() answering h2c through the same
 * handler as HTTP/1.1. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "http/h2.h"
#include "http/h2_int.h"
#include "http/http.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define DL(ms) (mesh__now_ms() + (ms))

/* ---- a libmesh HTTP/2 server: one thread per stream ----------------------- */

struct h2srv {
  pthread_t t;
  mesh__h2_session_t *s;
  atomic_int streams, handlers_done;
  int accept_rc;
  bool drain_after_first; /* drain once the first stream arrives */
};

struct job {
  struct h2srv *srv;
  mesh__h2_stream_t *x;
};

static const char *hget(const mesh__h2_hdr_t *h, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(h[i].name, name) == 0)
      return h[i].value;
  return NULL;
}

/* /echo: body back with trailers; /reset: RST_STREAM INTERNAL_ERROR;
 * /big/N: N bytes of 'b'; /hold: wait for the client's END_STREAM, then
 * 204. */
static void *job_main(void *arg) {
  struct job *j = arg;
  const mesh__h2_hdr_t *h;
  size_t n;
  mesh__h2_stream_headers(j->x, DL(5000), &h, &n, NULL);
  const char *path = hget(h, n, ":path");
  path = path ? path : "";
  if (strcmp(path, "/reset") == 0) {
    mesh__h2_stream_reset(j->x, MESH__H2_INTERNAL_ERROR);
  } else if (strcmp(path, "/early") == 0) {
    /* answer before the request ended, then let go at once */
    mesh__h2_hdr_t r[] = {{":status", "200"}};
    mesh__h2_stream_respond(j->x, r, 1, false, NULL);
    static char big[200000];
    memset(big, 'e', sizeof big);
    mesh__h2_stream_write(j->x, big, sizeof big, false, DL(10000), NULL);
    mesh__h2_hdr_t t[] = {{"grpc-status", "0"}};
    mesh__h2_stream_send_trailers(j->x, t, 1, DL(10000), NULL);
    atomic_fetch_add(&j->srv->handlers_done, 1);
    mesh__h2_stream_free(j->x);
    free(j);
    return NULL;
  } else if (strncmp(path, "/big/", 5) == 0) {
    size_t len = (size_t)atol(path + 5);
    char *b = malloc(len);
    memset(b, 'b', len);
    mesh__h2_hdr_t r[] = {{":status", "200"}};
    mesh__h2_stream_respond(j->x, r, 1, false, NULL);
    mesh__h2_stream_write(j->x, b, len, true, DL(10000), NULL);
    free(b);
  } else {
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    for (;;) {
      long k = mesh__h2_stream_read(j->x, b + len, cap - len, DL(10000), NULL);
      if (k <= 0)
        break;
      len += (size_t)k;
      if (len == cap) {
        cap *= 2;
        b = realloc(b, cap);
      }
    }
    const char *x = hget(h, n, "x-id");
    mesh__h2_hdr_t r[] = {{":status", strcmp(path, "/hold") ? "200" : "204"},
                          {"x-id", x ? x : "-"}};
    bool body = strcmp(path, "/echo") == 0;
    mesh__h2_stream_respond(j->x, r, 2, !body, NULL);
    if (body) {
      mesh__h2_stream_write(j->x, b, len, false, DL(10000), NULL);
      mesh__h2_hdr_t t[] = {{"x-trailer", "done"}};
      mesh__h2_stream_send_trailers(j->x, t, 1, DL(10000), NULL);
    }
    free(b);
  }
  /* wait until the client has everything before letting go of the stream */
  const mesh__h2_hdr_t *th;
  size_t tn;
  mesh__h2_stream_trailers(j->x, DL(2000), &th, &tn, NULL);
  mesh__h2_session_poll(mesh__h2_stream_session(j->x), 0);
  atomic_fetch_add(&j->srv->handlers_done, 1);
  mesh__h2_stream_free(j->x);
  free(j);
  return NULL;
}

static void *srv_main(void *arg) {
  struct h2srv *srv = arg;
  pthread_t jobs[256];
  size_t nj = 0;
  for (;;) {
    mesh__h2_stream_t *x;
    int rc = mesh__h2_accept(srv->s, DL(10000), &x, NULL);
    if (rc != MESH_OK) {
      srv->accept_rc = rc;
      break;
    }
    atomic_fetch_add(&srv->streams, 1);
    if (srv->drain_after_first && atomic_load(&srv->streams) == 1)
      mesh__h2_session_drain(srv->s);
    struct job *j = malloc(sizeof *j);
    *j = (struct job){srv, x};
    if (nj < N(jobs))
      pthread_create(&jobs[nj++], NULL, job_main, j);
    else
      job_main(j);
  }
  for (size_t i = 0; i < nj; i++)
    pthread_join(jobs[i], NULL);
  return NULL;
}

static void srv_start_fd(struct h2srv *srv, int fd,
                         const mesh__h2_settings_t *set) {
  memset(srv, 0, sizeof *srv);
  CU_ASSERT_EQUAL_FATAL(
      mesh__h2_session_new_fd(NULL, fd, true, set, &srv->s, NULL), MESH_OK);
  pthread_create(&srv->t, NULL, srv_main, srv);
}

static void srv_stop(struct h2srv *srv) {
  pthread_join(srv->t, NULL);
  mesh__h2_session_free(srv->s);
}

/* A client and a server session over a socket pair. */
static mesh__h2_session_t *pair(struct h2srv *srv,
                                const mesh__h2_settings_t *srvset) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                        0);
  srv_start_fd(srv, sv[1], srvset);
  mesh__h2_session_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_session_new_fd(NULL, sv[0], false, NULL, &c,
                                                NULL),
                        MESH_OK);
  return c;
}

/* ---- one exchange from the client side --------------------------------------- */

struct result {
  int rc;
  char status[8];
  char xid[32];
  char trailer[32];
  size_t blen;
  bool body_ok;
};

static void exchange(mesh__h2_session_t *c, const char *path, const char *id,
                     size_t body, struct result *r) {
  memset(r, 0, sizeof *r);
  mesh__h2_hdr_t h[] = {{":method", "POST"},     {":scheme", "http"},
                        {":path", path},          {":authority", "test"},
                        {"x-id", id ? id : "-"}};
  mesh__h2_stream_t *x;
  mesh_status_t st;
  r->rc = mesh__h2_stream_open(c, h, N(h), false, &x, &st);
  if (r->rc != MESH_OK)
    return;
  char *b = malloc(body + 1);
  for (size_t i = 0; i < body; i++)
    b[i] = (char)('a' + i % 26);
  r->rc = mesh__h2_stream_write(x, b, body, true, DL(10000), &st);
  const mesh__h2_hdr_t *rh;
  size_t rn;
  if (r->rc == MESH_OK)
    r->rc = mesh__h2_stream_headers(x, DL(10000), &rh, &rn, &st);
  if (r->rc == MESH_OK) {
    snprintf(r->status, sizeof r->status, "%s", rh[0].value);
    const char *v = hget(rh, rn, "x-id");
    snprintf(r->xid, sizeof r->xid, "%s", v ? v : "");
    char *got = malloc(body + 65536);
    long k;
    for (;;) {
      k = mesh__h2_stream_read(x, got + r->blen, 65536, DL(10000), &st);
      if (k <= 0)
        break;
      r->blen += (size_t)k;
    }
    r->body_ok = r->blen == body && memcmp(got, b, body) == 0;
    free(got);
    if (k < 0)
      r->rc = (int)k;
  }
  if (r->rc == MESH_OK)
    r->rc = mesh__h2_stream_trailers(x, DL(10000), &rh, &rn, &st);
  if (r->rc == MESH_OK) {
    const char *v = hget(rh, rn, "x-trailer");
    snprintf(r->trailer, sizeof r->trailer, "%s", v ? v : "");
  }
  free(b);
  if (r->rc != MESH_OK)
    fprintf(stderr, "exchange %s: %s\n", path, st.message);
  mesh__h2_stream_free(x);
}

/* ---- tests -------------------------------------------------------------------- */

/* Bodies around every window boundary: the stream window (1 MiB), the
 * send queue (64 KiB), a frame (16 KiB), and nothing. */
static void test_mesh__h2_stream_echo(void) {
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, NULL);
  static const size_t sizes[] = {0, 1, 16384, 16385, 65536, 1 << 20,
                                 (3 << 20) + 7};
  for (size_t i = 0; i < N(sizes); i++) {
    struct result r;
    exchange(c, "/echo", "e", sizes[i], &r);
    CU_ASSERT_EQUAL(r.rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.status, "200");
    CU_ASSERT_STRING_EQUAL(r.xid, "e");
    CU_ASSERT_STRING_EQUAL(r.trailer, "done");
    CU_ASSERT(r.body_ok);
    if (r.rc || !r.body_ok)
      fprintf(stderr, "size %zu: rc=%d blen=%zu\n", sizes[i], r.rc, r.blen);
  }
  long rtt = mesh__h2_session_ping(c, DL(5000));
  CU_ASSERT(rtt >= 0);
  mesh__h2_session_free(c);
  srv_stop(&srv);
  CU_ASSERT_EQUAL(srv.accept_rc, MESH_ERR_PEER_CLOSED);
  CU_ASSERT_EQUAL(atomic_load(&srv.handlers_done), (int)N(sizes));
}

struct worker {
  pthread_t t;
  mesh__h2_session_t *c;
  int idx, ok;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 20; i++) {
    char id[32];
    snprintf(id, sizeof id, "w%d-%d", w->idx, i);
    struct result r;
    exchange(w->c, "/echo", id, (size_t)(w->idx * 7000 + i * 100), &r);
    if (r.rc == MESH_OK && r.body_ok && strcmp(r.xid, id) == 0 &&
        strcmp(r.trailer, "done") == 0)
      w->ok++;
  }
  return NULL;
}

/* Eight threads, twenty streams each, one session: every answer reaches
 * the stream that asked. */
static void test_mesh__h2_session_threads(void) {
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, NULL);
  struct worker w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (struct worker){.c = c, .idx = i};
    pthread_create(&w[i].t, NULL, worker_main, &w[i]);
  }
  int ok = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(w[i].t, NULL);
    ok += w[i].ok;
  }
  CU_ASSERT_EQUAL(ok, 160);
  mesh__h2_session_free(c);
  srv_stop(&srv);
  CU_ASSERT_EQUAL(atomic_load(&srv.streams), 160);
}

/* The peer's MAX_CONCURRENT_STREAMS is honoured: a full session refuses a
 * new stream with MESH_ERR_CIRCUIT_OPEN (the pool opens another). */
static void test_mesh__h2_stream_open_limit(void) {
  mesh__h2_settings_t set;
  mesh__h2_settings_default(&set);
  set.max_concurrent_streams = 2;
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, &set);
  /* a round trip so that the server's SETTINGS arrived */
  CU_ASSERT(mesh__h2_session_ping(c, DL(5000)) >= 0);
  CU_ASSERT_EQUAL(mesh__h2_session_available(c), 2);
  mesh__h2_hdr_t h[] = {{":method", "POST"}, {":scheme", "http"},
                        {":path", "/hold"}, {":authority", "t"}};
  mesh__h2_stream_t *x[3] = {0};
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, h, 4, false, &x[0], NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, h, 4, false, &x[1], NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh__h2_session_available(c), 0);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, h, 4, false, &x[2], &st),
                  MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT_PTR_NULL(x[2]);
  /* finishing one frees a slot */
  const mesh__h2_hdr_t *rh;
  size_t rn;
  CU_ASSERT_EQUAL(mesh__h2_stream_write(x[0], "", 0, true, DL(5000), NULL),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh__h2_stream_headers(x[0], DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(rh[0].value, "204");
  CU_ASSERT_EQUAL(mesh__h2_stream_trailers(x[0], DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  mesh__h2_stream_free(x[0]);
  CU_ASSERT_EQUAL(mesh__h2_session_available(c), 1);
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, h, 4, false, &x[2], NULL), MESH_OK);
  mesh__h2_stream_write(x[1], "", 0, true, DL(5000), NULL);
  mesh__h2_stream_write(x[2], "", 0, true, DL(5000), NULL);
  CU_ASSERT_EQUAL(mesh__h2_stream_trailers(x[1], DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh__h2_stream_trailers(x[2], DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  mesh__h2_stream_free(x[1]);
  mesh__h2_stream_free(x[2]);
  mesh__h2_session_free(c);
  srv_stop(&srv);
}

/* RST_STREAM from the server: the stream fails with MESH_ERR_RESET and the
 * code; the session goes on.  A reset of ours: MESH_ERR_CLOSED. */
static void test_mesh__h2_stream_reset(void) {
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, NULL);
  mesh__h2_hdr_t h[] = {{":method", "GET"}, {":scheme", "http"},
                        {":path", "/reset"}, {":authority", "t"}};
  mesh__h2_stream_t *x;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_stream_open(c, h, 4, true, &x, NULL),
                        MESH_OK);
  const mesh__h2_hdr_t *rh;
  size_t rn;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__h2_stream_headers(x, DL(5000), &rh, &rn, &st),
                  MESH_ERR_RESET);
  CU_ASSERT_EQUAL(mesh__h2_stream_error(x), MESH__H2_INTERNAL_ERROR);
  CU_ASSERT_FALSE(mesh__h2_stream_refused(x));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "reset by the peer"));
  mesh__h2_stream_free(x);
  /* our own reset */
  h[2].value = "/hold";
  CU_ASSERT_EQUAL_FATAL(mesh__h2_stream_open(c, h, 4, false, &x, NULL),
                        MESH_OK);
  mesh__h2_stream_reset(x, MESH__H2_CANCEL);
  CU_ASSERT_EQUAL(mesh__h2_stream_write(x, "a", 1, true, DL(1000), NULL),
                  MESH_ERR_CLOSED);
  mesh__h2_stream_free(x);
  /* the session is still fine */
  struct result r;
  exchange(c, "/echo", "after", 10, &r);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  CU_ASSERT(r.body_ok);
  CU_ASSERT(mesh__h2_session_alive(c));
  mesh__h2_session_free(c);
  srv_stop(&srv);
}

/* A server that answers before the request ended and frees its stream at
 * once: the whole response and its trailers still arrive (the queued DATA
 * is not cut by a reset), then RST_STREAM NO_ERROR stops the client. */
static void test_mesh__h2_stream_early_response(void) {
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, NULL);
  mesh__h2_hdr_t h[] = {{":method", "POST"}, {":scheme", "http"},
                        {":path", "/early"}, {":authority", "t"}};
  mesh__h2_stream_t *x;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_stream_open(c, h, 4, false, &x, NULL),
                        MESH_OK);
  CU_ASSERT_EQUAL(mesh__h2_stream_write(x, "part", 4, false, DL(5000), NULL),
                  MESH_OK);
  const mesh__h2_hdr_t *rh;
  size_t rn;
  CU_ASSERT_EQUAL(mesh__h2_stream_headers(x, DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  size_t got = 0;
  char buf[65536];
  for (;;) {
    long k = mesh__h2_stream_read(x, buf, sizeof buf, DL(5000), NULL);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  CU_ASSERT_EQUAL(got, 200000);
  CU_ASSERT_EQUAL(mesh__h2_stream_trailers(x, DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  CU_ASSERT_EQUAL(rn, 1);
  if (rn == 1)
    CU_ASSERT_STRING_EQUAL(rh[0].value, "0");
  mesh__h2_stream_free(x);
  /* the session is fine afterwards */
  struct result r;
  exchange(c, "/echo", "after", 10, &r);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  mesh__h2_session_free(c);
  srv_stop(&srv);
}

/* Read with a deadline: a timeout leaves the stream usable. */
static void test_mesh__h2_stream_read_timeout(void) {
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, NULL);
  mesh__h2_hdr_t h[] = {{":method", "POST"}, {":scheme", "http"},
                        {":path", "/hold"}, {":authority", "t"}};
  mesh__h2_stream_t *x;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_stream_open(c, h, 4, false, &x, NULL),
                        MESH_OK);
  char buf[16];
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh__h2_stream_read(x, buf, sizeof buf, DL(200), NULL),
                  MESH_ERR_TIMEOUT);
  CU_ASSERT(mesh__now_ms() - t0 >= 190);
  CU_ASSERT_EQUAL(mesh__h2_stream_write(x, "", 0, true, DL(5000), NULL),
                  MESH_OK);
  const mesh__h2_hdr_t *rh;
  size_t rn;
  CU_ASSERT_EQUAL(mesh__h2_stream_headers(x, DL(5000), &rh, &rn, NULL),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(rh[0].value, "204");
  mesh__h2_stream_free(x);
  mesh__h2_session_free(c);
  srv_stop(&srv);
}

/* GOAWAY drain: the server drains when the first stream arrives; that
 * stream completes; the client sees the session going away and cannot open
 * another; the server's accept ends once the stream is done. */
static void test_mesh__h2_session_drain(void) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct h2srv srv;
  memset(&srv, 0, sizeof srv);
  srv.drain_after_first = true;
  CU_ASSERT_EQUAL_FATAL(
      mesh__h2_session_new_fd(NULL, sv[1], true, NULL, &srv.s, NULL), MESH_OK);
  srv.drain_after_first = true;
  pthread_create(&srv.t, NULL, srv_main, &srv);
  mesh__h2_session_t *c;
  CU_ASSERT_EQUAL_FATAL(
      mesh__h2_session_new_fd(NULL, sv[0], false, NULL, &c, NULL), MESH_OK);
  struct result r;
  exchange(c, "/echo", "d", 100000, &r);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  CU_ASSERT(r.body_ok);
  /* the GOAWAY has arrived by the end of the exchange or soon after */
  for (int i = 0; i < 50 && mesh__h2_session_alive(c); i++)
    mesh__h2_session_poll(c, 100);
  CU_ASSERT_FALSE(mesh__h2_session_alive(c));
  CU_ASSERT_EQUAL(mesh__h2_session_available(c), 0);
  mesh__h2_hdr_t h[] = {{":method", "GET"}, {":scheme", "http"},
                        {":path", "/echo"}, {":authority", "t"}};
  mesh__h2_stream_t *x = NULL;
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, h, 4, true, &x, NULL),
                  MESH_ERR_PEER_CLOSED);
  srv_stop(&srv);
  CU_ASSERT_EQUAL(srv.accept_rc, MESH_ERR_PEER_CLOSED);
  uint32_t code = 99;
  mesh__h2_session_status(c, &code, NULL);
  CU_ASSERT_EQUAL(code, MESH__H2_NO_ERROR);
  mesh__h2_session_free(c);
}

/* A client stream in flight when the server goes away abruptly: the stream
 * fails (not hangs), the session is dead. */
static void test_mesh__h2_session_peer_gone(void) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  mesh__h2_session_t *c;
  CU_ASSERT_EQUAL_FATAL(
      mesh__h2_session_new_fd(NULL, sv[0], false, NULL, &c, NULL), MESH_OK);
  mesh__h2_hdr_t h[] = {{":method", "GET"}, {":scheme", "http"},
                        {":path", "/"}, {":authority", "t"}};
  mesh__h2_stream_t *x;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_stream_open(c, h, 4, true, &x, NULL),
                        MESH_OK);
  close(sv[1]);
  const mesh__h2_hdr_t *rh;
  size_t rn;
  int rc = mesh__h2_stream_headers(x, DL(5000), &rh, &rn, NULL);
  CU_ASSERT(rc == MESH_ERR_PEER_CLOSED || rc == MESH_ERR_RESET);
  CU_ASSERT_FALSE(mesh__h2_session_alive(c));
  mesh__h2_stream_free(x);
  mesh__h2_session_free(c);
}

/* PING keepalive: against a live peer the session stays up and measures a
 * round trip; against a peer that never answers it dies with
 * MESH_ERR_TIMEOUT after keepalive_ms + keepalive_timeout_ms. */
static void test_mesh__h2_session_keepalive(void) {
  mesh__h2_settings_t set;
  mesh__h2_settings_default(&set);
  set.keepalive_ms = 50;
  set.keepalive_timeout_ms = 300;
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct h2srv srv;
  srv_start_fd(&srv, sv[1], NULL);
  mesh__h2_session_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(
      mesh__h2_session_new_fd(NULL, sv[0], false, &set, &c, NULL), MESH_OK);
  for (int i = 0; i < 10; i++)
    CU_ASSERT_EQUAL(mesh__h2_session_poll(c, 50), MESH_OK);
  CU_ASSERT(c->ping_rtt_ms >= 0); /* at least one PING went and came back */
  CU_ASSERT(mesh__h2_session_alive(c));
  mesh__h2_session_free(c);
  srv_stop(&srv);
  /* a silent peer: reads (the socket stays writable), never answers */
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CU_ASSERT_EQUAL_FATAL(
      mesh__h2_session_new_fd(NULL, sv[0], false, &set, &c, NULL), MESH_OK);
  int64_t t0 = mesh__now_ms();
  int rc = MESH_OK;
  for (int i = 0; i < 100 && rc == MESH_OK; i++)
    rc = mesh__h2_session_poll(c, 50);
  int64_t took = mesh__now_ms() - t0;
  CU_ASSERT_EQUAL(rc, MESH_ERR_TIMEOUT);
  CU_ASSERT(took >= 300 && took < 4000);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__h2_session_status(c, NULL, &st), MESH_ERR_TIMEOUT);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "keepalive PING unanswered"));
  mesh__h2_session_free(c);
  close(sv[1]);
}

/* ---- plaintext dial: unix socket and TCP ---------------------------------------- */

struct lsn {
  pthread_t t;
  int lfd;
  struct h2srv srv;
};

static void *lsn_main(void *arg) {
  struct lsn *l = arg;
  int fd = accept(l->lfd, NULL, NULL);
  if (fd >= 0) {
    l->srv.s = NULL;
    if (mesh__h2_session_new_fd(NULL, fd, true, NULL, &l->srv.s, NULL) ==
        MESH_OK)
      srv_main(&l->srv);
  }
  return NULL;
}

static void test_mesh__h2_dial_plain(void) {
  /* unix */
  struct lsn l;
  memset(&l, 0, sizeof l);
  const char *path = th_path("h2.sock");
  unlink(path);
  l.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  CU_ASSERT_EQUAL_FATAL(bind(l.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  listen(l.lfd, 4);
  pthread_create(&l.t, NULL, lsn_main, &l);
  char target[300];
  snprintf(target, sizeof target, "unix:%s", path);
  mesh__h2_session_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_dial_plain(NULL, target, 2000, NULL, &c,
                                            NULL),
                        MESH_OK);
  struct result r;
  exchange(c, "/echo", "u", 70000, &r);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  CU_ASSERT(r.body_ok);
  mesh__h2_session_free(c);
  pthread_join(l.t, NULL);
  mesh__h2_session_free(l.srv.s);
  close(l.lfd);
  /* TCP */
  memset(&l, 0, sizeof l);
  l.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in in = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t len = sizeof in;
  CU_ASSERT_EQUAL_FATAL(bind(l.lfd, (struct sockaddr *)&in, sizeof in), 0);
  getsockname(l.lfd, (struct sockaddr *)&in, &len);
  listen(l.lfd, 4);
  pthread_create(&l.t, NULL, lsn_main, &l);
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(in.sin_port));
  CU_ASSERT_EQUAL_FATAL(mesh__h2_dial_plain(NULL, target, 2000, NULL, &c,
                                            NULL),
                        MESH_OK);
  exchange(c, "/echo", "t", 10, &r);
  CU_ASSERT_EQUAL(r.rc, MESH_OK);
  CU_ASSERT(r.body_ok);
  mesh__h2_session_free(c);
  pthread_join(l.t, NULL);
  mesh__h2_session_free(l.srv.s);
  close(l.lfd);
  /* errors */
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__h2_dial_plain(NULL, "unix:/nonexistent/x.sock", 500,
                                      NULL, &c, &st),
                  MESH_ERR_CONNECT);
  CU_ASSERT_PTR_NULL(c);
  CU_ASSERT_EQUAL(mesh__h2_dial_plain(NULL, "no-port", 500, NULL, &c, &st),
                  MESH_ERR_INVALID_ARG);
}

/* Bad arguments get codes, not crashes. */
static void test_mesh__h2_stream_open_invalid(void) {
  struct h2srv srv;
  mesh__h2_session_t *c = pair(&srv, NULL);
  mesh__h2_stream_t *x = NULL;
  mesh__h2_hdr_t upper[] = {{":method", "GET"}, {":scheme", "http"},
                            {":path", "/"}, {"X-Upper", "v"}};
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, upper, 4, true, &x, NULL),
                  MESH_ERR_INVALID_ARG);
  mesh__h2_hdr_t crlf[] = {{":method", "GET"}, {"x", "a\r\nb"}};
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, crlf, 2, true, &x, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__h2_stream_open(c, NULL, 0, true, &x, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_PTR_NULL(x);
  CU_ASSERT_EQUAL(mesh__h2_accept(c, DL(10), &x, NULL), MESH_ERR_INVALID_ARG);
  mesh__h2_settings_t bad;
  mesh__h2_settings_default(&bad);
  bad.max_frame_size = 100;
  mesh__h2_session_t *s2 = NULL;
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  CU_ASSERT_EQUAL(mesh__h2_session_new_fd(NULL, sv[0], false, &bad, &s2, NULL),
                  MESH_ERR_INVALID_ARG);
  close(sv[1]);
  mesh__h2_session_free(NULL);
  mesh__h2_stream_free(NULL);
  mesh__h2_session_free(c);
  srv_stop(&srv);
}

/* ---- mesh_http_serve over h2c: the HTTP/1.1 handler answers HTTP/2 -------- */

static int handler(const mesh_http_request_t *req, mesh_http_response_t *resp,
                   void *user) {
  (void)user;
  size_t blen;
  const char *body = mesh_http_request_body(req, &blen);
  char out[512];
  const char *tp = mesh_http_request_header(req, "traceparent");
  const char *rep = mesh_http_request_header(req, "x-rep");
  snprintf(out, sizeof out, "%s %s body=%.*s tp=%d rep=%s",
           mesh_http_request_method(req), mesh_http_request_target(req),
           (int)(blen > 100 ? 100 : blen), body, tp != NULL, rep ? rep : "-");
  mesh_http_response_add_header(resp, "X-Served", "yes");
  mesh_http_response_set_body(resp, out, strlen(out));
  return 0;
}

struct httpsrv {
  pthread_t t;
  mesh_t *m;
  mesh_listener_t *l;
  int conns;
};

static void *httpsrv_main(void *arg) {
  struct httpsrv *h = arg;
  for (int i = 0; i < h->conns; i++) {
    mesh_conn_t *c = NULL;
    if (mesh_accept(h->l, 10000, &c, NULL) != MESH_OK)
      continue;
    mesh_http_serve(h->m, c, handler, NULL, NULL);
    mesh_conn_close(c);
  }
  return NULL;
}

/* One scenario end to end (config, listener, three h2c requests, then
 * HTTP/1.1 on the same port): longer than 60 lines, read top to bottom. */
static void test_mesh_http_serve_h2c(void) {
  const char *ca = th_ca("example.org");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
  CU_ASSERT_FATAL(th_svid("example.org", "spiffe://example.org/ns/default/sa/"
                          "server", "server", 0, 0, 0));
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"inbound\":{\"listen\":"
           "\"127.0.0.1:0\",\"mode\":\"PERMISSIVE\"},"
           "\"http\":{\"idle_timeout_ms\":2000}}",
           th_path("server.crt"), th_path("server.key"), ca);
  struct httpsrv h = {.conns = 2};
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &h.m, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_listen(h.m, NULL, &h.l, &st), MESH_OK);
  int port = mesh_listener_port(h.l);
  pthread_create(&h.t, NULL, httpsrv_main, &h);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mesh__h2_session_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__h2_dial_plain(NULL, target, 2000, NULL, &c,
                                            &st),
                        MESH_OK);
  mesh__h2_hdr_t hd[] = {{":method", "POST"}, {":scheme", "http"},
                         {":path", "/x/./y?q=1"}, {":authority", "svc"},
                         {"x-rep", "a"}, {"x-rep", "b"}};
  for (int i = 0; i < 3; i++) {
    mesh__h2_stream_t *x;
    CU_ASSERT_EQUAL_FATAL(mesh__h2_stream_open(c, hd, 6, false, &x, &st),
                          MESH_OK);
    CU_ASSERT_EQUAL(mesh__h2_stream_write(x, "hello", 5, true, DL(5000), &st),
                    MESH_OK);
    const mesh__h2_hdr_t *rh;
    size_t rn;
    CU_ASSERT_EQUAL(mesh__h2_stream_headers(x, DL(5000), &rh, &rn, &st),
                    MESH_OK);
    CU_ASSERT_STRING_EQUAL(rh[0].value, "200");
    CU_ASSERT_STRING_EQUAL(hget(rh, rn, "x-served"), "yes");
    char buf[600] = "";
    long n = 0;
    for (;;) {
      long k = mesh__h2_stream_read(x, buf + n, sizeof buf - 1 - (size_t)n,
                                    DL(5000), &st);
      if (k <= 0)
        break;
      n += k;
    }
    buf[n > 0 ? n : 0] = '\0';
    /* the same view as HTTP/1.1: normalized target, repeated fields joined */
    CU_ASSERT_STRING_EQUAL(buf, "POST /x/y?q=1 body=hello tp=1 rep=a,b");
    mesh__h2_stream_free(x);
  }
  mesh__h2_session_free(c);
  /* HTTP/1.1 on the same listener still works (sniffed bytes replayed) */
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "curl -sS --http1.1 --max-time 10 -o %s http://127.0.0.1:%d/h1",
           th_path("h1.out"), port);
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  char *out = th_slurp(th_path("h1.out"), NULL);
  CU_ASSERT_PTR_NOT_NULL(out);
  if (out)
    CU_ASSERT_STRING_EQUAL(out, "GET /h1 body= tp=1 rep=-");
  free(out);
  pthread_join(h.t, NULL);
  mesh_listener_close(h.l);
  mesh_free(h.m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("h2", NULL, NULL);
  CU_add_test(s, "mesh__h2_stream_echo", test_mesh__h2_stream_echo);
  CU_add_test(s, "mesh__h2_session_threads", test_mesh__h2_session_threads);
  CU_add_test(s, "mesh__h2_stream_open_limit",
              test_mesh__h2_stream_open_limit);
  CU_add_test(s, "mesh__h2_stream_reset", test_mesh__h2_stream_reset);
  CU_add_test(s, "mesh__h2_stream_early_response",
              test_mesh__h2_stream_early_response);
  CU_add_test(s, "mesh__h2_stream_read_timeout",
              test_mesh__h2_stream_read_timeout);
  CU_add_test(s, "mesh__h2_session_drain", test_mesh__h2_session_drain);
  CU_add_test(s, "mesh__h2_session_peer_gone",
              test_mesh__h2_session_peer_gone);
  CU_add_test(s, "mesh__h2_session_keepalive",
              test_mesh__h2_session_keepalive);
  CU_add_test(s, "mesh__h2_dial_plain", test_mesh__h2_dial_plain);
  CU_add_test(s, "mesh__h2_stream_open_invalid",
              test_mesh__h2_stream_open_invalid);
  CU_add_test(s, "mesh_http_serve_h2c", test_mesh_http_serve_h2c);
}

int main(void) { return th_run_suites("test_h2", add); }

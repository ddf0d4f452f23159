/* SPDX-License-Identifier: Apache-2.0 */
/* tls/conn.c: how a connection ended decides whether the client's saved
 * session for that target stays resumable, the same on both TLS backends.
 *
 * A libmesh server on loopback (a thread per connection) serves one
 * request per connection (ping, pong, done) and then ends the connection
 * in one of five ways:
 * the client closes first, the server sends close_notify, a bare FIN, a
 * TCP RST, or a FIN in the middle of a TLS record.  Each row dials three
 * times with a fresh client: a full handshake, closed by the client; a
 * resumed one ended the row's way (the client reads to the end, as a
 * client of an HTTP/1.0-style server does); then the third dial must
 * resume after a clean end and must not after any other (OpenSSL's rule,
 * and the security reason for it: a truncated connection leaves no
 * resumable session).  Rows per TLS version the backend has.  Then
 * `openssl s_server -www` as the peer that closes first (close_notify).
 *
 * Before the fix the OpenSSL rows "server close_notify" failed (the
 * session was lost: we did not answer the peer's close_notify, so OpenSSL
 * took the end as unclean) and the mbedTLS rows FIN/RST/cut failed (the
 * session was kept).
 *
 * An unclean end forgets only the session that connection resumed or
 * saved: two connections to one target, the second saves a newer session
 * (a full handshake begun before the first saved, or a TLS 1.3 ticket),
 * the first ends uncleanly: the next dial still resumes.  Before the fix
 * (the drop was by target) it did not.  A TLS 1.2 resumption of the first
 * one's session is the same session, dropped with it (OpenSSL marks it not
 * resumable itself; mbedTLS now matches).
 *
 * The end is judged where the client's read first returns it, not only at
 * close: a dial made after that read and before the close of the
 * connection resumes after close_notify and makes a full handshake after
 * a FIN alone, a RST or a cut record, on both backends (before, mbedTLS
 * resumed there: the mesh dropped the session only at close).
 *
 * On OpenSSL, `openssl s_client -msg` counts the TLS 1.3 tickets a libmesh
 * server sends per connection: one. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_tls_peer.h"
#include "tls/tls.h"

typedef enum end_kind {
  END_CLIENT, /* the client closes first (close_notify) */
  END_NOTIFY, /* the server: close_notify + FIN (mesh_conn_shutdown) */
  END_FIN,    /* the server: FIN without close_notify */
  END_RST,    /* the server: TCP RST */
  END_CUT,    /* the server: half a TLS record, then FIN */
} end_kind_t;

/* Slower under valgrind and the sanitizers: scale budgets, never verdicts. */
static int slow(void) {
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload"))
    return 20;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 3;
#else
  return 1;
#endif
}

/* ---- server thread: one connection at a time ---------------------------- */

#define SRV_CONNS 256

typedef struct srv {
  mesh_t *m;
  mesh_listener_t *l;
  pthread_t th;
  atomic_bool stop;
  _Atomic int end; /* how to end a connection, read after its "done" */
  _Atomic int served;
  _Atomic int taken;  /* connections that read their end (after "done") */
  atomic_bool pause;  /* hold off mesh_accept (no handshake progresses) */
  atomic_bool paused; /* srv_main is holding off */
  pthread_t conns[SRV_CONNS]; /* one thread per connection (srv_main's) */
  int nconns;
} srv_t;

static bool read_exact(mesh_conn_t *c, char *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    long n = mesh_conn_read(c, buf + got, len - got);
    if (n <= 0)
      return false;
    got += (size_t)n;
  }
  return true;
}

/* Wait until the client has closed (EOF or error on the raw socket). */
static void wait_client_gone(int fd) {
  char b[512];
  int64_t end = th_now_ms() + 10000 * slow();
  while (th_now_ms() < end) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return;
  }
}

/* The fd number now names /dev/null: mesh_conn_close() closes that. */
static void detach_fd(int fd) {
  int nul = open("/dev/null", O_WRONLY);
  dup2(nul, fd);
  close(nul);
}

static void end_conn(mesh_conn_t *c, end_kind_t how) {
  int fd = mesh_conn_fd(c);
  char b[64];
  switch (how) {
  case END_CLIENT:
    while (mesh_conn_read(c, b, sizeof b) > 0)
      ;
    break;
  case END_NOTIFY:
    mesh_conn_shutdown(c);
    break;
  case END_FIN:
    shutdown(fd, SHUT_WR);
    wait_client_gone(fd);
    break;
  case END_RST: {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    detach_fd(fd);
    break;
  }
  case END_CUT: {
    /* an application-data record header announcing 32 bytes, 3 of them */
    static const unsigned char cut[] = {0x17, 0x03, 0x03, 0x00, 0x20,
                                        0xaa, 0xbb, 0xcc};
    if (send(fd, cut, sizeof cut, MSG_NOSIGNAL) != (ssize_t)sizeof cut)
      fprintf(stderr, "\n  cut record: send failed\n");
    shutdown(fd, SHUT_WR);
    wait_client_gone(fd);
    detach_fd(fd); /* nothing more of ours after the cut */
    break;
  }
  }
}

typedef struct job {
  srv_t *s;
  mesh_conn_t *c;
} job_t;

static void serve(srv_t *s, mesh_conn_t *c) {
  mesh_conn_set_timeouts(c, 10000 * slow(), 10000 * slow());
  char b[4];
  if (read_exact(c, b, 4) && mesh_conn_write_all(c, "pong", 4) == MESH_OK &&
      read_exact(c, b, 4)) {
    end_kind_t how = (end_kind_t)atomic_load(&s->end);
    atomic_fetch_add(&s->taken, 1);
    end_conn(c, how);
  }
  mesh_conn_close(c);
  atomic_fetch_add(&s->served, 1);
}

static void *conn_main(void *arg) {
  job_t *j = arg;
  serve(j->s, j->c);
  free(j);
  return NULL;
}

/* Accepts, and serves each connection from its own thread: a connection
 * that stays open does not hold up the next one's handshake. */
static void *srv_main(void *arg) {
  srv_t *s = arg;
  while (!atomic_load(&s->stop)) {
    if (atomic_load(&s->pause)) {
      atomic_store(&s->paused, true);
      usleep(2000);
      continue;
    }
    atomic_store(&s->paused, false);
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_accept(s->l, 50, &c, &st);
    if (rc == MESH_ERR_TIMEOUT)
      continue;
    if (rc != MESH_OK) {
      fprintf(stderr, "\n  accept: %s\n", st.message);
      atomic_fetch_add(&s->served, 1);
      continue;
    }
    job_t *j = malloc(sizeof *j);
    if (j && s->nconns < SRV_CONNS) {
      *j = (job_t){s, c};
      if (pthread_create(&s->conns[s->nconns], NULL, conn_main, j) == 0) {
        s->nconns++;
        continue;
      }
    }
    free(j);
    serve(s, c);
  }
  return NULL;
}

static srv_t srv;

/* A handshake left waiting while another connection is served (the
 * "newer session" rows) gets a generous budget on both ends. */
static const char *tls_member(const char *v) {
  return strcmp(v, "1.3") == 0 ? "\"tls\":{\"min_version\":\"1.3\","
                                 "\"handshake_timeout_ms\":120000}"
                               : "\"tls\":{\"max_version\":\"1.2\","
                                 "\"handshake_timeout_ms\":120000}";
}

static bool srv_start(const char *v) {
  memset(&srv, 0, sizeof srv);
  srv.m = tp_mesh("server", TD, tls_member(v));
  if (!srv.m)
    return false;
  mesh_status_t st;
  if (mesh_listen(srv.m, "127.0.0.1:0", &srv.l, &st) != MESH_OK) {
    fprintf(stderr, "\n  listen: %s\n", st.message);
    return false;
  }
  return pthread_create(&srv.th, NULL, srv_main, &srv) == 0;
}

static void srv_stop(void) {
  if (srv.l) {
    atomic_store(&srv.stop, true);
    pthread_join(srv.th, NULL);
    for (int i = 0; i < srv.nconns; i++)
      pthread_join(srv.conns[i], NULL);
    srv.nconns = 0;
    mesh_listener_close(srv.l);
    srv.l = NULL;
  }
  mesh_free(srv.m);
  srv.m = NULL;
}

/* ---- client ------------------------------------------------------------- */

typedef struct dial_out {
  int resumed; /* mesh_conn_resumed, -1: the dial failed */
  long last;   /* the read that ended the connection (0 clean end) */
} dial_out_t;

/* Dial, ping/pong/done, then end as the server does (how) and close. */
static dial_out_t one_conn(mesh_t *cm, int port, end_kind_t how) {
  dial_out_t o = {.resumed = -1, .last = 1};
  int before = atomic_load(&srv.served);
  atomic_store(&srv.end, (int)how);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  if (mesh_dial(cm, tp_addr(port), NULL, &c, &st) != MESH_OK) {
    fprintf(stderr, "\n  dial: %s\n", st.message);
    return o;
  }
  o.resumed = mesh_conn_resumed(c);
  mesh_conn_set_timeouts(c, 10000 * slow(), 10000 * slow());
  char b[64];
  bool ok = mesh_conn_write_all(c, "ping", 4) == MESH_OK &&
            read_exact(c, b, 4) && memcmp(b, "pong", 4) == 0 &&
            mesh_conn_write_all(c, "done", 4) == MESH_OK;
  CU_ASSERT(ok);
  if (ok && how != END_CLIENT) {
    for (int i = 0; i < 1000; i++) {
      o.last = mesh_conn_read(c, b, sizeof b);
      if (o.last <= 0)
        break;
    }
  }
  mesh_conn_close(c);
  /* the server is done with it before the next dial */
  bool served = false;
  TH_WAIT_UNTIL(served, atomic_load(&srv.served) > before, "server done");
  CU_ASSERT(served);
  return o;
}

typedef struct close_case {
  const char *name;
  end_kind_t end;
  long last;         /* the client's last read (END_CLIENT: not read) */
  bool next_resumes; /* the dial after it resumes */
} close_case_t;

static const close_case_t close_cases[] = {
    {"client closes first", END_CLIENT, 1, true},
    {"server close_notify first", END_NOTIFY, 0, true},
    {"server FIN without close_notify", END_FIN, 0, false},
    {"server RST", END_RST, MESH_ERR_RESET, false},
    {"server FIN inside a record", END_CUT, MESH_ERR_TLS, false},
};

static void run_case(const char *v, const close_case_t *k) {
  fprintf(stderr, "\n  [TLS %s, %s]", v, k->name);
  mesh_t *cm = tp_mesh("client", TD, tls_member(v));
  CU_ASSERT_PTR_NOT_NULL_FATAL(cm);
  int port = mesh_listener_port(srv.l);
  dial_out_t d1 = one_conn(cm, port, END_CLIENT);
  CU_ASSERT_EQUAL(d1.resumed, 0);
  dial_out_t d2 = one_conn(cm, port, k->end);
  CU_ASSERT_EQUAL(d2.resumed, 1); /* the session was there */
  if (d2.last != k->last)
    fprintf(stderr, "\n  last read %ld, want %ld\n", d2.last, k->last);
  CU_ASSERT_EQUAL(d2.last, k->last);
  dial_out_t d3 = one_conn(cm, port, END_CLIENT);
  if (d3.resumed != (k->next_resumes ? 1 : 0))
    fprintf(stderr, "\n  next dial resumed=%d, want %d\n", d3.resumed,
            k->next_resumes ? 1 : 0);
  CU_ASSERT_EQUAL(d3.resumed, k->next_resumes ? 1 : 0);
  mesh_free(cm);
}

/* ---- an unclean end drops only its own session -------------------------- */

/* ping, pong, done: the server then ends it as srv.end says. */
static bool exchange(mesh_conn_t *c) {
  char b[4];
  mesh_conn_set_timeouts(c, 10000 * slow(), 10000 * slow());
  bool ok = mesh_conn_write_all(c, "ping", 4) == MESH_OK &&
            read_exact(c, b, 4) && memcmp(b, "pong", 4) == 0 &&
            mesh_conn_write_all(c, "done", 4) == MESH_OK;
  if (!ok)
    fprintf(stderr, "\n  ping/pong/done: %s\n", mesh_conn_errmsg(c));
  return ok;
}

/* Read to the end the server chose; the connection stays open. */
static long read_end(mesh_conn_t *c) {
  char b[64];
  long n = 1;
  for (int i = 0; i < 1000 && n > 0; i++)
    n = mesh_conn_read(c, b, sizeof b);
  return n;
}

/* Step a non-blocking dial until its ClientHello is out (bounded). */
static int step_to_hello(mesh_conn_t *c) {
  int64_t end = th_now_ms() + TH_CAP_MS;
  while (c->state == MESH__CONN_CONNECTING) {
    mesh_status_t st;
    int rc = mesh_conn_handshake(c, &st);
    if (rc != MESH_ERR_WANT_READ && rc != MESH_ERR_WANT_WRITE) {
      fprintf(stderr, "\n  handshake: rc %d %s\n", rc, st.message);
      return rc == MESH_OK ? MESH_ERR_TLS : rc; /* must not finish yet */
    }
    if (th_now_ms() > end) {
      fprintf(stderr, "\n  TIME CAP: connect\n");
      return MESH_ERR_TIMEOUT;
    }
    struct pollfd p = {.fd = mesh_conn_fd(c), .events = POLLOUT};
    poll(&p, 1, 100);
  }
  return c->state == MESH__CONN_HANDSHAKE ? MESH_OK : MESH_ERR_TLS;
}

/* The second connection's ClientHello goes out before anything is saved
 * (the server holds off meanwhile, so it cannot get further): it offers
 * nothing and makes a full handshake, finished later. */
static mesh_conn_t *dial_first_hello(mesh_t *cm, const char *target) {
  bool held = false;
  atomic_store(&srv.pause, true);
  TH_WAIT_UNTIL(held, atomic_load(&srv.paused), "server holding off");
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_set_nonblocking(o, 1);
  mesh_dial_opts_set_timeout(o, TH_CAP_MS);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_dial(cm, target, o, &c, &st);
  mesh_dial_opts_free(o);
  if (rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE)
    rc = step_to_hello(c);
  else if (rc == MESH_OK)
    rc = MESH_ERR_TLS; /* cannot finish while the server holds off */
  atomic_store(&srv.pause, false);
  if (rc != MESH_OK || !held) {
    fprintf(stderr, "\n  second dial: %s\n", c ? "" : st.message);
    mesh_conn_close(c);
    return NULL;
  }
  CU_ASSERT_EQUAL(c->offered_id, 0);
  return c;
}

typedef struct newer_case {
  const char *name;
  end_kind_t end;   /* how the server ends the first connection */
  bool second_full; /* the second began its handshake before the first
                       saved (else it resumes the first one's session) */
} newer_case_t;

static const newer_case_t newer_cases[] = {
    {"second: full handshake; first ends with FIN", END_FIN, true},
    {"second: full handshake; first ends with RST", END_RST, true},
    {"second: full handshake; first cut in a record", END_CUT, true},
    {"second resumes the first's session; first: FIN", END_FIN, false},
    {"second resumes the first's session; first: RST", END_RST, false},
    {"second resumes the first's session; first: cut", END_CUT, false},
};

/* Two connections to one target: the first saves its session, the second
 * a newer one (TLS 1.2 and 1.3: its full handshake; TLS 1.3: the ticket
 * of its resumption), then the first ends uncleanly.  The next dial
 * resumes the newer session.  A TLS 1.2 resumption is the first one's
 * session again: forgotten with it. */
static void run_newer(const char *v, const newer_case_t *k) {
  fprintf(stderr, "\n  [TLS %s, %s]", v, k->name);
  mesh_t *cm = tp_mesh("client", TD, tls_member(v));
  CU_ASSERT_PTR_NOT_NULL_FATAL(cm);
  int port = mesh_listener_port(srv.l);
  char target[64];
  snprintf(target, sizeof target, "%s", tp_addr(port));
  int base = atomic_load(&srv.served), taken = atomic_load(&srv.taken);
  mesh_conn_t *a = NULL, *b = NULL;
  mesh_status_t st;
  if (k->second_full) {
    b = dial_first_hello(cm, target);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  }
  atomic_store(&srv.end, (int)k->end);
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, target, NULL, &a, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_conn_resumed(a), 0);
  CU_ASSERT(exchange(a)); /* TLS 1.3: its ticket came before the pong */
  CU_ASSERT_NOT_EQUAL(a->sess_id, 0); /* saved */
  /* The server ends a its way; we read that only after b is done (an
   * unclean end forgets a's session the moment it is read, on both
   * backends: the rows below ask what b resumes). */
  bool ok = false;
  TH_WAIT_UNTIL(ok, atomic_load(&srv.taken) > taken, "server ending a");
  CU_ASSERT(ok);
  atomic_store(&srv.end, (int)END_CLIENT);
  if (k->second_full) {
    b->nonblocking = false; /* the rest as a blocking dial */
    if (mesh_conn_handshake(b, &st) != MESH_OK) {
      fprintf(stderr, "\n  second handshake: %s\n", st.message);
      mesh_conn_close(b);
      b = NULL;
    }
  } else if (mesh_dial(cm, target, NULL, &b, &st) != MESH_OK) {
    fprintf(stderr, "\n  second dial: %s\n", st.message);
    b = NULL;
  }
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(mesh_conn_resumed(b), k->second_full ? 0 : 1);
  CU_ASSERT(exchange(b));
  mesh_conn_close(b); /* clean: its session stays */
  long last = read_end(a);
  CU_ASSERT_EQUAL(last, k->end == END_FIN   ? 0
                        : k->end == END_RST ? MESH_ERR_RESET
                                            : MESH_ERR_TLS);
  mesh_conn_close(a); /* unclean: forgets its own session only */
  ok = false;
  TH_WAIT_UNTIL(ok, atomic_load(&srv.served) >= base + 2, "server done");
  CU_ASSERT(ok);
  bool want = k->second_full || strcmp(v, "1.3") == 0;
  dial_out_t d3 = one_conn(cm, port, END_CLIENT);
  if (d3.resumed != (want ? 1 : 0))
    fprintf(stderr, "\n  next dial resumed=%d, want %d\n", d3.resumed, want);
  CU_ASSERT_EQUAL(d3.resumed, want ? 1 : 0);
  mesh_free(cm);
}

/* ---- a dial between the read of the end and the close ------------------- */

/* The second connection resumes and the client reads the server's end;
 * before it closes that connection, a new dial to the same target.  The
 * mesh judges the end at that read on both backends: after close_notify
 * the new dial resumes, after a FIN alone, a RST or a cut record it makes
 * a full handshake (before, mbedTLS forgot the session only at close and
 * resumed here; OpenSSL forgets it as SSL_read sees a FIN alone or a cut
 * record). */
static void run_early(const char *v, const close_case_t *k) {
  fprintf(stderr, "\n  [TLS %s, %s, dial before close]", v, k->name);
  mesh_t *cm = tp_mesh("client", TD, tls_member(v));
  CU_ASSERT_PTR_NOT_NULL_FATAL(cm);
  int port = mesh_listener_port(srv.l);
  dial_out_t d1 = one_conn(cm, port, END_CLIENT);
  CU_ASSERT_EQUAL(d1.resumed, 0);
  int base = atomic_load(&srv.served);
  atomic_store(&srv.end, (int)k->end);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(port), NULL, &c, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_conn_resumed(c), 1); /* the session was there */
  CU_ASSERT(exchange(c));
  long last = read_end(c);
  if (last != k->last)
    fprintf(stderr, "\n  last read %ld, want %ld\n", last, k->last);
  CU_ASSERT_EQUAL(last, k->last);
  dial_out_t d3 = one_conn(cm, port, END_CLIENT); /* c is still open */
  if (d3.resumed != (k->next_resumes ? 1 : 0))
    fprintf(stderr, "\n  dial before close resumed=%d, want %d\n",
            d3.resumed, k->next_resumes ? 1 : 0);
  CU_ASSERT_EQUAL(d3.resumed, k->next_resumes ? 1 : 0);
  mesh_conn_close(c);
  bool ok = false;
  TH_WAIT_UNTIL(ok, atomic_load(&srv.served) >= base + 2, "server done");
  CU_ASSERT(ok);
  mesh_free(cm);
}

typedef enum rows { ROWS_CLOSE, ROWS_NEWER, ROWS_EARLY } rows_t;

static void run_version(const char *v, rows_t rows) {
  if (strcmp(v, "1.3") == 0 && !mesh__tls_be.has_tls13()) {
    /* mbedTLS 2.28: no TLS 1.3 rows; the config says why */
    char cfg[4096];
    tp_config(cfg, sizeof cfg, "client", TD, tls_member(v));
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(cfg, &m, &st), MESH_ERR_CONFIG);
    CU_ASSERT(tp_contains(st.message, "needs a TLS backend with TLS 1.3"));
    mesh_free(m);
    return;
  }
  tp_certs();
  bool up = srv_start(v);
  CU_ASSERT(up);
  size_t nclose = sizeof close_cases / sizeof *close_cases;
  for (size_t i = 0; up && rows == ROWS_CLOSE && i < nclose; i++)
    run_case(v, &close_cases[i]);
  for (size_t i = 0;
       up && rows == ROWS_NEWER && i < sizeof newer_cases / sizeof *newer_cases;
       i++)
    run_newer(v, &newer_cases[i]);
  for (size_t i = 0; up && rows == ROWS_EARLY && i < nclose; i++)
    if (close_cases[i].end != END_CLIENT) /* it reads no end */
      run_early(v, &close_cases[i]);
  srv_stop();
}

static void test_close_12(void) { run_version("1.2", ROWS_CLOSE); }
static void test_close_13(void) { run_version("1.3", ROWS_CLOSE); }
static void test_newer_12(void) { run_version("1.2", ROWS_NEWER); }
static void test_newer_13(void) { run_version("1.3", ROWS_NEWER); }
static void test_early_12(void) { run_version("1.2", ROWS_EARLY); }
static void test_early_13(void) { run_version("1.3", ROWS_EARLY); }

/* ---- openssl s_server -www closes first --------------------------------- */

static pid_t start_s_server(int port, const char *v) {
  char acc[32], crt[300], key[300], ca[300];
  snprintf(acc, sizeof acc, "127.0.0.1:%d", port);
  snprintf(crt, sizeof crt, "%s", th_path("server.crt"));
  snprintf(key, sizeof key, "%s", th_path("server.key"));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  const char *argv[] = {"openssl", "s_server", "-accept", acc, "-cert", crt,
                        "-key", key, "-CAfile", ca,
                        strcmp(v, "1.3") == 0 ? "-tls1_3" : "-tls1_2",
                        "-www", NULL};
  pid_t pid = th_spawn(argv, "s_server-close.log");
  if (pid > 0 && !th_wait_port(port, 5000 * slow())) {
    th_stop(pid);
    return -1;
  }
  return pid;
}

/* One GET, read to the end (s_server sends close_notify and closes). */
static int www_once(mesh_t *cm, int port, long *last) {
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  if (mesh_dial(cm, tp_addr(port), NULL, &c, &st) != MESH_OK) {
    fprintf(stderr, "\n  dial s_server: %s\n", st.message);
    return -1;
  }
  int resumed = mesh_conn_resumed(c);
  mesh_conn_set_timeouts(c, 10000 * slow(), 10000 * slow());
  const char *req = "GET / HTTP/1.0\r\n\r\n";
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, req, strlen(req)), MESH_OK);
  char b[4096];
  *last = 1;
  for (int i = 0; i < 10000 && *last > 0; i++)
    *last = mesh_conn_read(c, b, sizeof b);
  mesh_conn_close(c);
  return resumed;
}

static void s_server_version(const char *v) {
  if (strcmp(v, "1.3") == 0 && !mesh__tls_be.has_tls13())
    return; /* asserted by test_close_13 */
  fprintf(stderr, "\n  [openssl s_server -www, TLS %s]", v);
  tp_certs();
  mesh_t *cm = tp_mesh("client", TD, tls_member(v));
  CU_ASSERT_PTR_NOT_NULL_FATAL(cm);
  int port = th_free_port();
  pid_t pid = start_s_server(port, v);
  CU_ASSERT(pid > 0);
  if (pid > 0) {
    for (int i = 0; i < 3; i++) {
      long last = 1;
      int r = www_once(cm, port, &last);
      if (r != (i > 0))
        fprintf(stderr, "\n  dial %d: resumed=%d, want %d\n", i + 1, r,
                i > 0);
      CU_ASSERT_EQUAL(r, i > 0 ? 1 : 0);
      CU_ASSERT_EQUAL(last, 0); /* close_notify: a clean end */
    }
    th_stop(pid);
  }
  mesh_free(cm);
}

static void test_s_server(void) {
  if (!th_require("openssl", "openssl"))
    return;
  s_server_version("1.2");
  s_server_version("1.3");
}

/* ---- OpenSSL backend: one TLS 1.3 ticket per connection ------------------ */

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static bool log_has_pong(void *arg) {
  char *s = th_slurp(th_path((const char *)arg), NULL);
  bool ok = s && strstr(s, "pong");
  free(s);
  return ok;
}

/* `openssl s_client -msg` prints every handshake message; the server's
 * "pong" comes after its tickets, so the count is final when it shows. */
static void test_one_ticket(void) {
  if (!th_require("openssl", "openssl"))
    return;
  tp_certs();
  CU_ASSERT_FATAL(srv_start("1.3"));
  char acc[32], crt[300], key[300], ca[300];
  snprintf(acc, sizeof acc, "127.0.0.1:%d", mesh_listener_port(srv.l));
  snprintf(crt, sizeof crt, "%s", th_path("client.crt"));
  snprintf(key, sizeof key, "%s", th_path("client.key"));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  const char *argv[] = {"openssl", "s_client", "-connect", acc, "-cert", crt,
                        "-key", key, "-CAfile", ca, "-tls1_3", "-msg", NULL};
  int in = -1;
  pid_t pid = th_spawn_stdin(argv, "s_client-tickets.log", &in);
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT(write(in, "ping\n", 5) == 5);
  CU_ASSERT(th_wait_for(log_has_pong, (void *)"s_client-tickets.log",
                        TH_CAP_MS, "s_client got pong"));
  char *log = th_slurp(th_path("s_client-tickets.log"), NULL);
  CU_ASSERT_EQUAL(count_of(log, "NewSessionTicket"), 1);
  free(log);
  close(in);
  th_stop(pid);
  srv_stop();
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls_close", NULL, NULL);
  CU_add_test(s, "TLS 1.2: how the peer ended decides resumption",
              test_close_12);
  CU_add_test(s, "TLS 1.3: how the peer ended decides resumption",
              test_close_13);
  CU_add_test(s, "TLS 1.2: an unclean end keeps a newer session",
              test_newer_12);
  CU_add_test(s, "TLS 1.3: an unclean end keeps a newer session",
              test_newer_13);
  CU_add_test(s, "TLS 1.2: the end is judged at the read, before close",
              test_early_12);
  CU_add_test(s, "TLS 1.3: the end is judged at the read, before close",
              test_early_13);
  CU_add_test(s, "openssl s_server -www closes first: next dial resumes",
              test_s_server);
  if (strcmp(mesh__tls_be.name, "openssl") == 0)
    CU_add_test(s, "OpenSSL server: one TLS 1.3 ticket per connection",
                test_one_ticket);
}

int main(void) {
  int rc = th_run_suites("test_tls_close", add);
  srv_stop(); /* a fatal assertion left it running */
  return rc;
}

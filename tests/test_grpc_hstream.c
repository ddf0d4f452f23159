/* SPDX-License-Identifier: Apache-2.0 */
/* Hedged streaming calls (gRFC A6 hedgingPolicy on client-streaming,
 * server-streaming and bidi calls) against a python3-grpcio backend on
 * loopback (tests/grpc_peer.py, modes stall: and failfirst:).  The backend
 * numbers its calls in arrival order (the tries of one call: 0, 1, ...),
 * logs every message each call receives, and sees cancellations.  One
 * table: the first try stalls and the hedge answers (each kind of call),
 * replayed messages arrive identical and in order, the first answer
 * commits and the later try is cancelled, a buffer over
 * perRpcBufferLimit stops hedging, non-fatal vs fatal statuses, and a
 * retry budget that refuses the hedge. */
#include "helpers.h"
#include "test_grpc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mesh/mesh.h>

enum kind { COLLECT, EXPAND, STREAM };
static const char *const kind_name[] = {"Collect", "Expand", "Stream"};

typedef struct row {
  const char *what;
  enum kind kind;
  const char *mode;      /* the backend's --mode */
  const char *delay;     /* hedgingDelay */
  const char *grpc_x;    /* more keys of the service's "grpc" object */
  const char *svc_x;     /* more keys of the service */
  int nmsg;              /* messages sent before the close (COLLECT) */
  int msg_len;
  int code;              /* the call's status */
  int attempts;          /* tries the call made (and the backend saw) */
  int winner;            /* the backend call that answered, -1 none */
  int cancelled;         /* from this backend call on, every try but the
                          * winner saw a cancel; -1 none */
  int64_t min_ms, max_ms;
  int max_att;           /* maxAttempts; 0: 2 (so that the tries a row
                          * makes do not depend on the machine's speed) */
} row_t;

static const row_t rows[] = {
    /* the first try stalls, the hedge answers; the stalled one is
     * cancelled (each kind of call) */
    {"collect: hedge answers", COLLECT, "stall:30000", "0.2s", "", "", 5, 7,
     0, 2, 1, 0, 0, 10000},
    {"expand: hedge answers", EXPAND, "stall:30000", "0.2s", "", "", 1, 4, 0,
     2, 1, 0, 0, 10000},
    {"stream: hedge answers", STREAM, "stall:30000", "0.2s", "", "", 3, 6, 0,
     2, 1, 0, 0, 10000},
    /* large replayed messages (flow control on the hedge's stream) */
    {"collect: 3 x 64 KiB replayed", COLLECT, "stall:30000", "0.2s", "", "",
     3, 65536, 0, 2, 1, 0, 0, 15000},
    /* 5 x 64 KiB is over the default perRpcBufferLimit (256 KiB): no
     * hedge, the one try is answered after its 3 s.  (start returns once
     * the first try has its stream, and only then can the messages be
     * sent: hedgingDelay 2 s leaves room for a slow connection, e.g.
     * under valgrind) */
    {"collect: over the default buffer limit", COLLECT, "stall:3000", "2s",
     "", "", 5, 65536, 0, 1, 0, -1, 2500, 15000},
    /* the first try answers after the hedge started: it wins, the hedge
     * is cancelled, the application gets one copy of each message */
    {"expand: first answer commits", EXPAND, "stall:600,30000,30000", "0.1s",
     "", "", 1, 4, 0, 3, 0, 1, 500, 10000, 3},
    {"stream: first answer commits", STREAM, "stall:600,30000,30000", "0.1s",
     "", "", 3, 6, 0, 3, 0, 1, 500, 10000, 3},
    /* over perRpcBufferLimit before the hedge is due: no hedge, the call
     * waits for its one try (3 s) and completes (delay 2 s: as above) */
    {"collect: buffer limit stops hedging", COLLECT, "stall:3000", "2s",
     ", \"perRpcBufferLimit\": 1000", "", 4, 400, 0, 1, 0, -1, 2500, 15000},
    {"collect: under the buffer limit", COLLECT, "stall:1500", "0.2s",
     ", \"perRpcBufferLimit\": 100000", "", 4, 400, 0, 2, 1, 0, 0, 10000},
    {"collect: channel buffer limit stops hedging", COLLECT, "stall:3000",
     "2s", ", \"retryBufferSize\": 1000", "", 4, 400, 0, 1, 0, -1, 2500,
     15000},
    /* non-fatal UNAVAILABLE: the next hedge goes at once (not after
     * 10 s) and gets the messages; fatal INVALID_ARGUMENT ends the call */
    {"collect: non-fatal status", COLLECT, "failfirst:14", "10s", "", "", 3,
     5, 0, 2, 1, -1, 0, 5000},
    {"stream: non-fatal status", STREAM, "failfirst:14", "10s", "", "", 3, 5,
     0, 2, 1, -1, 0, 5000},
    {"collect: fatal status", COLLECT, "failfirst:3", "10s", "", "", 3, 5,
     3, 1, -1, -1, 0, 5000},
    /* server pushback on a non-fatal status: the next hedge waits for it
     * (not the 10 s delay); a negative one stops hedging */
    {"collect: pushback 800 ms", COLLECT, "failfirst:14:800", "10s", "", "",
     3, 5, 0, 2, 1, -1, 700, 5000},
    {"collect: pushback -1", COLLECT, "failfirst:14:-1", "10s", "", "", 3, 5,
     14, 1, -1, -1, 0, 5000},
    /* retryThrottling (A6): maxTokens 2, one non-fatal failure leaves 1
     * token, not above half: no hedge, the call ends with the failure;
     * with 10 tokens the hedge goes */
    {"collect: retryThrottling stops hedging", COLLECT, "failfirst:14", "10s",
     ", \"retryThrottling\": {\"maxTokens\": 2, \"tokenRatio\": 0.1}", "",
     3, 5, 14, 1, -1, -1, 0, 5000},
    {"collect: retryThrottling with tokens left", COLLECT, "failfirst:14",
     "10s", ", \"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 1}",
     "", 3, 5, 0, 2, 1, -1, 0, 5000},
    /* the service's retry budget refuses the hedge */
    {"collect: budget refuses hedges", COLLECT, "stall:1500", "0.1s", "",
     ", \"retry\": {\"budget\": false}, \"circuit_breakers\":"
     " {\"max_retries\": 0}", 3, 5, 0, 1, 0, -1, 1000, 15000},
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static mesh_t *client(int port, const row_t *r) {
  char extra[4096];
  snprintf(extra, sizeof extra,
           "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]},"
           " \"timeouts\": {\"connect_ms\": 5000, \"overall_ms\": 40000}%s,"
           " \"grpc\": {\"methodConfig\": [{\"name\": [{\"service\":"
           " \"mesh.v1.Echo\"}], \"hedgingPolicy\": {\"maxAttempts\": %d,"
           " \"hedgingDelay\": \"%s\", \"nonFatalStatusCodes\":"
           " [\"UNAVAILABLE\"]}}]%s}}}",
           port, r->svc_x, r->max_att ? r->max_att : 2, r->delay, r->grpc_x);
  mesh_t *m = NULL;
  mesh_status_t st;
  if (!tg_svid("cli") || mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
    fprintf(stderr, "\nclient config: %s\n", st.message);
  return m;
}

/* Message i of a row: msg_len bytes, all 'a' + i. */
static void make_msg(const row_t *r, int i, char *buf) {
  memset(buf, 'a' + i, (size_t)r->msg_len);
}

/* The backend's "recv K HEX" lines for call k, in order, against the
 * messages 0 .. n-1 of the row.  @return true when identical. */
static bool replay_ok(const char *tag, const row_t *r, int k, int n) {
  char ev[300];
  snprintf(ev, sizeof ev, "%s.events", tag);
  char *text = th_slurp(th_path(ev), NULL);
  char pfx[32];
  int plen = snprintf(pfx, sizeof pfx, "recv %d ", k);
  char *msg = malloc((size_t)r->msg_len), *hex = malloc(2 * r->msg_len + 1);
  int got = 0;
  bool ok = text && msg && hex;
  for (char *p = text; ok && p && *p;) {
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    if (!strncmp(p, pfx, (size_t)plen)) {
      if (got < n) {
        make_msg(r, got, msg);
        for (int i = 0; i < r->msg_len; i++)
          snprintf(hex + 2 * i, 3, "%02x", (unsigned char)msg[i]);
        ok = strcmp(p + plen, hex) == 0;
      } else {
        ok = false;
      }
      if (!ok)
        fprintf(stderr, "\n%s: call %d message %d differs\n", r->what, k, got);
      got++;
    }
    p = nl ? nl + 1 : NULL;
  }
  if (ok && got != n)
    fprintf(stderr, "\n%s: call %d got %d messages, sent %d\n", r->what, k,
            got, n);
  free(text);
  free(msg);
  free(hex);
  return ok && got == n;
}

/* Receive one message; it must be message i of the row. */
static void expect_msg(mesh_grpc_call_t *c, const row_t *r, int i) {
  void *m = NULL;
  size_t l = 0;
  mesh_status_t st;
  int rc = mesh_grpc_call_recv(c, &m, &l, &st);
  char *want = malloc((size_t)r->msg_len);
  make_msg(r, i, want);
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT(l == (size_t)r->msg_len && m && !memcmp(m, want, l));
  if (rc != 1)
    fprintf(stderr, "\n%s: recv %d: rc %d %s\n", r->what, i, rc, st.message);
  free(want);
  mesh_grpc_free(m);
}

/* The application's side of the call, by kind.  @return messages the
 * backend should have received on the answering call. */
static int converse(mesh_grpc_call_t *c, const row_t *r) {
  mesh_status_t st;
  char *buf = malloc((size_t)r->msg_len * (size_t)(r->nmsg + 1));
  int n = r->kind == STREAM ? r->nmsg + 1 : r->nmsg;
  for (int i = 0; i < r->nmsg; i++) {
    make_msg(r, i, buf + (size_t)i * r->msg_len);
    int rc = mesh_grpc_call_send(c, buf + (size_t)i * r->msg_len,
                                 (size_t)r->msg_len, &st);
    /* a fatal status may have ended the call already */
    CU_ASSERT(rc == MESH_OK || (r->code && rc == MESH_ERR_CLOSED));
  }
  if (r->kind != STREAM) {
    int rc = mesh_grpc_call_close_send(c, &st);
    CU_ASSERT(rc == MESH_OK || (r->code && rc == MESH_ERR_CLOSED));
  }
  void *m = NULL;
  size_t l = 0;
  if (r->code != 0) {
    CU_ASSERT_EQUAL(mesh_grpc_call_recv(c, &m, &l, &st), 0);
  } else if (r->kind == COLLECT) {
    int rc = mesh_grpc_call_recv(c, &m, &l, &st);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT(l == (size_t)r->msg_len * r->nmsg && m &&
              !memcmp(m, buf, l));
    if (rc != 1)
      fprintf(stderr, "\n%s: recv: rc %d %s\n", r->what, rc, st.message);
  } else if (r->kind == EXPAND) {
    for (int i = 0; i < 5; i++) /* x-count 5: five copies, no more */
      expect_msg(c, r, 0);
  } else {
    for (int i = 0; i < r->nmsg; i++)
      expect_msg(c, r, i);
    /* after the commit: straight to the committed try */
    make_msg(r, r->nmsg, buf);
    CU_ASSERT_EQUAL(mesh_grpc_call_send(c, buf, (size_t)r->msg_len, &st),
                    MESH_OK);
    expect_msg(c, r, r->nmsg);
    CU_ASSERT_EQUAL(mesh_grpc_call_close_send(c, &st), MESH_OK);
  }
  mesh_grpc_free(m);
  m = NULL;
  if (r->code == 0) /* nothing more: no duplicate from another try */
    CU_ASSERT_EQUAL(mesh_grpc_call_recv(c, &m, &l, &st), 0);
  mesh_grpc_free(m);
  free(buf);
  return n;
}

/* Backend calls whose grpc-previous-rpc-attempts was val ("prev K val"
 * lines). */
static int prev_count(const char *tag, const char *val) {
  char ev[300];
  snprintf(ev, sizeof ev, "%s.events", tag);
  char *text = th_slurp(th_path(ev), NULL);
  int n = 0;
  size_t vl = strlen(val);
  for (char *p = text; p && *p;) {
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    size_t l = strlen(p);
    if (!strncmp(p, "prev ", 5) && l > vl && p[l - vl - 1] == ' ' &&
        !strcmp(p + l - vl, val))
      n++;
    p = nl ? nl + 1 : NULL;
  }
  free(text);
  return n;
}

/* Wait (bounded) until tag's events have a line equal to line. */
static bool events_reach(const char *tag, const char *line) {
  int64_t end = now_ms() + 10000;
  while (tg_events(tag, line) < 1 && now_ms() < end)
    usleep(20000);
  return tg_events(tag, line) >= 1;
}

static void run_row(const row_t *r) {
  int port;
  pid_t p = tg_py_server("hstream", r->mode, &port);
  CU_ASSERT_FATAL(p > 0);
  mesh_t *m = client(port, r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  if (r->kind == EXPAND) {
    mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
    mesh_grpc_metadata_add(md, "x-count", "5", NULL);
    mesh_grpc_call_opts_set_metadata(o, md);
    mesh_grpc_metadata_free(md);
  }
  char method[64];
  snprintf(method, sizeof method, "/mesh.v1.Echo/%s", kind_name[r->kind]);
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  int64_t t0 = now_ms();
  int rc = mesh_grpc_call_start(m, "echo", method, o, &c, &st);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  int n = converse(c, r);
  rc = mesh_grpc_call_finish(c, &st);
  int64_t ms = now_ms() - t0;
  int code = mesh_grpc_call_status(c), att = mesh_grpc_call_attempts(c);
  CU_ASSERT_EQUAL(rc, r->code ? MESH_ERR_GRPC_STATUS : MESH_OK);
  CU_ASSERT_EQUAL(code, r->code);
  CU_ASSERT_EQUAL(att, r->attempts);
  CU_ASSERT(ms >= r->min_ms && ms < r->max_ms);
  if (code != r->code || att != r->attempts || ms < r->min_ms ||
      ms >= r->max_ms)
    fprintf(stderr, "\n%s: status %d (%s), %d attempts, %lld ms\n", r->what,
            code, mesh_grpc_call_status_message(c), att, (long long)ms);
  /* the backend: the tries it saw, who answered, who was cancelled */
  const char *meth = kind_name[r->kind];
  char line[128];
  for (int k = 0; k < r->attempts; k++) {
    snprintf(line, sizeof line, "start %s %d", meth, k);
    CU_ASSERT(events_reach("hstream", line));
  }
  snprintf(line, sizeof line, "start %s %d", meth, r->attempts);
  CU_ASSERT_EQUAL(tg_events("hstream", line), 0);
  /* grpc-previous-rpc-attempts: none on the first try, k on try k (the
   * backend numbers calls by arrival: when the first connection takes
   * longer than hedgingDelay, a hedge may arrive first) */
  for (int k = 0; k < r->attempts; k++) {
    char val[16];
    snprintf(val, sizeof val, k ? "%d" : "-", k);
    int seen = prev_count("hstream", val);
    CU_ASSERT_EQUAL(seen, 1);
    if (seen != 1) {
      char *ev = th_slurp(th_path("hstream.events"), NULL);
      fprintf(stderr, "\n%s: %d calls with grpc-previous-rpc-attempts %s "
              "in:\n%s\n", r->what, seen, val, ev ? ev : "(none)");
      free(ev);
    }
  }
  if (r->winner >= 0)
    CU_ASSERT(replay_ok("hstream", r, r->winner, n));
  /* every try but the winner was cancelled on the backend (stall rows) */
  for (int k = r->cancelled; k >= 0 && k < r->attempts; k++) {
    if (k == r->winner)
      continue;
    snprintf(line, sizeof line, "cancelled %s %d", meth, k);
    bool seen = events_reach("hstream", line);
    CU_ASSERT(seen);
    if (!seen)
      fprintf(stderr, "\n%s: the backend saw no \"%s\"\n", r->what, line);
  }
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
  mesh_free(m);
  th_stop(p);
}

static void test_rows(void) {
  const char *only = getenv("HSTREAM_ROW"); /* debugging: rows matching */
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    if (only && !strstr(rows[i].what, only))
      continue;
    fprintf(stderr, "\n  row: %s", rows[i].what);
    run_row(&rows[i]);
  }
}

/* Cancel a hedged call while both tries stall: every try is cancelled on
 * the backend, finish says CANCELLED, nothing hangs. */
static void test_cancel(void) {
  int port;
  pid_t p = tg_py_server("hstream_c", "stall:30000,30000", &port);
  CU_ASSERT_FATAL(p > 0);
  row_t r = rows[0];
  mesh_t *m = client(port, &r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_grpc_call_start(m, "echo",
                                             "/mesh.v1.Echo/Collect", NULL,
                                             &c, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_grpc_call_send(c, "x", 1, &st), MESH_OK);
  CU_ASSERT(events_reach("hstream_c", "start Collect 1"));
  mesh_grpc_call_cancel(c);
  CU_ASSERT_EQUAL(mesh_grpc_call_finish(c, &st), MESH_ERR_GRPC_STATUS);
  CU_ASSERT_EQUAL(mesh_grpc_call_status(c), 1); /* CANCELLED */
  CU_ASSERT(events_reach("hstream_c", "cancelled Collect 0"));
  CU_ASSERT(events_reach("hstream_c", "cancelled Collect 1"));
  mesh_grpc_call_free(c);
  /* freed without finish, mid-call: the same, no leak (valgrind) */
  CU_ASSERT_EQUAL_FATAL(mesh_grpc_call_start(m, "echo",
                                             "/mesh.v1.Echo/Collect", NULL,
                                             &c, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_grpc_call_send(c, "y", 1, &st), MESH_OK);
  mesh_grpc_call_free(c);
  mesh_free(m);
  th_stop(p);
}

/* The buffer keys are validated. */
static void test_config(void) {
  CU_ASSERT_FATAL(tg_svid("cli"));
  const char *bad[] = {"\"perRpcBufferLimit\": 0", "\"retryBufferSize\": -1",
                       "\"perRpcBufferLimit\": \"1k\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char extra[1024];
    snprintf(extra, sizeof extra,
             "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
             " \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": 1}]},"
             " \"grpc\": {%s}}}", bad[i]);
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(tg_config("cli", extra), &m, &st),
                    MESH_ERR_CONFIG);
    CU_ASSERT(strstr(st.message, "grpc.") != NULL);
    mesh_free(m);
  }
}

/* ---- start when no try can get a stream ------------------------------------------ */

typedef struct srow {
  const char *what;
  int refused;          /* endpoints that refuse the connection */
  bool serving;         /* and the backend (last) */
  const char *nonfatal; /* nonFatalStatusCodes */
} srow_t;

static const srow_t srows[] = {
    {"one host, refused", 1, false, "[\"UNAVAILABLE\"]"},
    {"two hosts, both refuse", 2, false, "[\"UNAVAILABLE\"]"},
    {"refused, UNAVAILABLE fatal", 1, false, "[]"},
    {"one refuses, one serves", 1, true, "[\"UNAVAILABLE\"]"},
};

/* Service "echo" on ports[0..n); hedged: maxAttempts 3 after 10 s (a
 * hedge that goes earlier goes because a try failed), else no grpc. */
static mesh_t *sclient(const int *ports, int n, const srow_t *r, bool hedged) {
  char eps[512] = "", grpc[512] = "", extra[2048];
  for (int i = 0; i < n; i++)
    snprintf(eps + strlen(eps), sizeof eps - strlen(eps),
             "%s{\"address\": \"127.0.0.1\", \"port\": %d}", i ? ", " : "",
             ports[i]);
  if (hedged)
    snprintf(grpc, sizeof grpc, ", \"grpc\": {\"methodConfig\": [{\"name\": "
             "[{\"service\": \"mesh.v1.Echo\"}], \"hedgingPolicy\": "
             "{\"maxAttempts\": 3, \"hedgingDelay\": \"10s\", "
             "\"nonFatalStatusCodes\": %s}}]}", r->nonfatal);
  snprintf(extra, sizeof extra,
           "\"services\": {\"echo\": {\"discovery\": {\"type\": \"static\","
           " \"endpoints\": [%s]}, \"timeouts\": {\"connect_ms\": 5000,"
           " \"overall_ms\": 20000}%s}}", eps, grpc);
  mesh_t *m = NULL;
  mesh_status_t st;
  if (!tg_svid("cli") || mesh_new(tg_config("cli", extra), &m, &st) != MESH_OK)
    fprintf(stderr, "\nclient config: %s\n", st.message);
  return m;
}

/* A working call of kind k on c: one message, the close, every answer,
 * status OK. */
static void start_ok_call(mesh_grpc_call_t *c, enum kind k, const char *what) {
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_grpc_call_send(c, "x", 1, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_grpc_call_close_send(c, &st), MESH_OK);
  int got = 0, rc;
  void *m = NULL;
  size_t l;
  while (got < 10 && (rc = mesh_grpc_call_recv(c, &m, &l, &st)) == 1) {
    mesh_grpc_free(m);
    m = NULL;
    got++;
  }
  CU_ASSERT_EQUAL(got, k == EXPAND ? 3 : 1); /* x-count 3 by default */
  CU_ASSERT_EQUAL(mesh_grpc_call_finish(c, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_grpc_call_status(c), 0);
  if (mesh_grpc_call_status(c) != 0)
    fprintf(stderr, "\n%s (%s): status %d %s\n", what, kind_name[k],
            mesh_grpc_call_status(c), mesh_grpc_call_status_message(c));
}

/* One row x kind: start without hedging, then with; both end the same
 * way when no try can get a stream (start's code), and a hedged start
 * does not wait for hedgingDelay to say so. */
static void start_case(const srow_t *r, enum kind k) {
  int ports[3], n = 0, port = 0;
  pid_t p = 0;
  for (int i = 0; i < r->refused; i++)
    ports[n++] = th_free_port(); /* nothing listens there */
  if (r->serving) {
    p = tg_py_server("hstart", "stall:0", &port);
    CU_ASSERT_FATAL(p > 0);
    ports[n++] = port;
  }
  char method[64];
  snprintf(method, sizeof method, "/mesh.v1.Echo/%s", kind_name[k]);
  int want = MESH_OK;
  for (int hedged = 0; hedged < 2; hedged++) {
    mesh_t *m = sclient(ports, n, r, hedged);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    mesh_grpc_call_t *c = NULL;
    mesh_status_t st;
    int64_t t0 = now_ms();
    int rc = mesh_grpc_call_start(m, "echo", method, NULL, &c, &st);
    int64_t ms = now_ms() - t0;
    if (!hedged) {
      want = rc;
      CU_ASSERT(r->serving || rc != MESH_OK);
    } else {
      CU_ASSERT_EQUAL(rc, r->serving ? MESH_OK : want);
      CU_ASSERT(ms < 5000); /* not after hedgingDelay (10 s) */
      if (rc != (r->serving ? MESH_OK : want) || ms >= 5000)
        fprintf(stderr, "\n%s (%s): hedged start %s (%s) after %lld ms, "
                "without hedging %s\n", r->what, kind_name[k],
                mesh_code_name(rc), st.message, (long long)ms,
                mesh_code_name(want));
    }
    if (rc != MESH_OK) {
      CU_ASSERT_PTR_NULL(c);
      CU_ASSERT(st.message[0] != '\0');
    } else if (hedged) {
      start_ok_call(c, k, r->what);
    }
    mesh_grpc_call_free(c);
    mesh_free(m);
  }
  if (p > 0)
    th_stop(p);
}

static void test_start_error(void) {
  for (size_t i = 0; i < sizeof srows / sizeof srows[0]; i++)
    for (int k = COLLECT; k <= STREAM; k++) {
      size_t before = CU_get_number_of_failures();
      start_case(&srows[i], (enum kind)k);
      if (CU_get_number_of_failures() != before)
        fprintf(stderr, "\nstart row failed: %s, %s\n", srows[i].what,
                kind_name[k]);
    }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_hstream", NULL, NULL);
  CU_add_test(s, "hedged streaming calls (table)", test_rows);
  CU_add_test(s, "cancel a hedged streaming call", test_cancel);
  CU_add_test(s, "start: no stream, the error of an unhedged start", test_start_error);
  CU_add_test(s, "buffer limit config", test_config);
}

int main(void) { return th_run_suites("test_grpc_hstream", add); }

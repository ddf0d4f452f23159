/* SPDX-License-Identifier: Apache-2.0 */
/* The inbound side against every kind of peer, under every observability
 * setting (issue 12, item 1: a PERMISSIVE listener recording spans died on
 * the first plaintext byte, reading the peer identity of a peer that has
 * none).
 *
 * Table: inbound mode (STRICT, PERMISSIVE) x observability (none, admin
 * endpoint, OTLP exporter, Zipkin exporter, span hooks) x peer (mTLS, TLS
 * without a client certificate, plaintext, binary garbage, a broken TLS
 * record, connect and close at once).  Each case asserts what the server's
 * mesh_accept() returns (served, or refused with the right code), what the
 * observability output says about the peer, and that the same server then
 * serves a good mTLS client.  The exporters post to a loopback collector
 * (tests/test_export_collector.py); the admin endpoint is read over HTTP.
 *
 * `meshctl serve` (PERMISSIVE, with and without the admin endpoint) is run
 * as a user runs it, with a plaintext peer and then an mTLS one. */
#include "helpers.h"

#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "test_tls_peer.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))

/* ---- the table ------------------------------------------------------------- */

typedef enum obs {
  OBS_NONE,
  OBS_ADMIN,
  OBS_OTLP,
  OBS_ZIPKIN,
  OBS_HOOKS,
} obs_t;

static const char *const obs_names[] = {"none", "admin", "otlp", "zipkin",
                                        "hooks"};

typedef enum peer_kind {
  PEER_MTLS,
  PEER_TLS_NO_CERT,
  PEER_PLAINTEXT,
  PEER_GARBAGE,
  PEER_TLS_JUNK,
  PEER_CLOSE,
} peer_kind_t;

/* Inbound modes: STRICT, PERMISSIVE, and PERMISSIVE with a policy that
 * admits authenticated peers only (authorization sees the plaintext
 * peer's empty identity). */
typedef enum mode {
  MODE_STRICT,
  MODE_PERMISSIVE,
  MODE_PERMISSIVE_AUTHZ,
} inbound_mode_t;

static const char *const mode_names[] = {"STRICT", "PERMISSIVE",
                                         "PERMISSIVE+authz"};

typedef struct peer_case {
  const char *name;
  peer_kind_t kind;
  int rc[3];         /* what mesh_accept() returns, by mode */
  const char *msg[3]; /* in the refusal's message, by mode */
} peer_case_t;

/* Bytes a plaintext client sends first; the server echoes them when it
 * serves the peer. */
static const char plaintext_bytes[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
static const char garbage_bytes[] = "\x00\xff\x13\x37\x80\x01\xfe\x7f";
/* A TLS handshake record header whose body is not a ClientHello. */
static const char tls_junk_bytes[] = "\x16\x03\x01\x00\x08\xde\xad\xbe\xef"
                                     "\x00\x11\x22\x33";

#define SAME3(x) {x, x, x}
static const peer_case_t peer_cases[] = {
    {"mTLS client", PEER_MTLS, SAME3(MESH_OK), SAME3("")},
    {"TLS without client certificate", PEER_TLS_NO_CERT,
     SAME3(MESH_ERR_NO_PEER_CERT), SAME3("sent no client cert")},
    {"plaintext HTTP",
     PEER_PLAINTEXT,
     {MESH_ERR_PLAINTEXT_PEER, MESH_OK, MESH_ERR_DENIED},
     {"non-TLS bytes", "", "plaintext peer"}},
    /* The first byte is not a TLS record type: PERMISSIVE cannot tell it
     * from a plaintext protocol, and hands it over like one. */
    {"binary garbage",
     PEER_GARBAGE,
     {MESH_ERR_PLAINTEXT_PEER, MESH_OK, MESH_ERR_DENIED},
     {"non-TLS bytes", "", "plaintext peer"}},
    {"broken TLS record", PEER_TLS_JUNK, SAME3(MESH_ERR_TLS),
     SAME3("TLS handshake with")},
    {"connect and close at once", PEER_CLOSE, SAME3(MESH_ERR_PEER_CLOSED),
     SAME3("before sending anything")},
};

/* ---- captured spans (span hooks) ------------------------------------------- */

#define MAX_SPANS 64

typedef struct cap_span {
  char name[32];
  int status;
  char peer_id[256];
  char plaintext[8];
  char error[64];
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
  if (strcmp(mesh_span_name(sp), "mesh.accept") != 0)
    return;
  pthread_mutex_lock(&c->mu);
  if (c->n < MAX_SPANS) {
    cap_span_t *s = &c->v[c->n++];
    snprintf(s->name, sizeof s->name, "%s", mesh_span_name(sp));
    s->status = mesh_span_status(sp, NULL);
    attr(sp, "mesh.peer.spiffe_id", s->peer_id, sizeof s->peer_id);
    attr(sp, "mesh.plaintext", s->plaintext, sizeof s->plaintext);
    attr(sp, "error.type", s->error, sizeof s->error);
  }
  pthread_mutex_unlock(&c->mu);
}

static cap_span_t span_at(spans_t *c, int i) {
  cap_span_t s;
  memset(&s, 0, sizeof s);
  snprintf(s.name, sizeof s.name, "(none)");
  pthread_mutex_lock(&c->mu);
  if (i < c->n)
    s = c->v[i];
  pthread_mutex_unlock(&c->mu);
  return s;
}

/* ---- the collector (OTLP and Zipkin) --------------------------------------- */

static struct {
  pid_t pid;
  int port;
  char dir[512];
} collector;

static bool collector_up(void) {
  if (collector.pid > 0)
    return true;
  snprintf(collector.dir, sizeof collector.dir, "%s",
           th_path("matrix-collector"));
  char cmd[700];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", collector.dir);
  if (th_sh(cmd) != 0)
    return false;
  collector.port = th_free_port();
  char port[16];
  snprintf(port, sizeof port, "%d", collector.port);
  const char *argv[] = {"python3",
                        TEST_SRCDIR "/tests/test_export_collector.py",
                        "--port", port, "--dir", collector.dir, NULL};
  collector.pid = th_spawn(argv, "matrix-collector.log");
  return collector.pid > 0 && th_wait_port(collector.port, 10000);
}

/* Did the collector receive a body naming both service and needle? */
static bool collector_has(const char *service, const char *needle) {
  struct dirent **ents;
  int n = scandir(collector.dir, &ents, NULL, alphasort);
  bool found = false;
  for (int i = 0; i < n; i++) {
    const char *nm = ents[i]->d_name;
    size_t l = strlen(nm);
    if (!found && l > 5 && strcmp(nm + l - 5, ".json") == 0) {
      char path[1200];
      snprintf(path, sizeof path, "%s/%s", collector.dir, nm);
      char *body = th_slurp(path, NULL);
      found = body && strstr(body, service) && strstr(body, needle);
      free(body);
    }
    free(ents[i]);
  }
  free(ents);
  return found;
}

/* ---- peers ----------------------------------------------------------------- */

static void set_timeouts(int fd, int ms) {
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Send bytes; when echoed is set, read them back (the server served us).
 * @return true when the exchange went as expected. */
static bool raw_peer(int port, const char *bytes, size_t len, bool echoed) {
  int fd = tp_raw_connect(port);
  if (fd < 0)
    return false;
  set_timeouts(fd, 5000);
  bool ok = len == 0 || send(fd, bytes, len, MSG_NOSIGNAL) == (ssize_t)len;
  if (ok && echoed) {
    char buf[256];
    size_t got = 0;
    while (got < len) {
      ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
      if (r <= 0)
        break;
      got += (size_t)r;
    }
    ok = got == len && memcmp(buf, bytes, len) == 0;
    if (!ok)
      fprintf(stderr, "\n  plaintext echo: got %zu of %zu bytes\n", got, len);
  }
  close(fd);
  return ok;
}

/* A TLS client that verifies nothing and has no certificate (what `curl
 * -k` or `openssl s_client` without -cert send): Python's ssl module, so
 * that the peer is neither build's TLS library.  Under TLS 1.3 the client
 * is done before the server reads its (empty) Certificate: the refusal is
 * the server's alert (or close) at the first read; a timeout there means
 * nothing was refused.  @return 0 when the server accepted it. */
static int tls_no_cert_peer(int port) {
  static const char py[] =
      "import socket, ssl, sys\n"
      "c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
      "c.check_hostname = False\n"
      "c.verify_mode = ssl.CERT_NONE\n"
      "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5)\n"
      "try:\n"
      "    t = c.wrap_socket(s)\n"
      "    sys.exit(3 if t.recv(1) == b'' else 0)\n"
      "except socket.timeout:\n"
      "    sys.exit(0)\n"
      "except (ssl.SSLError, OSError):\n"
      "    sys.exit(3)\n";
  th_write(th_path("nocert.py"), py);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "python3 '%s' %d", th_path("nocert.py"), port);
  return th_sh(cmd);
}

/* Run one hostile (or good) peer against port.  @return true when the
 * peer saw what it should (served peers get their bytes back). */
static bool run_peer(mesh_t *cm, int port, const peer_case_t *pc,
                     bool served) {
  mesh_status_t st;
  switch (pc->kind) {
  case PEER_MTLS:
    return tp_echo_once(cm, tp_addr(port), "hello mtls", &st, NULL, 0,
                        NULL) == MESH_OK;
  case PEER_TLS_NO_CERT:
    return tls_no_cert_peer(port) != 0;
  case PEER_PLAINTEXT:
    return raw_peer(port, plaintext_bytes, sizeof plaintext_bytes - 1,
                    served);
  case PEER_GARBAGE:
    return raw_peer(port, garbage_bytes, sizeof garbage_bytes - 1, served);
  case PEER_TLS_JUNK:
    return raw_peer(port, tls_junk_bytes, sizeof tls_junk_bytes - 1, false);
  case PEER_CLOSE:
    return raw_peer(port, NULL, 0, false);
  }
  return false;
}

/* ---- the admin endpoint ---------------------------------------------------- */

/* GET path from the admin endpoint; the body (malloc'd) or NULL, status
 * in *code. */
static char *admin_get(int port, const char *path, int *code) {
  *code = 0;
  int fd = tp_raw_connect(port);
  if (fd < 0)
    return NULL;
  set_timeouts(fd, 5000);
  char req[256];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n",
                   path);
  if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
    close(fd);
    return NULL;
  }
  size_t cap = 1 << 16, got = 0;
  char *buf = malloc(cap);
  for (int i = 0; buf && i < 100000; i++) {
    if (got + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb)
        break;
      buf = nb;
      cap *= 2;
    }
    ssize_t r = recv(fd, buf + got, cap - got - 1, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  if (!buf)
    return NULL;
  buf[got] = '\0';
  sscanf(buf, "HTTP/1.1 %d", code);
  char *body = strstr(buf, "\r\n\r\n");
  char *out = strdup(body ? body + 4 : "");
  free(buf);
  return out;
}

/* ---- one (mode, observability) cell of the table ---------------------------- */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (!d)
    return -1;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

static mesh_t *good_cm; /* the good client, shared by every case */

static mesh_t *client_mesh(void) {
  if (!good_cm) {
    tp_certs();
    good_cm = tp_mesh("client", TD, NULL);
  }
  return good_cm;
}

static mesh_t *server_mesh(inbound_mode_t mode, obs_t obs, const char *service) {
  char extra[1024], tracing[512] = "";
  switch (obs) {
  case OBS_NONE:
  case OBS_HOOKS:
    break;
  case OBS_ADMIN:
    snprintf(tracing, sizeof tracing,
             ",\"admin\":{\"listen\":\"127.0.0.1:0\"}");
    break;
  case OBS_OTLP:
  case OBS_ZIPKIN:
    snprintf(tracing, sizeof tracing,
             ",\"tracing\":{\"sampler\":\"always_on\",\"%s\":{\"endpoint\":"
             "\"http://127.0.0.1:%d%s\"},\"batch\":{\"max_delay_ms\":50}}",
             obs == OBS_OTLP ? "otlp" : "zipkin", collector.port,
             obs == OBS_OTLP ? "" : "/api/v2/spans");
    break;
  }
  snprintf(extra, sizeof extra,
           "\"name\":\"%s\",\"inbound\":{\"mode\":\"%s\"},"
           "\"tls\":{\"handshake_timeout_ms\":10000}%s%s",
           service, mode == MODE_STRICT ? "STRICT" : "PERMISSIVE", tracing,
           mode != MODE_PERMISSIVE_AUTHZ
               ? ""
               : ",\"authz\":{\"policies\":[{\"name\":\"mtls-only\","
                 "\"rules\":[{\"from\":[{\"source\":{\"principals\":"
                 "[\"*\"]}}]}]}]}");
  return tp_mesh("server", TD, extra);
}

/* What the observability setting shows about case k (hostile peer: the
 * 2k-th accept, the good client after it: 2k+1). */
static void check_span(spans_t *sp, int k, const peer_case_t *pc, int want) {
  cap_span_t s = span_at(sp, 2 * k);
  CU_ASSERT_STRING_EQUAL(s.name, "mesh.accept");
  if (want != MESH_OK) {
    CU_ASSERT_EQUAL(s.status, MESH_SPAN_STATUS_ERROR);
    CU_ASSERT_STRING_EQUAL(s.error, mesh_code_name(want));
    CU_ASSERT_STRING_EQUAL(s.peer_id, "");
  } else if (pc->kind == PEER_MTLS) {
    CU_ASSERT_STRING_EQUAL(s.peer_id, CLIENT_ID);
    CU_ASSERT_STRING_EQUAL(s.plaintext, "");
  } else {
    /* served without TLS: no identity, marked plaintext */
    CU_ASSERT_STRING_EQUAL(s.peer_id, "");
    CU_ASSERT_STRING_EQUAL(s.plaintext, "true");
  }
  cap_span_t good = span_at(sp, 2 * k + 1);
  CU_ASSERT_STRING_EQUAL(good.peer_id, CLIENT_ID);
}

static void check_admin(mesh_t *sm, inbound_mode_t mode) {
  int port = mesh_admin_port(sm), code;
  CU_ASSERT_FATAL(port > 0);
  char *body = admin_get(port, "/spans", &code);
  CU_ASSERT_EQUAL(code, 200);
  cJSON *doc = body ? cJSON_Parse(body) : NULL;
  CU_ASSERT_PTR_NOT_NULL(doc);
  int accepts = 0, plain = 0;
  const cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(doc, "spans")) {
    const cJSON *nm = cJSON_GetObjectItem(s, "name");
    const cJSON *id = cJSON_GetObjectItem(s, "peer_id");
    if (cJSON_IsString(nm) && strcmp(nm->valuestring, "mesh.accept") == 0) {
      accepts++;
      plain += cJSON_IsString(id) && !id->valuestring[0];
    }
  }
  /* every peer had its accept span; the refused and plaintext ones
   * without a peer identity */
  CU_ASSERT_EQUAL(accepts, 2 * (int)N(peer_cases));
  CU_ASSERT_EQUAL(plain, (int)N(peer_cases) - 1);
  if (mode == MODE_PERMISSIVE_AUTHZ)
    CONTAINS(body, "\"error\":\"MESH_ERR_DENIED\"");
  cJSON_Delete(doc);
  free(body);
  body = admin_get(port, "/metrics", &code);
  CU_ASSERT_EQUAL(code, 200);
  CU_ASSERT_PTR_NOT_NULL(body);
  if (body)
    CONTAINS(body, "mesh_handshake_failures_total{direction=\"server\"");
  free(body);
  body = admin_get(port, "/healthz", &code);
  CU_ASSERT_EQUAL(code, 200);
  free(body);
}

static void run_cell(inbound_mode_t mode, obs_t obs) {
  mesh_t *cm = client_mesh();
  CU_ASSERT_FATAL(cm != NULL);
  if (obs == OBS_OTLP || obs == OBS_ZIPKIN)
    CU_ASSERT_FATAL(collector_up());
  char service[64];
  snprintf(service, sizeof service, "matrix-%d-%s", (int)mode,
           obs_names[obs]);
  int fds = count_fds();
  mesh_t *sm = server_mesh(mode, obs, service);
  CU_ASSERT_FATAL(sm != NULL);
  spans_t sp;
  memset(&sp, 0, sizeof sp);
  pthread_mutex_init(&sp.mu, NULL);
  if (obs == OBS_HOOKS)
    CU_ASSERT_EQUAL(mesh_set_span_hooks(sm, NULL, on_end, &sp), MESH_OK);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ECHO));
  for (size_t k = 0; k < N(peer_cases); k++) {
    const peer_case_t *pc = &peer_cases[k];
    int want = pc->rc[mode];
    CU_ASSERT(run_peer(cm, srv.port, pc, want == MESH_OK));
    CU_ASSERT_FATAL(tp_server_wait(&srv, 2 * (int)k + 1, 10000));
    tp_result_t r = tp_server_result(&srv, 2 * (int)k);
    if (r.rc != want)
      fprintf(stderr, "\n  %s, %s, %s: got %s (%s), want %s\n",
              mode_names[mode], obs_names[obs], pc->name,
              mesh_code_name(r.rc), r.msg, mesh_code_name(want));
    CU_ASSERT_EQUAL(r.rc, want);
    if (want != MESH_OK) {
      CONTAINS(r.msg, pc->msg[mode]);
    } else {
      CU_ASSERT_EQUAL(r.is_tls, pc->kind == PEER_MTLS);
      CU_ASSERT_STRING_EQUAL(r.peer, pc->kind == PEER_MTLS ? CLIENT_ID : "");
    }
    /* The server is still there and serves a good client. */
    mesh_status_t st;
    int rc = tp_echo_once(cm, tp_addr(srv.port), "after", &st, NULL, 0, NULL);
    if (rc != MESH_OK)
      fprintf(stderr, "\n  good client after %s: %s\n", pc->name, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_FATAL(tp_server_wait(&srv, 2 * (int)k + 2, 10000));
    CU_ASSERT_EQUAL(tp_server_result(&srv, 2 * (int)k + 1).rc, MESH_OK);
    if (obs == OBS_HOOKS)
      check_span(&sp, (int)k, pc, want);
  }
  if (obs == OBS_ADMIN)
    check_admin(sm, mode);
  tp_server_stop(&srv);
  if (obs == OBS_HOOKS)
    mesh_set_span_hooks(sm, NULL, NULL, NULL);
  mesh_free(sm); /* flushes the exporters */
  pthread_mutex_destroy(&sp.mu);
  if (obs == OBS_OTLP || obs == OBS_ZIPKIN)
    CU_ASSERT(collector_has(service, "mesh.accept"));
  CU_ASSERT_EQUAL(count_fds(), fds);
}

#define CELL(mode, obs)                                                       \
  static void test_##mode##_##obs(void) { run_cell(MODE_##mode, OBS_##obs); }
CELL(STRICT, NONE)
CELL(STRICT, ADMIN)
CELL(STRICT, OTLP)
CELL(STRICT, ZIPKIN)
CELL(STRICT, HOOKS)
CELL(PERMISSIVE, NONE)
CELL(PERMISSIVE, ADMIN)
CELL(PERMISSIVE, OTLP)
CELL(PERMISSIVE, ZIPKIN)
CELL(PERMISSIVE, HOOKS)
CELL(PERMISSIVE_AUTHZ, NONE)
CELL(PERMISSIVE_AUTHZ, ADMIN)
CELL(PERMISSIVE_AUTHZ, OTLP)
CELL(PERMISSIVE_AUTHZ, ZIPKIN)
CELL(PERMISSIVE_AUTHZ, HOOKS)

/* ---- meshctl serve ------------------------------------------------------------ */

static bool log_has(const char *log, const char *needle, int ms) {
  for (int i = 0; i <= ms / 20; i++) {
    char *text = th_slurp(th_path(log), NULL);
    bool ok = text && strstr(text, needle);
    free(text);
    if (ok)
      return true;
    usleep(20000);
  }
  char *text = th_slurp(th_path(log), NULL);
  fprintf(stderr, "\n  missing \"%s\" in %s:\n%s\n", needle, log,
          text ? text : "(none)");
  free(text);
  return false;
}

static void meshctl_serve_case(bool admin) {
  tp_certs();
  char cfg[4096];
  tp_config(cfg, sizeof cfg, "server", TD,
            admin ? "\"inbound\":{\"mode\":\"PERMISSIVE\"},"
                    "\"admin\":{\"listen\":\"127.0.0.1:0\"}"
                  : "\"inbound\":{\"mode\":\"PERMISSIVE\"}");
  const char *file = admin ? "serve-admin.json" : "serve.json";
  const char *log = admin ? "serve-admin.log" : "serve.log";
  char path[600], listen[32];
  snprintf(path, sizeof path, "%s", th_path(file));
  CU_ASSERT_FATAL(th_write(path, cfg));
  int port = th_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  const char *argv[] = {TEST_BUILDDIR "/tools/meshctl", "serve", "--config",
                        path, "--listen", listen, NULL};
  pid_t pid = th_spawn(argv, log);
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT_FATAL(log_has(log, "serving " SERVER_ID, 10000));
  /* plaintext: echoed back, and reported as such */
  CU_ASSERT(raw_peer(port, "hello plain\n", 12, true));
  CU_ASSERT(log_has(log, "peer (plaintext) from 127.0.0.1:", 5000));
  /* garbage and a probe that leaves at once */
  CU_ASSERT(raw_peer(port, garbage_bytes, sizeof garbage_bytes - 1, true));
  CU_ASSERT(raw_peer(port, NULL, 0, false));
  /* still serving: an mTLS client */
  mesh_status_t st;
  CU_ASSERT_EQUAL(tp_echo_once(client_mesh(), tp_addr(port), "hello mtls",
                               &st, NULL, 0, NULL),
                  MESH_OK);
  CU_ASSERT(log_has(log, "peer " CLIENT_ID " from", 5000));
  /* alive until we stop it: SIGTERM ends it cleanly (exit 0) */
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r != 0)
    fprintf(stderr, "\n  meshctl serve died (wait status 0x%x)\n", status);
  CU_ASSERT_EQUAL_FATAL(r, 0);
  CU_ASSERT_EQUAL(th_stop(pid), 0);
}

static void test_meshctl_serve_plaintext(void) { meshctl_serve_case(false); }

static void test_meshctl_serve_plaintext_admin(void) {
  meshctl_serve_case(true);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("inbound matrix", NULL, NULL);
#define ADD(mode, obs, text)                                                  \
  CU_add_test(s, #mode " x " text, test_##mode##_##obs)
  ADD(STRICT, NONE, "no observability");
  ADD(STRICT, ADMIN, "admin endpoint");
  ADD(STRICT, OTLP, "OTLP exporter");
  ADD(STRICT, ZIPKIN, "Zipkin exporter");
  ADD(STRICT, HOOKS, "span hooks");
  ADD(PERMISSIVE, NONE, "no observability");
  ADD(PERMISSIVE, ADMIN, "admin endpoint");
  ADD(PERMISSIVE, OTLP, "OTLP exporter");
  ADD(PERMISSIVE, ZIPKIN, "Zipkin exporter");
  ADD(PERMISSIVE, HOOKS, "span hooks");
  ADD(PERMISSIVE_AUTHZ, NONE, "no observability");
  ADD(PERMISSIVE_AUTHZ, ADMIN, "admin endpoint");
  ADD(PERMISSIVE_AUTHZ, OTLP, "OTLP exporter");
  ADD(PERMISSIVE_AUTHZ, ZIPKIN, "Zipkin exporter");
  ADD(PERMISSIVE_AUTHZ, HOOKS, "span hooks");
  CU_add_test(s, "meshctl serve, plaintext peer",
              test_meshctl_serve_plaintext);
  CU_add_test(s, "meshctl serve with admin, plaintext peer",
              test_meshctl_serve_plaintext_admin);
}

int main(void) {
  if (!th_have("python3")) {
    fprintf(stderr, "test_inbound_matrix: python3 not installed\n");
    return 1; /* a missing peer is a failure, not a pass */
  }
  /* A refused peer's socket must not take the test down with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  int rc = th_run_suites("test_inbound_matrix", add);
  mesh_free(good_cm);
  return rc;
}

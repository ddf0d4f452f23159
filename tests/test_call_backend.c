/* SPDX-License-Identifier: Apache-2.0 */
/* Misbehaving mTLS backends for the call-layer tests; see the header. */
#include "test_call_backend.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "helpers.h"

enum { M_GOOD, M_ERROR, M_RESET, M_SLOW, M_PARTIAL, M_DROP };

static _Atomic int mode;
static _Atomic int slow_ms;
static _Atomic int conns;
static char bname[32];

static bool set_mode(const char *s) {
  if (strcmp(s, "good") == 0)
    atomic_store(&mode, M_GOOD);
  else if (strcmp(s, "error") == 0)
    atomic_store(&mode, M_ERROR);
  else if (strcmp(s, "reset") == 0)
    atomic_store(&mode, M_RESET);
  else if (strcmp(s, "partial") == 0)
    atomic_store(&mode, M_PARTIAL);
  else if (strcmp(s, "drop") == 0)
    atomic_store(&mode, M_DROP);
  else if (strncmp(s, "slow:", 5) == 0) {
    atomic_store(&slow_ms, atoi(s + 5));
    atomic_store(&mode, M_SLOW);
  } else
    return false;
  return true;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool say(mesh_conn_t *c, const char *s) {
  return mesh_conn_write_all(c, s, strlen(s)) == MESH_OK;
}

/* An HTTP request for a health check: answer and close. */
static void serve_http(mesh_conn_t *c, char *buf, size_t len) {
  /* the rest of the header block, bounded */
  for (int i = 0; i < 16 && !memmem(buf, len, "\r\n\r\n", 4) && len < 1023;
       i++) {
    long n = mesh_conn_read(c, buf + len, 1023 - len);
    if (n <= 0)
      return;
    len += (size_t)n;
  }
  int m = atomic_load(&mode);
  if (m == M_RESET)
    return;
  if (m == M_SLOW)
    sleep_ms(atomic_load(&slow_ms));
  /* x-backend names the answering backend (routing tests) */
  char out[256];
  snprintf(out, sizeof out, "%s\r\nx-backend: %s\r\n%s",
           m == M_ERROR ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0"
                        : "HTTP/1.1 200 OK\r\nContent-Length: 2",
           bname, m == M_ERROR ? "Connection: close\r\n\r\n"
                               : "Connection: close\r\n\r\nok");
  say(c, out);
}

static void *serve(void *arg) {
  mesh_conn_t *c = arg;
  int id = atomic_fetch_add(&conns, 1) + 1;
  char buf[1024];
  size_t len = 0;
  for (;;) {
    char *nl = memchr(buf, '\n', len);
    if (!nl) {
      if (len >= sizeof buf - 1)
        break;
      long n = mesh_conn_read(c, buf + len, sizeof buf - 1 - len);
      if (n <= 0)
        break;
      len += (size_t)n;
      continue;
    }
    size_t ll = (size_t)(nl - buf) + 1;
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)(ll - 1), buf);
    if (strncmp(buf, "GET ", 4) == 0) {
      serve_http(c, buf, len);
      break;
    }
    memmove(buf, buf + ll, len - ll);
    len -= ll;
    char out[128];
    if (strncmp(line, "MODE ", 5) == 0) {
      if (!say(c, set_mode(line + 5) ? "200 ok 0\n" : "400 bad 0\n"))
        break;
      continue;
    }
    int m = atomic_load(&mode);
    if (m == M_RESET)
      break;
    if (m == M_PARTIAL) {
      say(c, "20");
      for (int i = 0; i < 1000; i++) /* until killed or the peer leaves */
        sleep_ms(10);
      break;
    }
    if (m == M_SLOW)
      sleep_ms(atomic_load(&slow_ms));
    snprintf(out, sizeof out, "%d %s %d\n", m == M_ERROR ? 503 : 200, bname,
             id);
    if (!say(c, out) || m == M_DROP)
      break;
  }
  mesh_conn_close(c);
  return NULL;
}

static int backend_main(const char *config, const char *name, const char *at,
                        int port, const char *m0) {
  signal(SIGPIPE, SIG_IGN);
  snprintf(bname, sizeof bname, "%s", name);
  if (!set_mode(m0)) {
    fprintf(stderr, "bad mode %s\n", m0);
    return 2;
  }
  mesh_status_t st;
  mesh_t *m;
  if (mesh_new_from_file(config, &m, &st) != MESH_OK) {
    fprintf(stderr, "backend config: %s\n", st.message);
    return 1;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "%s:%d", at, port);
  mesh_listener_t *l;
  if (mesh_listen(m, addr, &l, &st) != MESH_OK) {
    fprintf(stderr, "backend listen: %s\n", st.message);
    return 1;
  }
  /* Serve until killed (the test stops every child it started). */
  for (;;) {
    mesh_conn_t *c;
    if (mesh_accept(l, 1000, &c, &st) != MESH_OK)
      continue;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, c) == 0)
      pthread_detach(t);
    else
      mesh_conn_close(c);
  }
}

int tcb_maybe_backend(int argc, char **argv) {
  if (argc != 6 || strcmp(argv[1], "--backend") != 0)
    return -1;
  /* argv[4]: PORT, or ADDR:PORT (tcb_start_at) */
  char at[16] = "127.0.0.1";
  int port = 0;
  if (strchr(argv[4], ':'))
    sscanf(argv[4], "%15[^:]:%d", at, &port);
  else
    port = atoi(argv[4]);
  return backend_main(argv[2], argv[3], at, port, argv[5]);
}

/* ---- the test side ----------------------------------------------------------- */

static char exe[512];
static char client_identity[2048];

bool tcb_init(void) {
  if (exe[0])
    return true;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return false;
  exe[n] = '\0';
  if (!th_svid("example.org", TCB_BACKEND_ID, "backend", 0, 0, 0) ||
      !th_svid("example.org", "spiffe://example.org/ns/t/sa/client", "client",
               0, 0, 0))
    return false;
  char crt[512], key[512], ca[512];
  snprintf(crt, sizeof crt, "%s", th_path("client.crt"));
  snprintf(key, sizeof key, "%s", th_path("client.key"));
  snprintf(ca, sizeof ca, "%s", th_ca("example.org"));
  snprintf(client_identity, sizeof client_identity,
           "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"}",
           crt, key, ca);
  return true;
}

const char *tcb_client_identity(void) { return client_identity; }

/* Connect to addr:port until it accepts (th_wait_port for 127.0.0.1). */
static bool wait_at(const char *addr, int port, int timeout_ms) {
  if (strcmp(addr, "127.0.0.1") == 0)
    return th_wait_port(port, timeout_ms);
  for (int el = 0; el <= timeout_ms; el += 20) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (ok)
      return true;
    usleep(20000);
  }
  return false;
}

bool tcb_start(tcb_t *b, const char *name, const char *mode0, int port) {
  return tcb_start_at(b, NULL, name, mode0, port);
}

bool tcb_start_at(tcb_t *b, const char *at, const char *name,
                  const char *mode0, int port) {
  if (!tcb_init())
    return false;
  snprintf(b->addr, sizeof b->addr, "%s", at ? at : "127.0.0.1");
  b->port = port > 0 ? port : th_free_port();
  snprintf(b->name, sizeof b->name, "%s", name);
  char cfg[2048], file[64], portbuf[32], log[64];
  snprintf(cfg, sizeof cfg,
           "{\"log\":{\"level\":\"warn\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"inbound\":{\"peers\":"
           "[\"spiffe://example.org/ns/t/sa/client\"]}}",
           th_path("backend.crt"), th_path("backend.key"),
           th_ca("example.org"));
  snprintf(file, sizeof file, "backend-%s.json", name);
  if (!th_write(th_path(file), cfg))
    return false;
  snprintf(portbuf, sizeof portbuf, "%s:%d", b->addr, b->port);
  snprintf(log, sizeof log, "backend-%s.log", name);
  char path[512];
  snprintf(path, sizeof path, "%s", th_path(file));
  const char *argv[] = {exe, "--backend", path, name, portbuf, mode0, NULL};
  b->pid = th_spawn(argv, log);
  if (b->pid <= 0)
    return false;
  return wait_at(b->addr, b->port, 10000);
}

bool tcb_mode(mesh_t *m, const tcb_t *b, const char *mode0) {
  char target[64], req[64], line[64];
  snprintf(target, sizeof target, "%s:%d", b->addr[0] ? b->addr : "127.0.0.1",
           b->port);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_add_peer(o, TCB_BACKEND_ID);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_dial(m, target, o, &c, &st);
  mesh_dial_opts_free(o);
  if (rc != MESH_OK) {
    fprintf(stderr, "tcb_mode: %s\n", st.message);
    return false;
  }
  mesh_conn_set_timeouts(c, 5000, 5000);
  snprintf(req, sizeof req, "MODE %s\n", mode0);
  bool ok = mesh_conn_write_all(c, req, strlen(req)) == MESH_OK;
  size_t len = 0;
  while (ok && len < sizeof line - 1 && !memchr(line, '\n', len)) {
    long n = mesh_conn_read(c, line + len, sizeof line - 1 - len);
    if (n <= 0)
      ok = false;
    else
      len += (size_t)n;
  }
  mesh_conn_close(c);
  return ok && len >= 3 && memcmp(line, "200", 3) == 0;
}

void tcb_kill(tcb_t *b) {
  th_kill(b->pid);
  b->pid = 0;
}

void tcb_stop(tcb_t *b) {
  if (b->pid > 0)
    th_stop(b->pid);
  b->pid = 0;
}

bool tcb_parse(const char *line, size_t len, tcb_reply_t *out) {
  char tmp[128];
  if (len >= sizeof tmp)
    return false;
  memcpy(tmp, line, len);
  tmp[len] = '\0';
  memset(out, 0, sizeof *out);
  return sscanf(tmp, "%d %31s %d", &out->status, out->name, &out->conn) >= 1;
}

long tcb_frame(const void *buf, size_t len, int *status, void *user) {
  (void)user;
  const char *nl = memchr(buf, '\n', len);
  if (!nl)
    return len > 100 ? -1 : 0;
  tcb_reply_t r;
  if (!tcb_parse(buf, (size_t)(nl - (const char *)buf), &r))
    return -1;
  *status = r.status;
  return nl - (const char *)buf + 1;
}

int tcb_try(mesh_call_t *call, mesh_conn_t *conn, int *status, void *user) {
  (void)call;
  tcb_reply_t *out = user;
  long rc = mesh_conn_write_all(conn, "PING\n", 5);
  if (rc != MESH_OK)
    return (int)rc;
  char line[128];
  size_t len = 0;
  while (!memchr(line, '\n', len)) {
    if (len >= sizeof line - 1)
      return MESH_CALL_PROTOCOL_ERROR;
    long n = mesh_conn_read(conn, line + len, sizeof line - 1 - len);
    if (n == 0)
      return MESH_CALL_RESET;
    if (n < 0)
      return (int)n;
    len += (size_t)n;
  }
  if (!tcb_parse(line, (size_t)((char *)memchr(line, '\n', len) - line), out))
    return MESH_CALL_PROTOCOL_ERROR;
  *status = out->status;
  return MESH_CALL_OK;
}

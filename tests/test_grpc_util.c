/* SPDX-License-Identifier: Apache-2.0 */
#include "test_grpc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "grpc/grpc.h"

bool tg_svid(const char *name) {
  const char *ca = th_ca("example.org");
  if (!ca)
    return false;
  char id[256], crt[512], key[512], cakey[512], n[300];
  snprintf(id, sizeof id, "spiffe://example.org/ns/default/sa/%s", name);
  snprintf(n, sizeof n, "%s.crt", name);
  snprintf(crt, sizeof crt, "%s", th_path(n));
  snprintf(n, sizeof n, "%s.key", name);
  snprintf(key, sizeof key, "%s", th_path(n));
  snprintf(cakey, sizeof cakey, "%s", th_path("example.org-ca.key"));
  if (access(crt, R_OK) == 0)
    return true;
  const char *dns[] = {"localhost"};
  mesh_status_t st;
  int64_t now = (int64_t)time(NULL);
  if (mesh_ca_issue_dns(ca, cakey, id, dns, 1, now - 60, now + 86400, 0, crt,
                        key, &st) != MESH_OK) {
    fprintf(stderr, "tg_svid: %s\n", st.message);
    return false;
  }
  return true;
}

const char *tg_config(const char *name, const char *extra) {
  static char buf[8][8192];
  static int k;
  char *b = buf[k++ % 8];
  char crt[300], key[300];
  snprintf(crt, sizeof crt, "%s.crt", name);
  snprintf(key, sizeof key, "%s.key", name);
  snprintf(b, 8192,
           "{\"log\": {\"level\": \"error\"}, \"identity\": {\"cert\": \"%s\","
           " \"key\": \"%s\", \"bundle\": \"%s\"}, \"tls\": {\"alpn\": "
           "[\"h2\"]}%s%s}",
           th_path(crt), th_path(key), th_ca("example.org"),
           extra ? ", " : "", extra ? extra : "");
  return b;
}

pid_t tg_py_server(const char *tag, const char *mode, int *port) {
  return tg_py_server_opts(tag, mode, NULL, port);
}

pid_t tg_py_server_opts(const char *tag, const char *mode,
                        const char *const *opts, int *port) {
  if (!tg_svid("pysrv"))
    return -1;
  /* Port 0: grpcio binds a port the kernel picks and prints it, so no
   * other test can hold the port between choosing and binding it. */
  *port = -1;
  char ev[300], log[300];
  snprintf(ev, sizeof ev, "%s.events", tag);
  snprintf(log, sizeof log, "%s.log", tag);
  char evp[512];
  snprintf(evp, sizeof evp, "%s", th_path(ev));
  unlink(evp);
  unlink(th_path(log));
  char crt[512], key[512];
  snprintf(crt, sizeof crt, "%s", th_path("pysrv.crt"));
  snprintf(key, sizeof key, "%s", th_path("pysrv.key"));
  const char *argv[32] = {TG_PY, TG_PEER, "server", "--port", "0", "--cert",
                          crt, "--key", key, "--ca", th_ca("example.org"),
                          "--mode", mode, "--events", evp};
  size_t n = 15;
  for (size_t i = 0; opts && opts[i] && n + 3 < 32; i++) {
    argv[n++] = "--option";
    argv[n++] = opts[i];
  }
  argv[n] = NULL;
  pid_t pid = th_spawn(argv, log);
  for (int i = 0; pid > 0 && *port <= 0 && i < 300; i++) {
    char *out = th_slurp(th_path(log), NULL);
    const char *l = out ? strstr(out, "listening ") : NULL;
    if (l)
      *port = atoi(l + strlen("listening "));
    free(out);
    if (*port <= 0)
      usleep(50000);
  }
  if (pid > 0 && *port <= 0) {
    fprintf(stderr, "tg_py_server: %s did not start\n", tag);
    th_stop(pid);
    return -1;
  }
  return pid;
}

int tg_events_distinct(const char *tag, const char *prefix) {
  char ev[300];
  snprintf(ev, sizeof ev, "%s.events", tag);
  char *text = th_slurp(th_path(ev), NULL);
  size_t len = strlen(prefix);
  char *seen[256];
  int n = 0;
  for (char *p = text; p && *p;) {
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    bool dup = strncmp(p, prefix, len) != 0;
    for (int i = 0; i < n && !dup; i++)
      dup = strcmp(seen[i], p) == 0;
    if (!dup && n < 256)
      seen[n++] = p;
    p = nl ? nl + 1 : NULL;
  }
  free(text);
  return n;
}

int tg_events(const char *tag, const char *line) {
  char ev[300];
  snprintf(ev, sizeof ev, "%s.events", tag);
  char *text = th_slurp(th_path(ev), NULL);
  int n = 0;
  size_t len = strlen(line);
  for (char *p = text; p && *p;) {
    char *nl = strchr(p, '\n');
    size_t l = nl ? (size_t)(nl - p) : strlen(p);
    if (l == len && !strncmp(p, line, len))
      n++;
    p = nl ? nl + 1 : NULL;
  }
  free(text);
  return n;
}

int tg_py_client(int port, const char *scenarios) {
  if (!tg_svid("pycli"))
    return -1;
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "timeout 120 %s '%s' client --target 127.0.0.1:%d --cert '%s' "
           "--key '%s' --ca '%s' --scenario %s",
           TG_PY, TG_PEER, port, th_path("pycli.crt"), th_path("pycli.key"),
           th_ca("example.org"), scenarios);
  int rc = th_sh(cmd);
  if (rc != 0) { /* show grpcio's verdicts (FAIL lines) */
    size_t len = 0;
    char *log = th_slurp(th_path("sh.log"), &len);
    fprintf(stderr, "\n--- sh.log (end) ---\n%s\n",
            log ? log + (len > 3000 ? len - 3000 : 0) : "");
    free(log);
  }
  return rc;
}

/* ---- the C echo server with the steering of grpc_peer.py ----------------- */

static const char *md_str(mesh_grpc_server_call_t *c, const char *key) {
  return mesh_grpc_metadata_get(mesh_grpc_server_call_metadata(c), key, NULL);
}

static void hexdecode(const char *h, char *out, size_t cap) {
  size_t n = 0;
  for (; h[0] && h[1] && n + 1 < cap; h += 2) {
    unsigned v;
    if (sscanf(h, "%2x", &v) != 1)
      break;
    out[n++] = (char)v;
  }
  out[n] = '\0';
}

/* Headers, trailers, sleep and status as grpc_peer.py's steer(): returns
 * the status to end with (OK: go on). */
static int steer(tg_server_t *s, mesh_grpc_server_call_t *c) {
  const mesh_grpc_metadata_t *md = mesh_grpc_server_call_metadata(c);
  mesh_grpc_metadata_t *h = mesh_grpc_metadata_new(), *t = mesh_grpc_metadata_new();
  for (size_t i = 0; i < mesh_grpc_metadata_count(md); i++) {
    const char *k;
    const void *v;
    size_t len;
    mesh_grpc_metadata_at(md, i, &k, &v, &len);
    if (strncmp(k, "x-echo-", 7))
      continue;
    if (strlen(k) > 4 && !strcmp(k + strlen(k) - 4, "-bin"))
      mesh_grpc_metadata_add_bin(h, k, v, len, NULL);
    else
      mesh_grpc_metadata_add(h, k, v, NULL);
  }
  if (mesh_grpc_metadata_count(h))
    mesh_grpc_server_call_send_headers(c, h, NULL);
  mesh_grpc_metadata_add(t, "x-peer-id", mesh_grpc_server_call_peer_id(c), NULL);
  mesh_grpc_metadata_add_bin(t, "x-trailer-bin", "\x00\x01\x02\xff", 4, NULL);
  const char *pb = md_str(c, "x-pushback");
  if (pb) /* a reserved key: the library's own list, unchecked */
    mesh__grpc_md_push(t, "grpc-retry-pushback-ms", pb, strlen(pb));
  mesh_grpc_server_call_add_trailers(c, t, NULL);
  mesh_grpc_metadata_free(h);
  mesh_grpc_metadata_free(t);
  const char *ms = md_str(c, "x-sleep-ms");
  for (int i = 0; ms && i < atoi(ms) / 10; i++) {
    if (mesh_grpc_server_call_cancelled(c)) {
      atomic_fetch_add(&s->cancelled, 1);
      return MESH_GRPC_CANCELLED;
    }
    usleep(10000);
  }
  const char *st = md_str(c, "x-status");
  if (st && atoi(st) != 0) {
    const char *hx = md_str(c, "x-message-hex");
    char msg[512];
    hexdecode(hx ? hx : "", msg, sizeof msg);
    mesh_grpc_server_call_set_message(c, msg);
    return atoi(st);
  }
  return MESH_GRPC_OK;
}

static int h_echo(mesh_grpc_server_call_t *c, void *user) {
  tg_server_t *s = user;
  atomic_fetch_add(&s->calls, 1);
  void *msg;
  size_t len;
  int r = mesh_grpc_server_call_recv(c, &msg, &len, NULL);
  if (r != 1)
    return r == 0 ? MESH_GRPC_INTERNAL : MESH_GRPC_CANCELLED;
  int code = steer(s, c);
  if (code == MESH_GRPC_OK)
    mesh_grpc_server_call_send(c, msg, len, NULL);
  mesh_grpc_free(msg);
  return code;
}

static int h_stream(mesh_grpc_server_call_t *c, void *user) {
  tg_server_t *s = user;
  atomic_fetch_add(&s->calls, 1);
  int code = steer(s, c);
  while (code == MESH_GRPC_OK) {
    void *msg;
    size_t len;
    int r = mesh_grpc_server_call_recv(c, &msg, &len, NULL);
    if (r <= 0)
      return r == 0 ? MESH_GRPC_OK : MESH_GRPC_CANCELLED;
    r = mesh_grpc_server_call_send(c, msg, len, NULL);
    mesh_grpc_free(msg);
    if (r != MESH_OK)
      return MESH_GRPC_CANCELLED;
  }
  return code;
}

static int h_collect(mesh_grpc_server_call_t *c, void *user) {
  tg_server_t *s = user;
  atomic_fetch_add(&s->calls, 1);
  int code = steer(s, c);
  char *all = NULL;
  size_t n = 0;
  for (;;) {
    void *msg;
    size_t len;
    int r = mesh_grpc_server_call_recv(c, &msg, &len, NULL);
    if (r <= 0) {
      if (r == 0 && code == MESH_GRPC_OK)
        mesh_grpc_server_call_send(c, all ? all : "", n, NULL);
      free(all);
      return r == 0 ? code : MESH_GRPC_CANCELLED;
    }
    char *na = realloc(all, n + len + 1);
    if (na) {
      memcpy(na + n, msg, len);
      all = na;
      n += len;
    }
    mesh_grpc_free(msg);
  }
}

static int h_expand(mesh_grpc_server_call_t *c, void *user) {
  tg_server_t *s = user;
  atomic_fetch_add(&s->calls, 1);
  void *msg;
  size_t len;
  if (mesh_grpc_server_call_recv(c, &msg, &len, NULL) != 1)
    return MESH_GRPC_INTERNAL;
  int code = steer(s, c);
  const char *cnt = md_str(c, "x-count"), *gap = md_str(c, "x-gap-ms");
  int n = cnt ? atoi(cnt) : 3;
  for (int i = 0; code == MESH_GRPC_OK && i < n; i++) {
    if (mesh_grpc_server_call_send(c, msg, len, NULL) != MESH_OK ||
        mesh_grpc_server_call_cancelled(c)) {
      atomic_fetch_add(&s->cancelled, 1);
      code = MESH_GRPC_CANCELLED;
      break;
    }
    if (gap)
      usleep((useconds_t)atoi(gap) * 1000);
  }
  mesh_grpc_free(msg);
  return code;
}

static void *serve_thread(void *p) {
  tg_server_t *s = p;
  mesh_grpc_server_serve(s->srv, s->l, NULL);
  return NULL;
}

bool tg_server_start(tg_server_t *s, const char *extra) {
  memset(s, 0, sizeof *s);
  mesh_status_t st;
  if (!tg_svid("srv") ||
      mesh_new(tg_config("srv", extra), &s->m, &st) != MESH_OK ||
      mesh_listen(s->m, "127.0.0.1:0", &s->l, &st) != MESH_OK ||
      mesh_grpc_server_new(s->m, &s->srv, &st) != MESH_OK) {
    fprintf(stderr, "tg_server_start: %s\n", st.message);
    return false;
  }
  mesh_grpc_server_add_method(s->srv, "/mesh.v1.Echo/Echo", h_echo, s, NULL);
  mesh_grpc_server_add_method(s->srv, "/mesh.v1.Echo/Stream", h_stream, s,
                              NULL);
  mesh_grpc_server_add_method(s->srv, "/mesh.v1.Echo/Collect", h_collect, s,
                              NULL);
  mesh_grpc_server_add_method(s->srv, "/mesh.v1.Echo/Expand", h_expand, s,
                              NULL);
  s->port = mesh_listener_port(s->l);
  return pthread_create(&s->thread, NULL, serve_thread, s) == 0;
}

void tg_server_stop(tg_server_t *s) {
  if (!s->srv)
    return;
  mesh_grpc_server_shutdown(s->srv);
  pthread_join(s->thread, NULL);
  mesh_grpc_server_free(s->srv);
  mesh_listener_close(s->l);
  mesh_free(s->m);
  memset(s, 0, sizeof *s);
}

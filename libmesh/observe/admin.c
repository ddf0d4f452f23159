/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint: plain HTTP/1.1 on a loopback address, served on the
 * worker loop without blocking (non-blocking sockets, one response per
 * connection, Connection: close).  Requests are read with the strict
 * parser of http/parse.h; only GET and HEAD are served.
 *
 *   /            the admin page (observe/admin_page.c)
 *   /metrics     Prometheus text exposition
 *   /endpoints   services and their endpoints (health, ejection, weight,
 *                locality, LB state) as JSON
 *   /config      the effective configuration, secrets redacted
 *   /identity    SPIFFE ID, certificate chain summary, expiry
 *   /spans       recent sampled spans
 *   /healthz     "ok" (503 "closing" during shutdown)
 *   /log         the log level; POST /log?level=NAME changes it (loopback
 *                peers only, with the header "X-Mesh-Admin: 1")
 */
#include "observe/admin.h"
#include "observe/observe.h"
#include "telemetry/telemetry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "discovery/discovery.h"
#include "http/http.h"
#include "identity/identity.h"
#include "http/parse.h"


#define ADMIN_MAX_CONNS 64
#define ADMIN_IN_MAX 8192
/* A connection must send its whole request head within this time (slow or
 * idle clients cannot hold a slot), and be done within the second. */
#define ADMIN_HEAD_TIMEOUT_MS 2000
#define ADMIN_TIMEOUT_MS 5000


typedef struct admin_conn {
  struct mesh__admin *a;
  struct admin_conn *next, *prev;
  int fd;
  int64_t timer;
  char in[ADMIN_IN_MAX];
  size_t inlen;
  mesh__http_hdr_t hdrs[32];
  mesh__http_msg_t msg;
  char *out;
  size_t outlen, outoff;
} admin_conn_t;


/* The Host must be an IP literal or localhost: a page on another origin
 * that rebinds its DNS name to 127.0.0.1 cannot read the admin data. */
static bool host_ok(mesh__http_str_t host) {
  char h[256];
  if (host.n == 0 || host.n >= sizeof h)
    return false;
  memcpy(h, host.p, host.n);
  h[host.n] = '\0';
  char *name = h;
  if (h[0] == '[') {
    char *end = strchr(h, ']');
    if (!end)
      return false;
    *end = '\0';
    name = h + 1;
  } else {
    char *colon = strrchr(h, ':');
    if (colon)
      *colon = '\0';
  }
  if (strcasecmp(name, "localhost") == 0)
    return true;
  unsigned char buf[16];
  return inet_pton(AF_INET, name, buf) == 1 ||
         inet_pton(AF_INET6, name, buf) == 1;
}

/* ---- connections ------------------------------------------------------------ */

static void conn_close(admin_conn_t *c) {
  mesh__admin_t *a = c->a;
  mesh__loop_unwatch(a->m->loop, c->fd);
  if (c->timer > 0)
    mesh__loop_timer_cancel(a->m->loop, c->timer);
  close(c->fd);
  if (c->prev)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  a->nconns--;
  free(c->out);
  free(c);
}

static void conn_flush(admin_conn_t *c);
static void on_conn_timeout(void *user);

static void on_conn_write(int fd, unsigned ev, void *user) {
  (void)fd;
  (void)ev;
  conn_flush(user);
}

static void conn_flush(admin_conn_t *c) {
  while (c->outoff < c->outlen) {
    ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
                     MSG_NOSIGNAL);
    if (w > 0) {
      c->outoff += (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      mesh__loop_watch(c->a->m->loop, c->fd, MESH__IO_WRITE, on_conn_write,
                       c);
      return;
    }
    if (w < 0 && errno == EINTR)
      continue;
    break;
  }
  conn_close(c);
}

static void count(mesh__admin_t *a, const char *path, int status) {
  char labels[96];
  snprintf(labels, sizeof labels, "path=%s,code=%d", path, status);
  mesh__counter_add(mesh__counter(a->m, "mesh_admin_requests_total",
                                  "Admin endpoint requests by path and status.",
                                  labels),
                    1);
}

static void conn_respond(admin_conn_t *c, resp_t *r, bool head,
                         const char *path) {
  count(c->a, path, r->status);
  char hdr[1024];
  int n = snprintf(hdr, sizeof hdr,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n"
                   "Cache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n%s%s\r\n",
                   r->status, mesh__admin_reason(r->status), r->ctype, r->len,
                   r->status == 405 ? "Allow: GET, HEAD\r\n" : "",
                   r->extra ? r->extra : "");
  size_t blen = head ? 0 : r->len;
  c->out = malloc((size_t)n + blen);
  if (!c->out) {
    free(r->body);
    conn_close(c);
    return;
  }
  memcpy(c->out, hdr, (size_t)n);
  if (blen)
    memcpy(c->out + n, r->body, blen);
  c->outlen = (size_t)n + blen;
  free(r->body);
  mesh__loop_unwatch(c->a->m->loop, c->fd);
  /* The head is in: the rest of ADMIN_TIMEOUT_MS to write the answer. */
  if (c->timer > 0)
    mesh__loop_timer_cancel(c->a->m->loop, c->timer);
  int64_t t = mesh__loop_timer(c->a->m->loop,
                               ADMIN_TIMEOUT_MS - ADMIN_HEAD_TIMEOUT_MS,
                               on_conn_timeout, c);
  c->timer = t > 0 ? t : 0;
  conn_flush(c);
}

static void conn_error(admin_conn_t *c, int status, const char *text) {
  resp_t r = {0};
  mesh__admin_resp_text(&r, status, text);
  conn_respond(c, &r, false, "other");
}

static bool is_loopback(const struct sockaddr_storage *ss);

/* POST /log?level=NAME changes the log level at run time.  Only from a
 * loopback peer (the endpoint may listen elsewhere), and only with the
 * header "X-Mesh-Admin: 1", which a page of another origin cannot send
 * without a CORS preflight this endpoint never answers. */
static bool log_post_allowed(admin_conn_t *c, const char **why) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0 ||
      !is_loopback(&ss)) {
    *why = "the log level changes only from a loopback address\n";
    return false;
  }
  for (size_t i = 0; i < c->msg.nhdrs; i++) {
    const mesh__http_hdr_t *h = &c->msg.hdrs[i];
    if (h->name.n == 12 && strncasecmp(h->name.p, "X-Mesh-Admin", 12) == 0 &&
        h->value.n == 1 && h->value.p[0] == '1')
      return true;
  }
  *why = "header X-Mesh-Admin: 1 required\n";
  return false;
}

static void conn_request(admin_conn_t *c) {
  mesh__http_msg_t *msg = &c->msg;
  bool head = mesh__http_str_eq(msg->method, "HEAD");
  bool post = mesh__http_str_eq(msg->method, "POST");
  if (post && msg->target.n >= 4 && memcmp(msg->target.p, "/log", 4) == 0 &&
      (msg->target.n == 4 || msg->target.p[4] == '?')) {
    const char *why = NULL;
    if (!host_ok(msg->host) || !log_post_allowed(c, &why)) {
      conn_error(c, 403, why ? why : "Host must be an IP address or localhost\n");
      return;
    }
    resp_t r = {0};
    mesh__admin_set_log(c->a, msg->target, &r);
    conn_respond(c, &r, false, "/log");
    return;
  }
  if (!head && !mesh__http_str_eq(msg->method, "GET")) {
    conn_error(c, 405, "only GET and HEAD (and POST /log)\n");
    return;
  }
  if (msg->framing != MESH__HTTP_BODY_NONE &&
      !(msg->framing == MESH__HTTP_BODY_LENGTH && msg->content_length == 0)) {
    conn_error(c, 400, "no request body expected\n");
    return;
  }
  if (!host_ok(msg->host)) {
    conn_error(c, 403, "Host must be an IP address or localhost\n");
    return;
  }
  if (msg->target.n == 0 || msg->target.p[0] != '/') {
    conn_error(c, 400, "origin-form target expected\n");
    return;
  }
  resp_t r = {0};
  const char *path = mesh__admin_route(c->a, msg->target, &r);
  if (!r.body && r.len == 0 && r.status == 200) {
    conn_error(c, 500, "out of memory\n");
    return;
  }
  conn_respond(c, &r, head, path);
}

static void on_conn_read(int fd, unsigned ev, void *user) {
  (void)ev;
  admin_conn_t *c = user;
  ssize_t r = recv(fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (r <= 0) {
    conn_close(c);
    return;
  }
  c->inlen += (size_t)r;
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_head = sizeof c->in;
  lim.max_headers = sizeof c->hdrs / sizeof c->hdrs[0];
  int rc = mesh__http_parse_request(&c->msg, c->in, c->inlen, &lim);
  if (rc > 0) {
    conn_request(c);
    return;
  }
  if (rc == MESH_ERR_WANT_READ && c->inlen < sizeof c->in)
    return;
  if (rc == MESH_ERR_HTTP_TOO_LARGE || rc == MESH_ERR_WANT_READ)
    conn_error(c, 431, "request head too large\n");
  else
    conn_error(c, 400, "malformed request\n");
}

static void on_conn_timeout(void *user) {
  admin_conn_t *c = user;
  c->timer = 0;
  conn_close(c);
}

/* All slots taken: the oldest connection still waiting for its request
 * head (no response under way) gives way, so that idle sockets can never
 * lock the endpoint out.  @return true if one was closed. */
static bool evict_idle(mesh__admin_t *a) {
  admin_conn_t *oldest = NULL;
  for (admin_conn_t *c = a->conns; c; c = c->next)
    if (!c->out)
      oldest = c; /* new connections are pushed at the head */
  if (!oldest)
    return false;
  mesh__counter_add(mesh__counter(a->m, "mesh_admin_evicted_total",
                                  "Idle admin connections closed to make "
                                  "room for a new one.",
                                  NULL),
                    1);
  conn_close(oldest);
  return true;
}

static void on_accept(int fd, unsigned ev, void *user) {
  (void)ev;
  mesh__admin_t *a = user;
  for (int i = 0; i < 64; i++) {
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
      return; /* EAGAIN, or a transient error: the next event retries */
    if (a->nconns >= ADMIN_MAX_CONNS && !evict_idle(a)) {
      close(cfd);
      continue;
    }
    admin_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
      close(cfd);
      continue;
    }
    c->a = a;
    c->fd = cfd;
    mesh__http_msg_init(&c->msg, c->hdrs, sizeof c->hdrs / sizeof c->hdrs[0]);
    c->next = a->conns;
    if (a->conns)
      a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    int64_t t = mesh__loop_timer(a->m->loop, ADMIN_HEAD_TIMEOUT_MS,
                                 on_conn_timeout, c);
    c->timer = t > 0 ? t : 0;
    if (mesh__loop_watch(a->m->loop, cfd, MESH__IO_READ, on_conn_read, c) !=
        MESH_OK)
      conn_close(c);
  }
}

/* ---- the part ------------------------------------------------------------------ */

static const char *const admin_keys[] = {"listen", "enabled", NULL};

/* "ip:port" or "[v6]:port" (or "localhost:port") into a sockaddr. */
static int parse_listen(const char *s, struct sockaddr_storage *ss,
                        socklen_t *len) {
  char host[128];
  const char *port;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
      return MESH_ERR_PARSE;
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = '\0';
    port = end + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host || colon == s)
      return MESH_ERR_PARSE;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    port = colon + 1;
  }
  char *end;
  long p = strtol(port, &end, 10);
  if (!*port || *end || p < 0 || p > 65535)
    return MESH_ERR_PARSE;
  if (strcmp(host, "localhost") == 0)
    mesh__strlcpy(host, "127.0.0.1", sizeof host);
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    *len = sizeof *v4;
    return MESH_OK;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    *len = sizeof *v6;
    return MESH_OK;
  }
  return MESH_ERR_PARSE;
}

static void admin_check(mesh__cfg_t *c, const cJSON *cfg, const char *path) {
  if (!cfg || !mesh__cfg_object(c, cfg, path, admin_keys))
    return;
  bool on;
  mesh__cfg_bool(c, cfg, path, "enabled", true, &on);
  const char *addr;
  if (mesh__cfg_string(c, cfg, path, "listen", "127.0.0.1:0", &addr) &&
      addr) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_listen(addr, &ss, &len) != MESH_OK) {
      char p[MESH__PATH_MAX];
      mesh__cfg_path(p, path, "listen");
      mesh__cfg_error(c, p,
                      "expected \"ip:port\" or \"[ipv6]:port\" (an IP "
                      "literal or localhost), got \"%s\"",
                      addr);
    }
  }
}

static bool is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) ==
           127;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a);
}

static void admin_free(mesh__admin_t *a) {
  while (a->conns)
    conn_close(a->conns);
  if (a->fd >= 0) {
    mesh__loop_unwatch(a->m->loop, a->fd);
    close(a->fd);
  }
  free(a);
}

static int admin_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  if (!cfg)
    return MESH_OK; /* opt-in */
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(cfg, "enabled");
  if (cJSON_IsFalse(en))
    return MESH_OK;
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(cfg, "listen");
  const char *addr = cJSON_IsString(l) ? l->valuestring : "127.0.0.1:0";
  struct sockaddr_storage ss;
  socklen_t len;
  if (parse_listen(addr, &ss, &len) != MESH_OK)
    return mesh__fail(st, MESH_ERR_CONFIG, "admin.listen: invalid address");
  mesh__admin_t *a = calloc(1, sizeof *a);
  if (!a)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  a->m = m;
  a->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (a->fd < 0 ||
      setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(a->fd, (struct sockaddr *)&ss, len) != 0 || listen(a->fd, 64) != 0) {
    int e = errno;
    admin_free(a);
    return mesh__fail(st, MESH_ERR_IO, "admin.listen: %s: %s", addr,
                      strerror(e));
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(a->fd, (struct sockaddr *)&bound, &blen);
  a->port = ntohs(bound.ss_family == AF_INET
                      ? ((struct sockaddr_in *)&bound)->sin_port
                      : ((struct sockaddr_in6 *)&bound)->sin6_port);
  int rc = mesh__loop_watch(m->loop, a->fd, MESH__IO_READ, on_accept, a);
  if (rc != MESH_OK) {
    admin_free(a);
    return mesh__fail(st, rc, "admin: cannot watch the listening socket");
  }
  m->admin = a;
  /* The page shows recent spans: record sampled ones. */
  struct mesh__tracer *t = mesh__tracer_get(m);
  if (t)
    atomic_fetch_add(&t->consumers, 1);
  mesh__log(m, is_loopback(&ss) ? MESH_LOG_INFO : MESH_LOG_WARN,
            "admin_listen", "address=%s port=%d loopback=%s", addr,
            a->port, is_loopback(&ss) ? "true" : "false");
  return MESH_OK;
}

static void admin_fini(mesh_t *m) {
  if (!m->admin)
    return;
  admin_free(m->admin);
  m->admin = NULL;
}

int mesh_admin_port(mesh_t *m) {
  if (!m || !m->admin)
    return MESH_ERR_NOT_FOUND;
  return m->admin->port;
}

const mesh__part_t mesh__part_admin = {
    .key = "admin",
    .check = admin_check,
    .init = admin_init,
    .fini = admin_fini,
};

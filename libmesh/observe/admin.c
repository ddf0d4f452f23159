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
 */
#include "observe/observe.h"
#include "telemetry/telemetry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/x509_crt.h>
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

/* identity/ is not merged into every branch yet: without it /identity
 * says "no SVID loaded". */
#pragma weak mesh__creds_acquire
#pragma weak mesh__creds_release

typedef struct mesh__admin mesh__admin_t;

#define ADMIN_MAX_CONNS 64
#define ADMIN_IN_MAX 8192
#define ADMIN_TIMEOUT_MS 5000

extern const char mesh__admin_page[];

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

struct mesh__admin {
  mesh_t *m;
  int fd;
  int port;
  admin_conn_t *conns;
  size_t nconns;
};

/* ---- responses --------------------------------------------------------------- */

typedef struct resp {
  int status;
  const char *ctype;
  char *body; /* malloc'd */
  size_t len;
  const char *extra; /* extra header lines, CRLF-terminated, or NULL */
} resp_t;

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Error";
  }
}

static void resp_text(resp_t *r, int status, const char *text) {
  r->status = status;
  r->ctype = "text/plain; charset=utf-8";
  r->body = strdup(text);
  r->len = r->body ? strlen(r->body) : 0;
}

static void resp_json(resp_t *r, cJSON *doc) {
  char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  if (!text) {
    resp_text(r, 500, "out of memory\n");
    return;
  }
  r->status = 200;
  r->ctype = "application/json";
  r->body = text;
  r->len = strlen(text);
}

/* ---- /endpoints ------------------------------------------------------------ */

static const char *health_name(int h) {
  switch (h) {
  case MESH__HEALTH_HEALTHY: return "healthy";
  case MESH__HEALTH_UNHEALTHY: return "unhealthy";
  case MESH__HEALTH_DRAINING: return "draining";
  default: return "unknown";
  }
}

static cJSON *host_json(const mesh__host_t *h, int64_t now_ms) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "address", h->address ? h->address : "");
  cJSON_AddNumberToObject(o, "port", h->port);
  cJSON_AddNumberToObject(o, "weight", h->weight);
  cJSON_AddNumberToObject(o, "priority", h->priority);
  cJSON *loc = cJSON_AddObjectToObject(o, "locality");
  if (loc) {
    cJSON_AddStringToObject(loc, "region", h->region ? h->region : "");
    cJSON_AddStringToObject(loc, "zone", h->zone ? h->zone : "");
    cJSON_AddStringToObject(loc, "subzone", h->subzone ? h->subzone : "");
  }
  cJSON *labels = cJSON_AddObjectToObject(o, "labels");
  for (size_t i = 0; labels && i < h->nlabels; i++)
    cJSON_AddStringToObject(labels, h->labels[i].key, h->labels[i].value);
  int hc = atomic_load(&h->hc_health);
  int health = hc != MESH__HEALTH_UNKNOWN ? hc : h->source_health;
  cJSON_AddStringToObject(o, "health", health_name(health));
  cJSON_AddStringToObject(o, "source_health", health_name(h->source_health));
  cJSON_AddStringToObject(o, "check_health", health_name(hc));
  int64_t until = atomic_load(&h->ejected_until_ms);
  bool ejected = until > now_ms;
  cJSON_AddBoolToObject(o, "ejected", ejected);
  cJSON_AddNumberToObject(o, "ejected_for_ms",
                          ejected ? (double)(until - now_ms) : 0);
  cJSON_AddBoolToObject(o, "usable", mesh__host_usable(h, now_ms));
  cJSON *lb = cJSON_AddObjectToObject(o, "lb");
  if (lb) {
    cJSON_AddNumberToObject(lb, "active_requests", atomic_load(&h->active_rq));
    cJSON_AddNumberToObject(lb, "ewma_ms",
                            (double)atomic_load(&h->ewma_ns) / 1e6);
  }
  return o;
}

static cJSON *service_json(mesh__service_t *svc, int64_t now_ms) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "name", svc->name);
  cJSON *eps = cJSON_AddArrayToObject(o, "endpoints");
  mesh__disc_stats_t st;
  if (mesh__disc_stats(svc, &st) == MESH_OK) {
    cJSON_AddStringToObject(o, "source", st.source ? st.source : "none");
    cJSON_AddBoolToObject(o, "stale", st.stale);
    cJSON_AddNumberToObject(o, "version", (double)st.version);
    cJSON_AddNumberToObject(o, "updates", (double)st.updates);
    cJSON_AddNumberToObject(o, "errors", (double)st.errors);
    cJSON_AddStringToObject(o, "last_error", st.last_error);
  } else {
    cJSON_AddStringToObject(o, "source", "none");
  }
  mesh__snapref_t *ref = mesh__disc_snapref(svc);
  mesh__snapshot_t *snap = ref ? mesh__snap_acquire(ref) : NULL;
  size_t healthy = 0;
  for (size_t i = 0; snap && eps && i < snap->n; i++) {
    cJSON *h = host_json(snap->hosts[i], now_ms);
    if (h)
      cJSON_AddItemToArray(eps, h);
    if (mesh__host_usable(snap->hosts[i], now_ms))
      healthy++;
  }
  cJSON_AddNumberToObject(o, "usable", (double)healthy);
  if (snap)
    mesh__snap_release(snap);
  return o;
}

static void route_endpoints(mesh__admin_t *a, resp_t *r) {
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "services") : NULL;
  int64_t now = mesh__now_ms();
  struct mesh__services *ss = a->m->services;
  for (size_t i = 0; arr && ss && i < ss->n; i++) {
    cJSON *s = service_json(ss->v[i], now);
    if (s)
      cJSON_AddItemToArray(arr, s);
  }
  resp_json(r, doc);
}

/* ---- /identity ---------------------------------------------------------------- */

static void add_time(cJSON *o, const char *key, const mbedtls_x509_time *t) {
  char buf[32];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year, t->mon,
           t->day, t->hour, t->min, t->sec);
  cJSON_AddStringToObject(o, key, buf);
}

static void route_identity(mesh__admin_t *a, resp_t *r) {
  cJSON *doc = cJSON_CreateObject();
  if (!doc) {
    resp_text(r, 500, "out of memory\n");
    return;
  }
  mesh__creds_t *c = mesh__creds_acquire ? mesh__creds_acquire(a->m) : NULL;
  if (!c) {
    cJSON_AddNullToObject(doc, "spiffe_id");
    cJSON_AddStringToObject(doc, "status", "no SVID loaded");
    resp_json(r, doc);
    return;
  }
  cJSON_AddStringToObject(doc, "spiffe_id", c->id);
  cJSON_AddStringToObject(doc, "trust_domain", c->td);
  cJSON_AddNumberToObject(doc, "not_before", (double)c->not_before);
  cJSON_AddNumberToObject(doc, "not_after", (double)c->not_after);
  cJSON_AddNumberToObject(doc, "expires_in_s",
                          (double)(c->not_after - mesh__wall_s()));
  cJSON_AddNumberToObject(doc, "generation", (double)c->generation);
  cJSON *chain = cJSON_AddArrayToObject(doc, "chain");
  for (const mbedtls_x509_crt *crt = &c->chain; chain && crt && crt->raw.p;
       crt = crt->next) {
    cJSON *e = cJSON_CreateObject();
    if (!e)
      break;
    char buf[512];
    if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->subject) >= 0)
      cJSON_AddStringToObject(e, "subject", buf);
    if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->issuer) >= 0)
      cJSON_AddStringToObject(e, "issuer", buf);
    if (mbedtls_x509_serial_gets(buf, sizeof buf, &crt->serial) >= 0)
      cJSON_AddStringToObject(e, "serial", buf);
    add_time(e, "not_before", &crt->valid_from);
    add_time(e, "not_after", &crt->valid_to);
    cJSON_AddItemToArray(chain, e);
  }
  cJSON *bundles = cJSON_AddArrayToObject(doc, "bundles");
  for (size_t i = 0; bundles && i < c->nbundles; i++)
    cJSON_AddItemToArray(bundles, cJSON_CreateString(c->bundles[i].td));
  mesh__creds_release(c);
  resp_json(r, doc);
}

/* ---- /spans, /config ------------------------------------------------------------ */

static const char *kind_name(int k) {
  return k == MESH_SPAN_SERVER ? "server"
         : k == MESH_SPAN_CLIENT ? "client"
                                 : "internal";
}

/* ---- /xds: the xds part's view (per type and resource: version, status,
 * error), as it registers it */
static void route_xds(mesh__admin_t *a, resp_t *r) {
  cJSON *v = mesh__view_render(a->m, "xds");
  if (!v)
    resp_text(r, 404, "xds is not configured\n");
  else
    resp_json(r, v);
}

static void route_spans(mesh__admin_t *a, resp_t *r) {
  mesh__recent_t *rec = calloc(MESH__RECENT_SPANS, sizeof *rec);
  size_t n = rec ? mesh__tracer_recent(mesh__tracer_get(a->m), rec,
                                       MESH__RECENT_SPANS)
                 : 0;
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "spans") : NULL;
  for (size_t i = 0; arr && i < n; i++) {
    cJSON *s = cJSON_CreateObject();
    if (!s)
      break;
    cJSON_AddStringToObject(s, "trace_id", rec[i].trace_id);
    cJSON_AddStringToObject(s, "span_id", rec[i].span_id);
    cJSON_AddStringToObject(s, "parent_id", rec[i].parent_id);
    cJSON_AddStringToObject(s, "name", rec[i].name);
    cJSON_AddStringToObject(s, "kind", kind_name(rec[i].kind));
    cJSON_AddStringToObject(s, "target", rec[i].target);
    cJSON_AddStringToObject(s, "peer_id", rec[i].peer_id);
    cJSON_AddStringToObject(s, "status",
                            rec[i].status == MESH_SPAN_STATUS_ERROR ? "error"
                            : rec[i].status == MESH_SPAN_STATUS_OK  ? "ok"
                                                                    : "unset");
    cJSON_AddStringToObject(s, "error", rec[i].error);
    cJSON_AddNumberToObject(s, "start_ms", (double)(rec[i].start_ns / 1000000));
    cJSON_AddNumberToObject(s, "duration_us", (double)rec[i].dur_ns / 1e3);
    cJSON_AddItemToArray(arr, s);
  }
  free(rec);
  resp_json(r, doc);
}

static void route_config(mesh__admin_t *a, resp_t *r) {
  cJSON *copy = cJSON_Duplicate(a->m->config, 1);
  mesh__json_redact(copy);
  resp_json(r, copy);
}

static void route_metrics(mesh__admin_t *a, resp_t *r) {
  char *text;
  size_t len;
  if (mesh__metrics_render(a->m, &text, &len) != MESH_OK) {
    resp_text(r, 500, "out of memory\n");
    return;
  }
  r->status = 200;
  r->ctype = "text/plain; version=0.0.4; charset=utf-8";
  r->body = text;
  r->len = len;
}

static const char *route(mesh__admin_t *a, mesh__http_str_t target,
                         resp_t *r) {
  size_t n = 0;
  while (n < target.n && target.p[n] != '?')
    n++;
  mesh__http_str_t path = {target.p, n};
  if (mesh__http_str_eq(path, "/")) {
    r->status = 200;
    r->ctype = "text/html; charset=utf-8";
    r->body = strdup(mesh__admin_page);
    r->len = r->body ? strlen(r->body) : 0;
    r->extra = "Content-Security-Policy: default-src 'self'; "
               "script-src 'unsafe-inline'; style-src 'unsafe-inline'\r\n";
    return "/";
  }
  static const struct {
    const char *path;
    void (*fn)(mesh__admin_t *, resp_t *);
  } routes[] = {
      {"/metrics", route_metrics}, {"/endpoints", route_endpoints},
      {"/config", route_config},   {"/identity", route_identity},
      {"/spans", route_spans},     {"/xds", route_xds},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (mesh__http_str_eq(path, routes[i].path)) {
      routes[i].fn(a, r);
      return routes[i].path;
    }
  }
  if (mesh__http_str_eq(path, "/healthz")) {
    bool closing = atomic_load(&a->m->closing);
    resp_text(r, closing ? 503 : 200, closing ? "closing\n" : "ok\n");
    return "/healthz";
  }
  resp_text(r, 404, "not found\n");
  return "other";
}

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
                   r->status, reason(r->status), r->ctype, r->len,
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
  conn_flush(c);
}

static void conn_error(admin_conn_t *c, int status, const char *text) {
  resp_t r = {0};
  resp_text(&r, status, text);
  conn_respond(c, &r, false, "other");
}

static void conn_request(admin_conn_t *c) {
  mesh__http_msg_t *msg = &c->msg;
  bool head = mesh__http_str_eq(msg->method, "HEAD");
  if (!head && !mesh__http_str_eq(msg->method, "GET")) {
    conn_error(c, 405, "only GET and HEAD\n");
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
  const char *path = route(c->a, msg->target, &r);
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

static void on_accept(int fd, unsigned ev, void *user) {
  (void)ev;
  mesh__admin_t *a = user;
  for (int i = 0; i < 64; i++) {
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
      return; /* EAGAIN, or a transient error: the next event retries */
    if (a->nconns >= ADMIN_MAX_CONNS) {
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
    int64_t t = mesh__loop_timer(a->m->loop, ADMIN_TIMEOUT_MS,
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

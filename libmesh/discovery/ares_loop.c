/* SPDX-License-Identifier: Apache-2.0 */
/* A c-ares channel on the worker loop: c-ares tells which sockets to watch
 * (socket-state callback), the loop watches them and runs ares_process_fd,
 * and one loop timer follows ares_timeout.  Shared by the DNS source and
 * the resolution of hostnames in static, file and etcd endpoints. */
#include "discovery/ares_loop.h"
#include "discovery/discovery.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mesh__ares {
  mesh_t *m;
  ares_channel ch;
  bool have_ch;
  bool stopping;
  int64_t timer;
  const char *service, *source;
};

/* ---- settings ------------------------------------------------------------ */

static bool valid_server(const char *s) {
  char host[64], err[100];
  uint16_t port;
  unsigned char buf[16];
  if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
    return true;
  if (mesh__disc_split_hostport(s, host, sizeof host, &port, err,
                                sizeof err) != MESH_OK)
    return false;
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

static void check_servers(mesh__cfg_t *c, const cJSON *obj, const char *path) {
  const cJSON *servers;
  if (!mesh__cfg_strings(c, obj, path, "servers", &servers) || !servers)
    return;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, servers) {
    char sp[MESH__PATH_MAX + 32];
    snprintf(sp, sizeof sp, "%s.servers[%d]", path, i++);
    if (cJSON_IsString(it) && !valid_server(it->valuestring))
      mesh__cfg_error(c, sp, "expected an IP address with an optional "
                             "port (\"127.0.0.1:5353\", \"[::1]:53\")");
  }
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "servers");
  if (i == 0)
    mesh__cfg_error(c, p, "must list at least one server (or be omitted "
                          "for the system's resolv.conf)");
  /* what set_servers() can pass to c-ares (a 2 KiB list): refused here so
   * that mesh_new never finds a problem the check did not */
  if (i > 32)
    mesh__cfg_error(c, p, "at most 32 servers");
}

void mesh__dns_cfg_check(mesh__cfg_t *c, const cJSON *obj, const char *path) {
  check_servers(c, obj, path);
  int64_t lo, hi, to;
  mesh__cfg_int(c, obj, path, "min_ttl_ms", 10, 86400000,
                MESH__DNS_MIN_TTL_DEFAULT_MS, &lo);
  mesh__cfg_int(c, obj, path, "max_ttl_ms", 10, 86400000,
                MESH__DNS_MAX_TTL_DEFAULT_MS, &hi);
  mesh__cfg_int(c, obj, path, "timeout_ms", 30, 600000,
                MESH__DNS_TIMEOUT_DEFAULT_MS, &to);
  if (lo > hi) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "min_ttl_ms");
    mesh__cfg_error(c, p, "greater than max_ttl_ms (%lld)", (long long)hi);
  }
}

void mesh__dns_cfg_read(const cJSON *obj, mesh__dns_cfg_t *out) {
  mesh__cfg_t c = {0};
  out->servers = cJSON_GetObjectItemCaseSensitive(obj, "servers");
  mesh__cfg_int(&c, obj, "", "min_ttl_ms", 10, 86400000,
                MESH__DNS_MIN_TTL_DEFAULT_MS, &out->min_ttl_ms);
  mesh__cfg_int(&c, obj, "", "max_ttl_ms", 10, 86400000,
                MESH__DNS_MAX_TTL_DEFAULT_MS, &out->max_ttl_ms);
  mesh__cfg_int(&c, obj, "", "timeout_ms", 30, 600000,
                MESH__DNS_TIMEOUT_DEFAULT_MS, &out->timeout_ms);
}

int64_t mesh__dns_refresh_ms(const mesh__dns_cfg_t *cfg, uint32_t ttl_s) {
  int64_t next = ttl_s == UINT32_MAX ? cfg->min_ttl_ms : (int64_t)ttl_s * 1000;
  if (next < cfg->min_ttl_ms)
    next = cfg->min_ttl_ms;
  if (next > cfg->max_ttl_ms)
    next = cfg->max_ttl_ms;
  return next;
}

int64_t mesh__dns_retry_ms(const mesh__dns_cfg_t *cfg, unsigned failures) {
  int64_t cap = cfg->min_ttl_ms * 10;
  if (cap > cfg->max_ttl_ms)
    cap = cfg->max_ttl_ms;
  return mesh__disc_backoff(cfg->min_ttl_ms, cap,
                            failures > 0 ? failures - 1 : 0);
}

/* ---- loop integration ----------------------------------------------------- */

static void on_timer(void *user);

static void rearm(mesh__ares_t *a) {
  if (a->timer > 0)
    mesh__loop_timer_cancel(a->m->loop, a->timer);
  a->timer = 0;
  if (a->stopping)
    return;
  struct timeval tv;
  if (!ares_timeout(a->ch, NULL, &tv))
    return;
  int64_t ms = (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
  int64_t t = mesh__loop_timer(a->m->loop, ms, on_timer, a);
  a->timer = t > 0 ? t : 0;
}

static void on_timer(void *user) {
  mesh__ares_t *a = user;
  a->timer = 0;
  ares_process_fd(a->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  rearm(a);
}

static void on_io(int fd, unsigned ev, void *user) {
  mesh__ares_t *a = user;
  ares_socket_t r = (ev & (MESH__IO_READ | MESH__IO_ERROR)) ? fd
                                                             : ARES_SOCKET_BAD;
  ares_socket_t w = (ev & MESH__IO_WRITE) ? fd : ARES_SOCKET_BAD;
  ares_process_fd(a->ch, r, w);
  rearm(a);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
  mesh__ares_t *a = data;
  if (!readable && !writable) {
    mesh__loop_unwatch(a->m->loop, fd);
    return;
  }
  unsigned ev = (readable ? MESH__IO_READ : 0) | (writable ? MESH__IO_WRITE : 0);
  if (mesh__loop_watch(a->m->loop, fd, ev, on_io, a) != MESH_OK)
    mesh__log(a->m, MESH_LOG_ERROR, "discovery_error",
              "service=%s source=%s err=\"cannot watch a DNS socket\"",
              a->service, a->source);
}

/* ---- lifecycle ------------------------------------------------------------- */

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;
static void ares_global(void) {
  ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* "a,b" for ares_set_servers_ports_csv; bare addresses get port 53. */
static int servers_csv(const cJSON *servers, char *out, size_t len) {
  size_t off = 0;
  out[0] = '\0';
  const cJSON *it;
  cJSON_ArrayForEach(it, servers) {
    const char *sv = it->valuestring;
    unsigned char buf[16];
    int n;
    if (inet_pton(AF_INET6, sv, buf) == 1)
      n = snprintf(out + off, len - off, "%s[%s]:53", off ? "," : "", sv);
    else if (inet_pton(AF_INET, sv, buf) == 1)
      n = snprintf(out + off, len - off, "%s%s:53", off ? "," : "", sv);
    else
      n = snprintf(out + off, len - off, "%s%s", off ? "," : "", sv);
    if (n < 0 || (size_t)n >= len - off)
      return MESH_ERR_CONFIG;
    off += (size_t)n;
  }
  return MESH_OK;
}

static int set_servers(mesh__ares_t *a, const cJSON *servers, const char *what,
                       mesh_status_t *st) {
  char csv[2048];
  if (servers_csv(servers, csv, sizeof csv) != MESH_OK)
    return mesh__fail(st, MESH_ERR_CONFIG, "%s.servers: too many servers",
                      what);
  int rc = ares_set_servers_ports_csv(a->ch, csv);
  if (rc != ARES_SUCCESS)
    return mesh__fail(st, MESH_ERR_CONFIG, "%s.servers: %s", what,
                      ares_strerror(rc));
  return MESH_OK;
}

int mesh__ares_new(mesh_t *m, const mesh__dns_cfg_t *cfg, const char *service,
                   const char *source, const char *what, mesh__ares_t **out,
                   mesh_status_t *st) {
  *out = NULL;
  pthread_once(&ares_once, ares_global);
  if (ares_init_rc != ARES_SUCCESS)
    return mesh__fail(st, MESH_ERR_DISCOVERY, "c-ares: %s",
                      ares_strerror(ares_init_rc));
  mesh__ares_t *a = calloc(1, sizeof *a);
  if (!a)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  a->m = m;
  a->service = service;
  a->source = source;
  struct ares_options o;
  memset(&o, 0, sizeof o);
  o.sock_state_cb = sock_state_cb;
  o.sock_state_cb_data = a;
  /* Two tries; c-ares doubles the per-try timeout on the second, so a
   * query's total is about timeout_ms.  c-ares' own defaults (4 tries,
   * growing timeouts) would let an outage hold a round for most of a
   * minute. */
  o.timeout = (int)(cfg->timeout_ms / 3 > 10 ? cfg->timeout_ms / 3 : 10);
  o.tries = 2;
  o.flags = ARES_FLAG_EDNS;
  o.ednspsz = 1232;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
             ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ;
#ifdef ARES_OPT_QUERY_CACHE
  /* c-ares 1.23+ caches answers (a "no such record" up to the zone's SOA
   * minimum) by default; discovery follows the records' TTLs itself and
   * must see a change when the TTL says so. */
  o.qcache_max_ttl = 0;
  mask |= ARES_OPT_QUERY_CACHE;
#endif
  int rc = ares_init_options(&a->ch, &o, mask);
  if (rc != ARES_SUCCESS) {
    free(a);
    return mesh__fail(st, rc == ARES_ENOMEM ? MESH_ERR_NOMEM
                                            : MESH_ERR_DISCOVERY,
                      "c-ares: %s", ares_strerror(rc));
  }
  a->have_ch = true;
  if (cfg->servers) {
    rc = set_servers(a, cfg->servers, what, st);
    if (rc != MESH_OK) {
      mesh__ares_free(a);
      return rc;
    }
  }
  *out = a;
  return MESH_OK;
}

ares_channel mesh__ares_channel(mesh__ares_t *a) { return a->ch; }

void mesh__ares_kick(mesh__ares_t *a) {
  if (a)
    rearm(a);
}

void mesh__ares_free(mesh__ares_t *a) {
  if (!a)
    return;
  a->stopping = true;
  if (a->timer > 0)
    mesh__loop_timer_cancel(a->m->loop, a->timer);
  a->timer = 0;
  /* Callbacks see ARES_EDESTRUCTION; the socket-state callback unwatches
   * every socket as c-ares closes it. */
  if (a->have_ch)
    ares_destroy(a->ch);
  free(a);
}

bool mesh__ares_node_text(const struct ares_addrinfo_node *p, char *out) {
  const void *src = NULL;
  if (p->ai_family == AF_INET && p->ai_addr)
    src = &((const struct sockaddr_in *)(const void *)p->ai_addr)->sin_addr;
  else if (p->ai_family == AF_INET6 && p->ai_addr)
    src = &((const struct sockaddr_in6 *)(const void *)p->ai_addr)->sin6_addr;
  return src && inet_ntop(p->ai_family, src, out, INET6_ADDRSTRLEN);
}

uint32_t mesh__ares_cname_ttl(const struct ares_addrinfo *ai, uint32_t ttl) {
  for (const struct ares_addrinfo_cname *c = ai ? ai->cnames : NULL; c;
       c = c->next) {
    uint32_t t = c->ttl > 0 ? (uint32_t)c->ttl : 0;
    ttl = t < ttl ? t : ttl;
  }
  return ttl;
}

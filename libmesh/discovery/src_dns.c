/* DNS source through c-ares, driven by the worker loop (socket-state
 * callback + ares_timeout, c-ares's second integration tier).
 *
 * A round queries A and/or AAAA for the name, or SRV and then A and AAAA
 * for each target.  When every query has answered, the addresses become
 * the endpoint set and the next round is due after the smallest TTL seen,
 * clamped to [min_ttl_ms, max_ttl_ms].  NXDOMAIN and NODATA are answers
 * (no endpoints), as in Envoy; SERVFAIL, REFUSED, timeouts, unreachable
 * servers and malformed responses fail the whole round: the last good set
 * stays and the round is retried with backoff. */
#include "discovery/discovery.h"
#include "discovery/dnsmsg.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_MIN_TTL_DEFAULT_MS 5000
#define DNS_MAX_TTL_DEFAULT_MS 300000
#define DNS_TIMEOUT_DEFAULT_MS 5000
#define DNS_MAX_TARGETS 256
#define DNS_MAX_ADDRS 4096

enum { REC_A, REC_AAAA, REC_BOTH, REC_SRV };
static const char *const record_names[] = {"A", "AAAA", "A+AAAA", "SRV", NULL};

typedef struct dns_addr {
  char addr[INET6_ADDRSTRLEN];
  uint16_t port;
  uint32_t priority, weight;
} dns_addr_t;

typedef struct dns_src {
  mesh__disc_svc_t *d;
  ares_channel ch;
  bool have_ch;
  bool stopping;
  const char *name;
  uint16_t port;
  int record;
  int64_t min_ttl_ms, max_ttl_ms, timeout_ms;
  int64_t ares_timer, round_timer;

  /* the round in progress */
  int pending;
  bool failed;
  char err[200];
  uint32_t ttl;
  dns_addr_t *res;
  size_t nres, capres;
  size_t ntargets;
  unsigned failures; /* consecutive failed rounds */
} dns_src_t;

typedef struct qctx {
  dns_src_t *s;
  int qtype;
  uint16_t port;
  uint32_t priority, weight;
  char name[MESH__DISC_MAX_HOSTNAME + 2];
} qctx_t;

/* ---- config ----------------------------------------------------------------- */

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

void mesh__disc_check_dns(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"type",       "name",       "port",
                                     "record",     "servers",    "min_ttl_ms",
                                     "max_ttl_ms", "timeout_ms", NULL};
  char p[MESH__PATH_MAX];
  mesh__cfg_object(c, v, path, keys);
  const char *name;
  mesh__cfg_path(p, path, "name");
  if (!mesh__cfg_string(c, v, path, "name", NULL, &name)) {
    if (!cJSON_GetObjectItemCaseSensitive(v, "name"))
      mesh__cfg_error(c, p, "required for type \"dns\"");
  } else {
    unsigned char buf[16];
    if (!mesh__disc_valid_address(name) || inet_pton(AF_INET, name, buf) == 1 ||
        inet_pton(AF_INET6, name, buf) == 1)
      mesh__cfg_error(c, p, "not a DNS name");
  }
  int record;
  mesh__cfg_enum(c, v, path, "record", record_names, REC_BOTH, &record);
  int64_t port;
  bool has_port = mesh__cfg_int(c, v, path, "port", 1, 65535, 0, &port);
  mesh__cfg_path(p, path, "port");
  if (record == REC_SRV && cJSON_GetObjectItemCaseSensitive(v, "port"))
    mesh__cfg_error(c, p, "not used with SRV records (ports come from them)");
  else if (record != REC_SRV && !has_port &&
           !cJSON_GetObjectItemCaseSensitive(v, "port"))
    mesh__cfg_error(c, p, "required for A/AAAA records");
  const cJSON *servers;
  if (mesh__cfg_strings(c, v, path, "servers", &servers) && servers) {
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, servers) {
      char sp[MESH__PATH_MAX];
      snprintf(sp, sizeof sp, "%s.servers[%d]", path, i++);
      if (cJSON_IsString(it) && !valid_server(it->valuestring))
        mesh__cfg_error(c, sp, "expected an IP address with an optional "
                               "port (\"127.0.0.1:5353\", \"[::1]:53\")");
    }
    if (i == 0) {
      mesh__cfg_path(p, path, "servers");
      mesh__cfg_error(c, p, "must list at least one server (or be omitted "
                            "for the system's resolv.conf)");
    }
  }
  int64_t lo, hi, to;
  mesh__cfg_int(c, v, path, "min_ttl_ms", 10, 86400000, DNS_MIN_TTL_DEFAULT_MS,
                &lo);
  mesh__cfg_int(c, v, path, "max_ttl_ms", 10, 86400000, DNS_MAX_TTL_DEFAULT_MS,
                &hi);
  mesh__cfg_int(c, v, path, "timeout_ms", 30, 600000, DNS_TIMEOUT_DEFAULT_MS,
                &to);
  if (lo > hi) {
    mesh__cfg_path(p, path, "min_ttl_ms");
    mesh__cfg_error(c, p, "greater than max_ttl_ms (%lld)", (long long)hi);
  }
}

/* ---- loop integration --------------------------------------------------------- */

static void ares_timer_cb(void *user);

static void rearm(dns_src_t *s) {
  if (s->ares_timer > 0)
    mesh__loop_timer_cancel(s->d->m->loop, s->ares_timer);
  s->ares_timer = 0;
  if (s->stopping)
    return;
  struct timeval tv;
  if (!ares_timeout(s->ch, NULL, &tv))
    return;
  int64_t ms = (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
  int64_t t = mesh__loop_timer(s->d->m->loop, ms, ares_timer_cb, s);
  s->ares_timer = t > 0 ? t : 0;
}

static void ares_timer_cb(void *user) {
  dns_src_t *s = user;
  s->ares_timer = 0;
  ares_process_fd(s->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  rearm(s);
}

static void on_io(int fd, unsigned ev, void *user) {
  dns_src_t *s = user;
  ares_socket_t r = (ev & (MESH__IO_READ | MESH__IO_ERROR)) ? fd
                                                             : ARES_SOCKET_BAD;
  ares_socket_t w = (ev & MESH__IO_WRITE) ? fd : ARES_SOCKET_BAD;
  ares_process_fd(s->ch, r, w);
  rearm(s);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
  dns_src_t *s = data;
  if (!readable && !writable) {
    mesh__loop_unwatch(s->d->m->loop, fd);
    return;
  }
  unsigned ev = (readable ? MESH__IO_READ : 0) | (writable ? MESH__IO_WRITE : 0);
  if (mesh__loop_watch(s->d->m->loop, fd, ev, on_io, s) != MESH_OK)
    mesh__log(s->d->m, MESH_LOG_ERROR, "discovery_error",
              "service=%s source=dns err=\"cannot watch a DNS socket\"",
              s->d->svc->name);
}

/* ---- a resolution round ------------------------------------------------------- */

static void round_timer_cb(void *user);
static void query(dns_src_t *s, const char *name, int qtype, uint16_t port,
                  uint32_t prio, uint32_t weight);

static void fail(dns_src_t *s, const char *what, const char *name, int status) {
  if (s->failed)
    return; /* report the first cause */
  s->failed = true;
  snprintf(s->err, sizeof s->err, "%s %.100s: %s", what, name,
           ares_strerror(status));
}

static void add_addr(dns_src_t *s, const char *addr, const qctx_t *q) {
  if (s->nres >= DNS_MAX_ADDRS)
    return;
  if (s->nres == s->capres) {
    size_t cap = s->capres ? s->capres * 2 : 16;
    dns_addr_t *n = realloc(s->res, cap * sizeof *n);
    if (!n) {
      s->failed = true;
      snprintf(s->err, sizeof s->err, "out of memory");
      return;
    }
    s->res = n;
    s->capres = cap;
  }
  dns_addr_t *a = &s->res[s->nres++];
  mesh__strlcpy(a->addr, addr, sizeof a->addr);
  a->port = q->port;
  a->priority = q->priority;
  a->weight = q->weight;
}

static void note_ttl(dns_src_t *s, const unsigned char *abuf, int alen,
                     int type) {
  uint32_t ttl;
  size_t count;
  if (mesh__dns_answer_ttl(abuf, (size_t)alen, type, &ttl, &count) ==
          MESH_OK &&
      ttl < s->ttl)
    s->ttl = ttl;
}

static void parse_a(dns_src_t *s, const qctx_t *q, const unsigned char *abuf,
                    int alen) {
  int n = DNS_MAX_ADDRS;
  struct ares_addrttl *v = calloc((size_t)n, sizeof *v);
  if (!v) {
    fail(s, "A", q->name, ARES_ENOMEM);
    return;
  }
  int rc = ares_parse_a_reply(abuf, alen, NULL, v, &n);
  if (rc == ARES_ENODATA) {
    n = 0;
  } else if (rc != ARES_SUCCESS) {
    fail(s, "A", q->name, rc);
    n = 0;
  }
  for (int i = 0; i < n; i++) {
    char txt[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &v[i].ipaddr, txt, sizeof txt))
      add_addr(s, txt, q);
  }
  free(v);
  if (rc == ARES_SUCCESS)
    note_ttl(s, abuf, alen, ns_t_a);
}

static void parse_aaaa(dns_src_t *s, const qctx_t *q,
                       const unsigned char *abuf, int alen) {
  int n = DNS_MAX_ADDRS;
  struct ares_addr6ttl *v = calloc((size_t)n, sizeof *v);
  if (!v) {
    fail(s, "AAAA", q->name, ARES_ENOMEM);
    return;
  }
  int rc = ares_parse_aaaa_reply(abuf, alen, NULL, v, &n);
  if (rc == ARES_ENODATA) {
    n = 0;
  } else if (rc != ARES_SUCCESS) {
    fail(s, "AAAA", q->name, rc);
    n = 0;
  }
  for (int i = 0; i < n; i++) {
    char txt[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &v[i].ip6addr, txt, sizeof txt))
      add_addr(s, txt, q);
  }
  free(v);
  if (rc == ARES_SUCCESS)
    note_ttl(s, abuf, alen, ns_t_aaaa);
}

static void parse_srv(dns_src_t *s, const qctx_t *q, const unsigned char *abuf,
                      int alen) {
  struct ares_srv_reply *srv = NULL;
  int rc = ares_parse_srv_reply(abuf, alen, &srv);
  if (rc == ARES_ENODATA)
    return;
  if (rc != ARES_SUCCESS) {
    fail(s, "SRV", q->name, rc);
    return;
  }
  note_ttl(s, abuf, alen, ns_t_srv);
  for (struct ares_srv_reply *r = srv; r && !s->failed; r = r->next) {
    /* "." means "no service here" (RFC 2782); port 0 cannot be dialed. */
    if (!r->host || !*r->host || strcmp(r->host, ".") == 0 || r->port == 0)
      continue;
    if (!mesh__disc_valid_address(r->host) ||
        s->ntargets >= DNS_MAX_TARGETS)
      continue;
    s->ntargets++;
    /* RFC 2782 weight 0 = "very rarely": the smallest weight we have. */
    uint32_t w = r->weight ? r->weight : 1;
    query(s, r->host, ns_t_a, r->port, r->priority, w);
    query(s, r->host, ns_t_aaaa, r->port, r->priority, w);
  }
  ares_free_data(srv);
}

static void finish_round(dns_src_t *s) {
  mesh__disc_svc_t *d = s->d;
  int64_t next;
  if (s->failed) {
    s->failures++;
    mesh__disc_error(d, "%s", s->err);
    int64_t cap = s->min_ttl_ms * 10;
    if (cap > s->max_ttl_ms)
      cap = s->max_ttl_ms;
    next = mesh__disc_backoff(s->min_ttl_ms, cap, s->failures - 1);
  } else {
    s->failures = 0;
    mesh__ep_t *eps = calloc(s->nres ? s->nres : 1, sizeof *eps);
    if (!eps) {
      mesh__disc_error(d, "out of memory");
    } else {
      for (size_t i = 0; i < s->nres; i++) {
        eps[i].address = s->res[i].addr;
        eps[i].port = s->res[i].port;
        eps[i].priority = s->res[i].priority;
        eps[i].weight = s->res[i].weight;
        eps[i].health = MESH__HEALTH_UNKNOWN;
      }
      mesh__disc_apply(d, eps, s->nres);
      free(eps);
    }
    next = s->ttl == UINT32_MAX ? s->min_ttl_ms : (int64_t)s->ttl * 1000;
    if (next < s->min_ttl_ms)
      next = s->min_ttl_ms;
    if (next > s->max_ttl_ms)
      next = s->max_ttl_ms;
  }
  int64_t t = mesh__loop_timer(d->m->loop, next, round_timer_cb, s);
  s->round_timer = t > 0 ? t : 0;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
                      int alen) {
  (void)timeouts;
  qctx_t *q = arg;
  dns_src_t *s = q->s;
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED ||
      s->stopping) {
    free(q);
    return;
  }
  if (status == ARES_SUCCESS && abuf) {
    if (q->qtype == ns_t_a)
      parse_a(s, q, abuf, alen);
    else if (q->qtype == ns_t_aaaa)
      parse_aaaa(s, q, abuf, alen);
    else
      parse_srv(s, q, abuf, alen);
  } else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
    fail(s, q->qtype == ns_t_a      ? "A"
            : q->qtype == ns_t_aaaa ? "AAAA"
                                    : "SRV",
         q->name, status);
  }
  free(q);
  if (--s->pending == 0)
    finish_round(s);
}

static void query(dns_src_t *s, const char *name, int qtype, uint16_t port,
                  uint32_t prio, uint32_t weight) {
  qctx_t *q = calloc(1, sizeof *q);
  if (!q) {
    s->failed = true;
    snprintf(s->err, sizeof s->err, "out of memory");
    return;
  }
  q->s = s;
  q->qtype = qtype;
  q->port = port;
  q->priority = prio;
  q->weight = weight;
  mesh__strlcpy(q->name, name, sizeof q->name);
  s->pending++;
  /* The callback may run inside ares_query (e.g. no servers): pending is
   * already counted, so the round cannot finish early. */
  ares_query(s->ch, q->name, ns_c_in, qtype, on_answer, q);
}

static void start_round(dns_src_t *s) {
  s->failed = false;
  s->err[0] = '\0';
  s->ttl = UINT32_MAX;
  s->nres = 0;
  s->ntargets = 0;
  /* Hold one count while queries are issued so that answers arriving
   * synchronously cannot complete the round half-way. */
  s->pending = 1;
  if (s->record == REC_A || s->record == REC_BOTH)
    query(s, s->name, ns_t_a, s->port, 0, 1);
  if (s->record == REC_AAAA || s->record == REC_BOTH)
    query(s, s->name, ns_t_aaaa, s->port, 0, 1);
  if (s->record == REC_SRV)
    query(s, s->name, ns_t_srv, 0, 0, 1);
  if (--s->pending == 0)
    finish_round(s);
  rearm(s);
}

static void round_timer_cb(void *user) {
  dns_src_t *s = user;
  s->round_timer = 0;
  start_round(s);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;
static void ares_global(void) { ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL); }

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

static int dns_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  pthread_once(&ares_once, ares_global);
  if (ares_init_rc != ARES_SUCCESS)
    return mesh__fail(st, MESH_ERR_DISCOVERY, "c-ares: %s",
                      ares_strerror(ares_init_rc));
  dns_src_t *s = calloc(1, sizeof *s);
  if (!s)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->d = d;
  d->src = s;
  mesh__cfg_t c = {0};
  int64_t port;
  mesh__cfg_string(&c, d->cfg, "", "name", "", &s->name);
  mesh__cfg_int(&c, d->cfg, "", "port", 1, 65535, 0, &port);
  s->port = (uint16_t)port;
  mesh__cfg_enum(&c, d->cfg, "", "record", record_names, REC_BOTH, &s->record);
  mesh__cfg_int(&c, d->cfg, "", "min_ttl_ms", 10, 86400000,
                DNS_MIN_TTL_DEFAULT_MS, &s->min_ttl_ms);
  mesh__cfg_int(&c, d->cfg, "", "max_ttl_ms", 10, 86400000,
                DNS_MAX_TTL_DEFAULT_MS, &s->max_ttl_ms);
  mesh__cfg_int(&c, d->cfg, "", "timeout_ms", 30, 600000,
                DNS_TIMEOUT_DEFAULT_MS, &s->timeout_ms);

  struct ares_options o;
  memset(&o, 0, sizeof o);
  o.sock_state_cb = sock_state_cb;
  o.sock_state_cb_data = s;
  /* Two tries; c-ares doubles the per-try timeout on the second, so the
   * round's total is about timeout_ms. */
  o.timeout = (int)(s->timeout_ms / 3 > 10 ? s->timeout_ms / 3 : 10);
  o.tries = 2;
  o.flags = ARES_FLAG_EDNS;
  o.ednspsz = 1232;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
             ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ;
  int rc = ares_init_options(&s->ch, &o, mask);
  if (rc != ARES_SUCCESS)
    return mesh__fail(st, MESH_ERR_DISCOVERY, "c-ares: %s", ares_strerror(rc));
  s->have_ch = true;
  const cJSON *servers = cJSON_GetObjectItemCaseSensitive(d->cfg, "servers");
  if (servers) {
    char csv[2048];
    if (servers_csv(servers, csv, sizeof csv) != MESH_OK)
      return mesh__fail(st, MESH_ERR_CONFIG, "services.%s.discovery.servers: "
                                             "too many servers",
                        d->svc->name);
    rc = ares_set_servers_ports_csv(s->ch, csv);
    if (rc != ARES_SUCCESS)
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "services.%s.discovery.servers: %s", d->svc->name,
                        ares_strerror(rc));
  }
  /* First round on the loop's first turn: nothing blocks mesh_new(). */
  int64_t t = mesh__loop_timer(d->m->loop, 0, round_timer_cb, s);
  if (t < 0)
    return mesh__fail(st, (int)t, "cannot arm the DNS timer");
  s->round_timer = t;
  return MESH_OK;
}

static void dns_stop(mesh__disc_svc_t *d) {
  dns_src_t *s = d->src;
  if (!s)
    return;
  s->stopping = true;
  if (s->round_timer > 0)
    mesh__loop_timer_cancel(d->m->loop, s->round_timer);
  if (s->ares_timer > 0)
    mesh__loop_timer_cancel(d->m->loop, s->ares_timer);
  if (s->have_ch)
    ares_destroy(s->ch); /* callbacks see ARES_EDESTRUCTION */
  free(s->res);
  free(s);
  d->src = NULL;
}

const mesh__disc_source_t mesh__disc_dns = {"dns", dns_start, dns_stop};

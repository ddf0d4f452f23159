/* SPDX-License-Identifier: Apache-2.0 */
/* Active health checks, run on the worker loop: a TCP connect, a TLS
 * handshake with the peer check (through the public connection API), or an
 * HTTP/1.1 GET over that mTLS connection expecting a 2xx status.  Verdicts
 * go to host->hc_health after healthy/unhealthy thresholds; the first check
 * of a new host decides at once, so a dead endpoint is out within one
 * timeout of start-up. */
#include "lb/lb.h"
#include "telemetry/telemetry.h"
#include "resilience/call.h"
#include "resilience/resilience.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum phase { PH_CONNECT, PH_HANDSHAKE, PH_WRITE, PH_READ };

typedef struct hc_check {
  mesh__res_svc_t *rs;
  mesh__host_t *h;          /* one reference */
  int phase;
  int fd;                   /* the raw socket (tcp) or the conn's fd */
  mesh_conn_t *conn;        /* tls and http */
  int64_t timer;
  char buf[512];
  size_t len, off;
  struct hc_check *next;
} hc_check_t;

struct mesh__hc_run {
  hc_check_t *checks;       /* in flight */
};

static void check_done(hc_check_t *k, bool ok, const char *why);

/* ---- verdicts ------------------------------------------------------------------ */

static void verdict(mesh__res_svc_t *rs, mesh__host_t *h, bool ok,
                    const char *why) {
  mesh__counter_add(rs->mx.hc[ok ? 0 : 1], 1);
  mesh__res_host_t *rh = mesh__res_host(h);
  if (!rh)
    return;
  const mesh__hc_cfg_t *c = &rs->cfg->hc;
  int cur = atomic_load(&h->hc_health);
  int next = cur;
  if (ok) {
    rh->hc_ok_streak++;
    rh->hc_fail_streak = 0;
    if (cur != MESH__HEALTH_HEALTHY &&
        (cur == MESH__HEALTH_UNKNOWN || rh->hc_ok_streak >= c->healthy_threshold))
      next = MESH__HEALTH_HEALTHY;
    mesh__od_hc_passed(rs, h, mesh__now_ms());
  } else {
    rh->hc_fail_streak++;
    rh->hc_ok_streak = 0;
    if (cur != MESH__HEALTH_UNHEALTHY &&
        (cur == MESH__HEALTH_UNKNOWN ||
         rh->hc_fail_streak >= c->unhealthy_threshold))
      next = MESH__HEALTH_UNHEALTHY;
  }
  if (next == cur)
    return;
  atomic_store(&h->hc_health, next);
  if (next == MESH__HEALTH_UNHEALTHY)
    mesh__pool_clear(mesh__res_pool_peek(h));
  /* Pickers see the change at once, not after their view refresh. */
  mesh__snapshot_t *snap = mesh__res_snapshot(rs->svc);
  if (snap)
    mesh__lb_refresh(snap, mesh__now_ms());
  mesh__snap_release(snap);
  mesh__log(rs->m, next == MESH__HEALTH_HEALTHY ? MESH_LOG_INFO : MESH_LOG_WARN,
            "health_check", "service=%s host=%s health=%s reason=\"%s\"",
            rs->name, h->key,
            next == MESH__HEALTH_HEALTHY ? "healthy" : "unhealthy", why);
}

/* ---- one check --------------------------------------------------------------------- */

static void unlink_check(hc_check_t *k) {
  struct mesh__hc_run *run = k->rs->hc;
  for (hc_check_t **pp = &run->checks; *pp; pp = &(*pp)->next) {
    if (*pp == k) {
      *pp = k->next;
      return;
    }
  }
}

static void check_free(hc_check_t *k) {
  mesh__loop_t *l = k->rs->m->loop;
  if (k->timer > 0)
    mesh__loop_timer_cancel(l, k->timer);
  if (k->fd >= 0)
    mesh__loop_unwatch(l, k->fd);
  if (k->conn)
    mesh_conn_close(k->conn);
  else if (k->fd >= 0)
    close(k->fd);
  mesh__res_host_t *rh = mesh__res_host(k->h);
  if (rh && rh->hc_inflight == k)
    rh->hc_inflight = NULL;
  mesh__host_unref(k->h);
  free(k);
}

static void check_done(hc_check_t *k, bool ok, const char *why) {
  unlink_check(k);
  mesh__res_svc_t *rs = k->rs;
  mesh__host_t *h = k->h;
  mesh__host_ref(h);
  check_free(k);
  verdict(rs, h, ok, why);
  mesh__host_unref(h);
}

static void on_timeout(void *user) {
  hc_check_t *k = user;
  k->timer = 0;
  check_done(k, false, "timeout");
}

static void on_io(int fd, unsigned ev, void *user);

static bool watch(hc_check_t *k, unsigned ev) {
  return mesh__loop_watch(k->rs->m->loop, k->fd, ev, on_io, k) == MESH_OK;
}

/* Parse "HTTP/1.x DDD ..." once the status line is in. 1 ok, 0 more, -1 bad */
static int http_status(hc_check_t *k, char *why, size_t whylen) {
  char *eol = memchr(k->buf, '\n', k->len);
  if (!eol)
    return k->len >= sizeof k->buf - 1 ? -1 : 0;
  if (k->len < 12 || memcmp(k->buf, "HTTP/1.", 7) != 0 || k->buf[8] != ' ') {
    snprintf(why, whylen, "not an HTTP/1.x response");
    return -1;
  }
  int code = 0;
  for (int i = 9; i < 12; i++) {
    if (k->buf[i] < '0' || k->buf[i] > '9') {
      snprintf(why, whylen, "malformed status line");
      return -1;
    }
    code = code * 10 + (k->buf[i] - '0');
  }
  snprintf(why, whylen, "status %d", code);
  return code >= 200 && code <= 299 ? 1 : -1;
}

static void step_http(hc_check_t *k) {
  char why[64];
  for (int guard = 0; guard < 64; guard++) {
    if (k->phase == PH_WRITE) {
      long n = mesh_conn_write(k->conn, k->buf + k->off, k->len - k->off);
      if (n == MESH_ERR_WANT_WRITE || n == MESH_ERR_WANT_READ) {
        if (!watch(k, n == MESH_ERR_WANT_READ ? MESH__IO_READ : MESH__IO_WRITE))
          check_done(k, false, "cannot watch the socket");
        return;
      }
      if (n <= 0) {
        check_done(k, false, "write failed");
        return;
      }
      k->off += (size_t)n;
      if (k->off == k->len) {
        k->phase = PH_READ;
        k->len = 0;
      }
      continue;
    }
    long n = mesh_conn_read(k->conn, k->buf + k->len, sizeof k->buf - 1 - k->len);
    if (n == MESH_ERR_WANT_READ || n == MESH_ERR_WANT_WRITE) {
      if (!watch(k, n == MESH_ERR_WANT_WRITE ? MESH__IO_WRITE : MESH__IO_READ))
        check_done(k, false, "cannot watch the socket");
      return;
    }
    if (n <= 0) {
      check_done(k, false, n == 0 ? "closed before the status line"
                                  : "read failed");
      return;
    }
    k->len += (size_t)n;
    int r = http_status(k, why, sizeof why);
    if (r != 0) {
      check_done(k, r > 0, r > 0 ? why : (why[0] ? why : "bad response"));
      return;
    }
  }
  if (!watch(k, MESH__IO_READ))
    check_done(k, false, "cannot watch the socket");
}

static void start_http(hc_check_t *k) {
  int n = snprintf(k->buf, sizeof k->buf,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: libmesh-health"
                   "\r\nConnection: close\r\n\r\n",
                   k->rs->cfg->hc.path, k->rs->name);
  if (n < 0 || (size_t)n >= sizeof k->buf) {
    check_done(k, false, "request too long");
    return;
  }
  k->len = (size_t)n;
  k->off = 0;
  k->phase = PH_WRITE;
  step_http(k);
}

static void step_handshake(hc_check_t *k) {
  mesh_status_t st;
  int rc = mesh_conn_handshake(k->conn, &st);
  if (rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE) {
    if (!watch(k, rc == MESH_ERR_WANT_READ ? MESH__IO_READ : MESH__IO_WRITE))
      check_done(k, false, "cannot watch the socket");
    return;
  }
  if (rc != MESH_OK) {
    check_done(k, false, st.message);
    return;
  }
  if (k->rs->cfg->hc.type == MESH__HC_HTTP)
    start_http(k);
  else
    check_done(k, true, "handshake ok");
}

static void on_io(int fd, unsigned ev, void *user) {
  hc_check_t *k = user;
  (void)ev;
  if (k->phase == PH_CONNECT) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    check_done(k, err == 0, err == 0 ? "connected" : strerror(err));
    return;
  }
  if (k->phase == PH_HANDSHAKE)
    step_handshake(k);
  else
    step_http(k);
}

static void start_tcp(hc_check_t *k) {
  const mesh__host_t *h = k->h;
  k->phase = PH_CONNECT;
  k->fd = socket(h->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 0);
  if (k->fd < 0) {
    check_done(k, false, strerror(errno));
    return;
  }
  if (connect(k->fd, (const struct sockaddr *)&h->sa, h->salen) == 0) {
    check_done(k, true, "connected");
    return;
  }
  if (errno != EINPROGRESS) {
    check_done(k, false, strerror(errno));
    return;
  }
  if (!watch(k, MESH__IO_WRITE))
    check_done(k, false, "cannot watch the socket");
}

static void start_tls(hc_check_t *k) {
  mesh__res_svc_t *rs = k->rs;
  mesh_dial_opts_t o;
  memset(&o, 0, sizeof o);
  o.nonblocking = true;
  o.timeout_ms = (int)rs->cfg->hc.timeout_ms;
  o.service = rs->svc ? rs->svc->name : NULL;
  /* As the service's calls (an Istio sidecar classifies the check as mTLS
   * only with its preset), except that an HTTP check speaks HTTP/1.1: it
   * keeps the service's list only when that list offers "http/1.1". */
  o.alpn = rs->alpn;
  if (rs->cfg->hc.type == MESH__HC_HTTP &&
      !mesh__alpn_has(rs->alpn, "http/1.1"))
    o.alpn = "http/1.1";
  mesh_status_t st;
  mesh_conn_t *c = NULL;
  int rc = mesh__tls_dial_addr(rs->m, (const struct sockaddr *)&k->h->sa,
                               k->h->salen, rs->svc ? rs->svc->peers : NULL,
                               &o, &c, &st);
  k->phase = PH_HANDSHAKE;
  if (c) {
    k->conn = c;
    k->fd = mesh_conn_fd(c);
  }
  if (rc == MESH_OK) {
    step_handshake(k);
    return;
  }
  if (rc != MESH_ERR_WANT_READ && rc != MESH_ERR_WANT_WRITE && !c &&
      !mesh__call_host_fault(rc)) {
    /* Our side failed (no SVID loaded, out of descriptors): that says
     * nothing about the endpoint, so no verdict. */
    mesh__log(rs->m, MESH_LOG_WARN, "health_check_skipped",
              "service=%s host=%s reason=\"%s\"", rs->name, k->h->key,
              st.message);
    unlink_check(k);
    check_free(k);
    return;
  }
  if ((rc != MESH_ERR_WANT_READ && rc != MESH_ERR_WANT_WRITE) || !c) {
    check_done(k, false, st.message);
    return;
  }
  if (!watch(k, rc == MESH_ERR_WANT_READ ? MESH__IO_READ : MESH__IO_WRITE))
    check_done(k, false, "cannot watch the socket");
}

static void start_check(mesh__res_svc_t *rs, mesh__host_t *h) {
  mesh__res_host_t *rh = mesh__res_host(h);
  if (!rh || rh->hc_inflight)
    return; /* the previous check is still within its timeout */
  if (!h->resolved) {
    /* A name that discovery did not resolve: resolving it here would block
     * the worker; its verdict stays with the source. */
    return;
  }
  hc_check_t *k = calloc(1, sizeof *k);
  if (!k)
    return;
  k->rs = rs;
  k->h = h;
  k->fd = -1;
  mesh__host_ref(h);
  k->next = rs->hc->checks;
  rs->hc->checks = k;
  rh->hc_inflight = k;
  int64_t id =
      mesh__loop_timer(rs->m->loop, rs->cfg->hc.timeout_ms, on_timeout, k);
  k->timer = id > 0 ? id : 0;
  if (rs->cfg->hc.type == MESH__HC_TCP)
    start_tcp(k);
  else
    start_tls(k);
}

static void hc_tick(void *user) {
  mesh__res_svc_t *rs = user;
  rs->hc_timer = 0;
  if (atomic_load(&rs->m->closing))
    return;
  mesh__snapshot_t *snap = mesh__res_snapshot(rs->svc);
  for (size_t i = 0; snap && i < snap->n; i++)
    start_check(rs, snap->hosts[i]);
  mesh__snap_release(snap);
  int64_t id = mesh__loop_timer(rs->m->loop, rs->cfg->hc.interval_ms, hc_tick, rs);
  rs->hc_timer = id > 0 ? id : 0;
}

void mesh__hc_start(mesh__res_svc_t *rs) {
  if (!rs->cfg->hc.enabled || !rs->m || !rs->m->loop)
    return;
  rs->hc = calloc(1, sizeof *rs->hc);
  if (!rs->hc)
    return;
  /* First round as soon as the worker runs. */
  int64_t id = mesh__loop_timer(rs->m->loop, 0, hc_tick, rs);
  rs->hc_timer = id > 0 ? id : 0;
}

void mesh__hc_stop(mesh__res_svc_t *rs) {
  if (!rs->hc)
    return;
  mesh__loop_timer_cancel(rs->m->loop, rs->hc_timer);
  rs->hc_timer = 0;
  while (rs->hc->checks) {
    hc_check_t *k = rs->hc->checks;
    rs->hc->checks = k->next;
    check_free(k);
  }
  free(rs->hc);
  rs->hc = NULL;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The ADS transport: one thread per context holds the bidi stream
 * /envoy.service.discovery.v3.AggregatedDiscoveryService/
 * StreamAggregatedResources to the bootstrap's first server, sends what
 * the session wants sent (mesh__xds_next_request) and feeds what arrives
 * (mesh__xds_feed, which publishes on the loop thread).  When the stream
 * ends it redials with jittered exponential backoff; the session keeps its
 * cache meanwhile (fail static) and resubscribes on the new stream.
 * channel_creds "insecure": plaintext h2c over TCP or a unix socket
 * (Istio's agent socket).  "tls": HTTP/2 over libmesh's own mTLS
 * connection (tls/dial.c, ALPN "h2"), the path gRPC calls already take;
 * the peer is verified as every libmesh peer is, by its SPIFFE ID against
 * the trust bundle (see docs/config/xds.md for why not a hostname).  The
 * credentials are the A65 files when the bootstrap names them, read again
 * at every connection (rotated files count from the next one), else the
 * mesh identity. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/grpc.h"
#include "tls/tls.h"
#include "telemetry/telemetry.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

#define ADS_PATH \
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define READ_SLICE_MS 200     /* how often a blocked reader checks stop */
#define DIAL_TIMEOUT_MS 2000
#define BACKOFF_BASE_MS 100   /* gRPC's connection backoff: 1 s base; */
#define BACKOFF_MAX_MS 10000  /* shorter here: a local agent restarts fast */

struct mesh__xds_stream {
  mesh_t *m;
  const mesh__xds_server_t *srv; /* borrowed from the bootstrap */
  uint64_t tls_gens;        /* A65 creds loaded so far (their generation) */
  char last_err[256];       /* last dial failure logged (no repeats) */
  char target[512];         /* for mesh__h2_dial_plain */
  char authority[256];
  pthread_t th;
  _Atomic bool stop;
  mesh__metric_t *m_connected, *m_streams;
};

/* gRPC target URIs to what mesh__h2_dial_plain takes: "unix:///p" and
 * "unix:/p" -> "unix:/p"; "dns:///h:p" -> "h:p"; "h:p" as is. */
int mesh__xds_target(const char *uri, char *out, size_t cap) {
  const char *p = uri;
  if (strncmp(p, "unix://", 7) == 0)
    p += 7; /* unix:///abs/path: the path starts at the third '/' */
  else if (strncmp(p, "unix:", 5) == 0)
    p += 5;
  else if (strncmp(p, "dns:///", 7) == 0)
    uri = p += 7;
  if (p != uri && *p != '/')
    return MESH_ERR_INVALID_ARG;
  int n = p != uri ? snprintf(out, cap, "unix:%s", p) : snprintf(out, cap, "%s", p);
  return n > 0 && (size_t)n < cap ? MESH_OK : MESH_ERR_INVALID_ARG;
}

/* Send every request the session has due.  @return MESH_OK or the write
 * error. */
static int send_due(mesh__xds_stream_t *x, mesh__h2_stream_t *s) {
  for (;;) {
    uint8_t *b;
    size_t n;
    if (mesh__xds_next_request(x->m, &b, &n) != MESH_OK)
      return MESH_OK;
    uint8_t pre[MESH__GRPC_PREFIX];
    mesh__grpc_prefix(pre, n);
    mesh_status_t st;
    int64_t dl = mesh__now_ms() + 5000;
    int rc = mesh__h2_stream_write(s, pre, sizeof pre, false, dl, &st);
    if (rc == MESH_OK)
      rc = mesh__h2_stream_write(s, b, n, false, dl, &st);
    free(b);
    if (rc)
      return rc;
  }
}

/* A failed dial (or a stream that failed before its first response: in
 * TLS 1.3 a control plane refusing our certificate says so at the first
 * read), logged once per distinct message (a control plane that stays
 * down or keeps refusing us is one line, not one per retry). */
static void dial_failed(mesh__xds_stream_t *x, int rc, const mesh_status_t *st) {
  if (strncmp(x->last_err, st->message, sizeof x->last_err - 1) == 0)
    return;
  mesh__strlcpy(x->last_err, st->message, sizeof x->last_err);
  mesh__log(x->m, MESH_LOG_WARN, "xds_connect",
            "control plane %s (%s): %s: %s; retrying with backoff",
            x->srv->uri, x->srv->tls ? "tls" : "insecure", mesh_strerror(rc),
            st->message);
}

/* Read and feed until the stream ends, fails or stop is set.
 * @return true when at least one response arrived (resets the backoff). */
static bool pump(mesh__xds_stream_t *x, mesh__h2_stream_t *s) {
  mesh__grpc_dec_t dec;
  mesh__grpc_dec_init(&dec, 64u << 20); /* big EDS responses */
  bool got = false;
  uint8_t buf[16384];
  while (!atomic_load(&x->stop)) {
    mesh_status_t st;
    long n = mesh__h2_stream_read(s, buf, sizeof buf,
                                  mesh__now_ms() + READ_SLICE_MS, &st);
    if (n == MESH_ERR_TIMEOUT) {
      if (send_due(x, s))
        break;
      continue;
    }
    if (n < 0 && !got)
      dial_failed(x, (int)n, &st);
    if (n <= 0)
      break; /* end of stream or error: redial */
    size_t off = 0;
    while (off < (size_t)n) {
      uint8_t *msg;
      size_t len;
      long used = mesh__grpc_dec_feed(&dec, buf + off, (size_t)n - off, &msg, &len);
      if (used < 0)
        goto out;
      off += (size_t)used;
      if (!msg)
        continue;
      if (!got && x->last_err[0]) /* the first response after failures */
        mesh__log(x->m, MESH_LOG_INFO, "xds_connect", "control plane %s: "
                  "connected", x->srv->uri);
      if (!got)
        x->last_err[0] = '\0';
      mesh__xds_feed_async(x->m, msg, len, &x->stop); /* takes msg */
      got = true;
      if (send_due(x, s))
        goto out;
    }
  }
out:
  mesh__grpc_dec_free(&dec);
  return got;
}

/* The A65 files as creds of a generation of their own (the top bit keeps
 * them apart from the identity's in the session cache). */
static int file_gen(mesh__xds_stream_t *x, mesh__tlsgen_t **gen,
                    mesh_status_t *st) {
  mesh__creds_src_t src = {.cert = x->srv->tls_cert_file,
                           .key = x->srv->tls_key_file,
                           .bundle = x->srv->tls_ca_file};
  mesh__creds_t *cr;
  uint64_t g = (1ull << 63) | ++x->tls_gens;
  int rc = mesh__creds_load(&src, g, &cr, st);
  return rc ? rc : mesh__tlsgen_new(x->m, cr, gen, st);
}

/* mTLS to the control plane, then a client h2 session over it. */
static int dial_tls(mesh__xds_stream_t *x, mesh__h2_session_t **sess,
                    mesh_status_t *st) {
  mesh__tlsgen_t *gen = NULL;
  int rc = x->srv->tls_cert_file ? file_gen(x, &gen, st) : MESH_OK;
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  if (rc == MESH_OK && !o)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK)
    rc = mesh_dial_opts_set_alpn(o, "h2");
  if (rc == MESH_OK)
    rc = mesh_dial_opts_set_timeout(o, DIAL_TIMEOUT_MS);
  mesh_conn_t *c = NULL;
  if (rc == MESH_OK)
    rc = gen ? mesh__tls_dial_host_gen(x->m, x->target, gen, o, &c, st)
             : mesh__tls_dial_host(x->m, x->target, o, &c, st);
  mesh_dial_opts_free(o);
  mesh__tlsgen_release(gen);
  if (rc == MESH_OK)
    rc = mesh__h2_session_new_conn(x->m, c, false, NULL, sess, st);
  return rc;
}

/* One stream, from dial to its end.  @return true when it delivered. */
static bool one_stream(mesh__xds_stream_t *x) {
  mesh__h2_session_t *sess;
  mesh_status_t st;
  mesh__ok(&st);
  int rc = x->srv->tls ? dial_tls(x, &sess, &st)
                       : mesh__h2_dial_plain(x->m, x->target, DIAL_TIMEOUT_MS,
                                             NULL, &sess, &st);
  if (rc) {
    dial_failed(x, rc, &st);
    return false;
  }
  const mesh__h2_hdr_t h[] = {
      {":method", "POST"}, {":scheme", x->srv->tls ? "https" : "http"},
      {":path", ADS_PATH},
      {":authority", x->authority}, {"content-type", "application/grpc"},
      {"te", "trailers"}, {"user-agent", "libmesh-xds"}};
  mesh__h2_stream_t *s;
  bool got = false;
  if (mesh__h2_stream_open(sess, h, sizeof h / sizeof *h, false, &s, &st) == MESH_OK) {
    mesh__xds_reconnected(x->m);
    mesh__counter_add(x->m_streams, 1);
    mesh__gauge_set(x->m_connected, 1);
    if (send_due(x, s) == MESH_OK)
      got = pump(x, s);
    mesh__gauge_set(x->m_connected, 0);
    mesh__h2_stream_free(s);
  }
  mesh__h2_session_free(sess);
  return got;
}

static void *run(void *arg) {
  mesh__xds_stream_t *x = arg;
  uint32_t attempt = 0;
  while (!atomic_load(&x->stop)) {
    if (one_stream(x))
      attempt = 0;
    int64_t wait = mesh__backoff_jitter(BACKOFF_BASE_MS, BACKOFF_MAX_MS,
                                        attempt++, 20, mesh__rand64());
    for (int64_t t = 0; t < wait && !atomic_load(&x->stop); t += 50) {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

int mesh__xds_stream_start(mesh_t *m, const mesh__xds_server_t *srv,
                           mesh__xds_stream_t **out, mesh_status_t *st) {
  const char *uri = srv->uri;
  mesh__xds_stream_t *x = calloc(1, sizeof *x);
  if (!x)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  x->m = m;
  x->srv = srv;
  if (mesh__xds_target(uri, x->target, sizeof x->target)) {
    free(x);
    return mesh__fail(st, MESH_ERR_CONFIG, "xds: server_uri \"%.200s\": not "
                      "a host:port, dns:/// or unix: target", uri);
  }
  if (srv->tls && strncmp(x->target, "unix:", 5) == 0) {
    free(x); /* refused by the bootstrap check already */
    return mesh__fail(st, MESH_ERR_CONFIG, "xds: server_uri \"%.200s\": "
                      "channel_creds \"tls\" needs a host:port target", uri);
  }
  snprintf(x->authority, sizeof x->authority, "%.200s",
           strncmp(x->target, "unix:", 5) == 0 ? "localhost" : x->target);
  x->m_connected = mesh__gauge(m, "mesh_xds_stream_connected",
                               "1 while the ADS stream is open.", NULL);
  x->m_streams = mesh__counter(m, "mesh_xds_streams_total",
                               "ADS streams opened (reconnects included).", NULL);
  if (pthread_create(&x->th, NULL, run, x) != 0) {
    free(x);
    return mesh__fail(st, MESH_ERR_NOMEM, "xds: cannot start the stream thread");
  }
  *out = x;
  return MESH_OK;
}

void mesh__xds_stream_stop(mesh__xds_stream_t *x) {
  if (!x)
    return;
  atomic_store(&x->stop, true);
  pthread_join(x->th, NULL);
  free(x);
}

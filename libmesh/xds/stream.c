/* SPDX-License-Identifier: Apache-2.0 */
/* The ADS transport: one thread per context holds the bidi stream
 * /envoy.service.discovery.v3.AggregatedDiscoveryService/
 * StreamAggregatedResources to the bootstrap's first server, sends what
 * the session wants sent (mesh__xds_next_request) and feeds what arrives
 * (mesh__xds_feed, which publishes on the loop thread).  When the stream
 * ends it redials with jittered exponential backoff; the session keeps its
 * cache meanwhile (fail static) and resubscribes on the new stream.
 * channel_creds "insecure" only for now: plaintext h2c over TCP or a unix
 * socket (Istio's agent socket); "tls" is refused at mesh_new. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/grpc.h"
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

/* One stream, from dial to its end.  @return true when it delivered. */
static bool one_stream(mesh__xds_stream_t *x) {
  mesh__h2_session_t *sess;
  mesh_status_t st;
  if (mesh__h2_dial_plain(x->m, x->target, DIAL_TIMEOUT_MS, NULL, &sess, &st))
    return false;
  const mesh__h2_hdr_t h[] = {
      {":method", "POST"}, {":scheme", "http"}, {":path", ADS_PATH},
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

int mesh__xds_stream_start(mesh_t *m, const char *uri, mesh__xds_stream_t **out,
                           mesh_status_t *st) {
  mesh__xds_stream_t *x = calloc(1, sizeof *x);
  if (!x)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  x->m = m;
  if (mesh__xds_target(uri, x->target, sizeof x->target)) {
    free(x);
    return mesh__fail(st, MESH_ERR_CONFIG, "xds: server_uri \"%.200s\": not "
                      "a host:port, dns:/// or unix: target", uri);
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

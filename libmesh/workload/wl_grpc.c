/* SPDX-License-Identifier: Apache-2.0 */
/* One gRPC call to the Workload API over an h2c session: the public gRPC
 * client (grpc/client.c) dials services over mTLS only, and the Workload
 * Endpoint is plaintext (a unix socket, or TCP on loopback). */
#include "workload/workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mesh__wl_dial(mesh_t *m, const char *endpoint, int timeout_ms,
                  mesh__h2_session_t **out, mesh_status_t *st) {
  char target[4200];
  if (!strncmp(endpoint, "unix://", 7))
    snprintf(target, sizeof target, "unix:%s", endpoint + 7);
  else if (!strncmp(endpoint, "tcp://", 6))
    snprintf(target, sizeof target, "%s", endpoint + 6);
  else
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "Workload API endpoint %s: expected unix:///path or "
                      "tcp://IP:port",
                      endpoint);
  int rc = mesh__h2_dial_plain(m, target, timeout_ms, NULL, out, st);
  if (rc != MESH_OK && st) {
    char msg[sizeof st->message];
    mesh__strlcpy(msg, st->message, sizeof msg);
    mesh__fail(st, rc, "Workload API at %s: %s", endpoint, msg);
  }
  return rc;
}

int mesh__wl_call_start(mesh__wl_call_t *c, mesh__h2_session_t *s,
                        const char *method, const void *req, size_t len,
                        bool send_header, int64_t deadline_ms,
                        mesh_status_t *st) {
  c->x = NULL;
  c->len = c->off = 0;
  c->got_headers = c->eos = false;
  c->status = -1;
  c->message[0] = '\0';
  mesh__grpc_dec_init(&c->dec, 0);
  char path[128];
  snprintf(path, sizeof path, MESH__WL_SVC "%s", method);
  mesh__h2_hdr_t h[] = {{":method", "POST"},
                        {":scheme", "http"},
                        {":path", path},
                        {":authority", "localhost"},
                        {"content-type", "application/grpc"},
                        {"te", "trailers"},
                        {MESH__WL_HEADER, "true"}};
  size_t n = sizeof h / sizeof h[0] - (send_header ? 0 : 1);
  int rc = mesh__h2_stream_open(s, h, n, false, &c->x, st);
  if (rc != MESH_OK)
    return rc;
  uint8_t *frame = malloc(MESH__GRPC_PREFIX + len);
  if (!frame)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mesh__grpc_prefix(frame, len);
  if (len)
    memcpy(frame + MESH__GRPC_PREFIX, req, len);
  rc = mesh__h2_stream_write(c->x, frame, MESH__GRPC_PREFIX + len, true,
                             deadline_ms, st);
  free(frame);
  return rc;
}

static void set_status(mesh__wl_call_t *c, int code, const char *msg) {
  c->status = code;
  mesh__strlcpy(c->message, msg ? msg : "", sizeof c->message);
}

/* Status from the block that ended the stream (trailers, trailers-only). */
static void status_from(mesh__wl_call_t *c, const mesh__h2_hdr_t *h,
                        size_t n) {
  const char *s = mesh__grpc_h2_get(h, n, "grpc-status");
  const char *msg = mesh__grpc_h2_get(h, n, "grpc-message");
  const char *hs = mesh__grpc_h2_get(h, n, ":status");
  int code;
  char *dec = NULL;
  if (msg)
    mesh__grpc_msg_decode(msg, strlen(msg), &dec, NULL);
  if (s && mesh__grpc_status_parse(s, strlen(s), &code) == MESH_OK)
    set_status(c, code, dec ? dec : "");
  else if (hs && strcmp(hs, "200"))
    set_status(c, mesh__grpc_code_from_http(atoi(hs)), "HTTP error status");
  else
    set_status(c, MESH__GRPC_INTERNAL, "no grpc-status");
  free(dec);
}

static int failed(mesh__wl_call_t *c, int rc, mesh_status_t *st) {
  if (rc != MESH_ERR_TIMEOUT)
    set_status(c, MESH__GRPC_UNAVAILABLE, st ? st->message : "");
  return rc;
}

static int read_headers(mesh__wl_call_t *c, int64_t deadline_ms,
                        mesh_status_t *st) {
  const mesh__h2_hdr_t *h;
  size_t n;
  int rc = mesh__h2_stream_headers(c->x, deadline_ms, &h, &n, st);
  if (rc != MESH_OK)
    return failed(c, rc, st);
  c->got_headers = true;
  const char *hs = mesh__grpc_h2_get(h, n, ":status");
  if (!hs) {
    /* Defensive: a header block without ":status" is not a response
     * head; take the status from the block that ends the stream. */
    rc = mesh__h2_stream_trailers(c->x, deadline_ms, &h, &n, st);
    if (rc != MESH_OK)
      return failed(c, rc, st);
    status_from(c, h, n);
    return MESH_OK;
  }
  if (!hs || strcmp(hs, "200") || mesh__grpc_h2_get(h, n, "grpc-status"))
    status_from(c, h, n); /* trailers-only, or not gRPC at all */
  return MESH_OK;
}

int mesh__wl_call_recv(mesh__wl_call_t *c, int64_t deadline_ms,
                       uint8_t **msg, size_t *len, mesh_status_t *st) {
  *msg = NULL;
  if (c->status >= 0)
    return 0;
  if (!c->got_headers) {
    int rc = read_headers(c, deadline_ms, st);
    if (rc != MESH_OK || c->status >= 0)
      return rc;
  }
  for (;;) {
    if (c->off < c->len) {
      long used = mesh__grpc_dec_feed(&c->dec, c->buf + c->off,
                                      c->len - c->off, msg, len);
      if (used < 0) {
        set_status(c, MESH__GRPC_INTERNAL, "malformed gRPC framing");
        return mesh__fail(st, (int)used, "Workload API: bad gRPC frame");
      }
      c->off += (size_t)used;
      if (*msg)
        return 1;
      continue;
    }
    c->off = c->len = 0;
    long n = mesh__h2_stream_read(c->x, c->buf, sizeof c->buf, deadline_ms,
                                  st);
    if (n < 0)
      return failed(c, (int)n, st);
    if (n > 0) {
      c->len = (size_t)n;
      continue;
    }
    const mesh__h2_hdr_t *h;
    size_t hn;
    int rc = mesh__h2_stream_trailers(c->x, deadline_ms, &h, &hn, st);
    if (rc != MESH_OK)
      return failed(c, rc, st);
    status_from(c, h, hn);
    return 0;
  }
}

void mesh__wl_call_end(mesh__wl_call_t *c) {
  if (c->x)
    mesh__h2_stream_free(c->x);
  c->x = NULL;
  mesh__grpc_dec_free(&c->dec);
}

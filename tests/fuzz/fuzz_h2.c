/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the HTTP/2 server session's frame input (http/h2.h): bytes in
 * through mesh__h2_session_input() after the client preface, no I/O (a
 * memory transport collects the output).  Streams that complete are
 * accepted, answered and freed.  Properties besides memory safety:
 *   - a protocol error is answered with a GOAWAY carrying a non-zero code;
 *   - the streams alive stay within MAX_CONCURRENT_STREAMS (+ the ones
 *     being closed), and every header list within max_header_list;
 *   - the output stays bounded (the transport refuses beyond 1 MiB, which
 *     must not make the session buffer without bound). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/h2_int.h"

typedef struct memio {
  uint8_t *out;
  size_t n;
} memio_t;

#define OUT_MAX (1u << 20)

static long mem_read(void *ctx, void *buf, size_t n) {
  (void)ctx;
  (void)buf;
  (void)n;
  return MESH_ERR_WANT_READ;
}

static long mem_write(void *ctx, const void *buf, size_t n) {
  memio_t *m = ctx;
  if (m->n >= OUT_MAX)
    return MESH_ERR_WANT_WRITE;
  if (n > OUT_MAX - m->n)
    n = OUT_MAX - m->n;
  memcpy(m->out + m->n, buf, n);
  m->n += n;
  return (long)n;
}

/* Error code of a GOAWAY among the frames written, -1 when none. */
static long goaway(const memio_t *m) {
  size_t off = 0;
  while (off + 9 <= m->n) {
    const uint8_t *h = m->out + off;
    size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    if (off + 9 + len > m->n)
      break;
    if (h[3] == 7 && len >= 8)
      return (long)((uint32_t)h[13] << 24 | (uint32_t)h[14] << 16 |
                    (uint32_t)h[15] << 8 | h[16]);
    off += 9 + len;
  }
  return -1;
}

static void check_bounds(mesh__h2_session_t *s) {
  size_t n = 0;
  for (mesh__h2_stream_t *x = s->all; x; x = x->next) {
    n++;
    FUZZ_ASSERT(x->hdrs.bytes <= s->set.max_header_list);
    FUZZ_ASSERT(x->trailers.bytes <= s->set.max_header_list);
    FUZZ_ASSERT(x->rbuf.len <= s->set.initial_window);
  }
  FUZZ_ASSERT(n <= 2u * s->set.max_concurrent_streams);
  FUZZ_ASSERT(s->out.len <= (1u << 20));
}

static void serve(mesh__h2_session_t *s) {
  for (int i = 0; i < 64; i++) {
    mesh__h2_stream_t *x;
    if (mesh__h2_accept(s, 1, &x, NULL) != MESH_OK)
      return;
    char buf[256];
    mesh__h2_stream_read(x, buf, sizeof buf, 1, NULL);
    mesh__h2_hdr_t h[] = {{":status", "200"}};
    if (mesh__h2_stream_respond(x, h, 1, false, NULL) == MESH_OK) {
      mesh__h2_stream_write(x, "ok", 2, false, 1, NULL);
      mesh__h2_hdr_t t[] = {{"grpc-status", "0"}};
      mesh__h2_stream_send_trailers(x, t, 1, 1, NULL);
    }
    mesh__h2_stream_free(x);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t chunk = (size_t)(data[0] & 0x3f) * 64 + 1;
  data++;
  size--;
  memio_t m = {.out = malloc(OUT_MAX)};
  if (!m.out)
    return 0;
  mesh__h2_io_t io = {mem_read, mem_write, NULL, NULL, &m};
  mesh__h2_settings_t set;
  mesh__h2_settings_default(&set);
  set.max_concurrent_streams = 16;
  set.initial_window = 65535;
  set.max_header_list = 8192;
  mesh__h2_session_t *s = NULL;
  if (mesh__h2_session_new_io(NULL, &io, true, &set, &s, NULL) != MESH_OK) {
    free(m.out);
    return 0;
  }
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  int rc = mesh__h2_session_input(s, preface, sizeof preface - 1, NULL);
  for (size_t off = 0; rc == MESH_OK && off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    rc = mesh__h2_session_input(s, data + off, n, NULL);
    pthread_mutex_lock(&s->mu);
    check_bounds(s);
    pthread_mutex_unlock(&s->mu);
    if (rc == MESH_OK)
      serve(s);
  }
  if (rc == MESH_ERR_HTTP_PARSE && m.n < OUT_MAX) {
    long code = goaway(&m);
    FUZZ_ASSERT(code > 0);
  }
  mesh__h2_session_free(s);
  free(m.out);
  return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the grpc part's parsers.  The first byte picks the target:
 *   0  the length-prefixed message decoder, fed in chunks (byte 1: chunk
 *      size, byte 2: size limit selector);
 *   1  grpc-timeout;  2  grpc-message percent-decoding;  3  -bin base64;
 *   4  grpc-status, grpc-retry-pushback-ms, Durations, method paths;
 *   5  a service config (JSON), then a lookup.
 * Properties: the decoder consumes every byte or stops on a sticky error,
 * and the messages it hands out re-encode to exactly the bytes consumed;
 * encode/parse round trips for timeouts, messages and base64; parsed
 * values stay in their documented ranges. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "grpc/grpc.h"

static void fuzz_decoder(const uint8_t *d, size_t n) {
  if (n < 2)
    return;
  size_t chunk = (size_t)d[0] % 64 + 1;
  static const size_t limits[] = {0, 1, 16, 1024, 65536};
  size_t max = limits[d[1] % 5];
  d += 2;
  n -= 2;
  mesh__grpc_dec_t dec;
  mesh__grpc_dec_init(&dec, max);
  size_t off = 0, out = 0;
  long r = 0;
  while (off < n && r >= 0) {
    size_t k = n - off < chunk ? n - off : chunk;
    uint8_t *msg;
    size_t ml;
    r = mesh__grpc_dec_feed(&dec, d + off, k, &msg, &ml);
    if (r < 0)
      break;
    FUZZ_ASSERT((size_t)r <= k);
    FUZZ_ASSERT(r > 0 || msg); /* progress on non-empty input */
    off += (size_t)r;
    if (msg) {
      uint8_t pre[5];
      FUZZ_ASSERT(mesh__grpc_prefix(pre, ml) == MESH_OK);
      FUZZ_ASSERT(out + 5 + ml <= off);
      FUZZ_ASSERT(!memcmp(pre, d + out, 5));
      FUZZ_ASSERT(ml == 0 || !memcmp(msg, d + out + 5, ml));
      FUZZ_ASSERT(ml <= dec.max);
      out += 5 + ml;
      free(msg);
    }
  }
  if (r >= 0) {
    FUZZ_ASSERT(off == n);
    FUZZ_ASSERT(mesh__grpc_dec_idle(&dec) == (out == n));
  } else {
    uint8_t *msg;
    size_t ml;
    FUZZ_ASSERT(mesh__grpc_dec_feed(&dec, d, n, &msg, &ml) == r); /* sticky */
  }
  mesh__grpc_dec_free(&dec);
}

static void fuzz_timeout(const char *s, size_t n) {
  int64_t ns;
  if (mesh__grpc_timeout_parse(s, n, &ns) != MESH_OK)
    return;
  FUZZ_ASSERT(ns >= 0);
  char enc[MESH__GRPC_TIMEOUT_MAX];
  mesh__grpc_timeout_encode(ns, enc);
  int64_t back;
  FUZZ_ASSERT(mesh__grpc_timeout_parse(enc, strlen(enc), &back) == MESH_OK);
  FUZZ_ASSERT(back >= ns); /* rounded up, saturating at INT64_MAX */
}

static void fuzz_message(const char *s, size_t n) {
  char *dec = NULL, *enc = NULL, *back = NULL;
  size_t dl = 0, bl = 0;
  FUZZ_ASSERT(mesh__grpc_msg_decode(s, n, &dec, &dl) == MESH_OK);
  FUZZ_ASSERT(dl <= n);
  FUZZ_ASSERT(mesh__grpc_msg_encode(s, n, &enc) == MESH_OK);
  for (const char *p = enc; *p; p++)
    FUZZ_ASSERT(*p >= 0x20 && *p <= 0x7e);
  FUZZ_ASSERT(mesh__grpc_msg_decode(enc, strlen(enc), &back, &bl) == MESH_OK);
  FUZZ_ASSERT(bl == n && !memcmp(back, s, n));
  free(dec);
  free(enc);
  free(back);
}

static void fuzz_b64(const char *s, size_t n) {
  uint8_t *d;
  size_t dl;
  if (mesh__grpc_b64_decode(s, n, &d, &dl) != MESH_OK)
    return;
  char *e;
  FUZZ_ASSERT(mesh__grpc_b64_encode(d, dl, &e) == MESH_OK);
  uint8_t *d2;
  size_t dl2;
  FUZZ_ASSERT(mesh__grpc_b64_decode(e, strlen(e), &d2, &dl2) == MESH_OK);
  FUZZ_ASSERT(dl2 == dl && (dl == 0 || !memcmp(d, d2, dl)));
  free(d);
  free(d2);
  free(e);
}

static void fuzz_small(const char *s, size_t n) {
  int code;
  if (mesh__grpc_status_parse(s, n, &code) == MESH_OK)
    FUZZ_ASSERT(code >= 0);
  int64_t ms;
  if (mesh__grpc_pushback_parse(s, n, &ms))
    FUZZ_ASSERT(ms >= 0 && ms <= INT32_MAX);
  char *z = fuzz_strndup((const uint8_t *)s, n);
  if (!z)
    return;
  int64_t ns;
  if (mesh__grpc_duration_parse(z, &ns) == MESH_OK)
    FUZZ_ASSERT(ns >= 0);
  const char *a, *b;
  size_t al, bl;
  if (mesh__grpc_path_split(z, &a, &al, &b, &bl) == MESH_OK)
    FUZZ_ASSERT(al > 0 && bl > 0 && al + bl + 2 == strlen(z));
  mesh__grpc_md_key_check(z, NULL);
  free(z);
}

static void fuzz_config(const char *s, size_t n) {
  char *z = fuzz_strndup((const uint8_t *)s, n);
  cJSON *v = z ? cJSON_Parse(z) : NULL;
  free(z);
  if (!v)
    return;
  mesh__cfg_t c = {0, NULL, NULL, NULL};
  mesh__grpc_svc_cfg_t cfg = {NULL, 0};
  if (mesh__grpc_svc_cfg_parse(&c, v, "grpc", &cfg) == MESH_OK) {
    FUZZ_ASSERT(c.nerr == 0);
    const mesh__grpc_method_cfg_t *e = mesh__grpc_svc_cfg_find(&cfg, "/a.B/C");
    if (e && e->has_retry)
      FUZZ_ASSERT(e->retry.max_attempts >= 2 && e->retry.max_attempts <= 5 &&
                  e->retry.initial_backoff_ms > 0 && e->retry.codes);
    mesh__grpc_svc_cfg_free(&cfg);
  } else {
    FUZZ_ASSERT(c.nerr > 0 && cfg.n == 0);
  }
  cJSON_Delete(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const char *s = (const char *)data + 1;
  size_t n = size - 1;
  switch (data[0] % 6) {
  case 0:
    fuzz_decoder(data + 1, n);
    break;
  case 1:
    fuzz_timeout(s, n);
    break;
  case 2:
    fuzz_message(s, n);
    break;
  case 3:
    fuzz_b64(s, n);
    break;
  case 4:
    fuzz_small(s, n);
    break;
  default:
    fuzz_config(s, n);
    break;
  }
  return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the HTTP/1.1 parser: request and response heads, then body framing
 * (Content-Length, chunked, until EOF).
 * Input: one control byte, then the bytes of the connection.  Control bit
 * 0: response (else request); bit 1: the request was HEAD; bits 2-7: the
 * size of the pieces bytes arrive in (1-64).
 * Properties: parsing the bytes as they trickle in gives exactly the result
 * of parsing them at once (heads and decoded bodies); everything reported
 * points inside the input; limits hold. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "fuzz.h"
#include "http/parse.h"

#define CAP 64 /* below the header-count limit: the array bound must hold */

struct head {
  int rc;
  mesh__http_msg_t msg;
  mesh__http_hdr_t hdrs[CAP];
};

static int parse(struct head *h, const char *buf, size_t len, bool response,
                 bool head_req, const mesh__http_limits_t *lim) {
  return response ? mesh__http_parse_response(&h->msg, buf, len, head_req, lim)
                  : mesh__http_parse_request(&h->msg, buf, len, lim);
}

static bool inside(mesh__http_str_t s, const char *buf, size_t len) {
  return s.n == 0 || (s.p >= buf && s.p + s.n <= buf + len);
}

static void check_head(const struct head *h, const char *buf, size_t len,
                       const mesh__http_limits_t *lim) {
  const mesh__http_msg_t *m = &h->msg;
  FUZZ_ASSERT((size_t)h->rc == m->head_len && m->head_len <= len);
  FUZZ_ASSERT(m->head_len <= lim->max_head);
  FUZZ_ASSERT(m->nhdrs <= CAP && m->nhdrs <= lim->max_headers);
  FUZZ_ASSERT(m->minor == 0 || m->minor == 1);
  for (size_t i = 0; i < m->nhdrs; i++) {
    FUZZ_ASSERT(m->hdrs[i].name.n > 0);
    FUZZ_ASSERT(inside(m->hdrs[i].name, buf, m->head_len));
    FUZZ_ASSERT(inside(m->hdrs[i].value, buf, m->head_len));
    FUZZ_ASSERT(mesh__http_valid_token(m->hdrs[i].name.p, m->hdrs[i].name.n));
  }
  FUZZ_ASSERT(inside(m->method, buf, m->head_len));
  FUZZ_ASSERT(inside(m->target, buf, m->head_len));
  FUZZ_ASSERT(inside(m->reason, buf, m->head_len));
  FUZZ_ASSERT(inside(m->host, buf, m->head_len));
  if (m->framing == MESH__HTTP_BODY_LENGTH)
    FUZZ_ASSERT(m->content_length <= lim->max_body);
}

/* Decode the body from in[0..len) in pieces of `step`; returns the decoded
 * bytes (malloc'd) and the parser's final state. */
static char *body(const mesh__http_msg_t *m, const char *in, size_t len,
                  size_t step, const mesh__http_limits_t *lim, int *rc_out,
                  size_t *out_len, bool *done) {
  mesh__http_body_t b;
  mesh__http_body_init(&b, m, lim);
  char *out = malloc(len + 1);
  size_t olen = 0, pos = 0, avail = 0;
  int rc = MESH_ERR_WANT_READ;
  /* Bounded: each round consumes a byte or grows the window. */
  for (size_t rounds = 0; out && rounds < 4 * len + 8 && !b.done; rounds++) {
    if (rc == MESH_ERR_WANT_READ || pos == avail) {
      if (avail == len)
        break;
      avail = avail + step < len ? avail + step : len;
    }
    size_t used = 0;
    mesh__http_str_t d = {0};
    rc = mesh__http_body_parse(&b, in + pos, avail - pos, &used, &d);
    FUZZ_ASSERT(used <= avail - pos);
    if (rc != MESH_OK && rc != MESH_ERR_WANT_READ)
      break;
    FUZZ_ASSERT(inside(d, in + pos, used));
    /* progress or an end: an OK that does neither would spin a caller */
    FUZZ_ASSERT(rc != MESH_OK || used > 0 || d.n > 0 || b.done);
    FUZZ_ASSERT(olen + d.n <= len);
    if (d.n)
      memcpy(out + olen, d.p, d.n);
    olen += d.n;
    pos += used;
  }
  FUZZ_ASSERT(b.total == olen && b.total <= lim->max_body);
  if (rc == MESH_OK || rc == MESH_ERR_WANT_READ) {
    int e = mesh__http_body_eof(&b);
    FUZZ_ASSERT(e == MESH_OK || e == MESH_ERR_HTTP_PARSE);
    if (b.done)
      FUZZ_ASSERT(e == MESH_OK);
  }
  *rc_out = rc == MESH_ERR_WANT_READ ? MESH_OK : rc;
  *out_len = olen;
  *done = b.done;
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  bool response = data[0] & 1, head_req = data[0] & 2;
  size_t step = (size_t)(data[0] >> 2) + 1;
  size_t len = size - 1;
  /* Exact-size copy so ASan sees any read past the end. */
  char *buf = malloc(len ? len : 1);
  if (!buf)
    return 0;
  memcpy(buf, data + 1, len);
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_head = 8192; /* small limits: reached with small inputs */
  lim.max_headers = 32;
  lim.max_body = 4096;

  static struct head whole, bits;
  mesh__http_msg_init(&whole.msg, whole.hdrs, CAP);
  whole.rc = parse(&whole, buf, len, response, head_req, &lim);
  mesh__http_msg_init(&bits.msg, bits.hdrs, CAP);
  bits.rc = MESH_ERR_WANT_READ;
  for (size_t n = step < len ? step : len;; n = n + step < len ? n + step : len) {
    bits.rc = parse(&bits, buf, n, response, head_req, &lim);
    if (bits.rc != MESH_ERR_WANT_READ || n == len)
      break;
  }
  FUZZ_ASSERT(whole.rc == bits.rc);
  if (whole.rc <= 0) {
    FUZZ_ASSERT(whole.rc == MESH_ERR_WANT_READ ||
                whole.rc == MESH_ERR_HTTP_PARSE ||
                whole.rc == MESH_ERR_HTTP_TOO_LARGE);
    FUZZ_ASSERT(whole.rc == MESH_ERR_WANT_READ || whole.msg.why[0]);
    free(buf);
    return 0;
  }
  check_head(&whole, buf, len, &lim);
  FUZZ_ASSERT(whole.msg.nhdrs == bits.msg.nhdrs &&
              whole.msg.framing == bits.msg.framing &&
              whole.msg.content_length == bits.msg.content_length &&
              whole.msg.keep_alive == bits.msg.keep_alive &&
              whole.msg.status == bits.msg.status);

  size_t hl = (size_t)whole.rc, blen = len - hl;
  int rc1, rc2;
  size_t n1, n2;
  bool d1, d2;
  char *b1 = body(&whole.msg, buf + hl, blen, blen ? blen : 1, &lim, &rc1,
                  &n1, &d1);
  char *b2 = body(&whole.msg, buf + hl, blen, step, &lim, &rc2, &n2, &d2);
  if (b1 && b2) {
    FUZZ_ASSERT(rc1 == rc2 && d1 == d2);
    if (rc1 == MESH_OK)
      FUZZ_ASSERT(n1 == n2 && memcmp(b1, b2, n1) == 0);
  }
  free(b1);
  free(b2);
  free(buf);
  return 0;
}

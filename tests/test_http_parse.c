/* SPDX-License-Identifier: Apache-2.0 */
/* http/parse: strict HTTP/1.1 heads and body framing, including every
 * request-smuggling form we know of (RFC 9112 section 11.2, the PortSwigger
 * CL.TE / TE.CL / TE.TE families, obs-fold, bare CR/LF). */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "http/parse.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct head_case {
  const char *in;
  int want;            /* MESH_OK means "complete" (rc > 0) */
  const char *why;     /* substring of msg.why for errors */
  int framing;
  uint64_t clen;
  int keep_alive;
};

#define REQ_GET "GET / HTTP/1.1\r\nHost: a\r\n"

static const struct head_case req_cases[] = {
  /* well formed */
  {REQ_GET "\r\n", MESH_OK, "", MESH__HTTP_BODY_NONE, 0, 1},
  {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", MESH_OK,
   "", MESH__HTTP_BODY_LENGTH, 5, 1},
  {"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_LENGTH, 0, 1},
  {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
   MESH_OK, "", MESH__HTTP_BODY_CHUNKED, 0, 1},
  {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
   MESH_OK, "", MESH__HTTP_BODY_CHUNKED, 0, 1},
  {"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
   "Transfer-Encoding: CHUNKED\r\n\r\n",
   MESH_OK, "", MESH__HTTP_BODY_CHUNKED, 0, 1},
  {"GET / HTTP/1.0\r\n\r\n", MESH_OK, "", MESH__HTTP_BODY_NONE, 0, 0},
  {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_NONE, 0, 1},
  {REQ_GET "Connection: foo, close\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_NONE, 0, 0},
  {"\r\n\r\n" REQ_GET "\r\n", MESH_OK, "", MESH__HTTP_BODY_NONE, 0, 1},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_LENGTH, 7, 1},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n"
   "\r\n",
   MESH_OK, "", MESH__HTTP_BODY_LENGTH, 7, 1},
  {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", MESH_OK, "", MESH__HTTP_BODY_NONE,
   0, 1},
  {"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", MESH_OK,
   "", MESH__HTTP_BODY_NONE, 0, 1},
  {"GET http://a.example/p?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n", MESH_OK,
   "", MESH__HTTP_BODY_NONE, 0, 1},
  {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n"
   "\r\n",
   MESH_OK, "", MESH__HTTP_BODY_NONE, 0, 1},
  {"GET / HTTP/1.1\r\nHost:\r\n\r\n", MESH_OK, "", MESH__HTTP_BODY_NONE, 0,
   1},

  /* CL.TE and TE.CL: both framings present */
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n"
   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
   MESH_ERR_HTTP_PARSE, "both Content-Length and Transfer-Encoding"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
   "Content-Length: 3\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "both Content-Length and Transfer-Encoding"},
  /* CL.CL */
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
   "\r\n",
   MESH_ERR_HTTP_PARSE, "conflicting Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "conflicting Content-Length"},
  /* malformed Content-Length */
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n"
   "\r\n",
   MESH_ERR_HTTP_PARSE, "invalid Content-Length"},
  /* TE.TE: obfuscated or misplaced chunked */
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "a coding after chunked"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n"
   "\r\n",
   MESH_ERR_HTTP_PARSE, "a coding after chunked"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
   "Transfer-Encoding: identity\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "a coding after chunked"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "unknown or malformed coding"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "unknown or malformed coding"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "unknown or malformed coding"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "unknown or malformed coding"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "does not end in chunked"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "empty Transfer-Encoding"},
  {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "Transfer-Encoding in HTTP/1.0"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "whitespace before colon"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "control character"},
  {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "obs-fold"},
  {"POST / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "obs-fold"},
  {"POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "obs-fold"},
  /* line endings */
  {"GET / HTTP/1.1\nHost: a\n\n", MESH_ERR_HTTP_PARSE, "bare LF"},
  {"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "bare LF"},
  {"GET / HTTP/1.1\r\nHost: a\r\n\n", MESH_ERR_HTTP_PARSE, "bare LF"},
  {"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "bare CR"},
  {"GET / HTTP/1.1\r\nX: a\rTransfer-Encoding: chunked\r\nHost: a\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "bare CR"},
  {"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "NUL"},
  /* tokens */
  {"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid header field name"},
  {"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "empty header field name"},
  {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid header field name"},
  {"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid method"},
  {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid method"},
  {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "malformed request line"},
  {"GET /\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE, "malformed request line"},
  {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "unsupported HTTP version"},
  {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "unsupported HTTP version"},
  {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "unsupported HTTP version"},
  {"GET / http/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "unsupported HTTP version"},
  {"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid request target"},
  {"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid request target"},
  {"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid request target"},
  {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid request target"},
  {"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid request target"},
  /* Host */
  {"GET / HTTP/1.1\r\n\r\n", MESH_ERR_HTTP_PARSE, "without Host"},
  {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "more than one Host"},
  {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid Host"},
  {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid Host"},
  {"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid Host"},
  /* limits */
  {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n",
   MESH_ERR_HTTP_TOO_LARGE, "body limit"},
  /* incomplete */
  {REQ_GET, MESH_ERR_WANT_READ, ""},
  {REQ_GET "\r", MESH_ERR_WANT_READ, ""},
  {"", MESH_ERR_WANT_READ, ""},
};

static const struct head_case resp_cases[] = {
  {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", MESH_OK, "",
   MESH__HTTP_BODY_LENGTH, 2, 1},
  {"HTTP/1.1 200 OK\r\n\r\n", MESH_OK, "", MESH__HTTP_BODY_EOF, 0, 0},
  {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_CHUNKED, 0, 1},
  {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_NONE, 0, 1},
  {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_NONE, 0, 1},
  {"HTTP/1.1 100 Continue\r\n\r\n", MESH_OK, "", MESH__HTTP_BODY_NONE, 0, 1},
  {"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_LENGTH, 0, 1},
  {"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", MESH_OK, "",
   MESH__HTTP_BODY_LENGTH, 3, 0},
  {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
   MESH_OK, "", MESH__HTTP_BODY_LENGTH, 3, 0},
  {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "both Content-Length and Transfer-Encoding"},
  {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "Transfer-Encoding in HTTP/1.0"},
  {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "does not end in chunked"},
  {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
   MESH_ERR_HTTP_PARSE, "conflicting Content-Length"},
  {"HTTP/1.1 20 OK\r\n\r\n", MESH_ERR_HTTP_PARSE, "malformed"},
  {"HTTP/1.1 2x0 OK\r\n\r\n", MESH_ERR_HTTP_PARSE, "malformed status code"},
  {"HTTP/1.1 600 Odd\r\n\r\n", MESH_ERR_HTTP_PARSE, "out of range"},
  {"HTTP/1.1 200OK\r\n\r\n", MESH_ERR_HTTP_PARSE, "malformed status line"},
  {"ICY 200 OK\r\n\r\n", MESH_ERR_HTTP_PARSE, "malformed status line"},
  {"\r\nHTTP/1.1 200 OK\r\n\r\n", MESH_ERR_HTTP_PARSE, "empty line before"},
  {"HTTP/1.1 200 O\x01K\r\n\r\n", MESH_ERR_HTTP_PARSE,
   "invalid reason phrase"},
  {"HTTP/1.1 200 OK\r\nX: 1\r\n y\r\n\r\n", MESH_ERR_HTTP_PARSE, "obs-fold"},
  {"HTTP/1.1 200 OK\nContent-Length: 0\n\n", MESH_ERR_HTTP_PARSE, "bare LF"},
  {"HTTP/1.1 200 OK\r\n", MESH_ERR_WANT_READ, ""},
};

static int parse_one(bool request, const char *in, size_t len,
                     mesh__http_msg_t *msg, mesh__http_hdr_t *hdrs, size_t cap,
                     const mesh__http_limits_t *lim) {
  mesh__http_msg_init(msg, hdrs, cap);
  return request ? mesh__http_parse_request(msg, in, len, lim)
                 : mesh__http_parse_response(msg, in, len, false, lim);
}

static void check_case(bool request, size_t i, const struct head_case *tc) {
  mesh__http_hdr_t hdrs[16];
  mesh__http_msg_t msg;
  size_t len = strlen(tc->in);
  if (strstr(tc->why, "NUL"))
    len = strlen(tc->in) + 1 + strlen(tc->in + strlen(tc->in) + 1);
  int rc = parse_one(request, tc->in, len, &msg, hdrs, 16, NULL);
  int got = rc > 0 ? MESH_OK : rc;
  if (got != tc->want || !strstr(msg.why, tc->why))
    fprintf(stderr, "%s case %zu: rc=%d why=%s\n", request ? "req" : "resp",
            i, rc, msg.why);
  CU_ASSERT_EQUAL(got, tc->want);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg.why, tc->why));
  if (got != MESH_OK)
    return;
  CU_ASSERT_EQUAL(msg.framing, tc->framing);
  CU_ASSERT_EQUAL(msg.content_length, tc->clen);
  CU_ASSERT_EQUAL(msg.keep_alive, tc->keep_alive != 0);
  /* the head ends right after the first empty line */
  CU_ASSERT(rc >= 4 && memcmp(tc->in + rc - 4, "\r\n\r\n", 4) == 0);
  CU_ASSERT_EQUAL((size_t)rc, msg.head_len);

  /* Fed one byte at a time, the parser asks for more until the head is
   * complete and then gives the same answer. */
  mesh__http_msg_t inc;
  mesh__http_hdr_t ihdrs[16];
  mesh__http_msg_init(&inc, ihdrs, 16);
  int irc = MESH_ERR_WANT_READ;
  size_t k;
  for (k = 1; k <= len && irc == MESH_ERR_WANT_READ; k++)
    irc = request ? mesh__http_parse_request(&inc, tc->in, k, NULL)
                  : mesh__http_parse_response(&inc, tc->in, k, false, NULL);
  CU_ASSERT_EQUAL(irc, rc);
  CU_ASSERT_EQUAL(k - 1, (size_t)rc);
  CU_ASSERT_EQUAL(inc.nhdrs, msg.nhdrs);
}

static void test_mesh__http_parse_request(void) {
  for (size_t i = 0; i < N(req_cases); i++)
    check_case(true, i, &req_cases[i]);
}

static void test_mesh__http_parse_response(void) {
  for (size_t i = 0; i < N(resp_cases); i++)
    check_case(false, i, &resp_cases[i]);
}

/* Every error found when the whole head is present is also found when it
 * arrives one byte at a time (no framing decision is made early). */
static void test_mesh__http_parse_incremental_errors(void) {
  for (size_t i = 0; i < N(req_cases); i++) {
    const struct head_case *tc = &req_cases[i];
    if (tc->want == MESH_OK || tc->want == MESH_ERR_WANT_READ ||
        strstr(tc->why, "NUL"))
      continue;
    size_t len = strlen(tc->in);
    mesh__http_hdr_t hdrs[16];
    mesh__http_msg_t msg;
    mesh__http_msg_init(&msg, hdrs, 16);
    int rc = MESH_ERR_WANT_READ;
    for (size_t k = 1; k <= len && rc == MESH_ERR_WANT_READ; k++)
      rc = mesh__http_parse_request(&msg, tc->in, k, NULL);
    if (rc != tc->want)
      fprintf(stderr, "incremental case %zu: rc=%d why=%s\n", i, rc, msg.why);
    CU_ASSERT_EQUAL(rc, tc->want);
  }
}

static void test_mesh__http_parse_fields(void) {
  const char *in = "PUT /a/b?c=d HTTP/1.1\r\nHost: svc.local\r\n"
                   "X-Trim: \t v a l \t\r\nexpect: 100-continue\r\n"
                   "content-length: 3\r\n\r\nabc";
  mesh__http_hdr_t hdrs[8];
  mesh__http_msg_t msg;
  int rc = parse_one(true, in, strlen(in), &msg, hdrs, 8, NULL);
  CU_ASSERT_EQUAL_FATAL(rc, (int)(strlen(in) - 3));
  CU_ASSERT(mesh__http_str_eq(msg.method, "PUT"));
  CU_ASSERT(mesh__http_str_eq(msg.target, "/a/b?c=d"));
  CU_ASSERT(mesh__http_str_eq(msg.host, "svc.local"));
  CU_ASSERT_EQUAL(msg.minor, 1);
  CU_ASSERT_EQUAL(msg.nhdrs, 4);
  const mesh__http_hdr_t *h = mesh__http_header(&msg, "x-trim");
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT(mesh__http_str_eq(h->value, "v a l"));
  CU_ASSERT_PTR_NULL(mesh__http_header(&msg, "x-missing"));
  CU_ASSERT(msg.expect_continue);

  const char *resp = "HTTP/1.1 404 Not Found\r\nServer: x\r\n\r\n";
  rc = parse_one(false, resp, strlen(resp), &msg, hdrs, 8, NULL);
  CU_ASSERT(rc > 0);
  CU_ASSERT_EQUAL(msg.status, 404);
  CU_ASSERT(mesh__http_str_eq(msg.reason, "Not Found"));

  /* HEAD: a response carries no body whatever it declares */
  const char *hr = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
  mesh__http_msg_init(&msg, hdrs, 8);
  rc = mesh__http_parse_response(&msg, hr, strlen(hr), true, NULL);
  CU_ASSERT(rc > 0);
  CU_ASSERT_EQUAL(msg.framing, MESH__HTTP_BODY_NONE);

  CU_ASSERT_EQUAL(mesh__http_parse_request(NULL, in, 3, NULL),
                  MESH_ERR_INVALID_ARG);
}

static void test_mesh__http_parse_limits(void) {
  char buf[8192];
  mesh__http_hdr_t hdrs[128];
  mesh__http_msg_t msg;
  /* header count: 100 pass (Envoy's default), 101 do not */
  for (int n = 99; n <= 100; n++) {
    size_t off = (size_t)snprintf(buf, sizeof buf, REQ_GET);
    for (int i = 0; i < n; i++)
      off += (size_t)snprintf(buf + off, sizeof buf - off, "X-%d: v\r\n", i);
    off += (size_t)snprintf(buf + off, sizeof buf - off, "\r\n");
    int rc = parse_one(true, buf, off, &msg, hdrs, 128, NULL);
    CU_ASSERT_EQUAL(rc > 0, n == 99);
    CU_ASSERT_EQUAL(rc == MESH_ERR_HTTP_TOO_LARGE, n == 100);
  }
  /* the caller's array bounds the count too */
  int rc = parse_one(true, REQ_GET "A: 1\r\n\r\n", strlen(REQ_GET) + 8, &msg,
                     hdrs, 1, NULL);
  CU_ASSERT_EQUAL(rc, MESH_ERR_HTTP_TOO_LARGE);
  /* head size: exactly the limit passes; one byte more does not; an
   * unterminated head at the limit fails without waiting for more */
  const char *h = REQ_GET "\r\n";
  size_t hl = strlen(h);
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_head = hl;
  CU_ASSERT_EQUAL(parse_one(true, h, hl, &msg, hdrs, 8, &lim), (int)hl);
  lim.max_head = hl - 1;
  CU_ASSERT_EQUAL(parse_one(true, h, hl, &msg, hdrs, 8, &lim),
                  MESH_ERR_HTTP_TOO_LARGE);
  CU_ASSERT_EQUAL(parse_one(true, h, hl - 1, &msg, hdrs, 8, &lim),
                  MESH_ERR_HTTP_TOO_LARGE);
  CU_ASSERT_EQUAL(parse_one(true, h, hl - 2, &msg, hdrs, 8, &lim),
                  MESH_ERR_WANT_READ);
  /* declared body size */
  lim.max_head = 1024;
  lim.max_body = 10;
  const char *p10 = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
  const char *p11 = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
  CU_ASSERT(parse_one(true, p10, strlen(p10), &msg, hdrs, 8, &lim) > 0);
  CU_ASSERT_EQUAL(parse_one(true, p11, strlen(p11), &msg, hdrs, 8, &lim),
                  MESH_ERR_HTTP_TOO_LARGE);
}

/* ---- bodies ---------------------------------------------------------------- */

struct body_case {
  const char *in;
  int want;            /* final result: MESH_OK (done), WANT_READ, error */
  const char *decoded; /* for MESH_OK / WANT_READ */
  size_t left;         /* bytes after the body, not consumed */
};

static const struct body_case chunk_cases[] = {
  {"5\r\nhello\r\n0\r\n\r\n", MESH_OK, "hello", 0},
  {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", MESH_OK, "hello world", 4},
  {"5;ext=1;q=\"a b\"\r\nhello\r\n0\r\n\r\n", MESH_OK, "hello", 0},
  {"5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\n\r\n", MESH_OK, "hello", 0},
  {"A\r\n0123456789\r\n6\r\nabcdef\r\n0\r\n\r\n", MESH_OK,
   "0123456789abcdef", 0},
  {"0005\r\nhello\r\n000\r\n\r\n", MESH_OK, "hello", 0},
  {"0\r\n\r\n", MESH_OK, "", 0},
  {"5\r\nhel", MESH_ERR_WANT_READ, "hel", 0},
  {"5\r\nhello\r\n0\r\n", MESH_ERR_WANT_READ, "hello", 0},
  /* smuggling through chunk syntax */
  {"5 \r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {" 5\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\t;x\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"0x5\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"-5\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"+5\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\rhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhelloX\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\r\n0\r\n\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\r\n0\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"10000000000000000\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5;\x01\r\nhello\r\n0\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\r\n0\r\nX a\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  {"5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n", MESH_ERR_HTTP_PARSE, NULL, 0},
  /* limits (max body 16 in this test) */
  {"11\r\n", MESH_ERR_HTTP_TOO_LARGE, NULL, 0},
  {"8\r\n01234567\r\n9\r\n", MESH_ERR_HTTP_TOO_LARGE, NULL, 0},
  {"10\r\n0123456789abcdef\r\n0\r\n\r\n", MESH_OK, "0123456789abcdef", 0},
  {"FFFFFFFFFFFFFFFF\r\n", MESH_ERR_HTTP_TOO_LARGE, NULL, 0},
};

/* Feed in[0..len) in pieces of at most `step` bytes, the way a socket
 * would; collect decoded bytes.  Returns the final code. */
static int feed_body(mesh__http_body_t *b, const char *in, size_t len,
                     size_t step, char *out, size_t *outlen, size_t *left) {
  size_t avail = 0, pos = 0;
  *outlen = 0;
  int rc = MESH_ERR_WANT_READ;
  for (int guard = 0; guard < 10000; guard++) {
    if (rc == MESH_ERR_WANT_READ) {
      if (avail == len)
        break;
      avail = avail + step < len ? avail + step : len;
    }
    size_t used;
    mesh__http_str_t d;
    rc = mesh__http_body_parse(b, in + pos, avail - pos, &used, &d);
    if (rc < 0 && rc != MESH_ERR_WANT_READ)
      return rc;
    memcpy(out + *outlen, d.p, d.n);
    *outlen += d.n;
    pos += used;
    if (b->done)
      break;
  }
  *left = len - pos;
  return b->done ? MESH_OK : rc;
}

static void test_mesh__http_body_parse_chunked(void) {
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_body = 16;
  mesh__http_msg_t msg;
  mesh__http_msg_init(&msg, NULL, 0);
  msg.framing = MESH__HTTP_BODY_CHUNKED;
  for (size_t i = 0; i < N(chunk_cases); i++) {
    const struct body_case *tc = &chunk_cases[i];
    for (size_t step = 1; step <= 64; step *= 4) {
      mesh__http_body_t b;
      mesh__http_body_init(&b, &msg, &lim);
      char out[256];
      size_t olen, left;
      int rc = feed_body(&b, tc->in, strlen(tc->in), step, out, &olen, &left);
      if (rc != tc->want)
        fprintf(stderr, "chunk case %zu step %zu: rc=%d why=%s\n", i, step,
                rc, b.why);
      CU_ASSERT_EQUAL(rc, tc->want);
      if (!tc->decoded)
        continue;
      CU_ASSERT_EQUAL(olen, strlen(tc->decoded));
      CU_ASSERT(olen == strlen(tc->decoded) &&
                memcmp(out, tc->decoded, olen) == 0);
      CU_ASSERT_EQUAL(left, tc->left);
    }
  }
}

static void test_mesh__http_body_parse_length(void) {
  mesh__http_msg_t msg;
  mesh__http_msg_init(&msg, NULL, 0);
  msg.framing = MESH__HTTP_BODY_LENGTH;
  msg.content_length = 5;
  mesh__http_body_t b;
  mesh__http_body_init(&b, &msg, NULL);
  char out[64];
  size_t olen, left;
  CU_ASSERT_EQUAL(feed_body(&b, "helloGET", 8, 3, out, &olen, &left),
                  MESH_OK);
  CU_ASSERT_EQUAL(olen, 5);
  CU_ASSERT_EQUAL(left, 3);
  CU_ASSERT_EQUAL(mesh__http_body_eof(&b), MESH_OK);
  /* truncated by EOF */
  mesh__http_body_init(&b, &msg, NULL);
  CU_ASSERT_EQUAL(feed_body(&b, "hel", 3, 3, out, &olen, &left),
                  MESH_ERR_WANT_READ);
  CU_ASSERT_EQUAL(mesh__http_body_eof(&b), MESH_ERR_HTTP_PARSE);
  /* zero length and none are done at once */
  msg.content_length = 0;
  mesh__http_body_init(&b, &msg, NULL);
  CU_ASSERT(b.done);
  msg.framing = MESH__HTTP_BODY_NONE;
  mesh__http_body_init(&b, &msg, NULL);
  CU_ASSERT(b.done);
  /* EOF framing: everything until close, bounded by the limit */
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_body = 6;
  msg.framing = MESH__HTTP_BODY_EOF;
  mesh__http_body_init(&b, &msg, &lim);
  CU_ASSERT_EQUAL(feed_body(&b, "abcdef", 6, 4, out, &olen, &left),
                  MESH_ERR_WANT_READ);
  CU_ASSERT_EQUAL(olen, 6);
  CU_ASSERT_EQUAL(mesh__http_body_eof(&b), MESH_OK);
  mesh__http_body_init(&b, &msg, &lim);
  CU_ASSERT_EQUAL(feed_body(&b, "abcdefg", 7, 7, out, &olen, &left),
                  MESH_ERR_HTTP_TOO_LARGE);
  /* chunked cut by EOF */
  msg.framing = MESH__HTTP_BODY_CHUNKED;
  mesh__http_body_init(&b, &msg, NULL);
  CU_ASSERT_EQUAL(feed_body(&b, "0\r\n", 3, 3, out, &olen, &left),
                  MESH_ERR_WANT_READ);
  CU_ASSERT_EQUAL(mesh__http_body_eof(&b), MESH_ERR_HTTP_PARSE);
}

static void test_mesh__http_valid_value(void) {
  CU_ASSERT(mesh__http_valid_value("a b", 3));
  CU_ASSERT(mesh__http_valid_value("", 0));
  CU_ASSERT(!mesh__http_valid_value(" a", 2));
  CU_ASSERT(!mesh__http_valid_value("a\r\nX: y", 7));
  CU_ASSERT(!mesh__http_valid_value("a\n", 2));
  CU_ASSERT(mesh__http_valid_token("X-Request-Id", 12));
  CU_ASSERT(!mesh__http_valid_token("X Y", 3));
  CU_ASSERT(!mesh__http_valid_token("", 0));
  CU_ASSERT(!mesh__http_valid_token("a:b", 3));
}

static void add(void) {
  CU_pSuite s = CU_add_suite("http_parse", NULL, NULL);
  CU_add_test(s, "mesh__http_parse_request", test_mesh__http_parse_request);
  CU_add_test(s, "mesh__http_parse_response", test_mesh__http_parse_response);
  CU_add_test(s, "mesh__http_parse_incremental_errors",
              test_mesh__http_parse_incremental_errors);
  CU_add_test(s, "mesh__http_parse_fields", test_mesh__http_parse_fields);
  CU_add_test(s, "mesh__http_parse_limits", test_mesh__http_parse_limits);
  CU_add_test(s, "mesh__http_body_parse_chunked",
              test_mesh__http_body_parse_chunked);
  CU_add_test(s, "mesh__http_body_parse_length",
              test_mesh__http_body_parse_length);
  CU_add_test(s, "mesh__http_valid_value", test_mesh__http_valid_value);
}

int main(void) { return th_run_suites("test_http_parse", add); }

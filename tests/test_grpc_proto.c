/* SPDX-License-Identifier: Apache-2.0 */
/* The grpc part's protocol pieces, no I/O: framing, grpc-timeout,
 * Durations, status names and tables, grpc-message percent-encoding,
 * metadata rules and base64, the service config (retry and hedging
 * policies), pushback and backoff.  Table-driven with expected codes. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#include "grpc/grpc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- framing --------------------------------------------------------------- */

/* Feed buf to d in pieces of `step` bytes; collect messages into out[]. */
static int feed_all(mesh__grpc_dec_t *d, const uint8_t *buf, size_t len,
                    size_t step, uint8_t **out, size_t *lens, size_t max_out,
                    size_t *nout) {
  *nout = 0;
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step;
    size_t used = 0;
    while (used < n) {
      uint8_t *msg;
      size_t ml;
      long r = mesh__grpc_dec_feed(d, buf + off + used, n - used, &msg, &ml);
      if (r < 0)
        return (int)r;
      used += (size_t)r;
      if (msg) {
        if (*nout < max_out) {
          out[*nout] = msg;
          lens[*nout] = ml;
          (*nout)++;
        } else {
          free(msg);
        }
      }
      if (r == 0 && !msg)
        return MESH_ERR_INTERNAL; /* no progress: a decoder bug */
    }
    off += n;
  }
  return MESH_OK;
}

static void test_mesh__grpc_dec_feed_splits(void) {
  /* three messages: 3 bytes, empty, 300 bytes */
  uint8_t wire[5 + 3 + 5 + 5 + 300];
  size_t k = 0;
  mesh__grpc_prefix(wire, 3);
  memcpy(wire + 5, "abc", 3);
  k = 8;
  mesh__grpc_prefix(wire + k, 0);
  k += 5;
  mesh__grpc_prefix(wire + k, 300);
  k += 5;
  for (int i = 0; i < 300; i++)
    wire[k++] = (uint8_t)i;
  CU_ASSERT_EQUAL(wire[13], 0);
  CU_ASSERT_EQUAL(wire[16], 1); /* 300 = 0x012c */
  CU_ASSERT_EQUAL(wire[17], 0x2c);
  for (size_t step = 1; step <= sizeof wire; step++) {
    mesh__grpc_dec_t d;
    mesh__grpc_dec_init(&d, 0);
    uint8_t *out[4];
    size_t lens[4], n;
    CU_ASSERT_EQUAL_FATAL(feed_all(&d, wire, k, step, out, lens, 4, &n),
                          MESH_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT(mesh__grpc_dec_idle(&d));
    CU_ASSERT_EQUAL(d.messages, 3);
    if (n == 3) {
      CU_ASSERT(lens[0] == 3 && !memcmp(out[0], "abc", 3));
      CU_ASSERT_EQUAL(lens[1], 0);
      CU_ASSERT(lens[2] == 300 && out[2][299] == (uint8_t)299);
    }
    for (size_t i = 0; i < n; i++)
      free(out[i]);
    mesh__grpc_dec_free(&d);
  }
}

static void test_mesh__grpc_dec_feed_errors(void) {
  static const struct {
    const char *name;
    uint8_t prefix[5];
    size_t max;
    int want;
  } cases[] = {
      {"compressed flag", {1, 0, 0, 0, 1}, 0, MESH_ERR_GRPC_PROTOCOL},
      {"flag 2", {2, 0, 0, 0, 1}, 0, MESH_ERR_GRPC_PROTOCOL},
      {"flag 0x80", {0x80, 0, 0, 0, 0}, 0, MESH_ERR_GRPC_PROTOCOL},
      {"4 MiB + 1 over default", {0, 0, 0x40, 0, 1}, 0,
       MESH_ERR_MSG_TOO_LARGE},
      {"4 GiB - 1", {0, 0xff, 0xff, 0xff, 0xff}, 0, MESH_ERR_MSG_TOO_LARGE},
      {"over a small max", {0, 0, 0, 0, 11}, 10, MESH_ERR_MSG_TOO_LARGE},
      {"exactly max", {0, 0, 0, 0, 10}, 10, 5},
      {"exactly 4 MiB", {0, 0, 0x40, 0, 0}, 0, 5},
  };
  for (size_t i = 0; i < N(cases); i++) {
    mesh__grpc_dec_t d;
    mesh__grpc_dec_init(&d, cases[i].max);
    uint8_t *msg;
    size_t ml;
    long r = mesh__grpc_dec_feed(&d, cases[i].prefix, 5, &msg, &ml);
    if (r != cases[i].want)
      fprintf(stderr, "\n%s: got %ld want %d\n", cases[i].name, r,
              cases[i].want);
    CU_ASSERT_EQUAL(r, cases[i].want);
    CU_ASSERT_PTR_NULL(msg);
    if (r < 0) { /* sticky */
      CU_ASSERT_EQUAL(mesh__grpc_dec_feed(&d, (const uint8_t *)"", 0, &msg,
                                          &ml),
                      cases[i].want);
    } else {
      CU_ASSERT(!mesh__grpc_dec_idle(&d)); /* body pending */
    }
    mesh__grpc_dec_free(&d);
  }
  /* A stream cut inside a prefix is not idle. */
  mesh__grpc_dec_t d;
  mesh__grpc_dec_init(&d, 0);
  uint8_t *msg;
  size_t ml;
  CU_ASSERT_EQUAL(mesh__grpc_dec_feed(&d, (const uint8_t *)"\0\0", 2, &msg,
                                      &ml),
                  2);
  CU_ASSERT(!mesh__grpc_dec_idle(&d));
  mesh__grpc_dec_free(&d);
  uint8_t p[5];
  CU_ASSERT_EQUAL(mesh__grpc_prefix(p, 0), MESH_OK);
  if (sizeof(size_t) > 4)
    CU_ASSERT_EQUAL(mesh__grpc_prefix(p, (size_t)UINT32_MAX + 1),
                    MESH_ERR_INVALID_ARG);
}

/* ---- grpc-timeout and Durations -------------------------------------------- */

static void test_mesh__grpc_timeout_encode(void) {
  static const struct {
    int64_t ns;
    const char *want;
  } cases[] = {
      {-5, "1n"},
      {0, "1n"},
      {1, "1n"},
      {99999999, "99999999n"},
      {100000000, "100000u"},
      {100000001, "100001u"}, /* rounded up, never shorter */
      {1000000000, "1000000u"},
      {99999999000LL, "99999999u"},
      {100000000000LL, "100000m"},
      {99999999000000LL, "99999999m"},
      {100000000000000LL, "100000S"},
      {99999999000000000LL, "99999999S"},
      {100000000000000000LL, "1666667M"},
      {INT64_MAX, "2562048H"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    char out[MESH__GRPC_TIMEOUT_MAX];
    mesh__grpc_timeout_encode(cases[i].ns, out);
    if (strcmp(out, cases[i].want))
      fprintf(stderr, "\n%lld: got %s want %s\n", (long long)cases[i].ns, out,
              cases[i].want);
    CU_ASSERT_STRING_EQUAL(out, cases[i].want);
    /* what we send parses back to at least what we meant */
    int64_t back;
    CU_ASSERT_EQUAL(mesh__grpc_timeout_parse(out, strlen(out), &back),
                    MESH_OK);
    CU_ASSERT(back >= cases[i].ns);
  }
}

static void test_mesh__grpc_timeout_parse(void) {
  static const struct {
    const char *in;
    int rc;
    int64_t ns;
  } cases[] = {
      {"1n", MESH_OK, 1},
      {"1u", MESH_OK, 1000},
      {"1m", MESH_OK, 1000000},
      {"1S", MESH_OK, 1000000000},
      {"1M", MESH_OK, 60000000000LL},
      {"1H", MESH_OK, 3600000000000LL},
      {"0m", MESH_OK, 0},
      {"00000001S", MESH_OK, 1000000000},
      {"99999999H", MESH_OK, INT64_MAX}, /* saturates */
      {"100m", MESH_OK, 100000000},
      {"", MESH_ERR_PARSE, 0},
      {"1", MESH_ERR_PARSE, 0},
      {"S", MESH_ERR_PARSE, 0},
      {"123456789S", MESH_ERR_PARSE, 0}, /* 9 digits */
      {"1s", MESH_ERR_PARSE, 0},         /* units are case-sensitive */
      {"1h", MESH_ERR_PARSE, 0},
      {"-1S", MESH_ERR_PARSE, 0},
      {"+1S", MESH_ERR_PARSE, 0},
      {" 1S", MESH_ERR_PARSE, 0},
      {"1S ", MESH_ERR_PARSE, 0},
      {"1.5S", MESH_ERR_PARSE, 0},
      {"1x", MESH_ERR_PARSE, 0},
      {"1SS", MESH_ERR_PARSE, 0},
  };
  for (size_t i = 0; i < N(cases); i++) {
    int64_t ns = -1;
    int rc = mesh__grpc_timeout_parse(cases[i].in, strlen(cases[i].in), &ns);
    if (rc != cases[i].rc)
      fprintf(stderr, "\n\"%s\": got %d\n", cases[i].in, rc);
    CU_ASSERT_EQUAL(rc, cases[i].rc);
    if (rc == MESH_OK)
      CU_ASSERT_EQUAL(ns, cases[i].ns);
  }
  /* length is honoured: no read past it */
  int64_t ns;
  CU_ASSERT_EQUAL(mesh__grpc_timeout_parse("5mXYZ", 2, &ns), MESH_OK);
  CU_ASSERT_EQUAL(ns, 5000000);
}

static void test_mesh__grpc_duration_parse(void) {
  static const struct {
    const char *in;
    int rc;
    int64_t ns;
  } cases[] = {
      {"1s", MESH_OK, 1000000000},
      {"0s", MESH_OK, 0},
      {"0.1s", MESH_OK, 100000000},
      {"1.000000001s", MESH_OK, 1000000001},
      {"315576000000s", MESH_OK, INT64_MAX},
      {"315576000001s", MESH_ERR_PARSE, 0},
      {"1.0000000001s", MESH_ERR_PARSE, 0},
      {"1.s", MESH_ERR_PARSE, 0},
      {".5s", MESH_ERR_PARSE, 0},
      {"-1s", MESH_ERR_PARSE, 0},
      {"1", MESH_ERR_PARSE, 0},
      {"1ms", MESH_ERR_PARSE, 0},
      {"1s ", MESH_ERR_PARSE, 0},
      {"", MESH_ERR_PARSE, 0},
  };
  for (size_t i = 0; i < N(cases); i++) {
    int64_t ns = -1;
    int rc = mesh__grpc_duration_parse(cases[i].in, &ns);
    if (rc != cases[i].rc)
      fprintf(stderr, "\n\"%s\": got %d\n", cases[i].in, rc);
    CU_ASSERT_EQUAL(rc, cases[i].rc);
    if (rc == MESH_OK)
      CU_ASSERT_EQUAL(ns, cases[i].ns);
  }
}

/* ---- status ---------------------------------------------------------------------- */

static void test_mesh__grpc_code_name(void) {
  static const char *const want[] = {
      "OK",         "CANCELLED",          "UNKNOWN",
      "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
      "DATA_LOSS",  "UNAUTHENTICATED"};
  CU_ASSERT_EQUAL(N(want), MESH__GRPC_NCODES);
  for (int i = 0; i < MESH__GRPC_NCODES; i++) {
    CU_ASSERT_STRING_EQUAL(mesh__grpc_code_name(i), want[i]);
    CU_ASSERT_EQUAL(mesh__grpc_code_from_name(want[i]), i);
  }
  CU_ASSERT_PTR_NULL(mesh__grpc_code_name(-1));
  CU_ASSERT_PTR_NULL(mesh__grpc_code_name(17));
  CU_ASSERT_EQUAL(mesh__grpc_code_from_name("unavailable"), -1);
  CU_ASSERT_EQUAL(mesh__grpc_code_from_name(""), -1);
  CU_ASSERT_EQUAL(mesh__grpc_code_from_name(NULL), -1);
}

static void test_mesh__grpc_status_parse(void) {
  static const struct {
    const char *in;
    int rc, code;
  } cases[] = {
      {"0", MESH_OK, 0},         {"14", MESH_OK, 14},
      {"16", MESH_OK, 16},       {"17", MESH_OK, 17},
      {"2147483647", MESH_OK, INT32_MAX},
      {"2147483648", MESH_ERR_PARSE, 0},
      {"", MESH_ERR_PARSE, 0},   {"-1", MESH_ERR_PARSE, 0},
      {" 1", MESH_ERR_PARSE, 0}, {"1a", MESH_ERR_PARSE, 0},
      {"12345678901", MESH_ERR_PARSE, 0},
  };
  for (size_t i = 0; i < N(cases); i++) {
    int code = -1;
    CU_ASSERT_EQUAL(mesh__grpc_status_parse(cases[i].in, strlen(cases[i].in),
                                            &code),
                    cases[i].rc);
    if (cases[i].rc == MESH_OK)
      CU_ASSERT_EQUAL(code, cases[i].code);
  }
}

static void test_mesh__grpc_code_http(void) {
  static const struct {
    int http, code;
  } from[] = {{400, 13}, {401, 16}, {403, 7},  {404, 12}, {429, 14},
              {502, 14}, {503, 14}, {504, 14}, {500, 2},  {200, 2},
              {418, 2}};
  for (size_t i = 0; i < N(from); i++)
    CU_ASSERT_EQUAL(mesh__grpc_code_from_http(from[i].http), from[i].code);
  static const int to[MESH__GRPC_NCODES] = {
      200, 499, 500, 400, 504, 404, 409, 403, 429,
      400, 409, 400, 501, 500, 503, 500, 401};
  for (int c = 0; c < MESH__GRPC_NCODES; c++)
    CU_ASSERT_EQUAL(mesh__grpc_code_to_http(c), to[c]);
  CU_ASSERT_EQUAL(mesh__grpc_code_to_http(99), 500);
  CU_ASSERT_EQUAL(mesh__grpc_code_to_http(-1), 500);
}

static void test_mesh__grpc_msg_encode(void) {
  static const struct {
    const char *raw;
    size_t len;
    const char *enc;
  } cases[] = {
      {"", 0, ""},
      {"plain text ~!", 13, "plain text ~!"},
      {"100%", 4, "100%25"},
      {"a\nb", 3, "a%0Ab"},
      {"\xc3\xa9t\xc3\xa9", 5, "%C3%A9t%C3%A9"},
      {"nul\0x", 5, "nul%00x"},
      {"\x7f\x1f", 2, "%7F%1F"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    char *e = NULL, *d = NULL;
    size_t dl = 0;
    CU_ASSERT_EQUAL_FATAL(
        mesh__grpc_msg_encode(cases[i].raw, cases[i].len, &e), MESH_OK);
    CU_ASSERT_STRING_EQUAL(e, cases[i].enc);
    CU_ASSERT_EQUAL(mesh__grpc_msg_decode(e, strlen(e), &d, &dl), MESH_OK);
    CU_ASSERT(dl == cases[i].len && !memcmp(d, cases[i].raw, dl));
    free(e);
    free(d);
  }
  /* decoding: broken encodings stay as they are; lower-case hex decodes */
  static const struct {
    const char *in, *out;
  } dec[] = {
      {"%", "%"},         {"%4", "%4"},     {"%zz", "%zz"},
      {"a%2", "a%2"},     {"%2a", "*"},     {"%%41", "%A"},
      {"50%25 done", "50% done"},
  };
  for (size_t i = 0; i < N(dec); i++) {
    char *d = NULL;
    size_t dl;
    CU_ASSERT_EQUAL(mesh__grpc_msg_decode(dec[i].in, strlen(dec[i].in), &d,
                                          &dl),
                    MESH_OK);
    CU_ASSERT_STRING_EQUAL(d, dec[i].out);
    free(d);
  }
}

/* ---- metadata ----------------------------------------------------------------------- */

static void test_mesh__grpc_md_key_check(void) {
  static const struct {
    const char *key;
    int rc;
  } cases[] = {
      {"x-user", MESH_OK},        {"a.b_c-9", MESH_OK},
      {"trace-bin", MESH_OK},     {"authorization", MESH_OK},
      {"", MESH_ERR_INVALID_ARG}, {"X-User", MESH_ERR_INVALID_ARG},
      {":path", MESH_ERR_INVALID_ARG}, {"a b", MESH_ERR_INVALID_ARG},
      {"grpc-timeout", MESH_ERR_INVALID_ARG},
      {"grpc-custom", MESH_ERR_INVALID_ARG},
      {"content-type", MESH_ERR_INVALID_ARG}, {"te", MESH_ERR_INVALID_ARG},
      {"connection", MESH_ERR_INVALID_ARG},
      {"transfer-encoding", MESH_ERR_INVALID_ARG},
      {"k\xc3\xa9", MESH_ERR_INVALID_ARG},
  };
  for (size_t i = 0; i < N(cases); i++) {
    mesh_status_t st;
    int rc = mesh__grpc_md_key_check(cases[i].key, &st);
    if (rc != cases[i].rc)
      fprintf(stderr, "\n\"%s\": got %d\n", cases[i].key, rc);
    CU_ASSERT_EQUAL(rc, cases[i].rc);
    if (rc != MESH_OK)
      CU_ASSERT(st.message[0] != '\0');
  }
  CU_ASSERT_EQUAL(mesh__grpc_md_key_check(NULL, NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT(mesh__grpc_md_is_bin("x-bin"));
  CU_ASSERT(!mesh__grpc_md_is_bin("bin"));
  CU_ASSERT(!mesh__grpc_md_is_bin("x-binary"));
  CU_ASSERT_EQUAL(mesh__grpc_md_value_check("any text ~", 10, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh__grpc_md_value_check("", 0, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh__grpc_md_value_check("a\r\nb", 4, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__grpc_md_value_check("\xc3\xa9", 2, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__grpc_md_value_check("a\0b", 3, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT(mesh__grpc_md_is_transport(":status"));
  CU_ASSERT(mesh__grpc_md_is_transport("grpc-status"));
  CU_ASSERT(mesh__grpc_md_is_transport("content-type"));
  CU_ASSERT(!mesh__grpc_md_is_transport("grpc-status-details-bin"));
  CU_ASSERT(!mesh__grpc_md_is_transport("x-user"));
}

static void test_mesh__grpc_b64(void) {
  static const struct {
    const char *raw, *enc;
  } cases[] = {
      {"", ""},         {"f", "Zg"},        {"fo", "Zm8"},
      {"foo", "Zm9v"},  {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "+/8"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    char *e;
    uint8_t *d;
    size_t dl;
    size_t rl = strlen(cases[i].raw);
    CU_ASSERT_EQUAL_FATAL(mesh__grpc_b64_encode(cases[i].raw, rl, &e),
                          MESH_OK);
    CU_ASSERT_STRING_EQUAL(e, cases[i].enc);
    CU_ASSERT_EQUAL(mesh__grpc_b64_decode(e, strlen(e), &d, &dl), MESH_OK);
    CU_ASSERT(dl == rl && !memcmp(d, cases[i].raw, dl));
    free(e);
    free(d);
  }
  static const struct {
    const char *in;
    int rc;
    const char *out;
  } dec[] = {
      {"Zg==", MESH_OK, "f"},    {"Zm8=", MESH_OK, "fo"},
      {"-_8", MESH_OK, "\xfb\xff"}, /* URL-safe alphabet */
      {"Z", MESH_ERR_PARSE, NULL}, {"Zg=", MESH_ERR_PARSE, NULL},
      {"Z===", MESH_ERR_PARSE, NULL}, {"Zm 9v", MESH_ERR_PARSE, NULL},
      {"Zm9v!", MESH_ERR_PARSE, NULL}, {"=", MESH_ERR_PARSE, NULL},
  };
  for (size_t i = 0; i < N(dec); i++) {
    uint8_t *d = NULL;
    size_t dl;
    int rc = mesh__grpc_b64_decode(dec[i].in, strlen(dec[i].in), &d, &dl);
    if (rc != dec[i].rc)
      fprintf(stderr, "\n\"%s\": got %d\n", dec[i].in, rc);
    CU_ASSERT_EQUAL(rc, dec[i].rc);
    if (rc == MESH_OK)
      CU_ASSERT(dl == strlen(dec[i].out) && !memcmp(d, dec[i].out, dl));
    free(d);
  }
}

/* ---- service config ----------------------------------------------------------------- */

static int parse_cfg(const char *json, mesh__grpc_svc_cfg_t *out,
                     mesh_status_t *st) {
  cJSON *v = cJSON_Parse(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  mesh__cfg_t c = {0, st, NULL, NULL};
  st->code = 0;
  st->message[0] = '\0';
  int rc = mesh__grpc_svc_cfg_parse(&c, v, "services.s.grpc", out);
  cJSON_Delete(v);
  return rc;
}

static void test_mesh__grpc_svc_cfg_parse(void) {
  const char *ok =
      "{\"methodConfig\": ["
      " {\"name\": [{\"service\": \"pkg.Svc\", \"method\": \"Get\"}],"
      "  \"timeout\": \"1.5s\","
      "  \"retryPolicy\": {\"maxAttempts\": 9, \"initialBackoff\": \"0.1s\","
      "   \"maxBackoff\": \"1s\", \"backoffMultiplier\": 2,"
      "   \"retryableStatusCodes\": [\"UNAVAILABLE\", 4]}},"
      " {\"name\": [{\"service\": \"pkg.Svc\"}],"
      "  \"hedgingPolicy\": {\"maxAttempts\": 3, \"hedgingDelay\": \"0.05s\","
      "   \"nonFatalStatusCodes\": [\"UNAVAILABLE\"]},"
      "  \"maxResponseMessageBytes\": 1024},"
      " {\"name\": [{}], \"timeout\": \"10s\", \"waitForReady\": true}]}";
  mesh__grpc_svc_cfg_t cfg;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(parse_cfg(ok, &cfg, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(cfg.n, 3);
  const mesh__grpc_method_cfg_t *e = mesh__grpc_svc_cfg_find(&cfg,
                                                             "/pkg.Svc/Get");
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT(e->has_retry && !e->has_hedge);
  CU_ASSERT_EQUAL(e->timeout_ms, 1500);
  CU_ASSERT_EQUAL(e->retry.max_attempts, 5); /* clamped */
  CU_ASSERT_EQUAL(e->retry.initial_backoff_ms, 100);
  CU_ASSERT_EQUAL(e->retry.max_backoff_ms, 1000);
  CU_ASSERT_EQUAL(e->retry.multiplier, 2.0);
  CU_ASSERT_EQUAL(e->retry.codes, (1u << 14) | (1u << 4));
  CU_ASSERT(mesh__grpc_retryable(&e->retry, 14));
  CU_ASSERT(!mesh__grpc_retryable(&e->retry, 13));
  CU_ASSERT(!mesh__grpc_retryable(&e->retry, 0));
  e = mesh__grpc_svc_cfg_find(&cfg, "/pkg.Svc/Put");
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT(e->has_hedge && e->hedge.max_attempts == 3 &&
            e->hedge.delay_ms == 50 && e->hedge.non_fatal == 1u << 14);
  CU_ASSERT_EQUAL(e->max_resp, 1024);
  e = mesh__grpc_svc_cfg_find(&cfg, "/other.Svc/Get");
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT(e->timeout_ms == 10000 && e->wait_for_ready && !e->has_retry);
  CU_ASSERT_PTR_NULL(mesh__grpc_svc_cfg_find(&cfg, "not a path"));
  mesh__grpc_svc_cfg_free(&cfg);
  CU_ASSERT_EQUAL(parse_cfg("{}", &cfg, &st), MESH_OK);
  CU_ASSERT_PTR_NULL(mesh__grpc_svc_cfg_find(&cfg, "/a.B/C"));
  mesh__grpc_svc_cfg_free(&cfg);
}

/* retryThrottling (gRFC A6): tokens start at maxTokens; a failure takes
 * one, a success gives tokenRatio back; retries/hedges only while the
 * tokens are above maxTokens / 2; bounded by 0 and maxTokens. */
static void test_mesh__grpc_throttle(void) {
  mesh__grpc_svc_cfg_t cfg;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(parse_cfg("{\"retryThrottling\": {\"maxTokens\": 4,"
                                  " \"tokenRatio\": 0.5}, \"perRpcBufferLimit\":"
                                  " 1000, \"retryBufferSize\": 5000}",
                                  &cfg, &st), MESH_OK);
  CU_ASSERT(cfg.max_tokens_m == 4000 && cfg.token_ratio_m == 500);
  CU_ASSERT(cfg.rpc_buf == 1000 && cfg.chan_buf == 5000);
  mesh__grpc_tokens_t miss = 0;
  static const struct {
    int ok;      /* -1 check only, 0 failure, 1 success */
    bool allowed; /* after the step */
    int64_t miss;
  } steps[] = {
      {-1, true, 0},    {0, true, 1000},  {0, false, 2000}, /* 2 <= 4/2 */
      {1, true, 1500},  {0, false, 2500}, {0, false, 3500},
      {0, false, 4000}, {0, false, 4000}, /* no fewer than 0 tokens */
      {1, false, 3500}, {1, false, 3000}, {1, false, 2500},
      {1, false, 2000}, {1, true, 1500},  {1, true, 1000},
      {1, true, 500},   {1, true, 0},     {1, true, 0}, /* at most max */
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    if (steps[i].ok >= 0)
      mesh__grpc_throttle_record(&cfg, &miss, steps[i].ok == 1);
    CU_ASSERT_EQUAL(atomic_load(&miss), steps[i].miss);
    CU_ASSERT_EQUAL(mesh__grpc_throttle_ok(&cfg, &miss), steps[i].allowed);
  }
  mesh__grpc_svc_cfg_free(&cfg);
  /* without retryThrottling: always allowed, nothing recorded */
  CU_ASSERT_EQUAL_FATAL(parse_cfg("{}", &cfg, &st), MESH_OK);
  mesh__grpc_throttle_record(&cfg, &miss, false);
  CU_ASSERT(mesh__grpc_throttle_ok(&cfg, &miss) && atomic_load(&miss) == 0);
  mesh__grpc_svc_cfg_free(&cfg);
  /* tokenRatio kept to 3 decimals */
  CU_ASSERT_EQUAL_FATAL(parse_cfg("{\"retryThrottling\": {\"maxTokens\": 1,"
                                  " \"tokenRatio\": 0.12345}}", &cfg, &st),
                        MESH_OK);
  CU_ASSERT_EQUAL(cfg.token_ratio_m, 123);
  mesh__grpc_svc_cfg_free(&cfg);
}

static void test_mesh__grpc_svc_cfg_errors(void) {
#define RP(x) "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": " x "}]}"
#define RP_OK_BUT(k)                                                         \
  "{\"maxAttempts\": 2, \"initialBackoff\": \"1s\", \"maxBackoff\": \"1s\", " \
  "\"backoffMultiplier\": 1, \"retryableStatusCodes\": [\"UNAVAILABLE\"]" k "}"
  static const struct {
    const char *json, *path;
  } cases[] = {
      {"[]", "services.s.grpc"},
      {"{\"methodconfig\": []}", "services.s.grpc.methodconfig"},
      {"{\"retryThrottling\": {\"maxTokens\": 0, \"tokenRatio\": 0.1}}",
       "services.s.grpc.retryThrottling.maxTokens"},
      {"{\"retryThrottling\": {\"maxTokens\": 1001, \"tokenRatio\": 1}}",
       "services.s.grpc.retryThrottling.maxTokens"},
      {"{\"retryThrottling\": {\"maxTokens\": 10}}",
       "services.s.grpc.retryThrottling.tokenRatio"},
      {"{\"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 0}}",
       "services.s.grpc.retryThrottling.tokenRatio"},
      {"{\"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 1, "
       "\"x\": 1}}",
       "services.s.grpc.retryThrottling.x"},
      {"{\"perRpcBufferLimit\": 0}", "services.s.grpc.perRpcBufferLimit"},
      {"{\"retryBufferSize\": \"1M\"}", "services.s.grpc.retryBufferSize"},
      {"{\"methodConfig\": {}}", "services.s.grpc.methodConfig"},
      {"{\"methodConfig\": [{\"timeout\": \"1s\"}]}",
       "services.s.grpc.methodConfig[0].name"},
      {"{\"methodConfig\": [{\"name\": [{\"method\": \"M\"}]}]}",
       "services.s.grpc.methodConfig[0].name[0].method"},
      {"{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"1\"}]}",
       "services.s.grpc.methodConfig[0].timeout"},
      {"{\"methodConfig\": [{\"name\": [{}]}, {\"name\": [{}]}]}",
       "services.s.grpc.methodConfig[1].name[0]"},
      {"{\"methodConfig\": [{\"name\": [{\"service\": \"a\"}, "
       "{\"service\": \"a\"}]}]}",
       "services.s.grpc.methodConfig[0].name[1]"},
      {RP("{}"), "services.s.grpc.methodConfig[0].retryPolicy.maxAttempts"},
      {RP("{\"maxAttempts\": 1, \"initialBackoff\": \"1s\", \"maxBackoff\": "
          "\"1s\", \"backoffMultiplier\": 1, \"retryableStatusCodes\": "
          "[\"UNAVAILABLE\"]}"),
       "services.s.grpc.methodConfig[0].retryPolicy.maxAttempts"},
      {RP("{\"maxAttempts\": 2, \"initialBackoff\": \"0s\", \"maxBackoff\": "
          "\"1s\", \"backoffMultiplier\": 1, \"retryableStatusCodes\": "
          "[\"UNAVAILABLE\"]}"),
       "services.s.grpc.methodConfig[0].retryPolicy.initialBackoff"},
      {RP("{\"maxAttempts\": 2, \"initialBackoff\": \"1s\", \"maxBackoff\": "
          "\"1s\", \"backoffMultiplier\": 0, \"retryableStatusCodes\": "
          "[\"UNAVAILABLE\"]}"),
       "services.s.grpc.methodConfig[0].retryPolicy.backoffMultiplier"},
      {RP("{\"maxAttempts\": 2, \"initialBackoff\": \"1s\", \"maxBackoff\": "
          "\"1s\", \"backoffMultiplier\": 1, \"retryableStatusCodes\": []}"),
       "services.s.grpc.methodConfig[0].retryPolicy.retryableStatusCodes"},
      {RP("{\"maxAttempts\": 2, \"initialBackoff\": \"1s\", \"maxBackoff\": "
          "\"1s\", \"backoffMultiplier\": 1, \"retryableStatusCodes\": "
          "[\"unavailable\"]}"),
       "services.s.grpc.methodConfig[0].retryPolicy.retryableStatusCodes[0]"},
      {RP("{\"maxAttempts\": 2, \"initialBackoff\": \"1s\", \"maxBackoff\": "
          "\"1s\", \"backoffMultiplier\": 1, \"retryableStatusCodes\": "
          "[\"OK\"]}"),
       "services.s.grpc.methodConfig[0].retryPolicy.retryableStatusCodes"},
      {RP(RP_OK_BUT(", \"perAttemptRecvTimeout\": \"1s\"")),
       "services.s.grpc.methodConfig[0].retryPolicy.perAttemptRecvTimeout"},
      {"{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": " RP_OK_BUT("")
       ", \"hedgingPolicy\": {\"maxAttempts\": 2}}]}",
       "services.s.grpc.methodConfig[0].hedgingPolicy"},
      {"{\"methodConfig\": [{\"name\": [{}], \"hedgingPolicy\": "
       "{\"maxAttempts\": 2, \"hedgingDelay\": \"x\"}}]}",
       "services.s.grpc.methodConfig[0].hedgingPolicy.hedgingDelay"},
      {"{\"methodConfig\": [{\"name\": [{}], \"maxRequestMessageBytes\": -1}]}",
       "services.s.grpc.methodConfig[0].maxRequestMessageBytes"},
  };
  for (size_t i = 0; i < N(cases); i++) {
    mesh__grpc_svc_cfg_t cfg = {NULL, 99};
    mesh_status_t st;
    int rc = parse_cfg(cases[i].json, &cfg, &st);
    CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
    CU_ASSERT_EQUAL(cfg.n, 99); /* untouched on error */
    size_t pl = strlen(cases[i].path);
    bool at = !strncmp(st.message, cases[i].path, pl) &&
              st.message[pl] == ':';
    if (!at)
      fprintf(stderr, "\ncase %zu: want path %s, got \"%s\"\n", i,
              cases[i].path, st.message);
    CU_ASSERT(at);
  }
}

static void test_mesh__grpc_path_split(void) {
  const char *s, *m;
  size_t sl, ml;
  CU_ASSERT_EQUAL(mesh__grpc_path_split("/pkg.Svc/Method", &s, &sl, &m, &ml),
                  MESH_OK);
  CU_ASSERT(sl == 7 && !strncmp(s, "pkg.Svc", sl));
  CU_ASSERT(ml == 6 && !strcmp(m, "Method"));
  static const char *const bad[] = {"", "/", "//", "/a/", "//b", "a/b",
                                    "/a/b/c", "/a b/c", "/a/\x7f", NULL};
  for (size_t i = 0; bad[i]; i++)
    CU_ASSERT_EQUAL(mesh__grpc_path_split(bad[i], &s, &sl, &m, &ml),
                    MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__grpc_path_split(NULL, &s, &sl, &m, &ml),
                  MESH_ERR_INVALID_ARG);
}

static void test_mesh__grpc_pushback_parse(void) {
  static const struct {
    const char *in;
    int rc;
    int64_t ms;
  } cases[] = {
      {"0", 1, 0},     {"250", 1, 250}, {"99999999999", 1, INT32_MAX},
      {"", 0, 0},      {"-1", 0, 0},    {"1.5", 0, 0},
      {" 5", 0, 0},    {"abc", 0, 0},   {"12345678901234567890", 0, 0},
  };
  for (size_t i = 0; i < N(cases); i++) {
    int64_t ms = -7;
    CU_ASSERT_EQUAL(mesh__grpc_pushback_parse(cases[i].in, strlen(cases[i].in),
                                              &ms),
                    cases[i].rc);
    if (cases[i].rc)
      CU_ASSERT_EQUAL(ms, cases[i].ms);
  }
}

static void test_mesh__grpc_backoff_ms(void) {
  mesh__grpc_retry_t r = {5, 100, 1000, 2.0, 1u << 14};
  /* the cap of retry n: 100, 200, 400, 800, 1000, 1000 */
  static const int64_t cap[] = {100, 200, 400, 800, 1000, 1000};
  for (uint32_t n = 1; n <= 6; n++) {
    CU_ASSERT_EQUAL(mesh__grpc_backoff_ms(&r, n, 0), 0);
    int64_t hi = mesh__grpc_backoff_ms(&r, n, UINT64_MAX);
    CU_ASSERT(hi < cap[n - 1] && hi >= cap[n - 1] - 1);
    int64_t mid = mesh__grpc_backoff_ms(&r, n, UINT64_MAX / 2);
    CU_ASSERT(mid >= cap[n - 1] / 2 - 1 && mid <= cap[n - 1] / 2);
  }
  /* multiplier below 1 shrinks; never negative */
  mesh__grpc_retry_t s = {3, 100, 1000, 0.5, 1u << 14};
  CU_ASSERT(mesh__grpc_backoff_ms(&s, 3, UINT64_MAX) < 25);
  CU_ASSERT(mesh__grpc_backoff_ms(&s, 3, UINT64_MAX) >= 24);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("grpc_proto", NULL, NULL);
  CU_add_test(s, "mesh__grpc_dec_feed_splits", test_mesh__grpc_dec_feed_splits);
  CU_add_test(s, "mesh__grpc_dec_feed_errors", test_mesh__grpc_dec_feed_errors);
  CU_add_test(s, "mesh__grpc_timeout_encode", test_mesh__grpc_timeout_encode);
  CU_add_test(s, "mesh__grpc_timeout_parse", test_mesh__grpc_timeout_parse);
  CU_add_test(s, "mesh__grpc_duration_parse", test_mesh__grpc_duration_parse);
  CU_add_test(s, "mesh__grpc_code_name", test_mesh__grpc_code_name);
  CU_add_test(s, "mesh__grpc_status_parse", test_mesh__grpc_status_parse);
  CU_add_test(s, "mesh__grpc_code_http", test_mesh__grpc_code_http);
  CU_add_test(s, "mesh__grpc_msg_encode", test_mesh__grpc_msg_encode);
  CU_add_test(s, "mesh__grpc_md_key_check", test_mesh__grpc_md_key_check);
  CU_add_test(s, "mesh__grpc_b64", test_mesh__grpc_b64);
  CU_add_test(s, "mesh__grpc_svc_cfg_parse", test_mesh__grpc_svc_cfg_parse);
  CU_add_test(s, "mesh__grpc_svc_cfg_errors", test_mesh__grpc_svc_cfg_errors);
  CU_add_test(s, "mesh__grpc_throttle", test_mesh__grpc_throttle);
  CU_add_test(s, "mesh__grpc_path_split", test_mesh__grpc_path_split);
  CU_add_test(s, "mesh__grpc_pushback_parse", test_mesh__grpc_pushback_parse);
  CU_add_test(s, "mesh__grpc_backoff_ms", test_mesh__grpc_backoff_ms);
}

int main(void) { return th_run_suites("test_grpc_proto", add); }

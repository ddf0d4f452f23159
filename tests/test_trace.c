/* SPDX-License-Identifier: Apache-2.0 */
/* Trace context (W3C traceparent/tracestate, B3 single and multi),
 * extract/inject, samplers, spans and hooks. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "telemetry/telemetry.h"
#include "telemetry/trace_ctx.h"
#include "telemetry/tracer.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"
#define Z32 "00000000000000000000000000000000"
#define Z16 "0000000000000000"

static void hex(const uint8_t *p, size_t n, char *out) {
  mesh__hex_encode(p, n, out);
  out[2 * n] = '\0';
}

/* ---- traceparent ----------------------------------------------------------- */

struct tp_case {
  const char *in;
  int rc;
  int sampled; /* when valid */
};

static const struct tp_case tp_cases[] = {
    {"00-" TID "-" SID "-01", MESH_OK, 1},
    {"00-" TID "-" SID "-00", MESH_OK, 0},
    {"00-" TID "-" SID "-09", MESH_OK, 1},  /* unknown flag bits ignored */
    {"00-" TID "-" SID "-fe", MESH_OK, 0},
    {" \t00-" TID "-" SID "-01\t ", MESH_OK, 1}, /* HTTP OWS */
    /* a future version: parse the first four fields, ignore the rest */
    {"01-" TID "-" SID "-01", MESH_OK, 1},
    {"cc-" TID "-" SID "-01-what-the-future-will-be-like", MESH_OK, 1},
    {"cc-" TID "-" SID "-01-", MESH_OK, 1},
    {"fe-" TID "-" SID "-00-x", MESH_OK, 0},
    /* invalid */
    {"", MESH_ERR_PARSE, 0},
    {"00", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "-0", MESH_ERR_PARSE, 0},             /* 54 chars */
    {"00-" TID "-" SID "-01-", MESH_ERR_PARSE, 0},           /* v00 + data */
    {"00-" TID "-" SID "-01-extra", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "-010", MESH_ERR_PARSE, 0},
    {"cc-" TID "-" SID "-01.what", MESH_ERR_PARSE, 0},       /* no dash */
    {"ff-" TID "-" SID "-01", MESH_ERR_PARSE, 0},            /* version ff */
    {"0g-" TID "-" SID "-01", MESH_ERR_PARSE, 0},
    {"0A-" TID "-" SID "-01", MESH_ERR_PARSE, 0},            /* upper case */
    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01", MESH_ERR_PARSE, 0},
    {"00-" TID "-00F067AA0BA902B7-01", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "-0A", MESH_ERR_PARSE, 0},
    {"00-" Z32 "-" SID "-01", MESH_ERR_PARSE, 0},            /* zero trace */
    {"00-" TID "-" Z16 "-01", MESH_ERR_PARSE, 0},            /* zero parent */
    {"00_" TID "-" SID "-01", MESH_ERR_PARSE, 0},
    {"00-" TID "_" SID "-01", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "_01", MESH_ERR_PARSE, 0},
    {"00-4bf92f3577b34da6a3ce929d0e0e473-" SID "-01x", MESH_ERR_PARSE, 0},
    {"00-" TID "-00f067aa0ba902b-01x", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "-0x", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "- 1", MESH_ERR_PARSE, 0},
    {"00- " TID "-" SID "-01", MESH_ERR_PARSE, 0},
    {"00-" TID "-" SID "-01\r\n", MESH_ERR_PARSE, 0},
};

static void test_mesh_traceparent_parse(void) {
  for (size_t i = 0; i < sizeof tp_cases / sizeof tp_cases[0]; i++) {
    const struct tp_case *tc = &tp_cases[i];
    mesh_trace_ctx_t ctx;
    memset(&ctx, 0xAA, sizeof ctx);
    int rc = mesh_traceparent_parse(tc->in, strlen(tc->in), &ctx);
    if (rc != tc->rc)
      fprintf(stderr, "case %zu \"%s\": rc=%d want %d\n", i, tc->in, rc,
              tc->rc);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (rc != MESH_OK) {
      CU_ASSERT_EQUAL(ctx.has_ids, 0xAA); /* untouched on failure */
      continue;
    }
    char t[33], s[17];
    hex(ctx.trace_id, 16, t);
    hex(ctx.span_id, 8, s);
    CU_ASSERT_STRING_EQUAL(t, TID);
    CU_ASSERT_STRING_EQUAL(s, SID);
    CU_ASSERT_EQUAL(ctx.has_ids, 1);
    CU_ASSERT_EQUAL(mesh__ctx_sampled(&ctx), tc->sampled);
    CU_ASSERT_STRING_EQUAL(ctx.tracestate, "");
  }
  mesh_trace_ctx_t ctx;
  CU_ASSERT_EQUAL(mesh_traceparent_parse(NULL, 0, &ctx), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_traceparent_parse("x", 1, NULL), MESH_ERR_INVALID_ARG);
  /* Length is honoured: no NUL needed, bytes after len are not read. */
  const char *v = "00-" TID "-" SID "-01GARBAGE";
  CU_ASSERT_EQUAL(mesh_traceparent_parse(v, 55, &ctx), MESH_OK);
}

static void test_mesh_traceparent_format(void) {
  mesh_trace_ctx_t ctx;
  const char *in = "cc-" TID "-" SID "-ff-future";
  CU_ASSERT_EQUAL_FATAL(mesh_traceparent_parse(in, strlen(in), &ctx),
                        MESH_OK);
  char buf[MESH_TRACEPARENT_LEN + 1];
  CU_ASSERT_EQUAL(mesh_traceparent_format(&ctx, buf, sizeof buf),
                  MESH_TRACEPARENT_LEN);
  /* We speak version 00 and only the flags Level 2 defines: sampled and
   * random (ff -> 03). */
  CU_ASSERT_STRING_EQUAL(buf, "00-" TID "-" SID "-03");
  CU_ASSERT_EQUAL(mesh_traceparent_format(&ctx, buf, sizeof buf - 1),
                  MESH_ERR_BUFFER);
  memset(ctx.span_id, 0, 8);
  CU_ASSERT_EQUAL(mesh_traceparent_format(&ctx, buf, sizeof buf),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_traceparent_format(NULL, buf, sizeof buf),
                  MESH_ERR_INVALID_ARG);
}

/* Trace Context Level 2: the random-trace-id flag (0x02) is kept as
 * received and propagated with the trace-id; sampled follows the
 * decision; bits no level defines are zeroed.  A Level 1 peer's flags
 * (01 / 00) come back unchanged. */
static void test_traceparent_flags_level2(void) {
  static const struct {
    const char *in, *out;
    uint8_t flags; /* as parsed */
  } cases[] = {
      {"00", "00", 0x00}, {"01", "01", 0x01}, {"02", "02", 0x02},
      {"03", "03", 0x03}, {"04", "00", 0x04}, {"05", "01", 0x05},
      {"06", "02", 0x06}, {"fe", "02", 0xfe}, {"ff", "03", 0xff},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char in[64], want[64], buf[MESH_TRACEPARENT_LEN + 1];
    snprintf(in, sizeof in, "00-" TID "-" SID "-%s", cases[i].in);
    snprintf(want, sizeof want, "00-" TID "-" SID "-%s", cases[i].out);
    mesh_trace_ctx_t ctx;
    CU_ASSERT_EQUAL_FATAL(mesh_traceparent_parse(in, strlen(in), &ctx),
                          MESH_OK);
    CU_ASSERT_EQUAL(ctx.flags, cases[i].flags);
    CU_ASSERT_EQUAL(mesh_traceparent_format(&ctx, buf, sizeof buf),
                    MESH_TRACEPARENT_LEN);
    if (strcmp(buf, want) != 0)
      fprintf(stderr, "\n  flags %s: %s, want %s\n", cases[i].in, buf, want);
    CU_ASSERT_STRING_EQUAL(buf, want);
  }
  /* The decision wins over the sampled bit; random stays. */
  mesh_trace_ctx_t ctx;
  const char *in = "00-" TID "-" SID "-03";
  CU_ASSERT_EQUAL_FATAL(mesh_traceparent_parse(in, strlen(in), &ctx),
                        MESH_OK);
  ctx.sampling = MESH_SAMPLING_DENY;
  char buf[MESH_TRACEPARENT_LEN + 1];
  mesh_traceparent_format(&ctx, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf, "00-" TID "-" SID "-02");
  /* B3 carries no random flag: a W3C header made from it has none. */
  CU_ASSERT_EQUAL(mesh_b3_parse("80f198ee56343ba864fe8b2a57d3eff7-"
                                "e457b5a2e4d86bd1-1",
                                51, &ctx),
                  MESH_OK);
  mesh_traceparent_format(&ctx, buf, sizeof buf);
  CU_ASSERT_STRING_EQUAL(buf + 53, "01");
}

/* ---- tracestate ------------------------------------------------------------ */

struct ts_case {
  const char *in;
  int rc;          /* length or error */
  const char *out; /* normalized */
};

static const struct ts_case ts_cases[] = {
    {"", 0, ""},
    {"   ", 0, ""},
    {"a=1", 3, "a=1"},
    {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", 39,
     "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
    {" a=1 ,\tb=2\t", 7, "a=1,b=2"},
    {"a=1,,b=2,", 7, "a=1,b=2"},          /* empty members are allowed */
    {"a= b", 4, "a= b"},                  /* inner space in a value */
    {"a-b_c*d/e=x", 11, "a-b_c*d/e=x"},
    {"1a@b=1", 6, "1a@b=1"},              /* tenant may start with a digit */
    {"t@sys-1_*/x=1", 13, "t@sys-1_*/x=1"},
    {"fw529a3039@dt=ffffffff", 22, "fw529a3039@dt=ffffffff"}, /* multi-tenant */
    {"tenant@system=x,simple=1", 24, "tenant@system=x,simple=1"},
    {"a=!\"#$%&'()*+-./09:;<>?@AZ[\\]^_`az{|}~", 38,
     "a=!\"#$%&'()*+-./09:;<>?@AZ[\\]^_`az{|}~"},
    {"A=1", MESH_ERR_PARSE, NULL},        /* upper-case key */
    /* The current key grammar, ( lcalpha / DIGIT ) 0*255 ( keychar ) with
     * "@" a keychar: a superset of Level 1's simple and multi-tenant
     * keys, whose stricter limits (a simple key starting with a letter, a
     * system-id of 1-14 characters starting with a letter) it drops. */
    {"1a=1", 4, "1a=1"},
    {"_a=1", MESH_ERR_PARSE, NULL},
    {"a@1b=1", 6, "a@1b=1"},
    {"a@bcdefghijklmno=1", 18, "a@bcdefghijklmno=1"},
    {"a@bcdefghijklmnop=1", 19, "a@bcdefghijklmnop=1"},
    {"a@b@c=1", 7, "a@b@c=1"},
    {"@b=1", MESH_ERR_PARSE, NULL},
    {"a@=1", 4, "a@=1"},
    {"a.b=1", MESH_ERR_PARSE, NULL},
    {"a%b=1", MESH_ERR_PARSE, NULL},
    /* A repeated key keeps its first (left-most) member. */
    {"a=1,a=2", 3, "a=1"},
    {"a=1,b=2,a=3", 7, "a=1,b=2"},
    {" a=1 , b=2 ,a=1, b=9", 7, "a=1,b=2"},
    {"t@s=1,t@s=2,t=3", 9, "t@s=1,t=3"},
    {"a=1,a=x y,a=", MESH_ERR_PARSE, NULL}, /* still validated */
    {"a=", MESH_ERR_PARSE, NULL},         /* empty value */
    {"a=b ", 3, "a=b"},                   /* trailing OWS is not the value */
    {"a=b=c", MESH_ERR_PARSE, NULL},
    {"a=b,c", MESH_ERR_PARSE, NULL},
    {"a =b", MESH_ERR_PARSE, NULL},       /* no OWS around '=' */
    {"a=\x7f", MESH_ERR_PARSE, NULL},
    {"a=\x01", MESH_ERR_PARSE, NULL},
    {"a=\xc3\xa9", MESH_ERR_PARSE, NULL}, /* non-ASCII */
    {"=1", MESH_ERR_PARSE, NULL},
};

static void test_mesh_tracestate_parse(void) {
  char out[MESH_TRACESTATE_MAX + 1];
  for (size_t i = 0; i < sizeof ts_cases / sizeof ts_cases[0]; i++) {
    const struct ts_case *tc = &ts_cases[i];
    int rc = mesh_tracestate_parse(tc->in, strlen(tc->in), out, sizeof out);
    if (rc != tc->rc)
      fprintf(stderr, "case %zu \"%s\": rc=%d want %d\n", i, tc->in, rc,
              tc->rc);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (rc >= 0 && tc->out)
      CU_ASSERT_STRING_EQUAL(out, tc->out);
  }
}

/* Key length: 256 characters at most (1 + 255). */
static void test_tracestate_key_length(void) {
  char in[600], out[MESH_TRACESTATE_MAX + 1];
  memset(in, 'k', 256);
  memcpy(in + 256, "=v", 3);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  258);
  memset(in, 'k', 257);
  memcpy(in + 257, "=v", 3);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  MESH_ERR_PARSE);
  /* 241 + "@" + 14: Level 1's longest multi-tenant key */
  memset(in, 't', 241);
  in[241] = '@';
  memset(in + 242, 's', 14);
  memcpy(in + 256, "=v", 3);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  258);
  /* 32 distinct keys plus repeats are fine; a 33rd distinct key is not */
  size_t o = 0;
  for (int i = 0; i < 32; i++)
    o += (size_t)snprintf(in + o, sizeof in - o, "%sk%d=1", i ? "," : "", i);
  o += (size_t)snprintf(in + o, sizeof in - o, ",k0=2,k5=3");
  int n = mesh_tracestate_parse(in, o, out, sizeof out);
  CU_ASSERT(n > 0);
  CU_ASSERT_PTR_NULL(strstr(out, "k0=2"));
  snprintf(in + o, sizeof in - o, ",k32=1");
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  MESH_ERR_PARSE);
}

static void test_mesh_tracestate_limits(void) {
  char in[4096], out[MESH_TRACESTATE_MAX + 1], k[300], v[300];
  /* 32 members are fine, 33 invalidate the whole value. */
  size_t o = 0;
  for (int i = 0; i < 33; i++)
    o += (size_t)snprintf(in + o, sizeof in - o, "%sk%d=v", i ? "," : "", i);
  const char *last = strrchr(in, ',');
  CU_ASSERT(mesh_tracestate_parse(in, (size_t)(last - in), out, sizeof out) >
            0);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  MESH_ERR_PARSE);
  /* Key up to 256 characters, value up to 256. */
  memset(k, 'k', 256);
  k[256] = '\0';
  snprintf(in, sizeof in, "%s=v", k);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out), 258);
  snprintf(in, sizeof in, "%sk=v", k);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  MESH_ERR_PARSE);
  memset(v, 'v', 256);
  v[256] = '\0';
  snprintf(in, sizeof in, "a=%s", v);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out), 258);
  snprintf(in, sizeof in, "a=%sv", v);
  CU_ASSERT_EQUAL(mesh_tracestate_parse(in, strlen(in), out, sizeof out),
                  MESH_ERR_PARSE);
  /* Over 512: members longer than 128 go first, then from the right. */
  memset(v, 'x', 200);
  v[200] = '\0';
  snprintf(in, sizeof in, "a=%s,big=%s,c=%.120s,d=%.120s,e=1", v, v, v, v);
  int n = mesh_tracestate_parse(in, strlen(in), out, sizeof out);
  CU_ASSERT(n > 0 && n <= MESH_TRACESTATE_MAX);
  char want[1024];
  snprintf(want, sizeof want, "a=%s,c=%.120s,d=%.120s,e=1", v, v, v);
  CU_ASSERT_STRING_EQUAL(out, want);
  /* Many short members over 512: the rightmost are dropped. */
  o = 0;
  for (int i = 0; i < 30; i++)
    o += (size_t)snprintf(in + o, sizeof in - o, "%sk%02d=%.20s", i ? "," : "",
                          i, v);
  n = mesh_tracestate_parse(in, strlen(in), out, sizeof out);
  CU_ASSERT(n > 480 && n <= MESH_TRACESTATE_MAX);
  CU_ASSERT_EQUAL(strncmp(out, in, (size_t)n), 0); /* a prefix of members */
  CU_ASSERT(in[n] == ',');
  /* Buffer too small is reported, not truncated silently. */
  CU_ASSERT_EQUAL(mesh_tracestate_parse("a=1", 3, out, 3), MESH_ERR_BUFFER);
}

/* ---- B3 ------------------------------------------------------------------- */

#define B3T "80f198ee56343ba864fe8b2a57d3eff7"
#define B3S "e457b5a2e4d86bd1"
#define B3P "05e3ac9a4f6e3b90"

struct b3_case {
  const char *in;
  int rc;
  int sampling;
  int has_ids;
  int t64;
  const char *out; /* formatted back, NULL = same as in */
};

static const struct b3_case b3_cases[] = {
    {B3T "-" B3S "-1-" B3P, MESH_OK, MESH_SAMPLING_ACCEPT, 1, 0, NULL},
    {B3T "-" B3S "-0", MESH_OK, MESH_SAMPLING_DENY, 1, 0, NULL},
    {B3T "-" B3S "-d", MESH_OK, MESH_SAMPLING_DEBUG, 1, 0, NULL},
    {B3T "-" B3S, MESH_OK, MESH_SAMPLING_DEFERRED, 1, 0, NULL},
    {B3S "-" B3S "-1", MESH_OK, MESH_SAMPLING_ACCEPT, 1, 1, NULL}, /* 64-bit */
    {"0", MESH_OK, MESH_SAMPLING_DENY, 0, 0, NULL},
    {"1", MESH_OK, MESH_SAMPLING_ACCEPT, 0, 0, NULL},
    {"d", MESH_OK, MESH_SAMPLING_DEBUG, 0, 0, NULL},
    {" " B3T "-" B3S "-1 ", MESH_OK, MESH_SAMPLING_ACCEPT, 1, 0,
     B3T "-" B3S "-1"},
    {"", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {"-", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {"2", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {"true", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T, MESH_ERR_PARSE, 0, 0, 0, NULL},                       /* no span */
    {B3T "-", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {"80F198EE56343BA864FE8B2A57D3EFF7-" B3S, MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "f-" B3S, MESH_ERR_PARSE, 0, 0, 0, NULL},              /* 33 hex */
    {"0" B3S "-" B3S, MESH_ERR_PARSE, 0, 0, 0, NULL},           /* 17 hex */
    {Z32 "-" B3S, MESH_ERR_PARSE, 0, 0, 0, NULL},
    {Z16 "-" B3S, MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" Z16, MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-2", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-true", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-1-" Z16, MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-1-05e3ac9a4f6e3b9", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-1-" B3P "-x", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-e457b5a2e4d86bd1x", MESH_ERR_PARSE, 0, 0, 0, NULL},
    {B3T "-" B3S "-1-" B3P "-", MESH_ERR_PARSE, 0, 0, 0, NULL},
};

static void test_mesh_b3_parse(void) {
  for (size_t i = 0; i < sizeof b3_cases / sizeof b3_cases[0]; i++) {
    const struct b3_case *tc = &b3_cases[i];
    mesh_trace_ctx_t ctx;
    memset(&ctx, 0xAA, sizeof ctx);
    int rc = mesh_b3_parse(tc->in, strlen(tc->in), &ctx);
    if (rc != tc->rc)
      fprintf(stderr, "case %zu \"%s\": rc=%d want %d\n", i, tc->in, rc,
              tc->rc);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (rc != MESH_OK) {
      CU_ASSERT_EQUAL(ctx.has_ids, 0xAA);
      continue;
    }
    CU_ASSERT_EQUAL(ctx.sampling, tc->sampling);
    CU_ASSERT_EQUAL(ctx.has_ids, tc->has_ids);
    CU_ASSERT_EQUAL(ctx.trace_id_64, tc->t64);
    CU_ASSERT_STRING_EQUAL(ctx.tracestate, "");
    char buf[80];
    CU_ASSERT(mesh_b3_format(&ctx, buf, sizeof buf) > 0);
    CU_ASSERT_STRING_EQUAL(buf, tc->out ? tc->out : tc->in);
  }
  /* A 64-bit id is the low half of a 128-bit one (for traceparent). */
  mesh_trace_ctx_t ctx;
  CU_ASSERT_EQUAL(mesh_b3_parse(B3S "-" B3S, 33, &ctx), MESH_OK);
  char tp[64];
  CU_ASSERT_EQUAL(mesh_traceparent_format(&ctx, tp, sizeof tp), 55);
  CU_ASSERT_STRING_EQUAL(tp, "00-" Z16 B3S "-" B3S "-00");
  char small[10];
  CU_ASSERT_EQUAL(mesh_b3_format(&ctx, small, sizeof small), MESH_ERR_BUFFER);
}

/* ---- carriers ---------------------------------------------------------------- */

typedef struct carrier {
  size_t n;
  char key[16][32];
  char val[16][600];
} carrier_t;

static const char *getter(const char *key, void *user) {
  carrier_t *c = user;
  for (size_t i = 0; i < c->n; i++)
    if (strcasecmp(c->key[i], key) == 0)
      return c->val[i];
  return NULL;
}

static int setter(const char *key, const char *value, void *user) {
  carrier_t *c = user;
  if (c->n == 16)
    return -1;
  mesh__strlcpy(c->key[c->n], key, sizeof c->key[0]);
  mesh__strlcpy(c->val[c->n], value, sizeof c->val[0]);
  c->n++;
  return 0;
}

static int failing_setter(const char *key, const char *value, void *user) {
  (void)key;
  (void)value;
  (void)user;
  return 1;
}

static void put(carrier_t *c, const char *k, const char *v) {
  setter(k, v, c);
}

static void test_mesh_trace_extract(void) {
  unsigned all = MESH_PROPAGATE_TRACECONTEXT | MESH_PROPAGATE_B3 |
                 MESH_PROPAGATE_B3_MULTI;
  mesh_trace_ctx_t ctx;
  carrier_t c = {0};
  CU_ASSERT_EQUAL(mesh_trace_extract(all, getter, &c, &ctx),
                  MESH_ERR_NOT_FOUND);
  /* W3C with tracestate; header names are matched without case. */
  put(&c, "TraceParent", "00-" TID "-" SID "-01");
  put(&c, "tracestate", "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE");
  put(&c, "b3", B3T "-" B3S "-0");
  CU_ASSERT_EQUAL(mesh_trace_extract(all, getter, &c, &ctx), MESH_OK);
  char t[33];
  hex(ctx.trace_id, 16, t);
  CU_ASSERT_STRING_EQUAL(t, TID); /* W3C wins */
  CU_ASSERT_STRING_EQUAL(ctx.tracestate,
                         "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  /* Only B3 enabled: the b3 header is used. */
  CU_ASSERT_EQUAL(mesh_trace_extract(MESH_PROPAGATE_B3, getter, &c, &ctx),
                  MESH_OK);
  hex(ctx.trace_id, 16, t);
  CU_ASSERT_STRING_EQUAL(t, B3T);
  CU_ASSERT_EQUAL(ctx.sampling, MESH_SAMPLING_DENY);
  /* Invalid traceparent falls through to a valid b3. */
  mesh__strlcpy(c.val[0], "00-" TID "-" SID "-01-x", sizeof c.val[0]);
  CU_ASSERT_EQUAL(mesh_trace_extract(all, getter, &c, &ctx), MESH_OK);
  hex(ctx.trace_id, 16, t);
  CU_ASSERT_STRING_EQUAL(t, B3T);
  /* ... and alone it is a parse error (start a new trace). */
  CU_ASSERT_EQUAL(mesh_trace_extract(MESH_PROPAGATE_TRACECONTEXT, getter, &c,
                                     &ctx),
                  MESH_ERR_PARSE);
  /* A repeated key keeps its first member. */
  mesh__strlcpy(c.val[0], "00-" TID "-" SID "-01", sizeof c.val[0]);
  mesh__strlcpy(c.val[1], "a=1,b=2,a=2", sizeof c.val[1]);
  CU_ASSERT_EQUAL(mesh_trace_extract(all, getter, &c, &ctx), MESH_OK);
  CU_ASSERT_STRING_EQUAL(ctx.tracestate, "a=1,b=2");
  /* An invalid tracestate is dropped, the traceparent kept. */
  mesh__strlcpy(c.val[1], "a=1,A=2", sizeof c.val[1]);
  CU_ASSERT_EQUAL(mesh_trace_extract(all, getter, &c, &ctx), MESH_OK);
  CU_ASSERT_STRING_EQUAL(ctx.tracestate, "");
  CU_ASSERT_EQUAL(ctx.has_ids, 1);
  CU_ASSERT_EQUAL(mesh_trace_extract(all, NULL, &c, &ctx),
                  MESH_ERR_INVALID_ARG);
}

struct multi_case {
  const char *tid, *sid, *pid, *sampled, *flags;
  int rc, sampling, has_ids;
};

static const struct multi_case multi_cases[] = {
    {B3T, B3S, B3P, "1", NULL, MESH_OK, MESH_SAMPLING_ACCEPT, 1},
    {B3T, B3S, NULL, "0", NULL, MESH_OK, MESH_SAMPLING_DENY, 1},
    {B3T, B3S, NULL, "true", NULL, MESH_OK, MESH_SAMPLING_ACCEPT, 1},
    {B3T, B3S, NULL, "false", NULL, MESH_OK, MESH_SAMPLING_DENY, 1},
    {B3T, B3S, NULL, NULL, "1", MESH_OK, MESH_SAMPLING_DEBUG, 1},
    {B3T, B3S, NULL, "0", "1", MESH_OK, MESH_SAMPLING_DEBUG, 1},
    {B3S, B3S, NULL, NULL, NULL, MESH_OK, MESH_SAMPLING_DEFERRED, 1},
    {NULL, NULL, NULL, "0", NULL, MESH_OK, MESH_SAMPLING_DENY, 0},
    {NULL, NULL, NULL, NULL, "1", MESH_OK, MESH_SAMPLING_DEBUG, 0},
    {NULL, NULL, NULL, NULL, NULL, MESH_ERR_NOT_FOUND, 0, 0},
    {B3T, NULL, NULL, "1", NULL, MESH_ERR_PARSE, 0, 0},
    {NULL, B3S, NULL, "1", NULL, MESH_ERR_PARSE, 0, 0},
    {NULL, NULL, B3P, "1", NULL, MESH_ERR_PARSE, 0, 0},
    {B3T, B3S, NULL, "yes", NULL, MESH_ERR_PARSE, 0, 0},
    /* X-B3-Flags other than "1" are ignored, not an error */
    {B3T, B3S, NULL, NULL, "2", MESH_OK, MESH_SAMPLING_DEFERRED, 1},
    {B3T, B3S, NULL, NULL, "0", MESH_OK, MESH_SAMPLING_DEFERRED, 1},
    {B3T, B3S, NULL, "1", "0", MESH_OK, MESH_SAMPLING_ACCEPT, 1},
    {B3T, B3S, NULL, "0", "true", MESH_OK, MESH_SAMPLING_DENY, 1},
    {B3T, B3S, NULL, "1", " debug ", MESH_OK, MESH_SAMPLING_ACCEPT, 1},
    {B3T, B3S, NULL, NULL, " 1 ", MESH_OK, MESH_SAMPLING_DEBUG, 1},
    {NULL, NULL, NULL, NULL, "0", MESH_ERR_NOT_FOUND, 0, 0},
    {NULL, NULL, NULL, "1", "x", MESH_OK, MESH_SAMPLING_ACCEPT, 0},
    {"80F198EE56343BA864FE8B2A57D3EFF7", B3S, NULL, NULL, NULL,
     MESH_ERR_PARSE, 0, 0},
    {B3T, Z16, NULL, NULL, NULL, MESH_ERR_PARSE, 0, 0},
    {B3T, B3S, Z16, NULL, NULL, MESH_ERR_PARSE, 0, 0},
    {B3T, B3S "0", NULL, NULL, NULL, MESH_ERR_PARSE, 0, 0},
};

static void test_b3_multi_extract(void) {
  for (size_t i = 0; i < sizeof multi_cases / sizeof multi_cases[0]; i++) {
    const struct multi_case *tc = &multi_cases[i];
    carrier_t c = {0};
    if (tc->tid)
      put(&c, "X-B3-TraceId", tc->tid);
    if (tc->sid)
      put(&c, "X-B3-SpanId", tc->sid);
    if (tc->pid)
      put(&c, "X-B3-ParentSpanId", tc->pid);
    if (tc->sampled)
      put(&c, "X-B3-Sampled", tc->sampled);
    if (tc->flags)
      put(&c, "X-B3-Flags", tc->flags);
    mesh_trace_ctx_t ctx;
    int rc = mesh_trace_extract(MESH_PROPAGATE_B3_MULTI, getter, &c, &ctx);
    if (rc != tc->rc)
      fprintf(stderr, "multi case %zu: rc=%d want %d\n", i, rc, tc->rc);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (rc != MESH_OK)
      continue;
    CU_ASSERT_EQUAL(ctx.sampling, tc->sampling);
    CU_ASSERT_EQUAL(ctx.has_ids, tc->has_ids);
    /* Round trip through inject. */
    carrier_t out = {0};
    CU_ASSERT_EQUAL(
        mesh_trace_inject(&ctx, MESH_PROPAGATE_B3_MULTI, setter, &out),
        MESH_OK);
    mesh_trace_ctx_t back;
    CU_ASSERT_EQUAL(
        mesh_trace_extract(MESH_PROPAGATE_B3_MULTI, getter, &out, &back),
        MESH_OK);
    CU_ASSERT_EQUAL(memcmp(back.trace_id, ctx.trace_id, 16), 0);
    CU_ASSERT_EQUAL(memcmp(back.span_id, ctx.span_id, 8), 0);
    CU_ASSERT_EQUAL(memcmp(back.parent_span_id, ctx.parent_span_id, 8), 0);
    CU_ASSERT_EQUAL(back.sampling, ctx.sampling);
    if (tc->tid)
      CU_ASSERT_STRING_EQUAL(getter("x-b3-traceid", &out), tc->tid);
  }
}

static void test_mesh_trace_inject(void) {
  mesh_trace_ctx_t ctx;
  const char *tp = "00-" TID "-" SID "-01";
  CU_ASSERT_EQUAL_FATAL(mesh_traceparent_parse(tp, strlen(tp), &ctx), MESH_OK);
  mesh__strlcpy(ctx.tracestate, "rojo=1", sizeof ctx.tracestate);
  carrier_t c = {0};
  CU_ASSERT_EQUAL(mesh_trace_inject(&ctx,
                                    MESH_PROPAGATE_TRACECONTEXT |
                                        MESH_PROPAGATE_B3 |
                                        MESH_PROPAGATE_B3_MULTI,
                                    setter, &c),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(getter("traceparent", &c), tp);
  CU_ASSERT_STRING_EQUAL(getter("tracestate", &c), "rojo=1");
  CU_ASSERT_STRING_EQUAL(getter("b3", &c), TID "-" SID "-1");
  CU_ASSERT_STRING_EQUAL(getter("x-b3-traceid", &c), TID);
  CU_ASSERT_STRING_EQUAL(getter("x-b3-spanid", &c), SID);
  CU_ASSERT_STRING_EQUAL(getter("x-b3-sampled", &c), "1");
  CU_ASSERT_PTR_NULL(getter("x-b3-parentspanid", &c));
  CU_ASSERT_EQUAL(
      mesh_trace_inject(&ctx, MESH_PROPAGATE_TRACECONTEXT, failing_setter,
                        NULL),
      MESH_ERR_IO);
  /* A sampling-only context cannot become a traceparent. */
  CU_ASSERT_EQUAL(mesh_b3_parse("0", 1, &ctx), MESH_OK);
  carrier_t d = {0};
  CU_ASSERT_EQUAL(
      mesh_trace_inject(&ctx, MESH_PROPAGATE_TRACECONTEXT, setter, &d),
      MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_trace_inject(&ctx, MESH_PROPAGATE_B3, setter, &d),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(getter("b3", &d), "0");
}

/* ---- samplers -------------------------------------------------------------- */

static void test_mesh__sampler_decide(void) {
  static const struct {
    int type;
    bool none, sampled, not_sampled;
  } cases[] = {
      {MESH__SAMPLER_ALWAYS_ON, true, true, true},
      {MESH__SAMPLER_ALWAYS_OFF, false, false, false},
      {MESH__SAMPLER_PB_ALWAYS_ON, true, true, false},
      {MESH__SAMPLER_PB_ALWAYS_OFF, false, true, false},
  };
  uint8_t tid[16];
  mesh__random_id(tid, 16);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh__sampler_t s;
    mesh__sampler_init(&s, cases[i].type, 0.5);
    CU_ASSERT_EQUAL(mesh__sampler_decide(&s, tid, MESH__PARENT_NONE),
                    cases[i].none);
    CU_ASSERT_EQUAL(mesh__sampler_decide(&s, tid, MESH__PARENT_SAMPLED),
                    cases[i].sampled);
    CU_ASSERT_EQUAL(mesh__sampler_decide(&s, tid, MESH__PARENT_NOT_SAMPLED),
                    cases[i].not_sampled);
  }
  /* traceidratio looks at the low 8 bytes only, deterministically. */
  uint8_t lo[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0,
                    0, 0, 0, 0, 1};
  uint8_t hi[16] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff,
                    0xff, 0xff, 0xff};
  mesh__sampler_t r;
  mesh__sampler_init(&r, MESH__SAMPLER_TRACEIDRATIO, 0.01);
  CU_ASSERT_TRUE(mesh__sampler_decide(&r, lo, MESH__PARENT_NOT_SAMPLED));
  CU_ASSERT_FALSE(mesh__sampler_decide(&r, hi, MESH__PARENT_SAMPLED));
  mesh__sampler_init(&r, MESH__SAMPLER_TRACEIDRATIO, 1.0);
  CU_ASSERT_TRUE(mesh__sampler_decide(&r, hi, MESH__PARENT_NONE));
  mesh__sampler_init(&r, MESH__SAMPLER_TRACEIDRATIO, 0.0);
  CU_ASSERT_FALSE(mesh__sampler_decide(&r, lo, MESH__PARENT_NONE));
  /* parent-based ratio: the parent wins, roots use the ratio */
  mesh__sampler_init(&r, MESH__SAMPLER_PB_TRACEIDRATIO, 0.01);
  CU_ASSERT_TRUE(mesh__sampler_decide(&r, hi, MESH__PARENT_SAMPLED));
  CU_ASSERT_FALSE(mesh__sampler_decide(&r, lo, MESH__PARENT_NOT_SAMPLED));
  CU_ASSERT_TRUE(mesh__sampler_decide(&r, lo, MESH__PARENT_NONE));
  CU_ASSERT_FALSE(mesh__sampler_decide(&r, hi, MESH__PARENT_NONE));
  /* The ratio holds over many random ids (binomial, 10k draws). */
  mesh__sampler_init(&r, MESH__SAMPLER_TRACEIDRATIO, 0.25);
  int kept = 0;
  for (int i = 0; i < 10000; i++) {
    mesh__random_id(tid, 16);
    kept += mesh__sampler_decide(&r, tid, MESH__PARENT_NONE);
  }
  CU_ASSERT(kept > 2300 && kept < 2700);
}

/* ---- spans and hooks ------------------------------------------------------- */

typedef struct hook_log {
  int starts, ends;
  char last_name[64];
  char last_service[64];
  mesh_trace_ctx_t last_ctx;
  int last_status;
  char last_msg[128];
  uint64_t start_ns, end_ns;
  size_t nattrs;
} hook_log_t;

static void on_start(const mesh_span_t *s, void *user) {
  hook_log_t *h = user;
  h->starts++;
  CU_ASSERT_EQUAL(mesh_span_end_ns(s), 0);
}

static void on_end(const mesh_span_t *s, void *user) {
  hook_log_t *h = user;
  h->ends++;
  mesh__strlcpy(h->last_name, mesh_span_name(s), sizeof h->last_name);
  if (mesh_span_attr_text(s, "mesh.service", h->last_service,
                          sizeof h->last_service) < 0)
    h->last_service[0] = '\0';
  mesh_span_context(s, &h->last_ctx);
  const char *msg;
  h->last_status = mesh_span_status(s, &msg);
  mesh__strlcpy(h->last_msg, msg, sizeof h->last_msg);
  h->start_ns = mesh_span_start_ns(s);
  h->end_ns = mesh_span_end_ns(s);
  h->nattrs = mesh_span_attr_count(s);
}

static mesh_t *tracing_mesh(const char *tracing) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"name\":\"frontend\",\"worker\":{\"mode\":\"external\"},"
           "\"tracing\":%s}",
           tracing);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

static void test_mesh__span_start(void) {
  mesh_t *m = tracing_mesh("{\"sampler\":\"always_on\","
                           "\"propagation\":[\"tracecontext\",\"b3\"]}");
  hook_log_t h = {0};
  CU_ASSERT_EQUAL(mesh_set_span_hooks(m, on_start, on_end, &h), MESH_OK);
  mesh__span_t call, try_;
  mesh__span_start(m, &call, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  CU_ASSERT_TRUE(mesh__span_recording(&call));
  CU_ASSERT_EQUAL(h.starts, 1);
  mesh__span_attr_str(&call, MESH__ATTR_SERVICE, "payments");
  mesh__span_start(m, &try_, "mesh.try", MESH_SPAN_CLIENT, &call, NULL);
  mesh__span_attr_str(&try_, MESH__ATTR_SERVER_ADDRESS, "127.10.0.1");
  mesh__span_attr_int(&try_, MESH__ATTR_SERVER_PORT, 8443);
  mesh__span_attr_int(&try_, MESH__ATTR_SERVER_PORT, 9443); /* replaces */
  mesh__span_attr_bool(&try_, MESH__ATTR_TLS_RESUMED, true);
  mesh__span_attr_double(&try_, "mesh.weight", 0.5);
  mesh__span_event(&try_, "connected");
  mesh__span_fail(&try_, MESH_ERR_TIMEOUT, NULL);
  /* The try is a child of the call in the same trace. */
  CU_ASSERT_EQUAL(memcmp(try_.trace_id, call.trace_id, 16), 0);
  CU_ASSERT_EQUAL(memcmp(try_.parent_id, call.span_id, 8), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(try_.span_id, call.span_id, 8), 0);
  /* Injection carries the try's span id as the parent downstream. */
  carrier_t c = {0};
  CU_ASSERT_EQUAL(mesh__span_inject(&try_, setter, &c), MESH_OK);
  char want[64], t[33], s[17];
  hex(try_.trace_id, 16, t);
  hex(try_.span_id, 8, s);
  /* 03: sampled, and random (Level 2): the library's trace ids are */
  snprintf(want, sizeof want, "00-%s-%s-03", t, s);
  CU_ASSERT_STRING_EQUAL(getter("traceparent", &c), want);
  CU_ASSERT_PTR_NOT_NULL(getter("b3", &c));
  CU_ASSERT_PTR_NULL(getter("x-b3-traceid", &c));
  mesh__span_end(&try_);
  CU_ASSERT_EQUAL(h.ends, 1);
  CU_ASSERT_STRING_EQUAL(h.last_name, "mesh.try");
  CU_ASSERT_EQUAL(h.last_status, MESH_SPAN_STATUS_ERROR);
  CU_ASSERT_STRING_EQUAL(h.last_msg, mesh_strerror(MESH_ERR_TIMEOUT));
  CU_ASSERT_EQUAL(h.nattrs, 5); /* address, port, resumed, weight, error */
  CU_ASSERT(h.end_ns >= h.start_ns && h.start_ns > 0);
  CU_ASSERT_EQUAL(memcmp(h.last_ctx.parent_span_id, call.span_id, 8), 0);
  mesh__span_end(&try_); /* idempotent */
  CU_ASSERT_EQUAL(h.ends, 1);
  mesh__span_status(&call, MESH_SPAN_STATUS_OK, "ignored");
  mesh__span_end(&call);
  CU_ASSERT_EQUAL(h.ends, 2);
  CU_ASSERT_STRING_EQUAL(h.last_service, "payments");
  CU_ASSERT_EQUAL(h.last_status, MESH_SPAN_STATUS_OK);
  CU_ASSERT_STRING_EQUAL(h.last_msg, "");
  CU_ASSERT(mesh__is_zero(h.last_ctx.parent_span_id, 8));
  /* The recent list has both, newest first. */
  mesh__recent_t rec[4];
  CU_ASSERT_EQUAL(mesh__tracer_recent(mesh__tracer_get(m), rec, 4), 2);
  CU_ASSERT_STRING_EQUAL(rec[0].name, "mesh.call");
  CU_ASSERT_STRING_EQUAL(rec[0].target, "payments");
  CU_ASSERT_STRING_EQUAL(rec[1].name, "mesh.try");
  CU_ASSERT_STRING_EQUAL(rec[1].error, "MESH_ERR_TIMEOUT");
  CU_ASSERT_STRING_EQUAL(rec[1].target, "127.10.0.1");
  /* A zeroed span that never started ends as a no-op. */
  mesh__span_t never = {0};
  mesh__span_end(&never);
  CU_ASSERT_EQUAL(h.ends, 2);
  mesh_free(m);
}

static void test_mesh__span_start_remote_parent(void) {
  mesh_t *m = tracing_mesh("{\"sampler\":\"parentbased_always_off\"}");
  hook_log_t h = {0};
  mesh_set_span_hooks(m, NULL, on_end, &h);
  /* A sampled remote parent is followed even though roots are off. */
  carrier_t c = {0};
  put(&c, "traceparent", "00-" TID "-" SID "-01");
  put(&c, "tracestate", "congo=t61rcWkgMzE");
  mesh_trace_ctx_t remote;
  CU_ASSERT_EQUAL(mesh_trace_extract(mesh_trace_formats(m), getter, &c,
                                     &remote),
                  MESH_OK);
  mesh__span_t in;
  mesh__span_start(m, &in, "mesh.request", MESH_SPAN_SERVER, NULL, &remote);
  CU_ASSERT_TRUE(in.sampled);
  char t[33], p[17];
  hex(in.trace_id, 16, t);
  hex(in.parent_id, 8, p);
  CU_ASSERT_STRING_EQUAL(t, TID);
  CU_ASSERT_STRING_EQUAL(p, SID);
  /* tracestate travels to the children and downstream */
  mesh__span_t child;
  mesh__span_start(m, &child, "mesh.call", MESH_SPAN_CLIENT, &in, NULL);
  carrier_t out = {0};
  mesh__span_inject(&child, setter, &out);
  CU_ASSERT_STRING_EQUAL(getter("tracestate", &out), "congo=t61rcWkgMzE");
  mesh__span_end(&child);
  mesh__span_end(&in);
  CU_ASSERT_EQUAL(h.ends, 2);
  CU_ASSERT_STRING_EQUAL(h.last_ctx.tracestate, "congo=t61rcWkgMzE");
  /* Unsampled remote parent: not recorded, no hook, flag 00 downstream. */
  put(&c, "x", "y");
  mesh__strlcpy(c.val[0], "00-" TID "-" SID "-00", sizeof c.val[0]);
  CU_ASSERT_EQUAL(mesh_trace_extract(mesh_trace_formats(m), getter, &c,
                                     &remote),
                  MESH_OK);
  mesh__span_start(m, &in, "mesh.request", MESH_SPAN_SERVER, NULL, &remote);
  CU_ASSERT_FALSE(in.sampled);
  CU_ASSERT_FALSE(mesh__span_recording(&in));
  mesh__span_attr_str(&in, "k", "v"); /* no-op, no crash */
  carrier_t out2 = {0};
  mesh__span_inject(&in, setter, &out2);
  CU_ASSERT_PTR_NOT_NULL(strstr(getter("traceparent", &out2), "-00"));
  mesh__span_end(&in);
  CU_ASSERT_EQUAL(h.ends, 2);
  /* A root with roots off: not sampled. */
  mesh__span_start(m, &in, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  CU_ASSERT_FALSE(in.sampled);
  mesh__span_end(&in);
  /* B3 debug forces sampling and is propagated as debug. */
  mesh_trace_ctx_t dbg;
  CU_ASSERT_EQUAL(mesh_b3_parse(B3T "-" B3S "-d", 51, &dbg), MESH_OK);
  mesh__span_start(m, &in, "mesh.request", MESH_SPAN_SERVER, NULL, &dbg);
  mesh__span_start(m, &child, "mesh.call", MESH_SPAN_CLIENT, &in, NULL);
  CU_ASSERT_TRUE(child.sampled);
  mesh_trace_ctx_t cc;
  mesh__span_context(&child, &cc);
  CU_ASSERT_EQUAL(cc.sampling, MESH_SAMPLING_DEBUG);
  mesh__span_end(&child);
  mesh__span_end(&in);
  CU_ASSERT_EQUAL(h.ends, 4);
  /* The counters saw every span. */
  char *text = NULL;
  mesh__metrics_render(m, &text, NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_trace_spans_total{sampled=\"true\"} 4\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_trace_spans_total{sampled=\"false\"} 2\n"));
  free(text);
  mesh_free(m);
}

/* The random-trace-id flag through spans: set on the traces we start,
 * inherited by children, kept from a remote W3C parent that has it and
 * not invented for one that has not (Level 1 peer) or for B3. */
static void test_mesh__span_random_flag(void) {
  mesh_t *m = tracing_mesh("{\"sampler\":\"always_on\"}");
  hook_log_t h = {0};
  mesh_set_span_hooks(m, NULL, on_end, &h);
  mesh__span_t root, child;
  mesh__span_start(m, &root, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  mesh__span_start(m, &child, "mesh.try", MESH_SPAN_CLIENT, &root, NULL);
  mesh_trace_ctx_t cc;
  mesh__span_context(&child, &cc);
  CU_ASSERT_EQUAL(cc.flags, MESH_TRACE_FLAG_SAMPLED | MESH_TRACE_FLAG_RANDOM);
  mesh__span_end(&child);
  /* the hook's view carries it too */
  CU_ASSERT_EQUAL(h.last_ctx.flags & MESH_TRACE_FLAG_RANDOM,
                  MESH_TRACE_FLAG_RANDOM);
  mesh__span_end(&root);
  static const struct {
    const char *tp; /* NULL: b3 */
    const char *down;
  } cases[] = {
      {"00-" TID "-" SID "-01", "-01"}, /* Level 1 peer: no random */
      {"00-" TID "-" SID "-03", "-03"},
      {"00-" TID "-" SID "-02", "-03"}, /* sampled here (always_on) */
      {"00-" TID "-" SID "-07", "-03"}, /* undefined bit 0x04 dropped */
      {NULL, "-01"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    carrier_t c = {0};
    if (cases[i].tp)
      put(&c, "traceparent", cases[i].tp);
    else
      put(&c, "b3", B3T "-" B3S "-1");
    mesh_trace_ctx_t remote;
    CU_ASSERT_EQUAL_FATAL(mesh_trace_extract(MESH_PROPAGATE_TRACECONTEXT |
                                                 MESH_PROPAGATE_B3,
                                             getter, &c, &remote),
                          MESH_OK);
    mesh__span_t in, out;
    mesh__span_start(m, &in, "mesh.request", MESH_SPAN_SERVER, NULL, &remote);
    mesh__span_start(m, &out, "mesh.call", MESH_SPAN_CLIENT, &in, NULL);
    carrier_t o = {0};
    CU_ASSERT_EQUAL(mesh__span_inject(&out, setter, &o), MESH_OK);
    const char *tp = getter("traceparent", &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tp);
    if (strcmp(tp + 52, cases[i].down) != 0)
      fprintf(stderr, "\n  %s: downstream %s, want ...%s\n",
              cases[i].tp ? cases[i].tp : "b3", tp, cases[i].down);
    CU_ASSERT_STRING_EQUAL(tp + 52, cases[i].down);
    mesh__span_end(&out);
    mesh__span_end(&in);
  }
  mesh_free(m);
}

/* Without hooks, exporters or admin nobody reads spans: not recorded. */
static void test_mesh__span_unrecorded_without_consumers(void) {
  mesh_t *m = tracing_mesh("{\"sampler\":\"always_on\"}");
  mesh__span_t s;
  mesh__span_start(m, &s, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  CU_ASSERT_TRUE(s.sampled);
  CU_ASSERT_FALSE(mesh__span_recording(&s));
  mesh__span_end(&s);
  hook_log_t h = {0};
  mesh_set_span_hooks(m, on_start, NULL, &h);
  mesh__span_start(m, &s, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  CU_ASSERT_TRUE(mesh__span_recording(&s));
  mesh__span_end(&s);
  mesh_set_span_hooks(m, NULL, NULL, NULL);
  mesh__span_start(m, &s, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
  CU_ASSERT_FALSE(mesh__span_recording(&s));
  mesh__span_end(&s);
  CU_ASSERT_EQUAL(h.starts, 1);
  CU_ASSERT_EQUAL(mesh_set_span_hooks(NULL, NULL, NULL, NULL),
                  MESH_ERR_INVALID_ARG);
  mesh_free(m);
}

/* ---- record reuse (free list, per-record strings) --------------------------
 * Records go back to the tracer's free list when the last reference drops
 * (here: evicted from the recent list, by whichever thread ends a span) and
 * are reused by any thread.  "full" spans fill everything (more attributes
 * and events than fit, strings beyond the record's own space, an error
 * status, a tracestate); "bare" spans set nothing: the on_end hook checks
 * that a bare span shows nothing of a record's previous life, and that a
 * full span shows exactly its own values. */

#define REUSE_THREADS 2
#define REUSE_SPANS 1500 /* per thread, alternately full and bare */

typedef struct reuse_log {
  pthread_mutex_t mu;
  const void *seen[REUSE_THREADS * REUSE_SPANS];
  size_t nseen;
  _Atomic int bad, ends;
} reuse_log_t;

static void reuse_start(const mesh_span_t *s, void *user) {
  reuse_log_t *h = user;
  pthread_mutex_lock(&h->mu);
  if (h->nseen < REUSE_THREADS * REUSE_SPANS)
    h->seen[h->nseen++] = s;
  pthread_mutex_unlock(&h->mu);
}

static bool reuse_full_ok(const mesh_span_t *s, const char *name) {
  char want[64], got[64], key[32];
  const char *msg;
  mesh_trace_ctx_t ctx;
  mesh_span_context(s, &ctx);
  bool ok = strlen(name) == 300 && mesh_span_attr_count(s) == 24 &&
            s->dropped_attrs == 6 && s->nevents == 8 &&
            s->dropped_events == 2 &&
            mesh_span_status(s, &msg) == MESH_SPAN_STATUS_ERROR &&
            strlen(msg) == 200 && msg[0] == name[0] &&
            strcmp(ctx.tracestate, "k=v") == 0;
  for (int i = 0; ok && i < 24; i++) { /* value = name's first char + i */
    snprintf(key, sizeof key, "k%d", i);
    snprintf(want, sizeof want, "%c-%d", name[0], i);
    ok = mesh_span_attr_text(s, key, got, sizeof got) > 0 &&
         strcmp(s->attrs[i].key, key) == 0 && strcmp(got, want) == 0;
  }
  return ok;
}

static void reuse_end(const mesh_span_t *s, void *user) {
  reuse_log_t *h = user;
  const char *name = mesh_span_name(s), *msg;
  mesh_trace_ctx_t ctx;
  mesh_span_context(s, &ctx);
  bool ok;
  if (strcmp(name, "bare") == 0)
    ok = mesh_span_attr_count(s) == 0 && s->dropped_attrs == 0 &&
         s->nevents == 0 && s->dropped_events == 0 &&
         mesh_span_status(s, &msg) == MESH_SPAN_STATUS_UNSET &&
         strcmp(msg, "") == 0 && ctx.tracestate[0] == '\0';
  else
    ok = reuse_full_ok(s, name);
  if (!ok)
    atomic_fetch_add(&h->bad, 1);
  atomic_fetch_add(&h->ends, 1);
}

/* Attribute keys must outlive the span (borrowed): a static table. */
static const char *const reuse_keys[30] = {
    "k0",  "k1",  "k2",  "k3",  "k4",  "k5",  "k6",  "k7",  "k8",  "k9",
    "k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19",
    "k20", "k21", "k22", "k23", "k24", "k25", "k26", "k27", "k28", "k29"};

typedef struct reuse_job {
  mesh_t *m;
  char tag; /* this thread's letter, first char of names and values */
} reuse_job_t;

static void *reuse_thread(void *arg) {
  reuse_job_t *j = arg;
  mesh_trace_ctx_t remote; /* a sampled remote parent with a tracestate */
  memset(&remote, 0, sizeof remote);
  memset(remote.trace_id, 0x11, 16);
  memset(remote.span_id, 0x22, 8);
  remote.has_ids = 1;
  remote.flags = MESH_TRACE_FLAG_SAMPLED;
  remote.sampling = MESH_SAMPLING_ACCEPT;
  mesh__strlcpy(remote.tracestate, "k=v", sizeof remote.tracestate);
  char name[301], msg[201], v[32];
  memset(name, j->tag, 300);
  name[300] = '\0';
  memset(msg, j->tag, 200);
  msg[200] = '\0';
  for (int i = 0; i < REUSE_SPANS; i++) {
    mesh__span_t sp;
    if (i % 2) {
      mesh__span_start(j->m, &sp, "bare", MESH_SPAN_INTERNAL, NULL, NULL);
    } else {
      mesh__span_start(j->m, &sp, name, MESH_SPAN_CLIENT, NULL, &remote);
      for (int k = 0; k < 30; k++) {
        snprintf(v, sizeof v, "%c-%d", j->tag, k);
        if (k == 3) /* replaced: the first value must not show */
          mesh__span_attr_str(&sp, reuse_keys[k], "stale");
        mesh__span_attr_str(&sp, reuse_keys[k], v);
      }
      for (int k = 0; k < 10; k++)
        mesh__span_event(&sp, "ev");
      mesh__span_status(&sp, MESH_SPAN_STATUS_ERROR, msg);
    }
    mesh__span_end(&sp);
  }
  return NULL;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (const void *const *)a,
            y = (uintptr_t) * (const void *const *)b;
  return x < y ? -1 : x > y;
}

static void test_span_record_reuse(void) {
  mesh_t *m = tracing_mesh("{\"sampler\":\"always_on\"}");
  static reuse_log_t h;
  memset(&h, 0, sizeof h);
  pthread_mutex_init(&h.mu, NULL);
  CU_ASSERT_EQUAL(mesh_set_span_hooks(m, reuse_start, reuse_end, &h),
                  MESH_OK);
  pthread_t th[REUSE_THREADS];
  reuse_job_t jobs[REUSE_THREADS];
  for (int i = 0; i < REUSE_THREADS; i++) {
    jobs[i] = (reuse_job_t){m, (char)('a' + i)};
    CU_ASSERT_EQUAL_FATAL(
        pthread_create(&th[i], NULL, reuse_thread, &jobs[i]), 0);
  }
  for (int i = 0; i < REUSE_THREADS; i++)
    pthread_join(th[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&h.ends), REUSE_THREADS * REUSE_SPANS);
  CU_ASSERT_EQUAL(atomic_load(&h.bad), 0);
  /* Records were reused: far fewer distinct ones than spans (the recent
   * list holds 64, the rest cycle through the free list). */
  qsort(h.seen, h.nseen, sizeof h.seen[0], cmp_ptr);
  size_t distinct = 0;
  for (size_t i = 0; i < h.nseen; i++)
    distinct += i == 0 || h.seen[i] != h.seen[i - 1];
  CU_ASSERT_EQUAL(h.nseen, REUSE_THREADS * REUSE_SPANS);
  CU_ASSERT(distinct > 0 && distinct < 200);
  struct mesh__tracer *t = mesh__tracer_get(m);
  pthread_mutex_lock(&t->pool_mu);
  size_t pooled = t->pool_n;
  pthread_mutex_unlock(&t->pool_mu);
  CU_ASSERT(pooled > 0 && pooled <= MESH__SPAN_POOL_MAX);
  /* The recent list still formats the newest (kept by reference). */
  mesh__recent_t rec[2];
  CU_ASSERT_EQUAL(mesh__tracer_recent(t, rec, 2), 2);
  mesh_free(m); /* valgrind: every pooled record and heap string freed */
  pthread_mutex_destroy(&h.mu);
}

/* A span started while tracing is set up and ended after the tracer is gone
 * (tracing_fini runs in mesh_free before parts that may still hold open
 * spans): the record is freed, not returned to the freed tracer's free
 * list (valgrind/ASan stages: no invalid write, no leak). */
static void test_span_end_after_tracer_free(void) {
  mesh_t *m = tracing_mesh("{\"sampler\":\"always_on\"}");
  hook_log_t h = {0};
  CU_ASSERT_EQUAL(mesh_set_span_hooks(m, on_start, on_end, &h), MESH_OK);
  mesh__span_t sp;
  mesh__span_start(m, &sp, "mesh.late", MESH_SPAN_CLIENT, NULL, NULL);
  CU_ASSERT_TRUE(mesh__span_recording(&sp));
  mesh__span_attr_str(&sp, MESH__ATTR_SERVICE, "late");
  struct mesh__observe *o = atomic_load(&m->observe);
  struct mesh__tracer *t = atomic_exchange(&o->tracer, NULL); /* as fini */
  mesh__tracer_free(t);
  mesh__span_end(&sp);
  CU_ASSERT_EQUAL(h.ends, 0); /* no hook, recent list or export: gone */
  mesh_free(m);
}

static void test_tracing_config(void) {
  static const struct {
    const char *json;
    const char *msg;
  } bad[] = {
      {"{\"tracing\":{\"sampler\":\"sometimes\"}}", "tracing.sampler"},
      {"{\"tracing\":{\"ratio\":1.5}}", "tracing.ratio"},
      {"{\"tracing\":{\"propagation\":[\"jaeger\"]}}",
       "tracing.propagation[0]: unknown propagator"},
      {"{\"tracing\":{\"otlp\":{}}}", "tracing.otlp.endpoint: required"},
      {"{\"tracing\":{\"otlp\":{\"endpoint\":\"ftp://x\"}}}",
       "tracing.otlp.endpoint: expected an http"},
      {"{\"tracing\":{\"zipkin\":{\"endpoint\":\"http://x\",\"headers\":"
       "{\"a\":\"b\\r\\nc: d\"}}}}",
       "tracing.zipkin.headers.a"},
      {"{\"tracing\":{\"batch\":{\"max_size\":10,\"queue_size\":5}}}",
       "tracing.batch: max_size (10) must not exceed"},
      {"{\"tracing\":{\"retry\":{\"max_attempts\":0}}}",
       "tracing.retry.max_attempts"},
      {"{\"tracing\":{\"exporter\":\"otlp\"}}", "tracing.exporter: unknown key"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(bad[i].json, &m, &st), MESH_ERR_CONFIG);
    if (!strstr(st.message, bad[i].msg))
      fprintf(stderr, "case %zu: %s\n", i, st.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, bad[i].msg));
  }
  mesh_t *m = tracing_mesh("{\"propagation\":[\"b3multi\",\"tracecontext\"]}");
  CU_ASSERT_EQUAL(mesh_trace_formats(m),
                  MESH_PROPAGATE_B3_MULTI | MESH_PROPAGATE_TRACECONTEXT);
  mesh_free(m);
  m = tracing_mesh("{}");
  CU_ASSERT_EQUAL(mesh_trace_formats(m), MESH_PROPAGATE_TRACECONTEXT);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("trace", NULL, NULL);
  CU_add_test(s, "mesh_traceparent_parse", test_mesh_traceparent_parse);
  CU_add_test(s, "mesh_traceparent_format", test_mesh_traceparent_format);
  CU_add_test(s, "traceparent_flags_level2", test_traceparent_flags_level2);
  CU_add_test(s, "tracestate_key_length", test_tracestate_key_length);
  CU_add_test(s, "mesh__span_random_flag", test_mesh__span_random_flag);
  CU_add_test(s, "mesh_tracestate_parse", test_mesh_tracestate_parse);
  CU_add_test(s, "mesh_tracestate_limits", test_mesh_tracestate_limits);
  CU_add_test(s, "mesh_b3_parse", test_mesh_b3_parse);
  CU_add_test(s, "mesh_trace_extract", test_mesh_trace_extract);
  CU_add_test(s, "b3_multi_extract", test_b3_multi_extract);
  CU_add_test(s, "mesh_trace_inject", test_mesh_trace_inject);
  CU_add_test(s, "mesh__sampler_decide", test_mesh__sampler_decide);
  CU_add_test(s, "mesh__span_start", test_mesh__span_start);
  CU_add_test(s, "mesh__span_start_remote_parent",
              test_mesh__span_start_remote_parent);
  CU_add_test(s, "mesh__span_unrecorded_without_consumers",
              test_mesh__span_unrecorded_without_consumers);
  CU_add_test(s, "tracing_config", test_tracing_config);
  CU_add_test(s, "span_record_reuse", test_span_record_reuse);
  CU_add_test(s, "span_end_after_tracer_free",
              test_span_end_after_tracer_free);
}

int main(void) { return th_run_suites("trace", add); }

/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz trace context propagation: traceparent, tracestate, B3 single and
 * multi headers, extraction through a carrier and injection back.
 * Input: newline-separated header values, in this order: traceparent,
 * tracestate, b3, x-b3-traceid, x-b3-spanid, x-b3-parentspanid,
 * x-b3-sampled, x-b3-flags (an empty line is an absent header).
 * Properties: what parses formats and parses back to the same context; a
 * normalized tracestate is its own normal form; buffers one byte short
 * fail with MESH_ERR_BUFFER; inject then extract keeps the ids.
 * Issue 12, item 16: a formatted traceparent carries exactly the sampled
 * and random (Level 2) bits it was parsed with; a normalized tracestate
 * has no repeated key, and a tracestate repeated after itself ("s,s", as
 * two header fields joined) normalizes as s alone (first members win);
 * an X-B3-Flags value other than "1" changes nothing (ignored). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "fuzz.h"

#define NHDR 8
static const char *const names[NHDR] = {
    "traceparent",  "tracestate",        "b3",           "x-b3-traceid",
    "x-b3-spanid",  "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"};

/* A carrier: at most NHDR headers, values owned. */
struct carrier {
  char *v[NHDR];
};

static const char *get(const char *key, void *user) {
  struct carrier *c = user;
  for (int i = 0; i < NHDR; i++)
    if (strcmp(key, names[i]) == 0)
      return c->v[i];
  return NULL;
}

static int set(const char *key, const char *value, void *user) {
  struct carrier *c = user;
  for (int i = 0; i < NHDR; i++)
    if (strcmp(key, names[i]) == 0) {
      free(c->v[i]);
      c->v[i] = strdup(value);
      return c->v[i] ? 0 : 1;
    }
  return 1; /* a header the library must not write */
}

static void carrier_free(struct carrier *c) {
  for (int i = 0; i < NHDR; i++)
    free(c->v[i]);
}

/* The part of the context the formats carry (ids, flags, sampling). */
static int same_ids(const mesh_trace_ctx_t *a, const mesh_trace_ctx_t *b) {
  return memcmp(a->trace_id, b->trace_id, 16) == 0 &&
         memcmp(a->span_id, b->span_id, 8) == 0;
}

static void check_traceparent(const char *s) {
  mesh_trace_ctx_t a, b;
  if (mesh_traceparent_parse(s, strlen(s), &a) != MESH_OK)
    return;
  char buf[MESH_TRACEPARENT_LEN + 1];
  FUZZ_ASSERT(mesh_traceparent_format(&a, buf, sizeof buf) ==
              MESH_TRACEPARENT_LEN);
  FUZZ_ASSERT(mesh_traceparent_format(&a, buf, sizeof buf - 1) ==
              MESH_ERR_BUFFER);
  FUZZ_ASSERT(mesh_traceparent_format(&a, buf, sizeof buf) ==
              MESH_TRACEPARENT_LEN);
  FUZZ_ASSERT(mesh_traceparent_parse(buf, strlen(buf), &b) == MESH_OK);
  FUZZ_ASSERT(same_ids(&a, &b));
  FUZZ_ASSERT(b.flags ==
              (a.flags & (MESH_TRACE_FLAG_SAMPLED | MESH_TRACE_FLAG_RANDOM)));
}

/* No key twice in a normalized list. */
static void check_unique_keys(const char *out) {
  const char *keys[MESH_TRACESTATE_MAX_MEMBERS + 1];
  size_t lens[MESH_TRACESTATE_MAX_MEMBERS + 1], n = 0;
  for (const char *p = out; *p;) {
    size_t ml = strcspn(p, ",");
    const char *eq = memchr(p, '=', ml);
    FUZZ_ASSERT(eq != NULL && n <= MESH_TRACESTATE_MAX_MEMBERS);
    size_t kl = (size_t)(eq - p);
    for (size_t i = 0; i < n; i++)
      FUZZ_ASSERT(!(lens[i] == kl && memcmp(keys[i], p, kl) == 0));
    keys[n] = p;
    lens[n++] = kl;
    p += ml + (p[ml] == ',');
  }
}

/* s joined after itself normalizes as s does. */
static void check_tracestate_twice(const char *s, int n, const char *out) {
  size_t l = strlen(s);
  char *twice = malloc(2 * l + 2);
  if (!twice)
    return;
  memcpy(twice, s, l);
  twice[l] = ',';
  memcpy(twice + l + 1, s, l);
  twice[2 * l + 1] = '\0';
  char again[MESH_TRACESTATE_MAX + 1];
  int m = mesh_tracestate_parse(twice, 2 * l + 1, again, sizeof again);
  FUZZ_ASSERT(m == n && strcmp(out, again) == 0);
  free(twice);
}

static void check_tracestate(const char *s) {
  char out[MESH_TRACESTATE_MAX + 1], again[MESH_TRACESTATE_MAX + 1];
  int n = mesh_tracestate_parse(s, strlen(s), out, sizeof out);
  FUZZ_ASSERT(n == MESH_ERR_PARSE || (n >= 0 && n <= MESH_TRACESTATE_MAX));
  if (n < 0)
    return;
  FUZZ_ASSERT((size_t)n == strlen(out));
  int m = mesh_tracestate_parse(out, (size_t)n, again, sizeof again);
  FUZZ_ASSERT(m == n && strcmp(out, again) == 0);
  check_unique_keys(out);
  check_tracestate_twice(s, n, out);
  if (n > 0) {
    char *exact = malloc((size_t)n);
    if (exact)
      FUZZ_ASSERT(mesh_tracestate_parse(s, strlen(s), exact, (size_t)n) ==
                  MESH_ERR_BUFFER);
    free(exact);
  }
}

static void check_b3(const char *s) {
  mesh_trace_ctx_t a, b;
  if (mesh_b3_parse(s, strlen(s), &a) != MESH_OK)
    return;
  char buf[80];
  int n = mesh_b3_format(&a, buf, sizeof buf);
  FUZZ_ASSERT(n > 0 && (size_t)n == strlen(buf));
  FUZZ_ASSERT(mesh_b3_format(&a, buf, (size_t)n) == MESH_ERR_BUFFER);
  FUZZ_ASSERT(mesh_b3_format(&a, buf, sizeof buf) == n);
  FUZZ_ASSERT(mesh_b3_parse(buf, (size_t)n, &b) == MESH_OK);
  FUZZ_ASSERT(memcmp(&a, &b, offsetof(mesh_trace_ctx_t, tracestate)) == 0);
}

/* Inject in every format, extract each format alone: same ids. */
static void check_roundtrip(const mesh_trace_ctx_t *ctx) {
  static const unsigned fmts[] = {MESH_PROPAGATE_TRACECONTEXT,
                                  MESH_PROPAGATE_B3, MESH_PROPAGATE_B3_MULTI};
  for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
    struct carrier c = {{0}};
    if (mesh_trace_inject(ctx, fmts[i], set, &c) == MESH_OK) {
      mesh_trace_ctx_t back;
      FUZZ_ASSERT(mesh_trace_extract(fmts[i], get, &c, &back) == MESH_OK);
      FUZZ_ASSERT(same_ids(ctx, &back));
      if (fmts[i] == MESH_PROPAGATE_TRACECONTEXT)
        FUZZ_ASSERT(strcmp(ctx->tracestate, back.tracestate) == 0);
    }
    carrier_free(&c);
  }
}

/* X-B3-Flags other than "1" (after OWS) is ignored: extracting with it
 * and without it gives the same result. */
static void check_b3_flags_ignored(struct carrier *c) {
  const char *f = c->v[7];
  if (!f)
    return;
  size_t n = strlen(f), b = 0;
  while (b < n && (f[b] == ' ' || f[b] == '\t'))
    b++;
  while (n > b && (f[n - 1] == ' ' || f[n - 1] == '\t'))
    n--;
  if (n - b == 1 && f[b] == '1')
    return;
  mesh_trace_ctx_t with, without;
  memset(&with, 0, sizeof with);
  memset(&without, 0, sizeof without);
  int r1 = mesh_trace_extract(MESH_PROPAGATE_B3_MULTI, get, c, &with);
  char *saved = c->v[7];
  c->v[7] = NULL;
  int r2 = mesh_trace_extract(MESH_PROPAGATE_B3_MULTI, get, c, &without);
  c->v[7] = saved;
  FUZZ_ASSERT(r1 == r2);
  if (r1 == MESH_OK)
    FUZZ_ASSERT(memcmp(&with, &without,
                       offsetof(mesh_trace_ctx_t, tracestate)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct carrier c = {{0}};
  for (int i = 0; i < NHDR && size > 0; i++) {
    const uint8_t *f;
    size_t n = fuzz_field(&data, &size, '\n', &f);
    if (n > 0)
      c.v[i] = fuzz_strndup(f, n);
  }
  if (c.v[0])
    check_traceparent(c.v[0]);
  if (c.v[1])
    check_tracestate(c.v[1]);
  if (c.v[2])
    check_b3(c.v[2]);
  check_b3_flags_ignored(&c);
  static const unsigned all = MESH_PROPAGATE_TRACECONTEXT |
                              MESH_PROPAGATE_B3 | MESH_PROPAGATE_B3_MULTI;
  for (unsigned f = 1; f <= all; f++) {
    mesh_trace_ctx_t ctx;
    int rc = mesh_trace_extract(f, get, &c, &ctx);
    FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PARSE ||
                rc == MESH_ERR_NOT_FOUND);
    if (rc != MESH_OK)
      continue;
    FUZZ_ASSERT(strlen(ctx.tracestate) <= MESH_TRACESTATE_MAX);
    if (ctx.has_ids)
      check_roundtrip(&ctx);
  }
  carrier_free(&c);
  return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* core/opts.c: mesh_dial_opts_* and mesh_call_opts_* share one options
 * struct and one set of validators, so the same input gets the same verdict
 * (and leaves the same state) through either builder. */
#include "helpers.h"

#include <string.h>

#include "core/core.h"
#include "resilience/call.h"

static char long_name[300];  /* one 299-byte ALPN name */
static char name_255[256];   /* one 255-byte ALPN name */

static const struct {
  const char *alpn;
  int rc;
} alpn_cases[] = {
    {"h2", MESH_OK},
    {"h2,http/1.1", MESH_OK},
    {"a,b,c,d,e,f,g,h", MESH_OK},             /* MESH__ALPN_MAX names */
    {"a,b,c,d,e,f,g,h,i", MESH_ERR_INVALID_ARG},
    {"", MESH_ERR_INVALID_ARG},
    {"h2,", MESH_ERR_INVALID_ARG},
    {",h2", MESH_ERR_INVALID_ARG},
    {"h2,,http/1.1", MESH_ERR_INVALID_ARG},
    {name_255, MESH_OK},
    {long_name, MESH_ERR_INVALID_ARG},
    {NULL, MESH_OK},                           /* resets to the config */
};

static void fill_names(void) {
  memset(long_name, 'a', sizeof long_name - 1);
  memset(name_255, 'b', sizeof name_255 - 1);
}

static void test_mesh__opts_set_alpn(void) {
  fill_names();
  mesh_dial_opts_t *d = mesh_dial_opts_new();
  mesh_call_opts_t *c = mesh_call_opts_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  for (size_t i = 0; i < sizeof alpn_cases / sizeof alpn_cases[0]; i++) {
    /* Start both from the same non-default state, so that an accepted
     * NULL visibly resets and a rejected value visibly keeps it. */
    CU_ASSERT_EQUAL_FATAL(mesh_dial_opts_set_alpn(d, "x"), MESH_OK);
    CU_ASSERT_EQUAL_FATAL(mesh_call_opts_set_alpn(c, "x"), MESH_OK);
    int rd = mesh_dial_opts_set_alpn(d, alpn_cases[i].alpn);
    int rcall = mesh_call_opts_set_alpn(c, alpn_cases[i].alpn);
    if (rd != alpn_cases[i].rc || rcall != alpn_cases[i].rc)
      fprintf(stderr, "alpn case %zu: dial %d call %d want %d\n", i, rd,
              rcall, alpn_cases[i].rc);
    CU_ASSERT_EQUAL(rd, alpn_cases[i].rc);
    CU_ASSERT_EQUAL(rcall, alpn_cases[i].rc);
    const char *want = alpn_cases[i].rc != MESH_OK ? "x" : alpn_cases[i].alpn;
    if (want) {
      CU_ASSERT_PTR_NOT_NULL_FATAL(d->alpn);
      CU_ASSERT_PTR_NOT_NULL_FATAL(c->conn.alpn);
      CU_ASSERT_STRING_EQUAL(d->alpn, want);
      CU_ASSERT_STRING_EQUAL(c->conn.alpn, want);
    } else {
      CU_ASSERT_PTR_NULL(d->alpn);
      CU_ASSERT_PTR_NULL(c->conn.alpn);
    }
  }
  CU_ASSERT_EQUAL(mesh_dial_opts_set_alpn(NULL, "h2"), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_call_opts_set_alpn(NULL, "h2"), MESH_ERR_INVALID_ARG);
  mesh_dial_opts_free(d);
  mesh_call_opts_free(c);
}

static void test_mesh__opts_set_hash_key(void) {
  static char key[MESH__HASH_KEY_MAX + 2];
  memset(key, 'k', sizeof key);
  static const struct {
    bool null_key;
    size_t len;
    int rc;
  } cases[] = {
      {false, 1, MESH_OK},
      {false, MESH__HASH_KEY_MAX, MESH_OK},
      {false, MESH__HASH_KEY_MAX + 1, MESH_ERR_INVALID_ARG},
      {true, 3, MESH_ERR_INVALID_ARG},
      {true, 0, MESH_OK},   /* clears the key */
      {false, 0, MESH_OK},
  };
  mesh_dial_opts_t *d = mesh_dial_opts_new();
  mesh_call_opts_t *c = mesh_call_opts_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *k = cases[i].null_key ? NULL : key;
    CU_ASSERT_EQUAL_FATAL(mesh_dial_opts_set_hash_key(d, "ab", 2), MESH_OK);
    CU_ASSERT_EQUAL_FATAL(mesh_call_opts_set_hash_key(c, "ab", 2), MESH_OK);
    int rd = mesh_dial_opts_set_hash_key(d, k, cases[i].len);
    int rcall = mesh_call_opts_set_hash_key(c, k, cases[i].len);
    if (rd != cases[i].rc || rcall != cases[i].rc)
      fprintf(stderr, "hash key case %zu: dial %d call %d want %d\n", i, rd,
              rcall, cases[i].rc);
    CU_ASSERT_EQUAL(rd, cases[i].rc);
    CU_ASSERT_EQUAL(rcall, cases[i].rc);
    size_t want = cases[i].rc == MESH_OK ? cases[i].len : 2;
    CU_ASSERT_EQUAL(d->hash_key_len, want);
    CU_ASSERT_EQUAL(c->conn.hash_key_len, want);
  }
  mesh_dial_opts_free(d);
  mesh_call_opts_free(c);
}

static void test_mesh__opts_set_trace_parent(void) {
  mesh_dial_opts_t *d = mesh_dial_opts_new();
  mesh_call_opts_t *c = mesh_call_opts_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  mesh_trace_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.has_ids = 1; /* but all-zero ids: only the sampling decision counts */
  ctx.sampling = MESH_SAMPLING_ACCEPT;
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(d, &ctx), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_opts_set_trace_parent(c, &ctx), MESH_OK);
  CU_ASSERT_TRUE(d->has_parent);
  CU_ASSERT_TRUE(c->conn.has_parent);
  CU_ASSERT_EQUAL(d->parent.has_ids, 0);
  CU_ASSERT_EQUAL(c->conn.parent.has_ids, 0);
  memset(ctx.trace_id, 0x11, sizeof ctx.trace_id);
  memset(ctx.span_id, 0x22, sizeof ctx.span_id);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(d, &ctx), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_opts_set_trace_parent(c, &ctx), MESH_OK);
  CU_ASSERT_EQUAL(d->parent.has_ids, 1);
  CU_ASSERT_EQUAL(c->conn.parent.has_ids, 1);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(d, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_opts_set_trace_parent(c, NULL), MESH_OK);
  CU_ASSERT_FALSE(d->has_parent);
  CU_ASSERT_FALSE(c->conn.has_parent);
  CU_ASSERT_EQUAL(mesh_dial_opts_set_trace_parent(NULL, &ctx),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_call_opts_set_trace_parent(NULL, &ctx),
                  MESH_ERR_INVALID_ARG);
  mesh_dial_opts_free(d);
  mesh_call_opts_free(c);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("opts", NULL, NULL);
  CU_add_test(s, "mesh__opts_set_alpn", test_mesh__opts_set_alpn);
  CU_add_test(s, "mesh__opts_set_hash_key", test_mesh__opts_set_hash_key);
  CU_add_test(s, "mesh__opts_set_trace_parent",
              test_mesh__opts_set_trace_parent);
}

int main(void) { return th_run_suites("opts", add); }

/* SPDX-License-Identifier: Apache-2.0 */
/* core/path: request targets and Istio's path normalization modes, table
 * driven (input x mode -> output or error), plus the properties every
 * normalized path must have. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "core/core.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

enum {
  NONE = MESH__PATH_NONE,
  BASE = MESH__PATH_BASE,
  MERGE = MESH__PATH_MERGE_SLASHES,
  DECODE = MESH__PATH_DECODE_AND_MERGE_SLASHES
};

#define ERR NULL /* MESH_ERR_HTTP_PARSE */

/* One input, its result in each mode (NONE, BASE, MERGE, DECODE). */
static const struct {
  const char *in;
  const char *want[4];
} cases[] = {
    {"/", {"/", "/", "/", "/"}},
    {"/a/b?c=d", {"/a/b", "/a/b", "/a/b", "/a/b"}},
    {"/a/./b", {"/a/./b", "/a/b", "/a/b", "/a/b"}},
    {"/a/../b", {"/a/../b", "/b", "/b", "/b"}},
    {"/../../a", {"/../../a", "/a", "/a", "/a"}},
    {"/a/b/..", {"/a/b/..", "/a/", "/a/", "/a/"}},
    {"/a/b/.", {"/a/b/.", "/a/b/", "/a/b/", "/a/b/"}},
    {"//a///b//", {"//a///b//", "//a///b//", "/a/b/", "/a/b/"}},
    /* RFC 3986 first, then merging (Envoy's order) */
    {"/a//../b", {"/a//../b", "/a/b", "/a/b", "/a/b"}},
    {"//admin/x", {"//admin/x", "//admin/x", "/admin/x", "/admin/x"}},
    {"/./admin/x", {"/./admin/x", "/admin/x", "/admin/x", "/admin/x"}},
    {"/x/../admin/x", {"/x/../admin/x", "/admin/x", "/admin/x", "/admin/x"}},
    {"/%61dmin", {"/%61dmin", "/admin", "/admin", "/admin"}},
    {"/%2e%2e/admin", {"/%2e%2e/admin", "/admin", "/admin", "/admin"}},
    {"/%2D%5f%7E", {"/%2D%5f%7E", "/-_~", "/-_~", "/-_~"}},
    {"/a%2fb", {"/a%2fb", "/a%2Fb", "/a%2Fb", "/a/b"}},
    {"/a%5cb", {"/a%5cb", "/a%5Cb", "/a%5Cb", "/a/b"}},
    {"/a%2f%2f..%2fb",
     {"/a%2f%2f..%2fb", "/a%2F%2F..%2Fb", "/a%2F%2F..%2Fb", "/a/b"}},
    {"/admin\\x", {"/admin\\x", "/admin/x", "/admin/x", "/admin/x"}},
    {"/foo\\..\\admin\\x",
     {"/foo\\..\\admin\\x", "/admin/x", "/admin/x", "/admin/x"}},
    {"/a\\\\b", {"/a\\\\b", "/a//b", "/a/b", "/a/b"}},
    {"/%252e%252e/x",
     {"/%252e%252e/x", "/%252e%252e/x", "/%252e%252e/x", "/%252e%252e/x"}},
    {"/a%00b", {ERR, ERR, ERR, ERR}},
    {"/a%zz", {ERR, ERR, ERR, ERR}},
    {"/a%2", {ERR, ERR, ERR, ERR}},
    {"http://h.example/x/../y?q", {"/x/../y", "/y", "/y", "/y"}},
    {"http://h.example", {"/", "/", "/", "/"}},
    /* the authority ends at "?": the path is "/", "/x" is the query */
    {"http://h?/x", {"/", "/", "/", "/"}},
    {"http://u@h/x", {ERR, ERR, ERR, ERR}},
    {"http:///x", {ERR, ERR, ERR, ERR}},
    {"*", {"*", "*", "*", "*"}},
    /* a fragment (only a built target can carry one) is dropped */
    {"U://ks\":#\"93/x", {"/", "/", "/", "/"}},
    {"/a/b#/../../c", {"/a/b", "/a/b", "/a/b", "/a/b"}},
    {"#x", {ERR, ERR, ERR, ERR}},
    {"nothing:80", {ERR, ERR, ERR, ERR}},
    {"/a/..b/c", {"/a/..b/c", "/a/..b/c", "/a/..b/c", "/a/..b/c"}},
    {"/.well-known/x",
     {"/.well-known/x", "/.well-known/x", "/.well-known/x", "/.well-known/x"}},
};

static void test_mesh__path_normalize(void) {
  for (size_t i = 0; i < N(cases); i++)
    for (int mode = NONE; mode <= DECODE; mode++) {
      const char *in = cases[i].in, *want = cases[i].want[mode];
      char out[128];
      size_t on = 99;
      int rc = mesh__path_normalize(in, strlen(in), mode, out, sizeof out, &on);
      bool ok =
          want ? rc == MESH_OK && strcmp(out, want) == 0 && on == strlen(want)
               : rc == MESH_ERR_HTTP_PARSE;
      if (!ok)
        fprintf(stderr, "case %zu (%s) mode %s: rc=%d out=%s want=%s\n", i, in,
                mesh__path_norm_name(mode), rc, rc ? "" : out,
                want ? want : "error");
      CU_ASSERT(ok);
    }
  char small[4];
  CU_ASSERT_EQUAL(
      mesh__path_normalize("/abcdef", 7, MERGE, small, sizeof small, NULL),
      MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(mesh__path_normalize("/a", 2, 7, small, sizeof small, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(
      mesh__path_normalize(NULL, 0, MERGE, small, sizeof small, NULL),
      MESH_ERR_INVALID_ARG);
}

/* Every output is a fixed point, and has none of the forms a policy
 * could be dodged with. */
static void test_mesh__path_normalize_properties(void) {
  for (size_t i = 0; i < N(cases); i++)
    for (int mode = BASE; mode <= DECODE; mode++) {
      char a[128], b[128];
      const char *in = cases[i].in;
      if (mesh__path_normalize(in, strlen(in), mode, a, sizeof a, NULL))
        continue;
      CU_ASSERT_EQUAL(
          mesh__path_normalize(a, strlen(a), mode, b, sizeof b, NULL), MESH_OK);
      CU_ASSERT_STRING_EQUAL(a, b);
      CU_ASSERT_PTR_NULL(strstr(a, "/./"));
      CU_ASSERT_PTR_NULL(strstr(a, "/../"));
      CU_ASSERT_PTR_NULL(strchr(a, '\\'));
      CU_ASSERT_PTR_NULL(strstr(a, "%00"));
      if (mode >= MERGE)
        CU_ASSERT_PTR_NULL(strstr(a, "//"));
    }
}

static void test_mesh__target_split(void) {
  mesh__target_t t;
  const char *abs = "http://internal.example.com:8080/x/y?q=1";
  CU_ASSERT_EQUAL(mesh__target_split(abs, strlen(abs), &t), MESH_OK);
  CU_ASSERT_EQUAL(t.form, MESH__TARGET_ABSOLUTE);
  CU_ASSERT_EQUAL(t.authority_n, strlen("internal.example.com:8080"));
  CU_ASSERT_EQUAL(
      memcmp(t.authority, "internal.example.com:8080", t.authority_n), 0);
  CU_ASSERT_EQUAL(t.path_n, 4);
  CU_ASSERT_EQUAL(memcmp(t.path, "/x/y", 4), 0);
  CU_ASSERT_EQUAL(t.query_n, 3);
  const char *q = "http://h?/x";
  CU_ASSERT_EQUAL(mesh__target_split(q, strlen(q), &t), MESH_OK);
  CU_ASSERT_EQUAL(t.authority_n, 1);
  CU_ASSERT_EQUAL(t.path_n, 0);
  CU_ASSERT_EQUAL(t.query_n, 2);
  CU_ASSERT_EQUAL(mesh__target_split("/p?", 3, &t), MESH_OK);
  CU_ASSERT_EQUAL(t.form, MESH__TARGET_ORIGIN);
  CU_ASSERT_PTR_NOT_NULL(t.query);
  CU_ASSERT_EQUAL(t.query_n, 0);
  CU_ASSERT_EQUAL(mesh__target_split("h:443", 5, &t), MESH_OK);
  CU_ASSERT_EQUAL(t.form, MESH__TARGET_AUTHORITY);
  CU_ASSERT_EQUAL(mesh__target_split("", 0, &t), MESH_ERR_HTTP_PARSE);
}

static void test_mesh__path_norm_names(void) {
  const char *const *n = mesh__path_norm_names();
  CU_ASSERT_STRING_EQUAL(n[MESH__PATH_NONE], "NONE");
  CU_ASSERT_STRING_EQUAL(n[MESH__PATH_BASE], "BASE");
  CU_ASSERT_STRING_EQUAL(n[MESH__PATH_MERGE_SLASHES], "MERGE_SLASHES");
  CU_ASSERT_STRING_EQUAL(n[MESH__PATH_DECODE_AND_MERGE_SLASHES],
                         "DECODE_AND_MERGE_SLASHES");
  CU_ASSERT_PTR_NULL(n[4]);
  CU_ASSERT_EQUAL(MESH__PATH_NORM_DEFAULT, MESH__PATH_MERGE_SLASHES);
  CU_ASSERT_STRING_EQUAL(mesh__path_norm_name(9), "");
}

static void add(void) {
  CU_pSuite s = CU_add_suite("path", NULL, NULL);
  CU_add_test(s, "mesh__path_normalize", test_mesh__path_normalize);
  CU_add_test(s, "mesh__path_normalize_properties",
              test_mesh__path_normalize_properties);
  CU_add_test(s, "mesh__target_split", test_mesh__target_split);
  CU_add_test(s, "mesh__path_norm_names", test_mesh__path_norm_names);
}

int main(void) { return th_run_suites("test_path", add); }

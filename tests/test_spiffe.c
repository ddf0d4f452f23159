/* SPDX-License-Identifier: Apache-2.0 */
/* SPIFFE IDs: validation vectors with exact reasons (SPIFFE-ID.md 2.1-2.3),
 * splitting, and Istio-principal-style matching. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"

struct id_case {
  const char *id;
  const char *reason; /* NULL: valid; else the exact reason after ": " */
};

#define TD_CHARS                                                            \
  "trust domain characters are limited to lowercase letters, numbers, "    \
  "dots, dashes, and underscores"
#define PATH_CHARS                                                          \
  "path segment characters are limited to letters, numbers, dots, "        \
  "dashes, and underscores"

static const struct id_case id_cases[] = {
  /* valid */
  {"spiffe://example.org", NULL},
  {"spiffe://example.org/ns/default/sa/web", NULL},
  {"spiffe://a-b_c.d/x.y-z_W/09", NULL},
  {"spiffe://1.2.3.4/path", NULL},
  {"spiffe://td/.a/a./.../a..b", NULL},
  {"spiffe://trust_domain.example.com/UPPER/Case", NULL},
  /* scheme */
  {"", "cannot be empty"},
  {"example.org/x", "scheme is missing or invalid (expected \"spiffe://\")"},
  {"http://example.org/x",
   "scheme is missing or invalid (expected \"spiffe://\")"},
  {"spiffe:/example.org/x",
   "scheme is missing or invalid (expected \"spiffe://\")"},
  {"spiffe:example.org", "scheme is missing or invalid (expected \"spiffe://\")"},
  {"SPIFFE://example.org/x", "scheme must be lowercase \"spiffe\""},
  {"Spiffe://example.org/x", "scheme must be lowercase \"spiffe\""},
  /* trust domain */
  {"spiffe://", "trust domain is missing"},
  {"spiffe:///path", "trust domain is missing"},
  {"spiffe://Example.org/x", "trust domain must be lowercase"},
  {"spiffe://example.ORG", "trust domain must be lowercase"},
  {"spiffe://example.org:443/x", "trust domain cannot contain a port"},
  {"spiffe://example.org:/x", "trust domain cannot contain a port"},
  {"spiffe://user@example.org/x", "trust domain cannot contain user info"},
  {"spiffe://user:pw@example.org/x", "trust domain cannot contain user info"},
  {"spiffe://exa%41mple.org/x",
   "trust domain cannot contain percent-encoded characters"},
  {"spiffe://example.org?q=1", "query is not allowed"},
  {"spiffe://example.org?q=a@b", "query is not allowed"},
  {"spiffe://example.org#frag", "fragment is not allowed"},
  {"spiffe://exa mple.org", TD_CHARS},
  {"spiffe://[::1]/x", TD_CHARS},
  {"spiffe://ex\xc3\xa4mple.org/x", TD_CHARS},
  /* path */
  {"spiffe://example.org/", "path cannot have a trailing slash"},
  {"spiffe://example.org/a/", "path cannot have a trailing slash"},
  {"spiffe://example.org//a", "path cannot contain empty segments"},
  {"spiffe://example.org/a//b", "path cannot contain empty segments"},
  {"spiffe://example.org/./a", "path cannot contain dot segments"},
  {"spiffe://example.org/a/.", "path cannot contain dot segments"},
  {"spiffe://example.org/../a", "path cannot contain dot segments"},
  {"spiffe://example.org/a/..", "path cannot contain dot segments"},
  {"spiffe://example.org/a%20b",
   "path cannot contain percent-encoded characters"},
  {"spiffe://example.org/a?x=1", "query is not allowed"},
  {"spiffe://example.org/a#frag", "fragment is not allowed"},
  {"spiffe://example.org/a b", PATH_CHARS},
  {"spiffe://example.org/a*", PATH_CHARS},
  {"spiffe://example.org/a:b", PATH_CHARS},
  {"spiffe://example.org/\xc3\xa9", PATH_CHARS},
};

static void test_mesh_spiffe_id_validate(void) {
  for (size_t i = 0; i < sizeof id_cases / sizeof id_cases[0]; i++) {
    const struct id_case *tc = &id_cases[i];
    mesh_status_t st;
    int rc = mesh_spiffe_id_validate(tc->id, &st);
    char want[512] = "";
    if (tc->reason)
      snprintf(want, sizeof want, "invalid SPIFFE ID \"%s\": %s", tc->id,
               tc->reason);
    /* error messages never carry a URL's userinfo (core/redact.c) */
    mesh__redact_userinfo(want, sizeof want);
    int want_rc = tc->reason ? MESH_ERR_SPIFFE_ID : MESH_OK;
    if (rc != want_rc || strcmp(st.message, want) != 0)
      fprintf(stderr, "case %zu (%s): rc=%d msg=%s\n", i, tc->id, rc,
              st.message);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_EQUAL(st.code, want_rc);
    CU_ASSERT_STRING_EQUAL(st.message, want);
  }
}

/* Build "spiffe://<td of td_len>" + "/" + path to reach total bytes. */
static char *make_id(size_t td_len, size_t total) {
  char *s = malloc(total + 1);
  size_t k = 0;
  memcpy(s, "spiffe://", 9);
  k = 9;
  for (size_t i = 0; i < td_len; i++)
    s[k++] = 'a';
  while (k < total) {
    s[k++] = '/';
    for (int j = 0; j < 60 && k < total; j++)
      s[k++] = 'p';
  }
  if (s[k - 1] == '/')
    s[k - 1] = 'q'; /* never end on a slash */
  s[k] = '\0';
  return s;
}

static void test_mesh_spiffe_id_validate_limits(void) {
  mesh_status_t st;
  char *ok = make_id(255, 2048);
  CU_ASSERT_EQUAL(strlen(ok), 2048);
  CU_ASSERT_EQUAL(mesh_spiffe_id_validate(ok, &st), MESH_OK);
  char *longer = make_id(100, 2049);
  CU_ASSERT_EQUAL(mesh_spiffe_id_validate(longer, &st), MESH_ERR_SPIFFE_ID);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, ": longer than 2048 bytes"));
  /* the message quotes a bounded prefix of the ID, never the whole */
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "...\": "));
  char *td = make_id(256, 300);
  CU_ASSERT_EQUAL(mesh_spiffe_id_validate(td, &st), MESH_ERR_SPIFFE_ID);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(st.message, ": trust domain is longer than 255 bytes"));
  free(ok);
  free(longer);
  free(td);
  CU_ASSERT_EQUAL(mesh_spiffe_id_validate(NULL, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_spiffe_id_validate("spiffe://x/y", NULL), MESH_OK);
}

static void test_mesh__spiffe_td_validate(void) {
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate("example.org", &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate("a_b-c.9", &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate("", &st), MESH_ERR_SPIFFE_ID);
  CU_ASSERT_STRING_EQUAL(st.message,
                         "invalid trust domain \"\": trust domain is missing");
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate("example.org/x", &st),
                  MESH_ERR_SPIFFE_ID);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, TD_CHARS));
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate("Example.org", &st),
                  MESH_ERR_SPIFFE_ID);
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate("host:80", &st),
                  MESH_ERR_SPIFFE_ID);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "cannot contain a port"));
  CU_ASSERT_EQUAL(mesh__spiffe_td_validate(NULL, &st), MESH_ERR_INVALID_ARG);
}

static void test_mesh_spiffe_id_parse(void) {
  char td[MESH_TRUST_DOMAIN_MAX + 1], path[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse("spiffe://example.org/ns/a/sa/b", td,
                                       sizeof td, path, sizeof path, &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(td, "example.org");
  CU_ASSERT_STRING_EQUAL(path, "/ns/a/sa/b");
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse("spiffe://example.org", td, sizeof td,
                                       path, sizeof path, &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(td, "example.org");
  CU_ASSERT_STRING_EQUAL(path, "");
  /* NULL outputs are allowed */
  CU_ASSERT_EQUAL(
      mesh_spiffe_id_parse("spiffe://e/x", NULL, 0, NULL, 0, &st), MESH_OK);
  /* exact fit and one byte short */
  char small[12];
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse("spiffe://example.org/x", small, 12,
                                       NULL, 0, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse("spiffe://example.org/x", small, 11,
                                       NULL, 0, &st),
                  MESH_ERR_BUFFER);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "trust domain needs 12 bytes"));
  char p3[3];
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse("spiffe://e/abc", NULL, 0, p3,
                                       sizeof p3, &st),
                  MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse("spiffe://e/a/", td, sizeof td, path,
                                       sizeof path, &st),
                  MESH_ERR_SPIFFE_ID);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "trailing slash"));
  CU_ASSERT_EQUAL(mesh_spiffe_id_parse(NULL, td, sizeof td, path, sizeof path,
                                       &st),
                  MESH_ERR_INVALID_ARG);
}

struct match_case {
  const char *pattern, *id;
  int want;
};

static const struct match_case match_cases[] = {
  {"*", "spiffe://example.org/ns/default/sa/web", 1},
  {"*", "spiffe://example.org", 1},
  {"spiffe://*", "spiffe://other.org/x", 1},
  {"spiffe://example.org/ns/default/sa/web",
   "spiffe://example.org/ns/default/sa/web", 1},
  {"example.org/ns/default/sa/web", "spiffe://example.org/ns/default/sa/web",
   1},
  {"example.org/ns/default/sa/web", "spiffe://example.org/ns/default/sa/web2",
   0},
  {"spiffe://example.org/ns/default/sa/web",
   "spiffe://example.org/ns/default/sa/we", 0},
  {"example.org/ns/default/sa/*", "spiffe://example.org/ns/default/sa/web",
   1},
  {"example.org/ns/default/sa/*", "spiffe://example.org/ns/prod/sa/web", 0},
  {"spiffe://example.org/ns/*", "spiffe://example.org/ns/a", 1},
  {"spiffe://example.org/ns/*", "spiffe://other.org/ns/a", 0},
  {"*/sa/web", "spiffe://other.org/ns/x/sa/web", 1},
  {"*/sa/web", "spiffe://other.org/ns/x/sa/web2", 0},
  {"spiffe://example.org", "spiffe://example.org/anything/at/all", 1},
  {"spiffe://example.org", "spiffe://example.org", 1},
  {"spiffe://example.org", "spiffe://example.org.evil/x", 0},
  {"spiffe://example.org", "spiffe://evil.example.org/x", 0},
  {"spiffe://example.org", "spiffe://other.org/x", 0},
  {"example.org", "spiffe://example.org/x", 0}, /* bare = exact principal */
  {"example.org", "spiffe://example.org", 1},
  {"ex*ple.org/x", "spiffe://example.org/x", 0}, /* '*' only at an end */
  {"*a*", "spiffe://a/a", 0},
  {"EXAMPLE.org/x", "spiffe://example.org/x", 0}, /* case-sensitive */
  {"*", "not-a-spiffe-id", 0},
  {"spiffe://example.org/a/", "spiffe://example.org/a/", 0}, /* invalid id */
  {"", "spiffe://example.org/x", 0},
};

static void test_mesh_spiffe_match(void) {
  for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
    const struct match_case *tc = &match_cases[i];
    int got = mesh_spiffe_match(tc->pattern, tc->id);
    if (got != tc->want)
      fprintf(stderr, "match case %zu: %s vs %s = %d\n", i, tc->pattern,
              tc->id, got);
    CU_ASSERT_EQUAL(got, tc->want);
  }
  CU_ASSERT_EQUAL(mesh_spiffe_match(NULL, "spiffe://e/x"), 0);
  CU_ASSERT_EQUAL(mesh_spiffe_match("*", NULL), 0);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("spiffe", NULL, NULL);
  CU_add_test(s, "mesh_spiffe_id_validate", test_mesh_spiffe_id_validate);
  CU_add_test(s, "mesh_spiffe_id_validate_limits",
              test_mesh_spiffe_id_validate_limits);
  CU_add_test(s, "mesh__spiffe_td_validate", test_mesh__spiffe_td_validate);
  CU_add_test(s, "mesh_spiffe_id_parse", test_mesh_spiffe_id_parse);
  CU_add_test(s, "mesh_spiffe_match", test_mesh_spiffe_match);
}

int main(void) { return th_run_suites("test_spiffe", add); }

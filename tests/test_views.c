/* SPDX-License-Identifier: Apache-2.0 */
/* telemetry/views.c: the registry through which parts show their state to
 * the readers, and the views discovery ("endpoints") and identity
 * ("identity") register: each renders the very document the admin endpoint
 * serves today at /endpoints and /identity (fetched over real HTTP from the
 * admin listener on loopback), so the admin page can read them instead of
 * calling into the parts. */
#include "helpers.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/telemetry.h"

#define TD "views.example"
#define SELF_ID "spiffe://views.example/ns/t/sa/views"

/* ---- the registry ----------------------------------------------------------- */

static int renders;

static cJSON *answer(mesh_t *m, void *user) {
  (void)m;
  renders++;
  cJSON *o = cJSON_CreateObject();
  if (o)
    cJSON_AddStringToObject(o, "from", (const char *)user);
  return o;
}

static void expect_from(mesh_t *m, const char *name, const char *want) {
  cJSON *doc = mesh__view_render(m, name);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(doc, "from");
  CU_ASSERT_TRUE(cJSON_IsString(f) && strcmp(f->valuestring, want) == 0);
  cJSON_Delete(doc);
}

static void test_mesh__view_register(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"log\":{\"level\":\"error\"}}", &m, &st),
                        MESH_OK);
  /* the parts' own views are there without any configuration */
  cJSON *d = mesh__view_render(m, "endpoints");
  CU_ASSERT_PTR_NOT_NULL(d);
  cJSON_Delete(d);
  d = mesh__view_render(m, "identity");
  CU_ASSERT_PTR_NOT_NULL(d);
  cJSON_Delete(d);

  static const struct {
    const char *name;
    mesh__view_fn fn;
    int rc;
  } bad[] = {
      {NULL, answer, MESH_ERR_INVALID_ARG},
      {"", answer, MESH_ERR_INVALID_ARG},
      {"x", NULL, MESH_ERR_INVALID_ARG},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CU_ASSERT_EQUAL(mesh__view_register(m, bad[i].name, bad[i].fn, NULL),
                    bad[i].rc);
  CU_ASSERT_EQUAL(mesh__view_register(NULL, "x", answer, NULL),
                  MESH_ERR_INVALID_ARG);

  CU_ASSERT_PTR_NULL(mesh__view_render(m, "nobody"));
  CU_ASSERT_PTR_NULL(mesh__view_render(m, NULL));
  CU_ASSERT_PTR_NULL(mesh__view_render(NULL, "x"));
  renders = 0;
  CU_ASSERT_EQUAL(mesh__view_register(m, "a", answer, "first"), MESH_OK);
  CU_ASSERT_EQUAL(mesh__view_register(m, "b", answer, "b"), MESH_OK);
  expect_from(m, "a", "first");
  /* a second registration of a name replaces the first */
  CU_ASSERT_EQUAL(mesh__view_register(m, "a", answer, "second"), MESH_OK);
  expect_from(m, "a", "second");
  expect_from(m, "b", "b");
  CU_ASSERT_EQUAL(renders, 3);
  mesh__view_unregister(m, "a");
  CU_ASSERT_PTR_NULL(mesh__view_render(m, "a"));
  expect_from(m, "b", "b");
  mesh__view_unregister(m, "a");      /* absent: no-op */
  mesh__view_unregister(NULL, "b");   /* no-op */
  mesh_free(m);                        /* frees "b" (valgrind list) */
}

/* ---- the parts' views against the admin endpoint ------------------------------ */

typedef struct body {
  char *p;
  size_t n;
} body_t;

static size_t on_data(char *p, size_t sz, size_t n, void *user) {
  body_t *b = user;
  char *nb = realloc(b->p, b->n + sz * n + 1);
  if (!nb)
    return 0;
  b->p = nb;
  memcpy(b->p + b->n, p, sz * n);
  b->n += sz * n;
  b->p[b->n] = '\0';
  return sz * n;
}

static cJSON *admin_get(int port, const char *path) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  body_t b = {0};
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  CURLcode cc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  CU_ASSERT_EQUAL(cc, CURLE_OK);
  CU_ASSERT_EQUAL(code, 200);
  cJSON *doc = b.p ? cJSON_Parse(b.p) : NULL;
  free(b.p);
  return doc;
}

/* Seconds-resolution values computed at render time may tick between the
 * two renders: compare them apart, within a second. */
static void take_apart(cJSON *a, cJSON *b, const char *key) {
  cJSON *x = cJSON_DetachItemFromObjectCaseSensitive(a, key);
  cJSON *y = cJSON_DetachItemFromObjectCaseSensitive(b, key);
  CU_ASSERT_EQUAL(x != NULL, y != NULL);
  if (x && y)
    CU_ASSERT(x->valuedouble - y->valuedouble <= 1 &&
              y->valuedouble - x->valuedouble <= 1);
  cJSON_Delete(x);
  cJSON_Delete(y);
}

static void same_document(mesh_t *m, int port, const char *view,
                          const char *path) {
  cJSON *served = admin_get(port, path);
  cJSON *mine = mesh__view_render(m, view);
  CU_ASSERT_PTR_NOT_NULL_FATAL(served);
  CU_ASSERT_PTR_NOT_NULL_FATAL(mine);
  take_apart(served, mine, "expires_in_s");
  bool same = cJSON_Compare(served, mine, true);
  CU_ASSERT_TRUE(same);
  if (!same) {
    char *a = cJSON_Print(served), *b = cJSON_Print(mine);
    fprintf(stderr, "%s served:\n%s\nview %s:\n%s\n", path, a, view, b);
    free(a);
    free(b);
  }
  cJSON_Delete(served);
  cJSON_Delete(mine);
}

static void test_views_match_admin(void) {
  CU_ASSERT_FATAL(th_svid(TD, SELF_ID, "views", 0, 0, 0));
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},"
           "\"admin\":{\"listen\":\"127.0.0.1:0\"},"
           "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"},"
           "\"services\":{"
           "\"payments\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
           "{\"address\":\"127.0.0.11\",\"port\":8443,\"weight\":3,"
           "\"locality\":{\"region\":\"eu-west\",\"zone\":\"eu-west-1a\"},"
           "\"labels\":{\"version\":\"v2\"},\"health\":\"healthy\"},"
           "{\"address\":\"127.0.0.12\",\"port\":8443,\"health\":\"unhealthy\"},"
           "{\"address\":\"::1\",\"port\":8443,\"health\":\"draining\"}]}},"
           "\"search\":{\"discovery\":{\"type\":\"static\",\"endpoints\":["
           "{\"address\":\"127.0.0.13\",\"port\":9000}]}}}}",
           th_path("views.crt"), th_path("views.key"), th_ca(TD));
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  int port = mesh_admin_port(m);
  CU_ASSERT_FATAL(port > 0);
  same_document(m, port, "endpoints", "/endpoints");
  same_document(m, port, "identity", "/identity");
  cJSON *id = mesh__view_render(m, "identity");
  const cJSON *sid = cJSON_GetObjectItemCaseSensitive(id, "spiffe_id");
  CU_ASSERT_TRUE(cJSON_IsString(sid) && strcmp(sid->valuestring, SELF_ID) == 0);
  cJSON_Delete(id);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("views", NULL, NULL);
  CU_add_test(s, "mesh__view_register", test_mesh__view_register);
  CU_add_test(s, "views_match_admin", test_views_match_admin);
}

int main(void) { return th_run_suites("views", add); }

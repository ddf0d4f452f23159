/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration input: one validator for mesh_config_check() and mesh_new()
 * (also over the whole fuzz corpus), duplicate JSON keys refused at every
 * JSON entry point, the size cap of configuration text, and error messages
 * never cut inside a name. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "authz/authz.h"
#include "core/core.h"
#include "discovery/discovery.h"
#include "fuzz/config_prop.h"

/* ---- captured log lines ---------------------------------------------------- */

static char logbuf[1 << 16];
static size_t loglen;
static pthread_mutex_t logmu = PTHREAD_MUTEX_INITIALIZER;

static void capture(int level, const char *line, void *user) {
  (void)level;
  (void)user;
  pthread_mutex_lock(&logmu);
  size_t n = strlen(line);
  if (loglen + n + 2 < sizeof logbuf) {
    memcpy(logbuf + loglen, line, n);
    loglen += n;
    logbuf[loglen++] = '\n';
    logbuf[loglen] = '\0';
  }
  pthread_mutex_unlock(&logmu);
}

static bool log_has(const char *s) {
  pthread_mutex_lock(&logmu);
  bool r = strstr(logbuf, s) != NULL;
  pthread_mutex_unlock(&logmu);
  return r;
}

/* Both verdicts on json: check's error count and first error, mesh_new's
 * code and message.  Asserts they agree (the check == new property). */
static int verdicts(const char *json, char *first, size_t flen) {
  cprop_errs_t e = {0};
  int n = mesh_config_check(json, cprop_on_error, &e);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc == MESH_OK)
    mesh_free(m);
  if (n > 0) {
    CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(strncmp(st.message, e.first, strlen(e.first) < 300
                                                     ? strlen(e.first)
                                                     : 300),
                    0);
  } else {
    CU_ASSERT_EQUAL(rc, MESH_OK);
  }
  if (rc != MESH_OK && n == 0)
    fprintf(stderr, "check OK, mesh_new: %s\n", st.message);
  snprintf(first, flen, "%s", e.first);
  return n;
}

/* ---- item: mesh_config_check == mesh_new ------------------------------------- */

static void test_mesh_config_check_same_verdict(void) {
  static const struct {
    const char *json, *err; /* NULL err: valid */
  } cases[] = {
      /* docs/config/http.md's routes example, without its services */
      {"{\"http\":{\"routes\":[{\"name\":\"canary\",\"hosts\":[\"web\"],"
       "\"service\":\"web-next\"}]}}",
       "http.routes[0]: unknown service \"web-next\""},
      {"{\"services\":{\"web-next\":{}},\"http\":{\"routes\":[{\"name\":"
       "\"canary\",\"hosts\":[\"web\"],\"service\":\"web-next\"}]}}",
       NULL},
      {"{\"services\":{\"a\":{},\"b\":{}},\"http\":{\"routes\":[{\"hosts\":"
       "[\"x\"],\"split\":[{\"service\":\"a\",\"weight\":1},{\"service\":"
       "\"b\",\"subset\":\"v9\",\"weight\":1}]}]}}",
       "http.routes[0]: service \"b\" has no subset \"v9\""},
      {"{\"services\":{\"a\":{\"subsets\":{\"v1\":{\"version\":\"v1\"}},"
       "\"split\":[{\"subset\":\"v1\",\"weight\":9},{\"subset\":\"v2\","
       "\"weight\":1}]}}}",
       "services.a.split[1].subset: unknown subset \"v2\""},
      {"{\"services\":{\"a\":{\"subsets\":{\"v1\":{\"version\":\"v1\"}},"
       "\"split\":[{\"subset\":\"v1\",\"weight\":9}]}}}",
       NULL},
      {"{\"services\":{\"a\":{\"routes\":[{\"subset\":\"v3\"}]}}}",
       "services.a.routes[0]: service \"a\" has no subset \"v3\""},
      {"{\"register\":{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},"
       "\"service\":\"\",\"address\":\"127.0.0.1:8080\"}}",
       "register.service: invalid service name"},
      {"{\"register\":{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},"
       "\"address\":\"127.0.0.1:8080\"}}",
       "register.service: required when the top-level \"name\" is not set"},
      {"{\"name\":\"\",\"services\":{}}", "name: invalid service name"},
      {"{\"name\":\"a/b\"}", "name: invalid service name"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char first[512];
    int n = verdicts(cases[i].json, first, sizeof first);
    if (cases[i].err ? !strstr(first, cases[i].err) : n != 0)
      fprintf(stderr, "case %zu: %d errors, first: %s\n", i, n, first);
    if (cases[i].err) {
      CU_ASSERT_PTR_NOT_NULL(strstr(first, cases[i].err));
    } else {
      CU_ASSERT_EQUAL(n, 0);
    }
  }
  /* What init used to refuse after the check passed: a collector URL too
   * long for the exporter, more DNS servers than c-ares is given. */
  char *big = malloc(4096);
  CU_ASSERT_PTR_NOT_NULL_FATAL(big);
  int o = snprintf(big, 4096, "{\"tracing\":{\"otlp\":{\"endpoint\":"
                              "\"http://127.0.0.1:1/%01100d\"}}}", 0);
  CU_ASSERT(o > 0 && o < 4096);
  char f2[512];
  CU_ASSERT_EQUAL(verdicts(big, f2, sizeof f2), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(f2, "tracing.otlp.endpoint: expected an "
                                    "http:// or https:// URL of at most"));
  o = snprintf(big, 4096, "{\"services\":{\"d\":{\"discovery\":{"
                          "\"type\":\"dns\",\"name\":\"d.test\","
                          "\"port\":80,\"servers\":[");
  for (int i = 0; i < 33; i++)
    o += snprintf(big + o, 4096 - (size_t)o, "%s\"[fd00:1:2:3:4:5:6:%x]:"
                  "65535\"", i ? "," : "", i);
  snprintf(big + o, 4096 - (size_t)o, "]}}}}");
  CU_ASSERT_EQUAL(verdicts(big, f2, sizeof f2), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(f2, "servers: at most 32 servers"));
  free(big);
  /* A 600-byte registration name: refused by both. */
  char json[1024], first[512];
  snprintf(json, sizeof json,
           "{\"register\":{\"etcd\":{\"endpoints\":[\"http://127.0.0.1:1\"]},"
           "\"service\":\"%0600d\",\"address\":\"127.0.0.1:8080\"}}",
           0);
  CU_ASSERT_EQUAL(verdicts(json, first, sizeof first), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(first, "register.service: invalid"));
}

/* The property over every input of the config fuzz corpus. */
static void test_mesh_config_check_corpus(void) {
  const char *dir = TEST_SRCDIR "/tests/fuzz/corpus/config";
  DIR *d = opendir(dir);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  size_t same = 0, skipped = 0, differ = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    char *text = th_slurp(path, NULL);
    if (!text)
      continue;
    char why[1024];
    int v = cprop_check_vs_new(text, why, sizeof why);
    if (v == CPROP_DIFFER) {
      fprintf(stderr, "%s: %s\n", de->d_name, why);
      differ++;
    }
    same += v == CPROP_SAME;
    skipped += v == CPROP_NOT_COMPARED;
    free(text);
  }
  closedir(d);
  printf("\n  corpus: %zu compared, %zu valid with I/O not built, %zu differ\n",
         same, skipped, differ);
  CU_ASSERT_EQUAL(differ, 0);
  /* the corpus holds more than a handful of comparable inputs */
  CU_ASSERT(same >= 100);
}

/* ---- item: duplicate JSON keys ------------------------------------------------------ */

static void test_mesh__json_parse_duplicates(void) {
  static const struct {
    const char *json;
    int kind;
    const char *path;
  } cases[] = {
      {"{\"a\":1,\"b\":2}", MESH__JSON_OK, ""},
      {"{\"a\":1,\"a\":2}", MESH__JSON_DUPLICATE, "a"},
      {"{\"inbound\":{\"mode\":\"PERMISSIVE\",\"mode\":\"STRICT\"}}",
       MESH__JSON_DUPLICATE, "inbound.mode"},
      {"{\"x\":[{\"k\":1},{\"k\":1,\"j\":2,\"k\":3}]}", MESH__JSON_DUPLICATE,
       "x[1].k"},
      {"[1,1,{\"a\":{}},{\"a\":{}}]", MESH__JSON_OK, ""},
      {"{\"a\":{\"b\":1},\"c\":{\"b\":1}}", MESH__JSON_OK, ""},
      {"{\"\":1,\"\":2}", MESH__JSON_DUPLICATE, ""},
      {"{\"a\":1} x", MESH__JSON_SYNTAX, ""},
      {"{\"a\":1}  \n", MESH__JSON_OK, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh__json_err_t e;
    cJSON *v = mesh__json_parse(cases[i].json, strlen(cases[i].json), &e);
    CU_ASSERT_EQUAL(e.kind, cases[i].kind);
    CU_ASSERT_EQUAL(v == NULL, cases[i].kind != MESH__JSON_OK);
    if (cases[i].kind == MESH__JSON_DUPLICATE) {
      CU_ASSERT_STRING_EQUAL(e.path, cases[i].path);
      CU_ASSERT_PTR_NOT_NULL(strstr(e.message, "duplicate key"));
    }
    cJSON_Delete(v);
  }
}

static void test_mesh_config_check_duplicates(void) {
  static const struct {
    const char *json, *err;
  } cases[] = {
      {"{\"inbound\":{\"mode\":\"PERMISSIVE\",\"mode\":\"STRICT\"}}",
       "inbound.mode: duplicate key"},
      {"{\"authz\":{\"policies\":[]},\"authz\":{\"policies\":[]}}",
       "authz: duplicate key"},
      {"{\"services\":{\"a\":{\"lb\":{\"policy\":\"random\",\"policy\":"
       "\"random\"}}}}",
       "services.a.lb.policy: duplicate key"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char first[512];
    CU_ASSERT(verdicts(cases[i].json, first, sizeof first) > 0);
    if (!strstr(first, cases[i].err))
      fprintf(stderr, "case %zu: %s\n", i, first);
    CU_ASSERT_PTR_NOT_NULL(strstr(first, cases[i].err));
  }
  /* every duplicate is listed, not only the first */
  cprop_errs_t e = {0};
  CU_ASSERT_EQUAL(mesh_config_check("{\"a\":1,\"a\":2,\"log\":{\"level\":"
                                    "\"info\",\"level\":\"info\"}}",
                                    cprop_on_error, &e),
                  2);
}

static void test_mesh_authz_reload_duplicates(void) {
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"authz\":{\"policies\":[]}}", &m, NULL),
                        MESH_OK);
  mesh_status_t st;
  int rc = mesh_authz_reload(
      m,
      "{\"policies\":[{\"name\":\"d\",\"action\":\"DENY\",\"action\":"
      "\"ALLOW\",\"rules\":[{}]}]}",
      &st);
  CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "policies[0].action: duplicate"));
  mesh_free(m);
}

static void test_mesh__opa_parse_result_duplicates(void) {
  static const char ok[] = "{\"result\":true}";
  static const char dup[] = "{\"result\":false,\"result\":true}";
  CU_ASSERT_EQUAL(mesh__opa_parse_result(ok, strlen(ok)), 1);
  CU_ASSERT_EQUAL(mesh__opa_parse_result(dup, strlen(dup)), MESH_ERR_PARSE);
}

/* The file discovery source reads a real file and logs the duplicate with
 * its path instead of publishing either endpoint. */
static void test_file_source_duplicates(void) {
  const char *f = th_path("dup-endpoints.json");
  CU_ASSERT_FATAL(th_write(f, "{\"endpoints\":[]}"));
  char json[1024];
  snprintf(json, sizeof json,
           "{\"worker\":{\"mode\":\"external\"},\"services\":{\"a\":{"
           "\"discovery\":{\"type\":\"file\",\"path\":\"%s\","
           "\"poll_interval_ms\":10}}}}",
           f);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  mesh_set_log(m, MESH_LOG_DEBUG, capture, NULL);
  /* rewritten with another size, so the next poll reloads it */
  CU_ASSERT_FATAL(th_write(
      f, "{\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":1,\"port\":2}]}"));
  for (int i = 0; i < 500 && !log_has("duplicate key"); i++) {
    mesh_process(m);
    usleep(10000);
  }
  CU_ASSERT_TRUE(log_has("endpoints[0].port: duplicate key"));
  mesh_free(m);
}

/* An etcd value (the naming package's JSON) with a duplicate is refused. */
static void test_etcd_value_duplicates(void) {
  mesh__ep_t ep;
  cJSON *doc = NULL;
  char host[256], err[256];
  bool deleted;
  static const char v[] = "{\"Op\":0,\"Addr\":\"127.0.0.1:1\",\"Addr\":"
                          "\"127.0.0.1:2\"}";
  int rc = mesh__etcd_parse_endpoint(v, strlen(v), &doc, &ep, host, sizeof host,
                                  &deleted, err, sizeof err);
  CU_ASSERT_EQUAL(rc, MESH_ERR_PARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "Addr: duplicate key"));
  cJSON_Delete(doc);
}

/* ---- item: size cap ------------------------------------------------------------------- */

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void test_mesh_config_set_max_bytes(void) {
  CU_ASSERT_EQUAL(mesh_config_max_bytes(), MESH_CONFIG_MAX_BYTES_DEFAULT);
  /* 5 MiB of valid JSON: over the default cap. */
  size_t big = (size_t)5 << 20;
  char *s = malloc(big + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  memset(s, ' ', big);
  memcpy(s, "{\"name\":\"a\"", 11);
  s[big - 1] = '}';
  s[big] = '\0';
  char first[512];
  CU_ASSERT_EQUAL(verdicts(s, first, sizeof first), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(first, "larger than the limit of 4194304"));
  CU_ASSERT_PTR_NOT_NULL(strstr(first, "mesh_config_set_max_bytes"));
  /* raised: accepted */
  CU_ASSERT_EQUAL(mesh_config_set_max_bytes(8 << 20),
                  MESH_CONFIG_MAX_BYTES_DEFAULT);
  CU_ASSERT_EQUAL(verdicts(s, first, sizeof first), 0);
  /* lowered: even a small file is refused, before it is parsed */
  mesh_config_set_max_bytes(16);
  CU_ASSERT_EQUAL(verdicts("{\"name\":\"abcdefghijklmn\"}", first,
                           sizeof first),
                  1);
  CU_ASSERT_EQUAL(verdicts("{\"name\":\"abc\"}", first, sizeof first), 0);
  /* the environment sets the default */
  mesh_config_set_max_bytes(0);
  setenv("MESH_CONFIG_MAX_BYTES", "100", 1);
  CU_ASSERT_EQUAL(mesh_config_max_bytes(), 100);
  unsetenv("MESH_CONFIG_MAX_BYTES");
  CU_ASSERT_EQUAL(mesh_config_max_bytes(), MESH_CONFIG_MAX_BYTES_DEFAULT);
  free(s);

  /* A 50 MB file: refused by mesh_new_from_file after reading at most the
   * cap + 1 byte, so memory stays far below the file's size. */
  const char *f = th_path("big-config.json");
  int fd = open(f, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_EQUAL(write(fd, "[", 1), 1);
  CU_ASSERT_EQUAL(ftruncate(fd, 50 * 1000 * 1000), 0);
  close(fd);
  long before = maxrss_kb();
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new_from_file(f, &m, &st), MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "larger than the limit"));
  long grew = maxrss_kb() - before;
  printf("\n  50 MB config refused; peak RSS grew by %ld KiB\n", grew);
  CU_ASSERT(grew < 32 * 1024);
}

/* ---- item: error messages never cut inside a name -------------------------------- */

static bool whole_names(const char *msg, const char *const names[]) {
  const char *p = strstr(msg, "expected one of ");
  if (!p)
    return false;
  for (p = strchr(p, '"'); p; p = strchr(p + 1, '"')) {
    const char *e = strchr(p + 1, '"');
    if (!e)
      return false; /* a name cut in two */
    bool known = false;
    for (size_t i = 0; names[i]; i++)
      known |= strlen(names[i]) == (size_t)(e - p - 1) &&
               strncmp(names[i], p + 1, (size_t)(e - p - 1)) == 0;
    if (!known)
      return false;
    p = e;
  }
  return true;
}

static void test_mesh__cfg_error_whole_tokens(void) {
  static const char *const names[] = {
      "consecutive_5xx", "consecutive_gateway_failure", "interval_ms",
      "base_ejection_time_ms", "max_ejection_time_ms", "max_ejection_percent",
      "success_rate_minimum_hosts", "success_rate_request_volume",
      "success_rate_stdev_factor", "failure_percentage_threshold",
      "failure_percentage_minimum_hosts", "failure_percentage_request_volume",
      "enforcing_consecutive_5xx", "enforcing_success_rate",
      "always_eject_one_host", "split_external_local_origin_errors", NULL};
  char path[200];
  memset(path, 'p', sizeof path - 1);
  path[sizeof path - 1] = '\0';
  for (size_t plen = 0; plen < sizeof path; plen += 37) {
    mesh_status_t st = {0};
    mesh__cfg_t c = {.first = &st};
    cJSON *o = cJSON_Parse("{\"bogus\":1}");
    path[plen] = '\0';
    mesh__cfg_object(&c, o, path, names);
    path[plen] = 'p';
    cJSON_Delete(o);
    CU_ASSERT_EQUAL(c.nerr, 1);
    if (!whole_names(st.message, names))
      fprintf(stderr, "cut: %s\n", st.message);
    CU_ASSERT_TRUE(whole_names(st.message, names));
    /* a list that did not fit says how many names were left out */
    if (!strstr(st.message, "\"split_external_local_origin_errors\"")) {
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, " more)"));
    }
  }
  /* mesh_new's "(and N more errors)" tail: whole, after a whole word */
  char json[1024];
  snprintf(json, sizeof json,
           "{\"services\":{\"%0128d\":{\"outlier_detection\":{\"%0100d\":"
           "1,\"x%0100d\":1}}}}",
           0, 0, 0);
  mesh_t *m = NULL;
  mesh_status_t nst;
  CU_ASSERT_EQUAL(mesh_new(json, &m, &nst), MESH_ERR_CONFIG);
  size_t nl = strlen(nst.message);
  CU_ASSERT(nl > 19 &&
            strcmp(nst.message + nl - 19, " (and 1 more error)") == 0);
  if (nl <= 19 || strcmp(nst.message + nl - 19, " (and 1 more error)") != 0)
    fprintf(stderr, "tail: %s\n", nst.message);
  int quotes = 0;
  for (const char *q = nst.message; *q; q++)
    quotes += *q == '"';
  CU_ASSERT_EQUAL(quotes % 2, 0);
  /* Any message that does not fit ends at a whole token, marked. */
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  char longtxt[600];
  for (size_t i = 0; i + 1 < sizeof longtxt; i++)
    longtxt[i] = i % 10 == 9 ? ' ' : 'w';
  longtxt[sizeof longtxt - 1] = '\0';
  mesh__cfg_error(&c, "a.b", "%s", longtxt);
  size_t n = strlen(st.message);
  CU_ASSERT(n < sizeof st.message);
  CU_ASSERT_STRING_EQUAL(st.message + n - 6, " [...]");
  CU_ASSERT_EQUAL(st.message[n - 7], 'w');
  CU_ASSERT_EQUAL(st.message[n - 16], ' '); /* the word before is whole */
}

/* ---- item: the packed configuration (one allocation) -------------------------- */

/* Every list of the copy is linked as cJSON links its own: prev of the
 * first item is the last, next of the last is NULL. */
static bool pack_links_ok(const cJSON *v) {
  for (; v; v = v->next) {
    const cJSON *c = v->child, *last = NULL;
    for (const cJSON *k = c; k; k = k->next) {
      if (k != c && k->prev != last)
        return false;
      last = k;
    }
    if (c && c->prev != last)
      return false;
    if (!pack_links_ok(c))
      return false;
  }
  return true;
}

/* The copy equals the tree (cJSON_Compare, printed text), reads the same
 * through the getters, duplicates into a normal tree, and frees with one
 * free(): for a document of every kind of value and for the config
 * corpus. */
static bool pack_same(const cJSON *v) {
  cJSON *p = mesh__json_pack(v);
  if (!p)
    return false;
  char *a = cJSON_PrintUnformatted(v), *b = cJSON_PrintUnformatted(p);
  cJSON *d = cJSON_Duplicate(p, true);
  /* cJSON_Compare finds an object's keys by name: a document with a
   * duplicated key (mesh_new refuses those) differs even from its own
   * cJSON_Duplicate; those are compared by their printed text only */
  cJSON *v2 = cJSON_Duplicate(v, true);
  bool cmp = !cJSON_Compare(v, v2, true) ||
             (cJSON_Compare(v, p, true) && cJSON_Compare(v, d, true));
  cJSON_Delete(v2);
  bool ok = cmp && a && b && strcmp(a, b) == 0 && pack_links_ok(p) &&
            p->next == NULL && p->prev == NULL &&
            cJSON_GetArraySize(p) == cJSON_GetArraySize(v);
  cJSON_Delete(d);
  free(a);
  free(b);
  free(p);
  return ok;
}

static void test_mesh__json_pack(void) {
  static const char doc[] =
      "{\"s\":\"x\\\"y\\u00e9\\n\",\"e\":\"\",\"\":1,\"n\":null,\"t\":true,"
      "\"f\":false,\"i\":-42,\"big\":1e300,\"d\":0.1,\"a\":[1,\"two\",[],{}],"
      "\"o\":{\"deep\":{\"deeper\":[[[{\"k\":[null]}]]]}},\"last\":[3]}";
  cJSON *v = cJSON_Parse(doc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  CU_ASSERT(pack_same(v));
  cJSON *p = mesh__json_pack(v);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetObjectItemCaseSensitive(p, "s")->valuestring, "x\"y\xc3\xa9\n");
  CU_ASSERT_EQUAL(cJSON_GetObjectItemCaseSensitive(p, "i")->valueint, -42);
  CU_ASSERT_EQUAL(cJSON_GetObjectItemCaseSensitive(p, "d")->valuedouble, 0.1);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "a");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(a), 4);
  CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(a, 1)->valuestring, "two");
  CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "n")));
  CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "t")));
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(p, "missing"));
  /* a subtree alone: its siblings are not copied */
  cJSON *o = mesh__json_pack(cJSON_GetObjectItemCaseSensitive(v, "o"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  CU_ASSERT_PTR_NULL(o->next);
  CU_ASSERT_STRING_EQUAL(o->string, "o");
  free(o);
  free(p);
  cJSON_Delete(v);
  CU_ASSERT_PTR_NULL(mesh__json_pack(NULL));
  /* scalars as the root */
  static const char *const roots[] = {"1", "\"s\"", "null", "[]", "{}"};
  for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
    v = cJSON_Parse(roots[i]);
    CU_ASSERT(pack_same(v));
    cJSON_Delete(v);
  }
  /* the config corpus */
  const char *dir = TEST_SRCDIR "/tests/fuzz/corpus/config";
  DIR *d = opendir(dir);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  size_t n = 0, bad = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    char *text = de->d_name[0] == '.' ? NULL : th_slurp(path, NULL);
    v = text ? cJSON_Parse(text) : NULL;
    if (v && !pack_same(v)) {
      fprintf(stderr, "%s: packed copy differs\n", de->d_name);
      bad++;
    }
    n += v != NULL;
    cJSON_Delete(v);
    free(text);
  }
  closedir(d);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT(n >= 100);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("config", NULL, NULL);
  CU_add_test(s, "mesh_config_check_same_verdict",
              test_mesh_config_check_same_verdict);
  CU_add_test(s, "mesh_config_check_corpus", test_mesh_config_check_corpus);
  CU_add_test(s, "mesh__json_parse_duplicates",
              test_mesh__json_parse_duplicates);
  CU_add_test(s, "mesh_config_check_duplicates",
              test_mesh_config_check_duplicates);
  CU_add_test(s, "mesh_authz_reload_duplicates",
              test_mesh_authz_reload_duplicates);
  CU_add_test(s, "mesh__opa_parse_result_duplicates",
              test_mesh__opa_parse_result_duplicates);
  CU_add_test(s, "file_source_duplicates", test_file_source_duplicates);
  CU_add_test(s, "etcd_value_duplicates", test_etcd_value_duplicates);
  CU_add_test(s, "mesh_config_set_max_bytes", test_mesh_config_set_max_bytes);
  CU_add_test(s, "mesh__cfg_error_whole_tokens",
              test_mesh__cfg_error_whole_tokens);
  CU_add_test(s, "mesh__json_pack", test_mesh__json_pack);
}

int main(void) { return th_run_suites("test_config", add); }

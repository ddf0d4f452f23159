/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl check-config and resolve, run as a user runs them (the built
 * binary, its exit status, what it prints).  check-config's lines are
 * compared with mesh_config_check()'s own list; resolve is checked against
 * static, DNS (a real dnsmasq) and health-checked endpoints, and against a
 * live context's admin endpoint with an endpoint ejected. */
#include "helpers.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "discovery/discovery.h"
#include "endpoint/endpoint.h"
#include "resilience/resilience.h"

#define MESHCTL TEST_BUILDDIR "/tools/meshctl"
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------- */

static char *out_text, *err_text;

/* Run meshctl with args (a shell fragment) in the temp dir; stdout and
 * stderr are kept in out_text / err_text.  Returns the exit status. */
static int meshctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int meshctl(const char *fmt, ...) {
  char args[2048], cmd[3072];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd,
           "cd '%s' && '%s' %s >meshctl.out 2>meshctl.err", th_tmpdir(),
           MESHCTL, args);
  int rc = th_sh(cmd);
  free(out_text);
  free(err_text);
  out_text = th_slurp(th_path("meshctl.out"), NULL);
  err_text = th_slurp(th_path("meshctl.err"), NULL);
  if (!out_text)
    out_text = strdup("");
  if (!err_text)
    err_text = strdup("");
  return rc;
}

static bool has(const char *text, const char *needle) {
  if (text && strstr(text, needle))
    return true;
  fprintf(stderr, "\nmissing \"%s\" in:\n%s\n", needle, text ? text : "");
  return false;
}

static int count_lines(const char *text, const char *prefix) {
  int n = 0;
  size_t len = strlen(prefix);
  const char *p = text;
  while (p && *p) {
    if (strncmp(p, prefix, len) == 0)
      n++;
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return n;
}

static void write_cfg(const char *name, const char *text) {
  CU_ASSERT_FATAL(th_write(th_path(name), text));
}

/* ---- check-config -------------------------------------------------------- */

typedef struct errlist {
  char lines[32][400];
  int n;
} errlist_t;

static void collect(const char *msg, void *user) {
  errlist_t *l = user;
  if (l->n < 32)
    snprintf(l->lines[l->n++], sizeof l->lines[0], "%s", msg);
}

static const char valid_cfg[] =
    "{\"name\": \"web\", \"log\": {\"level\": \"warn\"},\n"
    " \"services\": {\"work\": {\n"
    "   \"discovery\": {\"type\": \"static\", \"endpoints\": [\n"
    "     {\"address\": \"127.0.0.1\", \"port\": 9001, \"labels\": "
    "{\"version\": \"v1\"}}]},\n"
    "   \"lb\": {\"policy\": \"least_request\"},\n"
    "   \"subsets\": {\"v1\": {\"version\": \"v1\"}},\n"
    "   \"split\": [{\"subset\": \"v1\", \"weight\": 1}],\n"
    "   \"outlier_detection\": {}, \"retry\": {\"num_retries\": 2}}}}\n";

static void test_check_config_valid(void) {
  write_cfg("valid.json", valid_cfg);
  CU_ASSERT_EQUAL(meshctl("check-config valid.json"), 0);
  CU_ASSERT_STRING_EQUAL(out_text, "valid.json: OK\n");
  CU_ASSERT_STRING_EQUAL(err_text, "");
  CU_ASSERT_EQUAL(meshctl("check-config --quiet valid.json"), 0);
  CU_ASSERT_STRING_EQUAL(out_text, "");
  /* standard input */
  CU_ASSERT_EQUAL(meshctl("check-config - <valid.json"), 0);
  CU_ASSERT_STRING_EQUAL(out_text, "<stdin>: OK\n");
}

struct bad_case {
  const char *text;
  int nerr;              /* errors the library reports */
  const char *expect[4]; /* lines (after "bad.json: ") that must appear */
};

static const struct bad_case bad_cases[] = {
  {"{\"bogus\": 1}", 1, {"bogus: unknown key (expected one of \"name\""}},
  {"{\"name\": \"x\", \"bogus\": 1,\n"
   " \"services\": {\"p\": {\"lb\": {\"policy\": \"fastest\"},\n"
   "   \"retry\": {\"num_retries\": -3},\n"
   "   \"discovery\": {\"type\": \"static\", \"endpoints\": "
   "[{\"address\": \"127.10.0.1\", \"port\": 70000}]}}}}",
   4,
   {"bogus: unknown key",
    "services.p.lb.policy: unknown value \"fastest\"",
    "services.p.retry.num_retries: -3 is out of range [0, 100]",
    "services.p.discovery.endpoints[0].port: 70000 is out of range "
    "[1, 65535]"}},
  {"{\"services\": {\n  \"p\": }", 1,
   {"(root): JSON syntax error at line 2, column"}},
  {"", 1, {"(root): JSON syntax error at line 1, column 1"}},
  {"{\"log\": {\"level\": \"loud\"}, \"worker\": {\"mode\": 3}}", 2,
   {"log.level: unknown value \"loud\"", "worker.mode: "}},
  /* duplicate keys, each named by its path */
  {"{\"inbound\": {\"mode\": \"PERMISSIVE\", \"mode\": \"STRICT\"},\n"
   " \"log\": {}, \"log\": {}}", 2,
   {"inbound.mode: duplicate key", "log: duplicate key"}},
  /* what mesh_new refuses, check-config refuses (docs/config/http.md) */
  {"{\"http\": {\"routes\": [{\"hosts\": [\"web\"], \"service\": "
   "\"web-next\"}]}}", 1,
   {"http.routes[0]: unknown service \"web-next\""}},
};

static void test_check_config_errors(void) {
  for (size_t i = 0; i < N(bad_cases); i++) {
    const struct bad_case *c = &bad_cases[i];
    write_cfg("bad.json", c->text);
    errlist_t want = {.n = 0};
    CU_ASSERT_EQUAL(mesh_config_check(c->text, collect, &want), c->nerr);
    CU_ASSERT_EQUAL(meshctl("check-config bad.json"), 1);
    /* exactly the library's errors, in its order, then the total */
    char all[8192] = "";
    size_t n = 0;
    for (int j = 0; j < want.n; j++)
      n += (size_t)snprintf(all + n, sizeof all - n, "bad.json: %s\n",
                            want.lines[j]);
    snprintf(all + n, sizeof all - n, "bad.json: %d error%s\n", c->nerr,
             c->nerr == 1 ? "" : "s");
    if (strcmp(out_text, all) != 0)
      fprintf(stderr, "\ncase %zu: want\n%s\nhave\n%s\n", i, all, out_text);
    CU_ASSERT_STRING_EQUAL(out_text, all);
    for (size_t j = 0; j < 4 && c->expect[j]; j++) {
      char line[512];
      snprintf(line, sizeof line, "bad.json: %s", c->expect[j]);
      CU_ASSERT_TRUE(has(out_text, line));
    }
    /* --quiet: the errors, no total */
    CU_ASSERT_EQUAL(meshctl("check-config --quiet bad.json"), 1);
    CU_ASSERT_EQUAL(count_lines(out_text, "bad.json: "), c->nerr);
    CU_ASSERT_PTR_NULL(strstr(out_text, " error\n"));
    CU_ASSERT_PTR_NULL(strstr(out_text, " errors\n"));
  }
}

static void test_check_config_files(void) {
  write_cfg("good.json", "{}");
  write_cfg("bad.json", "{\"bogus\": true}");
  /* several files: each is reported; one bad one fails the run */
  CU_ASSERT_EQUAL(meshctl("check-config good.json bad.json good.json"), 1);
  CU_ASSERT_EQUAL(count_lines(out_text, "good.json: OK"), 2);
  CU_ASSERT_TRUE(has(out_text, "bad.json: bogus: unknown key"));
  CU_ASSERT_TRUE(has(out_text, "bad.json: 1 error\n"));
  /* unreadable */
  CU_ASSERT_EQUAL(meshctl("check-config nosuch.json"), 1);
  CU_ASSERT_TRUE(
      has(out_text, "nosuch.json: cannot read: No such file or directory"));
  CU_ASSERT_EQUAL(meshctl("check-config ."), 1);
  CU_ASSERT_TRUE(has(out_text, ".: cannot read: Is a directory"));
  /* a NUL byte would hide the rest of the file from the checker */
  FILE *f = fopen(th_path("nul.json"), "wb");
  CU_ASSERT_FATAL(f != NULL);
  fwrite("{}\0{", 1, 4, f);
  fclose(f);
  CU_ASSERT_EQUAL(meshctl("check-config nul.json"), 1);
  CU_ASSERT_TRUE(has(out_text, "nul.json: NUL byte at offset 2"));
}

/* The size cap: checked before parsing, raised with --max-bytes. */
static void test_check_config_max_bytes(void) {
  size_t big = (size_t)5 << 20;
  char *text = malloc(big + 1);
  CU_ASSERT_FATAL(text != NULL);
  memset(text, ' ', big);
  memcpy(text, "{}", 2);
  text[big] = '\0';
  write_cfg("big.json", text);
  free(text);
  CU_ASSERT_EQUAL(meshctl("check-config big.json"), 1);
  CU_ASSERT_TRUE(has(out_text, "big.json: larger than the limit of 4194304 "
                               "bytes (raise it with --max-bytes"));
  CU_ASSERT_EQUAL(meshctl("check-config --max-bytes 8388608 big.json"), 0);
  CU_ASSERT_TRUE(has(out_text, "big.json: OK"));
  write_cfg("small.json", "{\"name\": \"abcdefgh\"}");
  CU_ASSERT_EQUAL(meshctl("check-config --max-bytes 10 small.json"), 1);
  CU_ASSERT_TRUE(has(out_text, "larger than the limit of 10 bytes"));
  CU_ASSERT_EQUAL(meshctl("check-config --max-bytes 0 small.json"), 2);
  CU_ASSERT_EQUAL(meshctl("check-config --max-bytes 1k small.json"), 2);
  CU_ASSERT_TRUE(has(err_text, "--max-bytes: expected a positive number"));
  /* resolve reads configs under the same cap and the same JSON rules */
  CU_ASSERT_EQUAL(meshctl("resolve work --config big.json"), 1);
  CU_ASSERT_TRUE(has(err_text, "larger than the configuration size limit"));
  write_cfg("dup.json", "{\"services\": {\"work\": {}, \"work\": {}}}");
  CU_ASSERT_EQUAL(meshctl("resolve work --config dup.json"), 1);
  CU_ASSERT_TRUE(has(err_text, "services.work: duplicate key"));
}

static void test_check_config_usage(void) {
  CU_ASSERT_EQUAL(meshctl("check-config"), 2);
  CU_ASSERT_TRUE(has(err_text, "no FILE given"));
  CU_ASSERT_EQUAL(meshctl("check-config --bogus x.json"), 2);
  CU_ASSERT_TRUE(has(err_text, "unknown option \"--bogus\""));
  CU_ASSERT_EQUAL(meshctl("check-config --quiet=1 x.json"), 2);
  CU_ASSERT_EQUAL(meshctl("check-config --help"), 0);
  CU_ASSERT_TRUE(has(out_text, "usage: meshctl check-config [--quiet] [--max-bytes N] FILE"));
  CU_ASSERT_EQUAL(meshctl("--help"), 0);
  CU_ASSERT_EQUAL(count_lines(out_text, "  check-config "), 1);
  CU_ASSERT_EQUAL(count_lines(out_text, "  resolve "), 1);
}

/* ---- resolve: from a config ---------------------------------------------- */

/* v1: a (weight 1) and b (weight 3); v2: c (priority 0, unhealthy) and d
 * (priority 1).  Expected shares: v1's 90% by weight, 22.5 / 67.5; v2's
 * 10% to d, the only usable one (its level is the best with any). */
static const char resolve_cfg[] =
    "{\"services\": {\"other\": {}, \"work\": {\n"
    "  \"lb\": {\"policy\": \"least_request\", \"choice_count\": 3},\n"
    "  \"subsets\": {\"v1\": {\"version\": \"v1\"}, \"v2\": {\"version\": "
    "\"v2\"},\n"
    "              \"eu\": {\"region\": \"eu\"}},\n"
    "  \"split\": [{\"subset\": \"v1\", \"weight\": 90}, {\"subset\": "
    "{\"version\": \"v2\"}, \"weight\": 10}],\n"
    "  \"discovery\": {\"type\": \"static\", \"endpoints\": [\n"
    "    {\"address\": \"127.10.0.1\", \"port\": 8001, \"labels\": "
    "{\"version\": \"v1\", \"region\": \"eu\"},\n"
    "     \"locality\": {\"region\": \"eu-west\", \"zone\": \"eu-west-1a\"}},\n"
    "    {\"address\": \"127.10.0.2\", \"port\": 8002, \"weight\": 3, "
    "\"labels\": {\"version\": \"v1\"}},\n"
    "    {\"address\": \"127.10.0.3\", \"port\": 8003, \"health\": "
    "\"unhealthy\", \"labels\": {\"version\": \"v2\"}},\n"
    "    {\"address\": \"fd00::4\", \"port\": 8004, \"priority\": 1, "
    "\"labels\": {\"version\": \"v2\"}}]}}}}\n";

static cJSON *endpoint_at(cJSON *doc, const char *addr) {
  cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "endpoints")) {
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "address")),
               addr) == 0)
      return e;
  }
  return NULL;
}

static double share_of(cJSON *doc, const char *addr) {
  cJSON *e = endpoint_at(doc, addr);
  return e ? cJSON_GetNumberValue(cJSON_GetObjectItem(e, "share")) : -1;
}

static bool near(double a, double b) { return fabs(a - b) < 1e-9; }

static void test_resolve_static(void) {
  write_cfg("r.json", resolve_cfg);
  CU_ASSERT_EQUAL(meshctl("resolve work --config r.json"), 0);
  CU_ASSERT_TRUE(has(out_text, "work: 4 endpoints, 3 usable (discovery "
                               "static, version 1)\n"));
  CU_ASSERT_TRUE(has(out_text, "lb least_request (choice_count 3); split "
                               "v1 90, version=v2 10\n"));
  /* subsets are listed in the config's order */
  const char *rows[] = {
      "\nENDPOINT         HEALTH     STATE     WEIGHT  PRIO  "
      "LOCALITY            SUBSETS  SHARE  LABELS\n",
      "\n127.10.0.1:8001  unknown    usable    1       0     "
      "eu-west/eu-west-1a  v1,eu    22.5%  region=eu version=v1\n",
      "\n127.10.0.2:8002  unknown    usable    3       0     "
      "-                   v1       67.5%  version=v1\n",
      "\n127.10.0.3:8003  unhealthy  unusable  1       0     "
      "-                   v2       0.0%   version=v2\n",
      "\n[fd00::4]:8004   unknown    usable    1       1     "
      "-                   v2       10.0%  version=v2\n"};
  for (size_t i = 0; i < N(rows); i++)
    CU_ASSERT_TRUE(has(out_text, rows[i]));
  CU_ASSERT_PTR_NULL(strstr(out_text, "warning"));
  CU_ASSERT_STRING_EQUAL(err_text, "");

  /* the same as JSON; options before the service name work too */
  CU_ASSERT_EQUAL(meshctl("resolve --config r.json --json work"), 0);
  cJSON *doc = cJSON_Parse(out_text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetStringValue(cJSON_GetObjectItem(doc, "policy")),
      "least_request");
  CU_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(doc, "live")));
  CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "endpoints")),
                  4);
  CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.1"), 0.225));
  CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.2"), 0.675));
  CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.3"), 0));
  CU_ASSERT_TRUE(near(share_of(doc, "fd00::4"), 0.1));
  cJSON *a = endpoint_at(doc, "127.10.0.1");
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetStringValue(cJSON_GetObjectItem(
          cJSON_GetObjectItem(a, "locality"), "zone")),
      "eu-west-1a");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(a, "subsets")), 2);
  cJSON_Delete(doc);
}

struct share_case {
  const char *lb_extra; /* inside "lb" */
  const char *split;
  double a, b;          /* expected shares of 127.10.0.1 (v1) and .2 (v2) */
  const char *warning;  /* expected warning, or NULL */
};

static const struct share_case share_cases[] = {
  /* no split: by weight (1 and 3) */
  {"", "", 0.25, 0.75, NULL},
  /* split to a subset with no endpoint: its calls fail */
  {"", ", \"split\": [{\"subset\": \"v1\", \"weight\": 1}, "
       "{\"subset\": {\"version\": \"v9\"}, \"weight\": 1}]",
   0.5, 0, "warning: split entry \"version=v9\" (50% of calls) has no "
           "usable endpoint: its calls fail with MESH_ERR_NO_ENDPOINTS"},
  /* ... or, with subset_fallback "any", go to every endpoint */
  {", \"subset_fallback\": \"any\"",
   ", \"split\": [{\"subset\": \"v1\", \"weight\": 1}, "
   "{\"subset\": {\"version\": \"v9\"}, \"weight\": 1}]",
   0.5 + 0.5 * 0.25, 0.5 * 0.75,
   "its calls use every endpoint (subset_fallback \"any\")"},
  /* a weight-0 entry takes nothing */
  {"", ", \"split\": [{\"subset\": \"v1\", \"weight\": 0}, "
       "{\"subset\": {\"version\": \"v2\"}, \"weight\": 5}]",
   0, 1, NULL},
};

static void test_resolve_shares(void) {
  for (size_t i = 0; i < N(share_cases); i++) {
    const struct share_case *c = &share_cases[i];
    char text[2048];
    snprintf(text, sizeof text,
             "{\"services\": {\"s\": {\"lb\": {\"policy\": \"random\"%s},\n"
             " \"subsets\": {\"v1\": {\"version\": \"v1\"}}%s,\n"
             " \"discovery\": {\"type\": \"static\", \"endpoints\": [\n"
             "  {\"address\": \"127.10.0.1\", \"port\": 1, \"labels\": "
             "{\"version\": \"v1\"}},\n"
             "  {\"address\": \"127.10.0.2\", \"port\": 1, \"weight\": 3, "
             "\"labels\": {\"version\": \"v2\"}}]}}}}",
             c->lb_extra, c->split);
    write_cfg("s.json", text);
    CU_ASSERT_EQUAL(meshctl("resolve s --config s.json --json"), 0);
    cJSON *doc = cJSON_Parse(out_text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    if (!near(share_of(doc, "127.10.0.1"), c->a) ||
        !near(share_of(doc, "127.10.0.2"), c->b))
      fprintf(stderr, "\ncase %zu: %s\n", i, out_text);
    CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.1"), c->a));
    CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.2"), c->b));
    int nwarn = cJSON_GetArraySize(cJSON_GetObjectItem(doc, "warnings"));
    CU_ASSERT_EQUAL(nwarn, c->warning ? 1 : 0);
    cJSON_Delete(doc);
    CU_ASSERT_EQUAL(meshctl("resolve s --config s.json"), 0);
    if (c->warning)
      CU_ASSERT_TRUE(has(out_text, c->warning));
  }
}

static void test_resolve_errors(void) {
  write_cfg("r.json", resolve_cfg);
  CU_ASSERT_EQUAL(meshctl("resolve nosuch --config r.json"), 1);
  CU_ASSERT_TRUE(has(err_text, "MESH_ERR_UNKNOWN_SERVICE"));
  CU_ASSERT_TRUE(has(err_text, "services in the config: other work\n"));
  write_cfg("bad.json", "{\"services\": {\"work\": {\"lb\": 7}}}");
  CU_ASSERT_EQUAL(meshctl("resolve work --config bad.json"), 1);
  CU_ASSERT_TRUE(has(err_text, "MESH_ERR_CONFIG: services.work.lb"));
  write_cfg("bad.json", "{\"services\": ");
  CU_ASSERT_EQUAL(meshctl("resolve work --config bad.json"), 1);
  CU_ASSERT_TRUE(has(err_text, "not a JSON object (meshctl check-config"));
  CU_ASSERT_EQUAL(meshctl("resolve work --config nosuch.json"), 1);
  CU_ASSERT_TRUE(has(err_text, "nosuch.json: cannot read"));
  /* usage */
  CU_ASSERT_EQUAL(meshctl("resolve --config r.json"), 2);
  CU_ASSERT_EQUAL(meshctl("resolve work"), 2);
  CU_ASSERT_EQUAL(meshctl("resolve work --config r.json --admin 127.0.0.1:5"),
                  2);
  CU_ASSERT_EQUAL(meshctl("resolve work other --config r.json"), 2);
  CU_ASSERT_TRUE(has(err_text, "unexpected argument \"other\""));
  CU_ASSERT_EQUAL(meshctl("resolve work --config r.json --timeout 5x"), 2);
  CU_ASSERT_EQUAL(meshctl("resolve work --config"), 2);
  CU_ASSERT_EQUAL(meshctl("resolve --help"), 0);
  CU_ASSERT_TRUE(has(out_text, "usage: meshctl resolve SERVICE --config"));
}

/* ---- resolve: sources that answer later ---------------------------------- */

static int listen_tcp(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

/* Active health checks: resolve waits for their first verdict, so one
 * endpoint is healthy (something listens) and one unhealthy (nothing
 * does), not "unknown".  The config's admin section asks for the port we
 * hold: resolve must drop it, or mesh_new() would fail to bind. */
static void test_resolve_health(void) {
  int up = 0, down = th_free_port();
  int fd = listen_tcp(&up);
  CU_ASSERT_FATAL(fd >= 0 && down > 0);
  char text[1024];
  snprintf(text, sizeof text,
           "{\"admin\": {\"listen\": \"127.0.0.1:%d\"},\n"
           " \"services\": {\"h\": {\"health_check\": {\"type\": \"tcp\", "
           "\"timeout_ms\": 500},\n"
           "  \"discovery\": {\"type\": \"static\", \"endpoints\": [\n"
           "   {\"address\": \"127.0.0.1\", \"port\": %d},\n"
           "   {\"address\": \"127.0.0.1\", \"port\": %d}]}}}}",
           up, up, down);
  write_cfg("h.json", text);
  CU_ASSERT_EQUAL(meshctl("resolve h --config h.json --timeout 5s"), 0);
  char row[128];
  snprintf(row, sizeof row, "127.0.0.1:%-5d  healthy    usable ", up);
  CU_ASSERT_TRUE(has(out_text, row));
  snprintf(row, sizeof row, "127.0.0.1:%-5d  unhealthy  unusable ", down);
  CU_ASSERT_TRUE(has(out_text, row));
  CU_ASSERT_TRUE(has(out_text, "100.0%"));
  CU_ASSERT_TRUE(has(out_text, "h: 2 endpoints, 1 usable"));
  close(fd);
}

/* DNS answers on the worker, after mesh_new(): without the wait the set
 * would be empty.  A server that refuses makes the first answer an error:
 * exit status 1. */
static void test_resolve_dns(void) {
  if (!th_require("dnsmasq", "dnsmasq-base"))
    return;
  int port = th_free_port();
  char portarg[32], user[80];
  snprintf(portarg, sizeof portarg, "--port=%d", port);
  struct passwd *pw = getpwuid(getuid());
  snprintf(user, sizeof user, "--user=%s", pw ? pw->pw_name : "root");
  const char *argv[] = {"dnsmasq", "-d", "-k", portarg,
                        "--listen-address=127.0.0.1", "--bind-interfaces",
                        "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                        "--local=/test/", "--pid-file=", user,
                        "--host-record=work.test,127.0.0.7",
                        "--host-record=work.test,127.0.0.8", NULL};
  pid_t pid = th_spawn(argv, "dnsmasq.log");
  CU_ASSERT_FATAL(pid > 0 && th_wait_port(port, 5000));
  char text[512];
  snprintf(text, sizeof text,
           "{\"services\": {\"work\": {\"discovery\": {\"type\": \"dns\", "
           "\"name\": \"work.test\", \"record\": \"A\", \"port\": 8443, "
           "\"servers\": [\"127.0.0.1:%d\"], \"timeout_ms\": 600}}}}",
           port);
  write_cfg("dns.json", text);
  CU_ASSERT_EQUAL(meshctl("resolve work --config dns.json"), 0);
  CU_ASSERT_TRUE(has(out_text, "work: 2 endpoints, 2 usable (discovery dns, "
                               "version 1)"));
  CU_ASSERT_TRUE(has(out_text, "\n127.0.0.7:8443 "));
  CU_ASSERT_TRUE(has(out_text, "\n127.0.0.8:8443 "));
  th_stop(pid);
  /* nothing answers any more: the first answer is an error */
  CU_ASSERT_EQUAL(meshctl("resolve work --config dns.json --timeout 5s"), 1);
  CU_ASSERT_TRUE(has(err_text, "discovery failed"));
  CU_ASSERT_TRUE(has(out_text, "work: 0 endpoints"));
}

/* ---- resolve: the live state of a running process ------------------------ */

static void eject(mesh_t *m, const char *svc_name, const char *address) {
  mesh__service_t *svc = mesh__service_find(m, svc_name);
  CU_ASSERT_PTR_NOT_NULL_FATAL(svc);
  mesh__snapshot_t *snap = mesh__snap_acquire(mesh__disc_snapref(svc));
  CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
  int found = 0;
  for (size_t i = 0; i < snap->n; i++)
    if (strcmp(snap->hosts[i]->address, address) == 0) {
      atomic_store(&snap->hosts[i]->ejected_until_ms, mesh__now_ms() + 60000);
      found++;
    }
  mesh__snap_release(snap);
  CU_ASSERT_EQUAL(found, 1);
}

typedef struct reconf_job {
  mesh__service_t *svc;
  cJSON *o;
  int rc;
} reconf_job_t;

static void reconf_on_loop(void *user) {
  reconf_job_t *j = user;
  mesh_status_t st;
  j->rc = mesh__res_reconfigure(j->svc, j->o, &st);
}

/* Split svc_name's hosts into clusters as xds/apply.c does (on the loop
 * thread, like it): JSON is the resilience object with "groups". */
static void reconfigure(mesh_t *m, const char *svc_name, const char *json) {
  reconf_job_t j = {mesh__service_find(m, svc_name), cJSON_Parse(json), -1};
  CU_ASSERT_PTR_NOT_NULL_FATAL(j.svc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j.o);
  CU_ASSERT_EQUAL(mesh__loop_call(m->loop, reconf_on_loop, &j), MESH_OK);
  CU_ASSERT_EQUAL(j.rc, MESH_OK);
  cJSON_Delete(j.o);
}

static void test_resolve_admin(void) {
  const char *cfg =
      "{\"log\": {\"level\": \"error\"}, \"admin\": {\"listen\": "
      "\"127.0.0.1:0\"},\n"
      " \"services\": {\"work\": {\"lb\": {\"policy\": \"peak_ewma\"},\n"
      "  \"subsets\": {\"v1\": {\"version\": \"v1\"}},\n"
      "  \"split\": [{\"subset\": \"v1\", \"weight\": 1}],\n"
      "  \"discovery\": {\"type\": \"static\", \"endpoints\": [\n"
      "   {\"address\": \"127.10.0.1\", \"port\": 1, \"labels\": {\"version\": "
      "\"v1\"}},\n"
      "   {\"address\": \"127.10.0.2\", \"port\": 1, \"labels\": {\"version\": "
      "\"v1\"}},\n"
      "   {\"address\": \"127.10.0.3\", \"port\": 1, \"labels\": {\"version\": "
      "\"v2\"}}]}}}}";
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(cfg, &m, &st), MESH_OK);
  int port = mesh_admin_port(m);
  CU_ASSERT_FATAL(port > 0);
  eject(m, "work", "127.10.0.2");

  CU_ASSERT_EQUAL(meshctl("resolve work --admin 127.0.0.1:%d", port), 0);
  CU_ASSERT_TRUE(has(out_text, "work: 3 endpoints, 2 usable (discovery "
                               "static, version 1, live)\n"));
  CU_ASSERT_TRUE(has(out_text, "lb peak_ewma (choice_count 2); split v1 1\n"));
  CU_ASSERT_TRUE(has(out_text, "  SHARE   ACTIVE  EWMA    LABELS\n"));
  CU_ASSERT_TRUE(has(out_text, "\n127.10.0.1:1  unknown  usable         1     "
                               "  0     -         v1       100.0%  0       "
                               "0.00ms  version=v1\n"));
  /* 60 s minus the time since eject(): "ejected 59.9s" on a slow run */
  CU_ASSERT_TRUE(has(out_text, "\n127.10.0.2:1  unknown  ejected "));
  CU_ASSERT_TRUE(has(out_text, "\n127.10.0.3:1  unknown  usable         1     "
                               "  0     -         -        0.0%    0 "));
  /* the resilience line (admin /resilience) */
  CU_ASSERT_TRUE(has(out_text,
                     "\nresilience: connect 5000ms; breakers connections "
                     "0/1024, pending 0/1024, requests 0/1024, retries 0/3, "
                     "overflows 0; outlier detection off; ejected 1: "
                     "127.10.0.2:1\n"));

  CU_ASSERT_EQUAL(meshctl("resolve work --admin 127.0.0.1:%d --json", port),
                  0);
  cJSON *doc = cJSON_Parse(out_text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
  CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(doc, "live")));
  cJSON *b = endpoint_at(doc, "127.10.0.2");
  CU_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(b, "ejected")));
  CU_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(b, "usable")));
  CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(
      cJSON_GetObjectItem(b, "lb"), "active_requests"));
  CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.1"), 1));
  CU_ASSERT_TRUE(near(share_of(doc, "127.10.0.2"), 0));
  const cJSON *res = cJSON_GetObjectItem(doc, "resilience");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "circuit_breakers"),
                                      "max_requests")->valuedouble, 1024);
  cJSON_Delete(doc);

  /* split into clusters by label (as xDS does): one line per cluster */
  reconfigure(m, "work",
              "{\"group_label\": \"version\", \"groups\": {"
              "\"v1\": {\"weight\": 3, \"circuit_breakers\": {\"max_requests\": 1},"
              " \"outlier_detection\": {\"consecutive_5xx\": 3},"
              " \"timeouts\": {\"connect_ms\": 250}},"
              "\"v2\": {\"weight\": 1}}}");
  CU_ASSERT_EQUAL(meshctl("resolve work --admin 127.0.0.1:%d", port), 0);
  CU_ASSERT_TRUE(has(out_text,
                     "\ncluster v1 (weight 3): connect 250ms; breakers "
                     "connections 0/1024, pending 0/1024, requests 0/1, "
                     "retries 0/3, overflows 0; outlier consecutive_5xx 3, "
                     "interval 10000ms, base ejection 30000ms, max 10%; "
                     "ejected 1: 127.10.0.2:1\n"));
  CU_ASSERT_TRUE(has(out_text,
                     "\ncluster v2 (weight 1): connect 5000ms; breakers "
                     "connections 0/1024, pending 0/1024, requests 0/1024, "
                     "retries 0/3, overflows 0; outlier detection off; "
                     "ejected 0\n"));
  CU_ASSERT_FALSE(has(out_text, "\nresilience: "));

  CU_ASSERT_EQUAL(meshctl("resolve nosuch --admin 127.0.0.1:%d", port), 1);
  CU_ASSERT_TRUE(has(err_text, "has no service \"nosuch\""));
  mesh_free(m);
  /* nobody there any more */
  CU_ASSERT_EQUAL(
      meshctl("resolve work --admin 127.0.0.1:%d --timeout 2s", port), 1);
  CU_ASSERT_TRUE(has(err_text, "meshctl resolve: http://127.0.0.1:"));
}

static void add(void) {
  CU_pSuite s = CU_add_suite("meshctl", NULL, NULL);
  CU_add_test(s, "meshctl_check_config_valid", test_check_config_valid);
  CU_add_test(s, "meshctl_check_config_errors", test_check_config_errors);
  CU_add_test(s, "meshctl_check_config_files", test_check_config_files);
  CU_add_test(s, "meshctl_check_config_usage", test_check_config_usage);
  CU_add_test(s, "meshctl_check_config_max_bytes",
              test_check_config_max_bytes);
  CU_add_test(s, "meshctl_resolve_static", test_resolve_static);
  CU_add_test(s, "meshctl_resolve_shares", test_resolve_shares);
  CU_add_test(s, "meshctl_resolve_errors", test_resolve_errors);
  CU_add_test(s, "meshctl_resolve_health", test_resolve_health);
  CU_add_test(s, "meshctl_resolve_dns", test_resolve_dns);
  CU_add_test(s, "meshctl_resolve_admin", test_resolve_admin);
}

int main(void) {
  int rc = th_run_suites("test_meshctl", add);
  free(out_text);
  free(err_text);
  return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Core: config validation with JSON paths, errors, logging, worker loop. */
#include "helpers.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

static void test_mesh_strerror(void) {
  CU_ASSERT_STRING_EQUAL(mesh_strerror(MESH_OK), "success");
  CU_ASSERT_STRING_EQUAL(mesh_strerror(MESH_ERR_TIMEOUT), "timed out");
  CU_ASSERT_STRING_EQUAL(mesh_code_name(MESH_ERR_UPSTREAM), "MESH_ERR_UPSTREAM");
  CU_ASSERT_STRING_EQUAL(mesh_strerror(-9999), "unknown error code");
  CU_ASSERT_STRING_EQUAL(mesh_strerror(5), "unknown error code");
  /* the table is dense: every code from 0 down to the last has a name */
  for (int c = 0; c >= MESH_ERR_UPSTREAM; c--)
    CU_ASSERT(strcmp(mesh_code_name(c), "MESH_ERR_UNKNOWN") != 0);
}

static void test_mesh_version(void) {
  CU_ASSERT_STRING_EQUAL(mesh_version(), MESH_VERSION_STRING);
  CU_ASSERT_EQUAL(mesh_version_num(), MESH_VERSION_NUM);
}

struct cfg_case {
  const char *json;
  int want_rc;
  const char *want_msg; /* substring of the status message */
};

static const struct cfg_case cfg_cases[] = {
  {"{}", MESH_OK, ""},
  {"{\"name\":\"frontend\",\"log\":{\"level\":\"debug\"}}", MESH_OK, ""},
  {"{\"nmae\":\"x\"}", MESH_ERR_CONFIG, "nmae: unknown key (expected one of"},
  {"{\"log\":{\"level\":\"loud\"}}", MESH_ERR_CONFIG,
   "log.level: unknown value \"loud\" (expected one of \"error\""},
  {"{\"log\":{\"level\":3}}", MESH_ERR_CONFIG,
   "log.level: expected a string, got a number"},
  {"{\"name\": 5}", MESH_ERR_CONFIG, "name: expected a string"},
  {"{\"services\":{\"pay ments\":{}}}", MESH_ERR_CONFIG,
   "services.pay ments: invalid service name"},
  {"{\"services\":{\"payments\":{\"peers\":[1]}}}", MESH_ERR_CONFIG,
   "services.payments.peers[0]: expected a string, got a number"},
  {"{\"services\":{\"payments\":{\"peers\":[]}}}", MESH_ERR_CONFIG,
   "services.payments.peers: must list at least one pattern"},
  {"{\"services\":{\"payments\":{\"bogus\":1}}}", MESH_ERR_CONFIG,
   "services.payments.bogus: unknown key"},
  {"{\n  \"name\": \"x\",\n  oops\n}", MESH_ERR_CONFIG,
   "JSON syntax error at line 3"},
  {"[]", MESH_ERR_CONFIG, "(root): expected an object, got an array"},
  {"{\"worker\":{\"mode\":\"external\"}}", MESH_OK, ""},
  {"{\"name\":\"a\",\"nmae\":1,\"log\":{\"lvl\":1}}", MESH_ERR_CONFIG,
   "(and 1 more error)"},
};

static void test_mesh_new_config_errors(void) {
  for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
    const struct cfg_case *tc = &cfg_cases[i];
    mesh_t *m = NULL;
    mesh_status_t st;
    int rc = mesh_new(tc->json, &m, &st);
    if (rc != tc->want_rc || !strstr(st.message, tc->want_msg))
      fprintf(stderr, "case %zu: rc=%d msg=%s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want_rc);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->want_msg));
    CU_ASSERT_EQUAL(rc == MESH_OK, m != NULL);
    mesh_free(m);
  }
}

static void count_err(const char *msg, void *user) {
  (void)msg;
  (*(int *)user)++;
}

static void test_mesh_config_check(void) {
  int n = 0;
  int rc = mesh_config_check(
      "{\"nmae\":1,\"log\":{\"level\":\"x\"},\"services\":{\"a\":{\"q\":1}}}",
      count_err, &n);
  CU_ASSERT_EQUAL(rc, 3);
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_EQUAL(mesh_config_check("{}", NULL, NULL), 0);
  CU_ASSERT_EQUAL(mesh_config_check(NULL, NULL, NULL), MESH_ERR_INVALID_ARG);
}

static void test_mesh_new_misuse(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new(NULL, &m, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_new("{}", NULL, NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_new_from_file("/nonexistent/x.json", &m, &st),
                  MESH_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "/nonexistent/x.json"));
  mesh_free(NULL);
  CU_ASSERT_EQUAL(mesh_process(NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_backend_fd(NULL), -1);
}

static void test_mesh_new_from_file(void) {
  const char *p = th_path("cfg.json");
  CU_ASSERT(th_write(p, "{\"name\":\"svc\"}"));
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new_from_file(p, &m, &st), MESH_OK);
  mesh_free(m);
}

struct logcap {
  int n;
  char last[1024];
};

static void cap_log(int level, const char *line, void *user) {
  struct logcap *c = user;
  c->n++;
  snprintf(c->last, sizeof c->last, "%s", line);
  (void)level;
}

static void test_mesh_set_log(void) {
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m, NULL), MESH_OK);
  struct logcap cap = {0};
  mesh_set_log(m, MESH_LOG_INFO, cap_log, &cap);
  mesh__log(m, MESH_LOG_DEBUG, "hidden", "k=v");
  CU_ASSERT_EQUAL(cap.n, 0);
  mesh__log(m, MESH_LOG_WARN, "svid_reload", "file=%s err=%s", "/x", "bad");
  CU_ASSERT_EQUAL(cap.n, 1);
  CU_ASSERT_STRING_EQUAL(cap.last,
                         "level=warn event=svid_reload file=/x err=bad");
  mesh_free(m);
}

/* ---- loop ---- */

struct tick {
  atomic_int n;
  int order[8];
  int k;
};

static void on_timer(void *u) {
  struct tick *t = u;
  atomic_fetch_add(&t->n, 1);
}

static int ord_vals[3] = {3, 1, 2};
static struct tick ord;
static void on_ord(void *u) { ord.order[ord.k++] = *(int *)u; }

static void test_mesh__loop_timer(void) {
  mesh__loop_t *l;
  CU_ASSERT_EQUAL_FATAL(mesh__loop_new(&l), MESH_OK);
  memset(&ord, 0, sizeof ord);
  int64_t t0 = mesh__now_ms(); /* before arming: under valgrind arming is slow */
  mesh__loop_timer(l, 30, on_ord, &ord_vals[0]);
  mesh__loop_timer(l, 10, on_ord, &ord_vals[1]);
  mesh__loop_timer(l, 20, on_ord, &ord_vals[2]);
  int64_t id = mesh__loop_timer(l, 15, on_ord, &ord_vals[0]);
  mesh__loop_timer_cancel(l, id);
  while (ord.k < 3 && mesh__now_ms() - t0 < 2000)
    mesh__loop_run_once(l, 50);
  CU_ASSERT_EQUAL(ord.k, 3);
  CU_ASSERT_EQUAL(ord.order[0], 1);
  CU_ASSERT_EQUAL(ord.order[1], 2);
  CU_ASSERT_EQUAL(ord.order[2], 3);
  CU_ASSERT(mesh__now_ms() - t0 >= 29);
  CU_ASSERT_EQUAL(mesh__loop_timeout(l), -1);
  mesh__loop_free(l);
}

/* Many timers, half cancelled in a scattered order; stale ids (fired,
 * cancelled twice, made up, an old id whose slot a new timer reuses)
 * cancel nothing. */
static int fired[2048];
static void on_fire(void *u) { fired[(int *)u - fired]++; }

static void test_mesh__loop_timer_cancel(void) {
  mesh__loop_t *l;
  CU_ASSERT_EQUAL_FATAL(mesh__loop_new(&l), MESH_OK);
  enum { N = 2048 };
  static int64_t id[N];
  memset(fired, 0, sizeof fired);
  for (int i = 0; i < N; i++) {
    id[i] = mesh__loop_timer(l, i % 7, on_fire, &fired[i]);
    CU_ASSERT_FATAL(id[i] > 0);
  }
  for (int k = 0; k < N; k++) {
    int i = (k * 1031) % N; /* 1031 odd: a permutation of 0..N-1 */
    if (i % 2)
      mesh__loop_timer_cancel(l, id[i]);
  }
  mesh__loop_timer_cancel(l, id[1]); /* twice */
  mesh__loop_timer_cancel(l, id[N - 1] + ((int64_t)1 << 40)); /* made up */
  mesh__loop_timer_cancel(l, -5);
  int64_t t0 = mesh__now_ms();
  while (mesh__loop_timeout(l) >= 0 && mesh__now_ms() - t0 < 5000)
    mesh__loop_run_once(l, 10);
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += fired[i] != (i % 2 ? 0 : 1);
  CU_ASSERT_EQUAL(bad, 0);
  /* id[0] fired; its slot goes to the next timer: the old id is stale */
  fired[0] = 0;
  int64_t again = mesh__loop_timer(l, 0, on_fire, &fired[0]);
  CU_ASSERT(again > 0 && again != id[0]);
  mesh__loop_timer_cancel(l, id[0]);
  mesh__loop_timer_cancel(l, id[2]);
  t0 = mesh__now_ms();
  while (fired[0] == 0 && mesh__now_ms() - t0 < 5000)
    mesh__loop_run_once(l, 10);
  CU_ASSERT_EQUAL(fired[0], 1);
  CU_ASSERT_EQUAL(mesh__loop_timeout(l), -1);
  mesh__loop_free(l);
}

static void post_fn(void *u) { on_timer(u); }

static void test_mesh__loop_post_thread(void) {
  mesh__loop_t *l;
  CU_ASSERT_EQUAL_FATAL(mesh__loop_new(&l), MESH_OK);
  CU_ASSERT_EQUAL(mesh__loop_start_thread(l), MESH_OK);
  struct tick t = {0};
  for (int i = 0; i < 100; i++)
    CU_ASSERT_EQUAL(mesh__loop_post(l, post_fn, &t), MESH_OK);
  CU_ASSERT_EQUAL(mesh__loop_call(l, post_fn, &t), MESH_OK);
  /* posts run in order, so after the synchronous call all 101 ran */
  CU_ASSERT_EQUAL(atomic_load(&t.n), 101);
  mesh__loop_stop(l);
  mesh__loop_free(l);
}

static int io_pipe[2];
static void on_io(int fd, unsigned ev, void *u) {
  char b[8];
  if (ev & MESH__IO_READ && read(fd, b, sizeof b) > 0)
    on_timer(u);
}

static void test_mesh__loop_watch(void) {
  mesh__loop_t *l;
  CU_ASSERT_EQUAL_FATAL(mesh__loop_new(&l), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(pipe(io_pipe), 0);
  struct tick t = {0};
  CU_ASSERT_EQUAL(mesh__loop_watch(l, io_pipe[0], MESH__IO_READ, on_io, &t),
                  MESH_OK);
  CU_ASSERT_EQUAL(write(io_pipe[1], "x", 1), 1);
  mesh__loop_run_once(l, 500);
  CU_ASSERT_EQUAL(atomic_load(&t.n), 1);
  mesh__loop_unwatch(l, io_pipe[0]);
  CU_ASSERT_EQUAL(write(io_pipe[1], "x", 1), 1);
  mesh__loop_run_once(l, 50);
  CU_ASSERT_EQUAL(atomic_load(&t.n), 1);
  close(io_pipe[0]);
  close(io_pipe[1]);
  mesh__loop_free(l);
}

static void test_mesh_process_external(void) {
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"worker\":{\"mode\":\"external\"}}", &m,
                                 NULL),
                        MESH_OK);
  CU_ASSERT(mesh_backend_fd(m) >= 0);
  struct tick t = {0};
  mesh__loop_timer(m->loop, 0, on_timer, &t);
  CU_ASSERT_EQUAL(mesh_backend_timeout(m), 0);
  CU_ASSERT_EQUAL(mesh_process(m), MESH_OK);
  CU_ASSERT_EQUAL(atomic_load(&t.n), 1);
  mesh_free(m);
  mesh_t *m2 = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m2, NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh_backend_fd(m2), -1);
  CU_ASSERT_EQUAL(mesh_process(m2), MESH_ERR_INVALID_ARG);
  mesh_free(m2);
}

/* One codec, four spellings: each row is (flags, text, expected bytes or
 * NULL for "refused").  RFC 4648 section 10's vectors, both alphabets,
 * padding where it may and may not be, and the strict last character. */
static void test_mesh__b64(void) {
  const unsigned STD = 0, PAD = MESH__B64_PAD, URL = MESH__B64_URL,
                 ANY = MESH__B64_ANY | MESH__B64_PAD,
                 JOSE = MESH__B64_URL | MESH__B64_STRICT;
  static const struct {
    const char *raw, *std_pad, *url_nopad;
  } vec[] = {{"", "", ""},           {"f", "Zg==", "Zg"},
             {"fo", "Zm8=", "Zm8"},  {"foo", "Zm9v", "Zm9v"},
             {"foob", "Zm9vYg==", "Zm9vYg"},
             {"fooba", "Zm9vYmE=", "Zm9vYmE"},
             {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
             {"\xfb\xff\xbf", "+/+/", "-_-_"}};
  for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
    size_t rl = strlen(vec[i].raw);
    char *e = NULL;
    CU_ASSERT_EQUAL_FATAL(mesh__b64_enc(vec[i].raw, rl, PAD, &e), MESH_OK);
    CU_ASSERT_STRING_EQUAL(e, vec[i].std_pad);
    free(e);
    CU_ASSERT_EQUAL_FATAL(mesh__b64_enc(vec[i].raw, rl, URL, &e), MESH_OK);
    CU_ASSERT_STRING_EQUAL(e, vec[i].url_nopad);
    free(e);
    uint8_t *d = NULL;
    size_t dl = 0;
    CU_ASSERT_EQUAL_FATAL(mesh__b64_dec(vec[i].std_pad, strlen(vec[i].std_pad),
                                        PAD, &d, &dl), MESH_OK);
    CU_ASSERT_EQUAL(dl, rl);
    CU_ASSERT(memcmp(d, vec[i].raw, rl) == 0 && d[dl] == '\0');
    free(d);
  }
  static const struct {
    unsigned flags;
    const char *in, *out; /* out NULL: refused */
  } rows[] = {
      {PAD, "Zm8", "fo"},       /* padding may be left out */
      {STD, "Zm8=", NULL},      /* '=' only where the flags accept it */
      {PAD, "Zm8==", NULL},     /* more '=' than the quantum needs */
      {PAD, "Zg=", NULL},       /* padded text is a whole quantum */
      {PAD, "Z===", NULL},      {PAD, "Zm9vY", NULL}, /* len % 4 == 1 */
      {PAD, "Zm=8", NULL},      /* '=' inside */
      {PAD, "-_-_", NULL},      /* URL alphabet refused by standard */
      {URL, "+/+/", NULL},      /* and the other way round */
      {ANY, "+/-_", "\xfb\xff\xbf"},
      {ANY, "Zh==", "f"},       /* unused bits set: accepted (gRPC) */
      {JOSE, "Zh", NULL},       /* refused (JOSE: one spelling) */
      {JOSE, "Zg", "f"},        {JOSE, "Zg==", NULL},
      {PAD, "Zm 9v", NULL},     {PAD, "Zm9v\n", NULL},
      {PAD, "Zm\x80v", NULL},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    uint8_t *d = NULL, buf[16];
    size_t dl = 0;
    size_t n = strlen(rows[i].in);
    int rc = mesh__b64_dec(rows[i].in, n, rows[i].flags, &d, &dl);
    long w = mesh__b64_dec_into(rows[i].in, n, rows[i].flags, buf);
    if (!rows[i].out) {
      if (rc != MESH_ERR_PARSE || w != -1)
        printf("\nrow %zu (%s) accepted\n", i, rows[i].in);
      CU_ASSERT_EQUAL(rc, MESH_ERR_PARSE);
      CU_ASSERT_PTR_NULL(d);
      CU_ASSERT_EQUAL(w, -1);
    } else {
      CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
      if (dl != strlen(rows[i].out))
        printf("\nrow %zu (%s) decoded %zu bytes\n", i, rows[i].in, dl);
      CU_ASSERT_EQUAL(dl, strlen(rows[i].out));
      CU_ASSERT(memcmp(d, rows[i].out, dl) == 0);
      CU_ASSERT_EQUAL(w, (long)dl);
      CU_ASSERT(memcmp(buf, rows[i].out, dl) == 0);
    }
    free(d);
  }
  /* Round trip of every length up to 64 over all byte values. */
  uint8_t raw[64];
  for (size_t i = 0; i < sizeof raw; i++)
    raw[i] = (uint8_t)(i * 37 + 201);
  for (size_t n = 0; n <= sizeof raw; n++)
    for (unsigned f = 0; f < 2; f++) {
      unsigned fl = f ? JOSE : PAD;
      char *e = NULL;
      uint8_t *d = NULL;
      size_t dl = 0;
      CU_ASSERT_EQUAL_FATAL(mesh__b64_enc(raw, n, fl & ~MESH__B64_STRICT, &e),
                            MESH_OK);
      CU_ASSERT_EQUAL(mesh__b64_dec(e, strlen(e), fl, &d, &dl), MESH_OK);
      CU_ASSERT(dl == n && (n == 0 || memcmp(d, raw, n) == 0));
      free(e);
      free(d);
    }
  CU_ASSERT_EQUAL(mesh__b64_dec(NULL, 0, PAD, &(uint8_t *){NULL},
                                &(size_t){0}), MESH_ERR_PARSE);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("core", NULL, NULL);
  CU_add_test(s, "mesh_strerror", test_mesh_strerror);
  CU_add_test(s, "mesh_version", test_mesh_version);
  CU_add_test(s, "mesh_new_config_errors", test_mesh_new_config_errors);
  CU_add_test(s, "mesh_config_check", test_mesh_config_check);
  CU_add_test(s, "mesh_new_misuse", test_mesh_new_misuse);
  CU_add_test(s, "mesh_new_from_file", test_mesh_new_from_file);
  CU_add_test(s, "mesh_set_log", test_mesh_set_log);
  CU_add_test(s, "mesh__loop_timer", test_mesh__loop_timer);
  CU_add_test(s, "mesh__loop_timer_cancel", test_mesh__loop_timer_cancel);
  CU_add_test(s, "mesh__loop_post_thread", test_mesh__loop_post_thread);
  CU_add_test(s, "mesh__loop_watch", test_mesh__loop_watch);
  CU_add_test(s, "mesh_process_external", test_mesh_process_external);
  CU_add_test(s, "mesh__b64", test_mesh__b64);
}

int main(void) { return th_run_suites("test_core", add); }

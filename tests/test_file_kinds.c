/* SPDX-License-Identifier: Apache-2.0 */
/* Every file the library reads, named by a path that is not a regular
 * file (issue 12, item 13: an identity file that was a FIFO hung mesh_new
 * forever).  Table: reader (identity cert, key, bundle, trust-domain
 * bundles, the config file, the file discovery source, etcd's CA file,
 * mesh_ca_issue's CA) x kind (FIFO, character device, directory).  Each
 * case must be refused with MESH_ERR_IO and a message naming the path and
 * its kind, promptly: a watchdog opens a FIFO's write end if the reader is
 * still busy after a while (which unblocks a reader stuck in open()) and
 * the case then fails loudly as "blocked". */
#include "helpers.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mesh/mesh.h>

#include "core/core.h"
#include "discovery/discovery.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define TD "example.org"
#define ID "spiffe://example.org/ns/default/sa/files"

/* ---- the watchdog ----------------------------------------------------------- */

/* A reader that blocks in open() of a FIFO waits for a writer: after
 * grace_ms the watchdog becomes one (and closes at once), so the reader
 * sees EOF and the test goes on to report the block instead of hanging.
 * Bounded by count: 30 s of rescue attempts, then abort(). */
typedef struct watchdog {
  pthread_t th;
  atomic_bool done;
  atomic_bool rescued;
  char fifo[600]; /* "" when the case is no FIFO */
  int grace_ms;
} watchdog_t;

static void *wd_main(void *arg) {
  watchdog_t *w = arg;
  for (int i = 0; i < w->grace_ms / 10 && !atomic_load(&w->done); i++)
    usleep(10000);
  for (int i = 0; i < 3000 && !atomic_load(&w->done); i++) {
    if (w->fifo[0]) {
      int fd = open(w->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) {
        atomic_store(&w->rescued, true);
        close(fd);
      }
    }
    usleep(10000);
  }
  if (!atomic_load(&w->done)) {
    fprintf(stderr, "test_file_kinds: a reader is stuck for good\n");
    abort();
  }
  return NULL;
}

static void wd_start(watchdog_t *w, const char *fifo) {
  memset(w, 0, sizeof *w);
  snprintf(w->fifo, sizeof w->fifo, "%s", fifo ? fifo : "");
  w->grace_ms = 5000;
  CU_ASSERT_FATAL(pthread_create(&w->th, NULL, wd_main, w) == 0);
}

/* @return true when the reader finished on its own. */
static bool wd_stop(watchdog_t *w) {
  atomic_store(&w->done, true);
  pthread_join(w->th, NULL);
  return !atomic_load(&w->rescued);
}

/* ---- files -------------------------------------------------------------------- */

typedef enum kind { KIND_FIFO, KIND_CHARDEV, KIND_DIR } kind_t;

static const struct {
  const char *name;
  const char *says; /* in the refusal */
} kinds[] = {
    {"FIFO", "not a regular file (a FIFO)"},
    {"character device", "not a regular file (a character device)"},
    {"directory", "not a regular file (a directory)"},
};

/* A path of the given kind (fresh for a FIFO: a rescued one has been
 * opened). */
static const char *bad_path(kind_t k) {
  static char buf[600];
  static int n;
  switch (k) {
  case KIND_FIFO: {
    char name[32];
    snprintf(name, sizeof name, "fifo-%d", n++);
    snprintf(buf, sizeof buf, "%s", th_path(name));
    CU_ASSERT_FATAL(mkfifo(buf, 0600) == 0);
    return buf;
  }
  case KIND_CHARDEV:
    return "/dev/null";
  case KIND_DIR:
    snprintf(buf, sizeof buf, "%s", th_tmpdir());
    return buf;
  }
  return "";
}

static void certs(void) {
  static bool done;
  if (done)
    return;
  done = true;
  CU_ASSERT_FATAL(th_svid(TD, ID, "files", 0, 0, 0));
}

/* The identity section with one path replaced by bad (which: 0 cert, 1
 * key, 2 bundle, 3 bundles map; -1 none). */
static void identity_json(char *buf, size_t len, int which, const char *bad) {
  char crt[600], key[600], ca[600];
  snprintf(crt, sizeof crt, "%s", which == 0 ? bad : th_path("files.crt"));
  snprintf(key, sizeof key, "%s", which == 1 ? bad : th_path("files.key"));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  if (which == 3)
    snprintf(buf, len,
             "{\"log\":{\"level\":\"error\"},"
             "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundles\":{"
             "\"" TD "\":\"%s\",\"other.org\":\"%s\"}}}",
             crt, key, ca, bad);
  else
    snprintf(buf, len,
             "{\"log\":{\"level\":\"error\"},"
             "\"identity\":{\"cert\":\"%s\",\"key\":\"%s\",\"bundle\":\"%s\"}"
             "}",
             crt, key, which == 2 ? bad : ca);
}

/* ---- readers ------------------------------------------------------------------ */

typedef struct outcome {
  int rc;
  char msg[1024];
} outcome_t;

static outcome_t via_mesh_new(const char *json) {
  outcome_t o = {0};
  mesh_t *m = NULL;
  mesh_status_t st;
  o.rc = mesh_new(json, &m, &st);
  snprintf(o.msg, sizeof o.msg, "%s", o.rc == MESH_OK ? "" : st.message);
  mesh_free(m);
  return o;
}

static outcome_t read_identity(int which, const char *bad) {
  char json[4096];
  identity_json(json, sizeof json, which, bad);
  return via_mesh_new(json);
}

static outcome_t read_cert(const char *bad) { return read_identity(0, bad); }
static outcome_t read_key(const char *bad) { return read_identity(1, bad); }
static outcome_t read_bundle(const char *bad) { return read_identity(2, bad); }
static outcome_t read_bundles(const char *bad) { return read_identity(3, bad); }

static outcome_t read_config_file(const char *bad) {
  outcome_t o = {0};
  mesh_t *m = NULL;
  mesh_status_t st;
  o.rc = mesh_new_from_file(bad, &m, &st);
  snprintf(o.msg, sizeof o.msg, "%s", o.rc == MESH_OK ? "" : st.message);
  mesh_free(m);
  return o;
}

/* Discovery keeps running on a source error (fail static): the outcome
 * is the service's last error, or MESH_OK when there was none. */
static outcome_t discovery_outcome(const char *json) {
  outcome_t o = {0};
  mesh_t *m = NULL;
  mesh_status_t st;
  o.rc = mesh_new(json, &m, &st);
  if (o.rc != MESH_OK) {
    snprintf(o.msg, sizeof o.msg, "%s", st.message);
    return o;
  }
  mesh__disc_stats_t ds;
  memset(&ds, 0, sizeof ds);
  /* the first refresh runs during mesh_new or right after: bounded */
  for (int i = 0; i < 500 && !ds.errors && !ds.updates; i++) {
    mesh__disc_stats(mesh__service_find(m, "s"), &ds);
    if (!ds.errors && !ds.updates)
      usleep(10000);
  }
  o.rc = ds.errors ? MESH_ERR_IO : MESH_OK;
  snprintf(o.msg, sizeof o.msg, "%s", ds.last_error);
  mesh_free(m);
  return o;
}

static outcome_t read_file_source(const char *bad) {
  char json[2048];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},"
           "\"services\":{\"s\":{\"discovery\":{\"type\":\"file\","
           "\"path\":\"%s\",\"poll_interval_ms\":20}}}}",
           bad);
  return discovery_outcome(json);
}

/* A TCP listener that never answers: connect succeeds (the kernel
 * completes it), so libcurl goes on to set up TLS and loads the CA file. */
static int silent_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

static outcome_t read_etcd_ca(const char *bad) {
  char json[2048];
  int port = 0;
  int lfd = silent_listener(&port);
  CU_ASSERT_FATAL(lfd >= 0);
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},"
           "\"services\":{\"s\":{\"discovery\":{\"type\":\"etcd\","
           "\"endpoints\":[\"https://127.0.0.1:%d\"],\"prefix\":\"/s/\","
           "\"ca\":\"%s\",\"timeout_ms\":1000}}}}",
           port, bad);
  outcome_t o = discovery_outcome(json);
  close(lfd);
  return o;
}

static outcome_t read_ca_issue(const char *bad) {
  outcome_t o = {0};
  mesh_status_t st;
  o.rc = mesh_ca_issue(bad, th_path(TD "-ca.key"), ID, 0, 0, 0,
                       th_path("issued.crt"), th_path("issued.key"), &st);
  snprintf(o.msg, sizeof o.msg, "%s", o.rc == MESH_OK ? "" : st.message);
  return o;
}

static const struct {
  const char *name;
  outcome_t (*read)(const char *bad);
} readers[] = {
    {"identity.cert", read_cert},
    {"identity.key", read_key},
    {"identity.bundle", read_bundle},
    {"identity.bundles", read_bundles},
    {"config file", read_config_file},
    {"file discovery source", read_file_source},
    {"etcd ca", read_etcd_ca},
    {"mesh_ca_issue CA", read_ca_issue},
};

static void test_non_regular_files_refused(void) {
  certs();
  for (size_t r = 0; r < N(readers); r++) {
    for (size_t k = 0; k < N(kinds); k++) {
      const char *bad = bad_path((kind_t)k);
      char path[600];
      snprintf(path, sizeof path, "%s", bad);
      watchdog_t w;
      wd_start(&w, k == KIND_FIFO ? path : NULL);
      int64_t t0 = mesh__now_ms();
      outcome_t o = readers[r].read(path);
      int64_t took = mesh__now_ms() - t0;
      bool own = wd_stop(&w);
      if (!own || o.rc != MESH_ERR_IO || !strstr(o.msg, kinds[k].says) ||
          !strstr(o.msg, path))
        fprintf(stderr,
                "\n  %s, %s: %s after %lld ms, %s: \"%s\"\n", readers[r].name,
                kinds[k].name, own ? "returned" : "BLOCKED (rescued)",
                (long long)took, mesh_code_name(o.rc), o.msg);
      CU_ASSERT_TRUE(own);
      CU_ASSERT_EQUAL(o.rc, MESH_ERR_IO);
      CU_ASSERT_PTR_NOT_NULL(strstr(o.msg, kinds[k].says));
      CU_ASSERT_PTR_NOT_NULL(strstr(o.msg, path));
    }
  }
}

/* The same readers accept regular files (and symbolic links to them, as
 * Kubernetes secret volumes are made). */
static void test_regular_files_accepted(void) {
  certs();
  char json[4096];
  identity_json(json, sizeof json, -1, "");
  outcome_t o = via_mesh_new(json);
  CU_ASSERT_EQUAL(o.rc, MESH_OK);
  /* the config file through a symlink */
  CU_ASSERT_FATAL(th_write(th_path("cfg.json"), json));
  unlink(th_path("cfg-link.json"));
  CU_ASSERT_FATAL(symlink(th_path("cfg.json"), th_path("cfg-link.json")) == 0);
  o = read_config_file(th_path("cfg-link.json"));
  if (o.rc != MESH_OK)
    fprintf(stderr, "\n  config via symlink: %s\n", o.msg);
  CU_ASSERT_EQUAL(o.rc, MESH_OK);
  /* a file source with a good file: no error */
  CU_ASSERT_FATAL(th_write(th_path("eps.json"),
                           "[{\"address\":\"127.0.0.1\",\"port\":80}]"));
  o = read_file_source(th_path("eps.json"));
  CU_ASSERT_EQUAL(o.rc, MESH_OK);
  /* a missing file: still MESH_ERR_IO, with the reason */
  o = read_identity(0, th_path("no-such.crt"));
  CU_ASSERT_EQUAL(o.rc, MESH_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(o.msg, "No such file"));
}

/* mesh__file_open itself: the descriptor it returns reads normally. */
static void test_mesh__file_open(void) {
  const char *p = th_path("plain.txt");
  CU_ASSERT_FATAL(th_write(p, "hello"));
  int fd = -1;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__file_open(p, &fd, &st), MESH_OK);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_EQUAL(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  CU_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  char b[8];
  CU_ASSERT_EQUAL(read(fd, b, sizeof b), 5);
  close(fd);
  CU_ASSERT_EQUAL(mesh__file_open("", &fd, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(fd, -1);
  CU_ASSERT_EQUAL(mesh__file_check("/dev/null", &st), MESH_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "/dev/null: not a regular file"));
  CU_ASSERT_EQUAL(mesh__file_check(p, &st), MESH_OK);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("file kinds", NULL, NULL);
  CU_add_test(s, "mesh__file_open", test_mesh__file_open);
  CU_add_test(s, "non-regular files refused without blocking",
              test_non_regular_files_refused);
  CU_add_test(s, "regular files and symlinks accepted",
              test_regular_files_accepted);
}

int main(void) { return th_run_suites("test_file_kinds", add); }

/* SPDX-License-Identifier: Apache-2.0 */
/* The test helpers' promise: a peer started by th_spawn (and whatever that
 * peer starts) never outlives the test binary, however the binary ends.
 * Table: how the binary ends (SIGKILL from outside, a crash, _exit without
 * atexit, a normal exit) x what it started (a direct child, a shell with
 * grandchildren in the background).  The binary is this program run again
 * in "inner" mode; every process it starts carries a marker in its
 * environment, so the outer test finds them all in /proc, checks that they
 * were there (the search can fail), ends the inner binary and waits for
 * every marked process to be gone.  th_stop must take the grandchildren
 * with it too. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MARK_ENV "TH_ORPHAN_MARK"
#define MODE_ENV "TH_ORPHAN_MODE"
#define READY_ENV "TH_ORPHAN_READY"

/* ---- finding marked processes ------------------------------------------- */

/* Is /proc/<pid> alive (not a zombie) and marked with `mark`? */
static bool marked(const char *pid, const char *mark) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
    return false;
  snprintf(path, sizeof path, "/proc/%s/environ", pid);
  fd = open(path, O_RDONLY);
  if (fd < 0)
    return false;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  char want[128];
  int wl = snprintf(want, sizeof want, "%s=%s", MARK_ENV, mark);
  for (ssize_t i = 0; i + wl <= n; i += (ssize_t)strlen(buf + i) + 1)
    if (memcmp(buf + i, want, (size_t)wl + 1) == 0 ||
        (i + wl == n && memcmp(buf + i, want, (size_t)wl) == 0))
      return true;
  return false;
}

/* How many live processes carry the mark (this one excluded). */
static int count_marked(const char *mark) {
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  int n = 0;
  char self[32];
  snprintf(self, sizeof self, "%d", (int)getpid());
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
        strcmp(e->d_name, self) != 0 && marked(e->d_name, mark))
      n++;
  closedir(d);
  return n;
}

/* ---- the inner binary --------------------------------------------------- */

static int peers_seen; /* the last count of peers_up() */

static bool peers_up(const char *mark) {
  peers_seen = count_marked(mark);
  return peers_seen >= 5;
}

static const char *const shell_tree[] = {
    "sh", "-c", "sleep 600 & sleep 600 & wait", NULL};
static const char *const direct[] = {"sleep", "600", NULL};

/* Start the peers, say so, then end the way MODE_ENV says. */
static int inner(const char *mode) {
  if (th_spawn(shell_tree, "inner-sh.log") <= 0 ||
      th_spawn(direct, "inner-sleep.log") <= 0)
    return 3;
  /* its sentinel, sh, the two sleeps under sh and the direct sleep are
   * all up before it ends; the ready file says how many there were and
   * names this binary's temp dir, for the outer test to remove (a killed
   * binary cannot) */
  const char *mark = getenv(MARK_ENV), *ready = getenv(READY_ENV);
  bool up = false;
  TH_WAIT_UNTIL(up, peers_up(mark), "inner peers up");
  /* the count that was seen, not a second one: a process between fork
   * and exec may not be readable in /proc for an instant */
  char msg[512];
  snprintf(msg, sizeof msg, "%d %s", peers_seen, th_tmpdir());
  if (!ready || !th_write(ready, msg))
    return 3;
  if (strcmp(mode, "crash") == 0) {
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
  } else if (strcmp(mode, "_exit") == 0) {
    _exit(0);
  } else if (strcmp(mode, "exit") == 0) {
    exit(0);
  }
  for (int i = 0; i < 600; i++) /* "sigkill": wait to be killed */
    sleep(1);
  return 4;
}

/* ---- the table ---------------------------------------------------------- */

typedef struct {
  const char *mode; /* how the inner binary ends */
  bool kill_it;     /* the outer test sends SIGKILL */
} end_case_t;

static const end_case_t end_cases[] = {
    {"sigkill", true}, {"crash", false}, {"_exit", false}, {"exit", false}};

static bool ready_file(void *path) {
  return access((const char *)path, F_OK) == 0;
}

typedef struct {
  const char *mark;
} mark_arg_t;

static bool none_marked(void *arg) {
  return count_marked(((mark_arg_t *)arg)->mark) == 0;
}

/* Run one case; true when it held. */
static bool run_end_case(const end_case_t *c, int k) {
  char mark[64], ready[512];
  snprintf(mark, sizeof mark, "end-%d-%d-%d", (int)getpid(), k, rand());
  snprintf(ready, sizeof ready, "%s", th_path(mark));
  pid_t pid = fork();
  if (pid == 0) {
    setenv(MARK_ENV, mark, 1);
    setenv(MODE_ENV, c->mode, 1);
    setenv(READY_ENV, ready, 1);
    execl("/proc/self/exe", "test_helpers", (char *)NULL);
    _exit(127);
  }
  CU_ASSERT_TRUE_FATAL(pid > 0);
  bool ok = th_wait_for(ready_file, ready, TH_CAP_MS, "inner binary ready");
  CU_ASSERT_TRUE(ok);
  /* the inner binary saw its 5 peers (sentinel, sh, two sleeps under sh,
   * a direct sleep) */
  char *msg = ok ? th_slurp(ready, NULL) : NULL;
  char *tmp = msg ? strchr(msg, ' ') : NULL;
  int before = msg ? atoi(msg) : 0;
  if (before < 5)
    fprintf(stderr, "%s: %d marked processes before, want >= 5\n", c->mode,
            before);
  ok = ok && before >= 5;
  if (c->kill_it)
    kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  if (tmp && strncmp(tmp + 1, "/tmp/meshtest.", 14) == 0 &&
      !strchr(tmp, '\'')) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp + 1);
    CU_ASSERT_EQUAL(system(cmd), 0);
  }
  free(msg);
  mark_arg_t a = {mark};
  bool gone = th_wait_for(none_marked, &a, TH_CAP_MS, "orphans gone");
  if (!gone)
    fprintf(stderr, "%s: %d marked processes left behind\n", c->mode,
            count_marked(mark));
  return ok && gone;
}

static void test_no_orphans(void) {
  for (size_t i = 0; i < N(end_cases); i++) {
    bool ok = run_end_case(&end_cases[i], (int)i);
    if (!ok)
      fprintf(stderr, "case %s failed\n", end_cases[i].mode);
    CU_ASSERT_TRUE(ok);
  }
}

/* th_stop ends the whole group: the shell and its background sleeps. */
static void test_stop_takes_group(void) {
  char mark[64];
  snprintf(mark, sizeof mark, "stop-%d-%d", (int)getpid(), rand());
  setenv(MARK_ENV, mark, 1);
  pid_t pid = th_spawn(shell_tree, "stop-sh.log");
  unsetenv(MARK_ENV);
  CU_ASSERT_TRUE_FATAL(pid > 0);
  /* sh and both sleeps */
  bool ok = false;
  TH_WAIT_UNTIL(ok, count_marked(mark) >= 3, "shell tree started");
  CU_ASSERT_TRUE(ok);
  th_stop(pid);
  mark_arg_t a = {mark};
  CU_ASSERT_TRUE(th_wait_for(none_marked, &a, TH_CAP_MS, "group stopped"));
}

static void add(void) {
  CU_pSuite s = CU_add_suite("helpers", NULL, NULL);
  CU_add_test(s, "th_stop ends the group", test_stop_takes_group);
  CU_add_test(s, "no process outlives the binary", test_no_orphans);
}

int main(void) {
  const char *mode = getenv(MODE_ENV);
  if (mode)
    return inner(mode);
  return th_run_suites("test_helpers", add);
}

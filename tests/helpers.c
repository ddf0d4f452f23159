/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers; see helpers.h. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mesh/mesh.h>

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];
static char tmpdir[256];
static bool atexit_done;
static unsigned missing_peers;

/* The sentinel: a process forked once, in its own process group, that
 * outlives this one just long enough to SIGKILL the process groups of the
 * children still running when this process dies, however it dies (SIGKILL,
 * a crash, _exit), where neither atexit nor a signal handler runs.  A
 * child's PR_SET_PDEATHSIG kills the child itself at once, but not what
 * the child started (a shell's commands, a server's workers): they stay in
 * its group, and the sentinel kills the group.  This process tells it
 * each group it starts (+pgid) and stops (-pgid) over a pipe; it notices
 * the death by EOF on that pipe or by being reparented. */
static int sentinel_fd = -1;
static pid_t sentinel_parent;

static void sentinel_kill(const pid_t *groups, int n) {
  for (int i = 0; i < n; i++)
    if (groups[i] > 0)
      kill(-groups[i], SIGKILL);
}

static _Noreturn void sentinel_main(int rfd, pid_t parent) {
  enum { MAX_GROUPS = 256 };
  pid_t groups[MAX_GROUPS] = {0};
  int n = 0;
  while (getppid() == parent) {
    struct pollfd p = {.fd = rfd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0)
      continue;
    int32_t v;
    ssize_t k = read(rfd, &v, sizeof v);
    if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
      break; /* every holder of the write end is gone */
    if (k != (ssize_t)sizeof v)
      continue;
    if (v > 0 && n < MAX_GROUPS)
      groups[n++] = v;
    for (int i = 0; v < 0 && i < n; i++)
      if (groups[i] == -v)
        groups[i] = groups[--n];
  }
  sentinel_kill(groups, n);
  _exit(0);
}

/* Fork the sentinel (once); quiet no-op if that fails. */
static void sentinel_start(void) {
  if (sentinel_fd >= 0)
    return;
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0)
    return;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return;
  }
  if (pid == 0) {
    /* its own group, deaf to the signals sent to this one's group (a
     * terminal's ^C, a harness killing the group), its fds released */
    setpgid(0, 0);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int nul = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && nul >= 0; fd++)
      dup2(nul, fd);
    for (int fd = 3; fd < 1024; fd++)
      if (fd != pfd[0])
        close(fd);
    sentinel_main(pfd[0], parent);
  }
  close(pfd[0]);
  sentinel_fd = pfd[1];
  sentinel_parent = parent;
}

/* Tell the sentinel about a group started (+) or gone (-). */
static void sentinel_note(pid_t pgid, bool started) {
  if (sentinel_fd < 0 || getpid() != sentinel_parent)
    return;
  int32_t v = started ? (int32_t)pgid : -(int32_t)pgid;
  ssize_t k;
  do
    k = write(sentinel_fd, &v, sizeof v);
  while (k < 0 && errno == EINTR);
}

static void cleanup(void) {
  th_stop_all();
  if (tmpdir[0] && !getenv("TH_KEEP_TMP")) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
      /* best effort */
    }
  }
}

static void on_signal(int sig) {
  th_stop_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void ensure_atexit(void) {
  if (atexit_done)
    return;
  atexit_done = true;
  sentinel_start(); /* early: before threads, with few fds to release */
  atexit(cleanup);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
}

int th_run_suites(const char *name, void (*add)(void)) {
  ensure_atexit();
  srand((unsigned)(time(NULL) ^ getpid()));
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  add();
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned fails = CU_get_number_of_failures();
  unsigned ran = CU_get_number_of_tests_run();
  unsigned failed_tests = CU_get_number_of_tests_failed();
  printf("\n%s: %u passed, %u failed\n", name, ran - failed_tests,
         failed_tests);
  CU_cleanup_registry();
  (void)fails;
  if (failed_tests)
    return 1;
  if (missing_peers) {
    printf("%s: SKIP: %u check(s) need a program that is not installed "
           "(see the SKIP lines above)\n", name, missing_peers);
    return 77;
  }
  return ran == 0 ? 1 : 0;
}

/* Where free ports are picked: outside the kernel's ephemeral range, so
 * that the source port of an outgoing connection (this test's, or one of
 * the tests running beside it) cannot take a port between th_free_port()
 * and the server's bind: 10000 up to the range's start (32768 by
 * default), or above its end when it starts too low. */
static void free_port_range(int *lo, int *hi) {
  *lo = 20000;
  *hi = 32767;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  int a = 0, b = 0;
  bool got = f && fscanf(f, "%d %d", &a, &b) == 2;
  if (f)
    fclose(f);
  if (!got)
    return;
  if (a > 11000) {
    *lo = 10000;
    *hi = a - 1;
  } else if (b < 64535) {
    *lo = b + 1;
    *hi = 65535;
  }
}

int th_free_port(void) {
  int lo, hi;
  free_port_range(&lo, &hi);
  for (int tries = 0; tries < 50; tries++) {
    int port = lo + rand() % (hi - lo + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (ok)
      return port;
  }
  return -1;
}

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t th_now_ms(void) { return mono_ms(); }

void th_cap_report(const char *what) {
  fprintf(stderr, "\n  TIME CAP: %s: not reached after %d ms\n",
          what ? what : "condition", TH_CAP_MS);
}

bool th_wait_for(bool (*done)(void *arg), void *arg, int cap_ms,
                 const char *what) {
  int64_t end = mono_ms() + cap_ms;
  for (;;) {
    if (done(arg))
      return true;
    if (mono_ms() >= end)
      break;
    usleep(5000);
  }
  if (done(arg))
    return true;
  fprintf(stderr, "\n  TIME CAP: %s: not reached after %d ms\n",
          what ? what : "condition", cap_ms);
  return false;
}

struct count_arg {
  const _Atomic int *counter;
  int want;
};

static bool count_done(void *arg) {
  const struct count_arg *a = arg;
  return atomic_load(a->counter) >= a->want;
}

bool th_wait_count(const _Atomic int *counter, int want, int cap_ms,
                   const char *what) {
  struct count_arg a = {counter, want};
  if (th_wait_for(count_done, &a, cap_ms, what))
    return true;
  fprintf(stderr, "  (%d of %d)\n", atomic_load(counter), want);
  return false;
}

bool th_wait_port(int port, int timeout_ms) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (ok)
      return true;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (el > timeout_ms)
      return false;
    usleep(20000);
  }
}

const char *th_tmpdir(void) {
  ensure_atexit();
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/meshtest.XXXXXX");
    if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      abort();
    }
  }
  return tmpdir;
}

const char *th_path(const char *name) {
  static char ring[16][512];
  static int k;
  char *b = ring[k++ % 16];
  snprintf(b, 512, "%s/%s", th_tmpdir(), name);
  return b;
}

static void track(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; i++) {
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
  }
}

static void untrack(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i] == pid)
      children[i] = 0;
  sentinel_note(pid, false);
}

static pid_t spawn(const char *const argv[], const char *logname, int *in_fd) {
  ensure_atexit();
  int pfd[2] = {-1, -1};
  if (in_fd && pipe(pfd) != 0)
    return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    setpgid(0, 0);
    /* die with this process; if it died before the prctl took effect,
     * we were already reparented: go now.  (The signal comes when the
     * forking thread ends: spawn from the main thread or one that lives
     * as long as the child should.) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    const char *log = th_path(logname ? logname : "child.log");
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    if (in_fd) {
      dup2(pfd[0], 0);
      close(pfd[0]);
      close(pfd[1]);
    } else {
      int nul = open("/dev/null", O_RDONLY);
      dup2(nul, 0);
      close(nul);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  setpgid(pid, pid);
  sentinel_note(pid, true);
  if (in_fd) {
    close(pfd[0]);
    *in_fd = pfd[1];
  }
  track(pid);
  return pid;
}

pid_t th_spawn(const char *const argv[], const char *logname) {
  return spawn(argv, logname, NULL);
}

pid_t th_spawn_stdin(const char *const argv[], const char *logname,
                     int *in_fd) {
  return spawn(argv, logname, in_fd);
}

int th_stop(pid_t pid) {
  if (pid <= 0)
    return -1;
  kill(-pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 200; i++) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      untrack(pid);
      kill(-pid, SIGKILL); /* stragglers in the group */
      return status;
    }
    usleep(10000);
  }
  kill(-pid, SIGKILL);
  waitpid(pid, &status, 0);
  untrack(pid);
  return status;
}

void th_kill(pid_t pid) {
  if (pid <= 0)
    return;
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, 0);
  untrack(pid);
}

void th_stop_all(void) {
  for (int i = 0; i < MAX_CHILDREN; i++) {
    if (children[i] > 0) {
      kill(-children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
      sentinel_note(children[i], false);
      children[i] = 0;
    }
  }
}

bool th_have(const char *prog) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", prog);
  return system(cmd) == 0;
}

bool th_require(const char *prog, const char *pkg) {
  if (th_have(prog))
    return true;
  missing_peers++;
  fprintf(stderr, "\nSKIP: %s not installed (apt-get install %s)\n", prog,
          pkg);
  return false;
}

int th_sh(const char *cmd) {
  char full[4096];
  snprintf(full, sizeof full, "( %s ) >>'%s/sh.log' 2>&1", cmd, th_tmpdir());
  int st = system(full);
  if (st == -1 || !WIFEXITED(st))
    return -1;
  return WEXITSTATUS(st);
}

char *th_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = '\0';
    if (len)
      *len = (size_t)n;
  }
  return buf;
}

bool th_write(const char *path, const char *content) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f)
    return false;
  size_t n = strlen(content);
  bool ok = fwrite(content, 1, n, f) == n;
  ok = fclose(f) == 0 && ok;
  return ok && rename(tmp, path) == 0; /* atomic replace, like real tools */
}


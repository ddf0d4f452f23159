/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers: real peers as child processes on loopback, free ports,
 * temporary directories.  Every helper process started here is killed at
 * exit (also when a test fails) through th_stop_all(), registered atexit. */
#ifndef MESH_TESTS_HELPERS_H
#define MESH_TESTS_HELPERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/types.h>

#include <CUnit/Basic.h>

/* Run a CUnit registry built by `add` and return a process exit code:
 * 0 all passed, 1 failures, 77 (automake's SKIP) when nothing failed but
 * a test was left out because th_require() found its peer missing.
 * Prints CUnit's summary. */
int th_run_suites(const char *name, void (*add)(void));

/* A free TCP port on 127.0.0.1 (bound and released), picked at random
 * outside the kernel's ephemeral range, where no outgoing connection's
 * source port can take it before the server binds.  A peer that can bind
 * port 0 and report its port is better still. */
int th_free_port(void);
/* Wait until something accepts on 127.0.0.1:port; false after timeout_ms. */
bool th_wait_port(int port, int timeout_ms);

/* Loops that need some number of events are bounded by that count, never
 * by a time window (a slow or loaded machine, or valgrind's 20-50x, makes
 * fewer events per second, not a broken library).  The time cap only
 * stops a broken run: generous, and loud when reached. */
#define TH_CAP_MS 120000
/* Poll done(arg) every 5 ms until it is true or cap_ms passed.  On the
 * cap, prints "<what>: not reached after <cap> ms" to stderr and returns
 * false (assert it). */
bool th_wait_for(bool (*done)(void *arg), void *arg, int cap_ms,
                 const char *what);
/* th_wait_for(*counter >= want): prints the count reached on the cap. */
bool th_wait_count(const _Atomic int *counter, int want, int cap_ms,
                   const char *what);
/* Monotonic milliseconds. */
int64_t th_now_ms(void);
/* "TIME CAP: <what>: not reached after TH_CAP_MS ms" to stderr. */
void th_cap_report(const char *what);
/* Evaluate cond every 5 ms until it is true or TH_CAP_MS passed; ok (a
 * bool lvalue) gets its last value, and the cap is reported loudly.  cond
 * may refresh what it reads: (stats_of(m, &ds), ds.errors >= 2). */
#define TH_WAIT_UNTIL(ok, cond, what)                                         \
  do {                                                                        \
    int64_t th_end_ = th_now_ms() + TH_CAP_MS;                                \
    for (;;) {                                                                \
      (ok) = (cond);                                                          \
      if ((ok) || th_now_ms() >= th_end_)                                     \
        break;                                                                \
      usleep(5000);                                                           \
    }                                                                         \
    if (!(ok))                                                                \
      th_cap_report(what);                                                    \
  } while (0)

/* A fresh temporary directory (removed at exit). Returned path is static
 * storage owned by the helper; valid until exit. */
const char *th_tmpdir(void);
/* Path inside th_tmpdir() (static ring of buffers, valid for 16 calls). */
const char *th_path(const char *name);

/* Start argv[0] (searched in PATH) with argv, stdout/stderr to a log file in
 * the temp dir; returns the pid (> 0) or -1.  The child gets its own process
 * group and is killed by th_stop / at exit. */
pid_t th_spawn(const char *const argv[], const char *logname);
/* Same, with stdin connected to a pipe; *in_fd receives the write end. */
pid_t th_spawn_stdin(const char *const argv[], const char *logname,
                     int *in_fd);
/* SIGTERM then SIGKILL after 2 s; reaps.  Returns the exit status or -1. */
int th_stop(pid_t pid);
/* SIGKILL at once; reaps. */
void th_kill(pid_t pid);
void th_stop_all(void);
/* Is the program in PATH? */
bool th_have(const char *prog);
/* An outside peer a test needs: true if `prog` is in PATH; else prints
 * "SKIP: <prog> not installed (apt-get install <pkg>)", remembers it (the
 * run then exits 77 unless something failed) and returns false: the test
 * returns without asserting.  scripts/test installs every peer and fails
 * on any skip, so a skip never passes CI. */
bool th_require(const char *prog, const char *pkg);
/* Run a shell command, return its exit status (or -1); output to a log. */
int th_sh(const char *cmd);
/* Read a whole file into a malloc'd NUL-terminated buffer (NULL on error). */
char *th_slurp(const char *path, size_t *len);
/* Write a string to a file; true on success. */
bool th_write(const char *path, const char *content);

/* Development certificates through the library's own CA:
 * th_ca(td) creates <tmp>/<td>-ca.{crt,key} once; th_svid() issues one. */
const char *th_ca(const char *td);
/* Issue an SVID for id into <tmp>/<name>.crt / .key, valid [nb, na] as
 * offsets in seconds from now (0,0 = default), with MESH_CA_ISSUE_* flags. */
bool th_svid(const char *td, const char *id, const char *name, long nb_off,
             long na_off, unsigned flags);

#endif

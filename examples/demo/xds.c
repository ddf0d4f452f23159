/* SPDX-License-Identifier: Apache-2.0 */
/* The xDS act (mesh_demo --xds SCRIPT): the client's service "work" takes
 * its route, clusters and endpoints from a small control plane (SCRIPT, a
 * python3-grpcio ADS server) that this program starts and scripts: a
 * 90/10 canary, then 50/50, then 0/100, then a backend added to the
 * canary.  The client follows each push without a restart. */
#include "demo.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CP_TIMEOUT_S 20.0

/* One reply line of the control plane (timeout: false). */
static bool cp_line(demo_t *d, char *buf, size_t len) {
  double end = demo_now() + CP_TIMEOUT_S;
  int fd = fileno(d->cp_out);
  while (demo_now() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    if (!fgets(buf, (int)len, d->cp_out))
      return false;
    buf[strcspn(buf, "\n")] = '\0';
    return true;
  }
  return false;
}

/* Send a command; the reply goes to the event lines. */
static bool cp_cmd(demo_t *d, const char *cmd, bool show) {
  char reply[256];
  if (fprintf(d->cp_in, "%s\n", cmd) < 0 || fflush(d->cp_in) != 0 ||
      !cp_line(d, reply, sizeof reply))
    return false;
  if (show)
    demo_event(d, "control plane: %s", reply);
  return true;
}

static pid_t spawn(const char *script, int *in, int *out) {
  int a[2], b[2];
  if (pipe(a) != 0)
    return -1;
  if (pipe(b) != 0) {
    close(a[0]);
    close(a[1]);
    return -1;
  }
  pid_t parent = getpid(), pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the demo */
    if (getppid() != parent)
      _exit(1);
    dup2(a[0], STDIN_FILENO);
    dup2(b[1], STDOUT_FILENO);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    /* Debian's interpreter first: python3-grpcio is installed for it, and
     * a python3 earlier in PATH (a venv, pyenv) may not have it */
    execl("/usr/bin/python3", "python3", script, (char *)NULL);
    execlp("python3", "python3", script, (char *)NULL);
    _exit(127);
  }
  close(a[0]);
  close(b[1]);
  *in = a[1];
  *out = b[0];
  return pid;
}

bool demo_xds_start(demo_t *d) {
  int in = -1, out = -1;
  d->cp_pid = spawn(d->xds_script, &in, &out);
  if (d->cp_pid <= 0)
    return false;
  d->cp_in = fdopen(in, "w");
  d->cp_out = fdopen(out, "r");
  char line[256];
  int port = 0;
  if (!d->cp_in || !d->cp_out || !cp_line(d, line, sizeof line) ||
      sscanf(line, "port %d", &port) != 1) {
    fprintf(stderr, "mesh_demo: the control plane (python3 %s) did not "
            "start\n", d->xds_script);
    return false;
  }
  for (size_t i = 0; i < d->neps; i++) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "backend %s %d", d->eps[i].name, d->eps[i].port);
    if (!cp_cmd(d, cmd, false))
      return false;
  }
  snprintf(d->boot, sizeof d->boot, "%s/bootstrap.json", d->out);
  FILE *f = fopen(d->boot, "w");
  if (!f)
    return false;
  fprintf(f, "{\"xds_servers\": [{\"server_uri\": \"127.0.0.1:%d\", "
          "\"channel_creds\": [{\"type\": \"insecure\"}]}],\n"
          " \"node\": {\"id\": \"frontend\", \"cluster\": \"demo\"}}\n", port);
  return fclose(f) == 0 && cp_cmd(d, "serve", true);
}

bool demo_xds_ready(demo_t *d, mesh_t *m) {
  (void)d;
  for (double end = demo_now() + 10; demo_now() < end;) {
    mesh_endpoints_t *e = NULL;
    mesh_status_t st;
    size_t n = 0;
    if (mesh_endpoints_get(m, DEMO_SERVICE, &e, &st) == MESH_OK) {
      n = mesh_endpoints_count(e);
      mesh_endpoints_free(e);
    }
    if (n == d->neps - 1)
      return true;
    nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
  }
  fprintf(stderr, "mesh_demo: the client saw no endpoints from the control "
          "plane\n");
  return false;
}

/* Close the phase in progress, open one (counting from t0). */
static void phase_open(demo_t *d, const char *label, int w1, int w2,
                       double t0) {
  if (d->nphase >= sizeof d->phase / sizeof d->phase[0])
    return;
  struct demo_phase *p = &d->phase[d->nphase++];
  snprintf(p->label, sizeof p->label, "%s", label);
  p->w1 = w1;
  p->w2 = w2;
  p->t0 = t0;
}

/* The open phase's counters: they start at its t0 and stop at the next
 * push (closing). */
static void phase_tick(demo_t *d, double t, bool closing) {
  struct demo_phase *p = d->nphase ? &d->phase[d->nphase - 1] : NULL;
  if (!p || p->done)
    return;
  if (!p->counting && t >= p->t0) {
    for (size_t i = 0; i < d->neps; i++)
      p->start[i] = atomic_load(&d->eps[i].ok_tries);
    p->counting = true;
  }
  if (!closing || !p->counting)
    return;
  for (size_t i = 0; i < d->neps; i++) {
    p->by[i] = atomic_load(&d->eps[i].ok_tries) - p->start[i];
    *(strncmp(d->eps[i].name, "v1", 2) == 0 ? &p->v1 : &p->v2) += p->by[i];
  }
  p->done = true;
}

/* The script, as fractions of the run: push, then count from +0.5 s. */
void demo_xds_step(demo_t *d, double t) {
  static const struct { double at; const char *cmd, *label; int w1, w2; } s[] = {
      {0.0, NULL, "90/10", 90, 10},
      {0.30, "split 50 50", "50/50", 50, 50},
      {0.55, "split 0 100", "0/100", 0, 100},
      {0.75, "add v2-b", "0/100 + v2-b", 0, 100},
  };
  size_t n = sizeof s / sizeof s[0];
  phase_tick(d, t, false);
  if (d->xds_step >= (int)n || t < s[d->xds_step].at * d->seconds)
    return;
  const size_t i = (size_t)d->xds_step++;
  phase_tick(d, t, true);
  if (s[i].cmd && !cp_cmd(d, s[i].cmd, true))
    demo_event(d, "control plane: no answer to \"%s\"", s[i].cmd);
  phase_open(d, s[i].label, s[i].w1, s[i].w2, t + 0.5);
}

void demo_xds_stop(demo_t *d) {
  phase_tick(d, demo_now() - d->t0, true);
  if (d->cp_in)
    fclose(d->cp_in);
  d->cp_in = NULL;
  if (d->cp_pid > 0) {
    double end = demo_now() + 5;
    bool reaped = false;
    while (!reaped && demo_now() < end) {
      reaped = waitpid(d->cp_pid, NULL, WNOHANG) == d->cp_pid;
      if (!reaped)
        nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
    }
    if (!reaped) {
      kill(d->cp_pid, SIGKILL);
      waitpid(d->cp_pid, NULL, 0);
    }
    d->cp_pid = 0;
  }
  if (d->cp_out)
    fclose(d->cp_out);
  d->cp_out = NULL;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_demo: the orchestrator.  See demo.h for the roles and README.md for
 * what the run shows.
 *
 *   mesh_demo [--out DIR] [--seconds N] [--quick] [--workers N] [--no-color]
 *
 * 1. mint a development trust domain with the library's CA and an SVID
 *    for every process;
 * 2. start two v1 and one v2 instance of "work" (this program again, in
 *    backend mode), each with its own SVID, on loopback ports;
 * 3. call "work" from worker threads: 90/10 split between the v1 and v2
 *    subsets, least_request, retries, outlier detection;
 * 4. send an intruder (a valid SVID of another service) that the
 *    backends' policy denies; SIGKILL one v1 backend mid-run;
 * 5. stop, collect the backends' counters, print the report, write
 *    summary.json next to the spans, exit 0 when every claim held. */
#include "demo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define INTRUDER_CALLS 5
#define READY_TIMEOUT_MS 10000
#define STOP_WAIT_MS 5000

static const char usage_text[] =
    "usage: mesh_demo [--out DIR] [--seconds N] [--quick] [--workers N] "
    "[--no-color]\n"
    "\n"
    "A service mesh on loopback: a development trust domain, two v1 and one\n"
    "v2 instance of a service (one process and one SVID each), a client\n"
    "with a 90/10 split, least_request and retries, a backend killed\n"
    "mid-run and ejected, an intruder denied, traces written as JSON lines.\n"
    "\n"
    "  --out DIR      where certificates, configs, logs, spans.jsonl and\n"
    "                 summary.json go (default ./mesh-demo)\n"
    "  --seconds N    length of the run, 3-120 (default 12)\n"
    "  --quick        a 6-second run (for tests)\n"
    "  --workers N    client threads, 1-32 (default 4)\n"
    "  --no-color     plain output even on a terminal\n"
    "  --xds SCRIPT   the xDS act: \"work\" follows a control plane (SCRIPT,\n"
    "                 examples/demo/xds_cp.py) that shifts a canary 90/10 ->\n"
    "                 50/50 -> 0/100 and adds a backend while calls run\n"
    "\n"
    "Exit status 0 when no call failed, the killed backend was ejected, the\n"
    "intruder was denied and spans were written; 1 otherwise.\n";

static volatile sig_atomic_t interrupted;

static void on_int(int sig) {
  (void)sig;
  interrupted = 1;
}

double demo_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void demo_event(demo_t *d, const char *fmt, ...) {
  pthread_mutex_lock(&d->ev_mu);
  if (d->nevents < sizeof d->events / sizeof d->events[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->events[d->nevents++], sizeof d->events[0], fmt, ap);
    va_end(ap);
  }
  pthread_mutex_unlock(&d->ev_mu);
}

static void flush_events(demo_t *d) {
  pthread_mutex_lock(&d->ev_mu);
  for (size_t i = 0; i < d->nevents; i++)
    ui_event(d, demo_now() - d->t0, d->events[i]);
  d->nevents = 0;
  pthread_mutex_unlock(&d->ev_mu);
}

demo_ep_t *demo_ep_by_key(demo_t *d, const char *key) {
  for (size_t i = 0; i < d->neps; i++)
    if (strcmp(d->eps[i].key, key) == 0)
      return &d->eps[i];
  return NULL;
}

/* ---- files --------------------------------------------------------------- */

static void path_in(const demo_t *d, char *out, const char *name,
                    const char *ext) {
  snprintf(out, DEMO_PATH_MAX, "%s/%s%s", d->out, name, ext);
}

static bool write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f)
    return false;
  bool ok = fputs(text, f) >= 0;
  return fclose(f) == 0 && ok;
}

static bool make_dirs(const char *path) {
  char p[DEMO_PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
      return false;
    *s = '/';
  }
  return mkdir(p, 0755) == 0 || errno == EEXIST;
}

/* ---- identities ---------------------------------------------------------- */

static bool issue(demo_t *d, const char *name, const char *id) {
  char ca[DEMO_PATH_MAX], cakey[DEMO_PATH_MAX], crt[DEMO_PATH_MAX],
      key[DEMO_PATH_MAX];
  path_in(d, ca, "ca", ".crt");
  path_in(d, cakey, "ca", ".key");
  path_in(d, crt, name, ".crt");
  path_in(d, key, name, ".key");
  mesh_status_t st;
  /* A day, so that no "expires within the hour" warning shows up. */
  int64_t now = (int64_t)time(NULL);
  if (mesh_ca_issue(ca, cakey, id, now - 60, now + 86400,
                    MESH_CA_ISSUE_DEFAULT, crt, key, &st) == MESH_OK)
    return true;
  fprintf(stderr, "mesh_demo: issuing %s: %s\n", id, st.message);
  return false;
}

static bool mint(demo_t *d) {
  char ca[DEMO_PATH_MAX], cakey[DEMO_PATH_MAX];
  path_in(d, ca, "ca", ".crt");
  path_in(d, cakey, "ca", ".key");
  mesh_status_t st;
  if (mesh_ca_init(DEMO_TD, 86400, ca, cakey, &st) != MESH_OK) {
    fprintf(stderr, "mesh_demo: CA: %s\n", st.message);
    return false;
  }
  for (size_t i = 0; i < d->neps; i++)
    if (!issue(d, d->eps[i].name, DEMO_ID_WORK))
      return false;
  return issue(d, "frontend", DEMO_ID_CLIENT) &&
         issue(d, "reports", DEMO_ID_INTRUDER);
}

/* ---- configs ------------------------------------------------------------- */

static int identity_json(const demo_t *d, const char *name, char *out,
                         size_t len) {
  return snprintf(out, len,
                  "\"identity\": {\"cert\": \"%s/%s.crt\", \"key\": "
                  "\"%s/%s.key\", \"bundle\": \"%s/ca.crt\"}",
                  d->out, name, d->out, name, d->out);
}

static bool backend_config(const demo_t *d, const demo_ep_t *e) {
  char id[3 * DEMO_PATH_MAX], text[8 * DEMO_PATH_MAX], path[DEMO_PATH_MAX];
  identity_json(d, e->name, id, sizeof id);
  snprintf(text, sizeof text,
           "{\n"
           "  \"name\": \"" DEMO_SERVICE "\",\n"
           "  \"log\": {\"level\": \"info\"},\n"
           "  %s,\n"
           "  \"inbound\": {\"listen\": \"127.0.0.1:0\", \"peers\": "
           "[\"spiffe://" DEMO_TD "\"]},\n"
           "  \"authz\": {\"policies\": [{\"name\": \"" DEMO_POLICY "\", "
           "\"action\": \"ALLOW\",\n"
           "    \"rules\": [{\"from\": [{\"source\": {\"principals\": "
           "[\"" DEMO_ID_CLIENT "\"]}}]}]}]}\n"
           "}\n",
           id);
  path_in(d, path, e->name, ".json");
  return write_file(path, text);
}

/* The client's view of "work": endpoints with their version label,
 * subsets v1/v2 split 90/10, least_request, outlier detection that ejects
 * after 3 consecutive failures, retries of connect failures, resets and
 * gateway errors on another endpoint. */
static int xds_service_json(char *out, size_t len) {
  return snprintf(
      out, len,
      "\"" DEMO_SERVICE "\": {\n"
      "      \"peers\": [\"" DEMO_ID_WORK "\"],\n"
      "      \"discovery\": {\"type\": \"xds\", \"listener\": \"work\"},\n"
      "      \"retry\": {\"retry_on\": [\"connect-failure\", \"reset\", "
      "\"gateway-error\"], \"num_retries\": 2,\n"
      "                \"base_interval_ms\": 5},\n"
      "      \"timeouts\": {\"per_try_ms\": 1000, \"overall_ms\": 5000}\n"
      "    }");
}

static int service_json(const demo_t *d, bool intruder, char *out,
                        size_t len) {
  if (d->xds_script && !intruder)
    return xds_service_json(out, len);
  char eps[1024] = "";
  size_t n = 0;
  for (size_t i = 0; i < d->neps; i++) {
    int w = snprintf(eps + n, sizeof eps - n,
                     "%s\n        {\"address\": \"127.0.0.1\", \"port\": %d, "
                     "\"labels\": {\"version\": \"%s\", \"instance\": "
                     "\"%s\"}}",
                     i ? "," : "", d->eps[i].port, d->eps[i].subset,
                     d->eps[i].name);
    if (w > 0 && (size_t)w < sizeof eps - n)
      n += (size_t)w;
  }
  return snprintf(
      out, len,
      "\"" DEMO_SERVICE "\": {\n"
      "      \"peers\": [\"" DEMO_ID_WORK "\"],\n"
      "      \"discovery\": {\"type\": \"static\", \"endpoints\": [%s]},\n"
      "      \"lb\": {\"policy\": \"least_request\"},\n"
      "      \"subsets\": {\"v1\": {\"version\": \"v1\"}, \"v2\": "
      "{\"version\": \"v2\"}},\n"
      "      \"split\": [{\"subset\": \"v1\", \"weight\": 90}, "
      "{\"subset\": \"v2\", \"weight\": 10}]%s\n"
      "    }",
      eps,
      intruder ? ""
               : ",\n"
                 "      \"outlier_detection\": {\"consecutive_5xx\": 3, "
                 "\"interval_ms\": 1000, \"base_ejection_time_ms\": 30000},\n"
                 "      \"retry\": {\"retry_on\": [\"connect-failure\", "
                 "\"reset\", \"gateway-error\"], \"num_retries\": 2,\n"
                 "                \"base_interval_ms\": 5, \"budget\": "
                 "{\"budget_percent\": 100, \"min_retry_concurrency\": 32}},\n"
                 "      \"timeouts\": {\"connect_ms\": 1000, \"per_try_ms\": "
                 "1000, \"overall_ms\": 5000}");
}

static bool client_config(const demo_t *d, const char *name, bool intruder) {
  char id[3 * DEMO_PATH_MAX], svc[4096], text[12 * DEMO_PATH_MAX],
      path[DEMO_PATH_MAX];
  identity_json(d, name, id, sizeof id);
  service_json(d, intruder, svc, sizeof svc);
  char xds[DEMO_PATH_MAX + 64] = "";
  if (d->xds_script && !intruder)
    snprintf(xds, sizeof xds, "  \"xds\": {\"bootstrap\": \"%s\"},\n", d->boot);
  snprintf(text, sizeof text,
           "{\n"
           "  \"name\": \"%s\",\n"
           "  \"log\": {\"level\": \"warn\"},\n"
           "  %s,\n"
           "  %s%s"
           "  \"services\": {\n"
           "    %s\n"
           "  }\n"
           "}\n",
           name, id,
           intruder ? "" : "\"admin\": {\"listen\": \"127.0.0.1:0\"},\n", xds,
           svc);
  path_in(d, path, name, ".json");
  return write_file(path, text);
}

/* ---- backends ------------------------------------------------------------ */

static bool read_port(int fd, int *port) {
  char buf[32];
  size_t got = 0;
  double end = demo_now() + READY_TIMEOUT_MS / 1000.0;
  while (got < sizeof buf - 1 && demo_now() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
    buf[got] = '\0';
    if (strchr(buf, '\n')) {
      *port = atoi(buf);
      return *port > 0 && *port < 65536;
    }
  }
  return false;
}

static void exec_backend(const demo_t *d, const demo_ep_t *e, int ready,
                         const char *work) {
  char cfg[DEMO_PATH_MAX], stats[DEMO_PATH_MAX], logp[DEMO_PATH_MAX],
      fd[16];
  path_in(d, cfg, e->name, ".json");
  path_in(d, stats, e->name, ".stats");
  path_in(d, logp, e->name, ".log");
  snprintf(fd, sizeof fd, "%d", ready);
  int log = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (log >= 0) {
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    close(log);
  }
  execl("/proc/self/exe", "mesh_demo", "backend", cfg, e->name, work,
        d->spans_path, stats, fd, (char *)NULL);
  _exit(127);
}

static bool spawn_backend(demo_t *d, demo_ep_t *e, const char *work) {
  int p[2];
  if (pipe(p) != 0)
    return false;
  fcntl(p[0], F_SETFD, FD_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* A backend must not outlive the demo, even after a crash or ^C. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    close(p[0]);
    exec_backend(d, e, p[1], work);
  }
  close(p[1]);
  bool ok = pid > 0 && read_port(p[0], &e->port);
  close(p[0]);
  if (pid > 0)
    e->pid = pid;
  if (!ok) {
    fprintf(stderr, "mesh_demo: backend %s did not start (see %s/%s.log)\n",
            e->name, d->out, e->name);
    return false;
  }
  snprintf(e->key, sizeof e->key, "127.0.0.1:%d", e->port);
  return true;
}

/* SIGTERM (they write their counters), then SIGKILL past the wait. */
static void stop_backends(demo_t *d) {
  for (size_t i = 0; i < d->neps; i++)
    if (d->eps[i].pid > 0 && d->eps[i].killed_at < 0)
      kill(d->eps[i].pid, SIGTERM);
  for (size_t i = 0; i < d->neps; i++) {
    demo_ep_t *e = &d->eps[i];
    if (e->pid <= 0)
      continue;
    double end = demo_now() + STOP_WAIT_MS / 1000.0;
    bool reaped = false;
    while (!reaped && demo_now() < end) {
      reaped = waitpid(e->pid, NULL, WNOHANG) == e->pid;
      if (!reaped)
        nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
    }
    if (!reaped) {
      kill(e->pid, SIGKILL);
      waitpid(e->pid, NULL, 0);
    }
    e->pid = 0;
  }
}

static unsigned long read_stats(demo_t *d) {
  unsigned long denials = 0;
  for (size_t i = 0; i < d->neps; i++) {
    demo_ep_t *e = &d->eps[i];
    char path[DEMO_PATH_MAX];
    path_in(d, path, e->name, ".stats");
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    e->have_stats = fscanf(f, "served=%lu denied=%lu", &e->served,
                           &e->denied) == 2;
    fclose(f);
    denials += e->have_stats ? e->denied : 0;
  }
  return denials;
}

/* ---- the client's library log: ejections --------------------------------- */

static FILE *client_log;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_ejection(demo_t *d, const char *line) {
  const char *h = strstr(line, " host=");
  if (!h)
    return;
  char key[64];
  if (sscanf(h, " host=%63s", key) != 1)
    return;
  demo_ep_t *e = demo_ep_by_key(d, key);
  if (!e)
    return;
  atomic_fetch_add(&e->ejections, 1);
  double never = -1;
  atomic_compare_exchange_strong(&e->ejected_at, &never, demo_now() - d->t0);
  const char *type = strstr(line, " type=");
  char why[64] = "";
  if (type)
    sscanf(type, " type=%63s", why);
  demo_event(d, "outlier detection ejected %s (%s, %s)", e->name, e->key,
             why[0] ? why : "?");
}

/* Runs on whichever thread logged: keep it short. */
static void on_log(int level, const char *line, void *user) {
  (void)level;
  pthread_mutex_lock(&log_mu);
  if (client_log) {
    fprintf(client_log, "%s\n", line);
    fflush(client_log);
  }
  pthread_mutex_unlock(&log_mu);
  if (strstr(line, "event=outlier_eject "))
    on_ejection(user, line);
  const char *cl = strstr(line, "event=xds_apply ");
  cl = cl ? strstr(cl, " clusters=") : NULL;
  if (cl) /* the client applied a route from the control plane */
    demo_event(user, "client applied route: %.200s", cl + 10);
}

/* ---- the run ------------------------------------------------------------- */

static mesh_t *new_mesh(const demo_t *d, const char *name) {
  char path[DEMO_PATH_MAX];
  path_in(d, path, name, ".json");
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new_from_file(path, &m, &st) != MESH_OK) {
    fprintf(stderr, "mesh_demo: %s: %s\n", path, st.message);
    return NULL;
  }
  return m;
}

static void kill_victim(demo_t *d) {
  demo_ep_t *e = &d->eps[d->victim];
  kill(e->pid, SIGKILL);
  waitpid(e->pid, NULL, 0);
  e->killed_at = demo_now() - d->t0;
  char line[256];
  snprintf(line, sizeof line, "SIGKILL %s (pid %d, %s)", e->name,
           (int)e->pid, e->key);
  e->pid = 0;
  ui_event(d, e->killed_at, line);
}

typedef struct intruder_arg {
  demo_t *d;
  mesh_t *m;
} intruder_arg_t;

/* On its own thread, so that a slow handshake does not hold up the
 * timeline (progress lines, the kill). */
static void *intruder_main(void *arg) {
  intruder_arg_t *a = arg;
  demo_t *d = a->d;
  demo_intruder(d, a->m, INTRUDER_CALLS);
  demo_event(d, "intruder %s called %s %d times: %d denied (%.200s)",
             DEMO_ID_INTRUDER, DEMO_SERVICE, d->intruder_attempts,
             d->intruder_denied, d->intruder_reason);
  return NULL;
}

/* The timeline, on the main thread: a progress line every second, the
 * intruder and the kill at their time, events as they come. */
static void timeline(demo_t *d, mesh_t *intruder) {
  unsigned long prev[DEMO_MAX_EPS + 1] = {0};
  intruder_arg_t arg = {d, intruder};
  pthread_t it;
  bool intruded = false;
  int next_tick = 1;
  while (!interrupted) {
    double t = demo_now() - d->t0;
    if (t >= d->seconds)
      break;
    if (d->xds_script)
      demo_xds_step(d, t);
    if (!intruded && t >= d->t_intruder)
      intruded = pthread_create(&it, NULL, intruder_main, &arg) == 0;
    if (d->eps[d->victim].killed_at < 0 && t >= d->t_kill && !d->xds_script)
      kill_victim(d);
    flush_events(d);
    if (t >= next_tick) {
      ui_progress(d, next_tick, prev);
      next_tick++;
    }
    nanosleep(&(struct timespec){0, 20 * 1000000}, NULL);
  }
  if (intruded)
    pthread_join(it, NULL);
}

static void write_summary(demo_t *d, unsigned long denials,
                          const span_stats_t *sp, bool ok) {
  char path[DEMO_PATH_MAX];
  path_in(d, path, "summary", ".json");
  FILE *f = fopen(path, "w");
  if (!f)
    return;
  fprintf(f,
          "{\"ok\": %s, \"seconds\": %.1f, \"calls\": %lu, \"failed\": %lu, "
          "\"retries\": %lu,\n",
          ok ? "true" : "false", d->seconds, atomic_load(&d->calls),
          atomic_load(&d->failed), atomic_load(&d->retries));
  fprintf(f,
          " \"intruder\": {\"id\": \"%s\", \"attempts\": %d, \"denied\": %d, "
          "\"allowed\": %d, \"backend_denials\": %lu},\n",
          DEMO_ID_INTRUDER, d->intruder_attempts, d->intruder_denied,
          d->intruder_allowed, denials);
  fprintf(f,
          " \"spans\": {\"file\": \"%s\", \"lines\": %lu, \"bad\": %lu, "
          "\"traces\": %lu, \"processes\": %d},\n",
          d->spans_path, sp->lines, sp->bad, sp->traces, sp->processes);
  fprintf(f, " \"endpoints\": [");
  for (size_t i = 0; i < d->neps; i++) {
    demo_ep_t *e = &d->eps[i];
    fprintf(f,
            "%s\n  {\"name\": \"%s\", \"subset\": \"%s\", \"endpoint\": "
            "\"%s\", \"calls\": %lu, \"failed_tries\": %lu, \"p50_ms\": %.3f, "
            "\"p99_ms\": %.3f, \"ejections\": %lu, \"killed\": %s, "
            "\"ejected\": %s, \"served\": %lu, \"denied\": %lu}",
            i ? "," : "", e->name, e->subset, e->key,
            atomic_load(&e->ok_tries), atomic_load(&e->failed_tries),
            ui_percentile_ms(e, 50), ui_percentile_ms(e, 99),
            atomic_load(&e->ejections), e->killed_at >= 0 ? "true" : "false",
            e->ejected_at >= 0 ? "true" : "false", e->served, e->denied);
  }
  fprintf(f, "]}\n");
  fclose(f);
}

/* ---- options and setup --------------------------------------------------- */

static int parse_args(demo_t *d, int argc, char **argv, bool *no_color) {
  const char *out = "mesh-demo";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage_text, stdout);
      return 0;
    } else if (!strcmp(a, "--quick")) {
      d->seconds = 6;
    } else if (!strcmp(a, "--no-color")) {
      *no_color = true;
    } else if (!strcmp(a, "--out") && val) {
      out = argv[++i];
    } else if (!strcmp(a, "--seconds") && val) {
      d->seconds = atof(argv[++i]);
    } else if (!strcmp(a, "--xds") && val) {
      d->xds_script = argv[++i];
    } else if (!strcmp(a, "--workers") && val) {
      d->workers = atoi(argv[++i]);
    } else {
      fprintf(stderr, "mesh_demo: bad argument \"%s\"\n\n%s", a, usage_text);
      return 2;
    }
  }
  if (d->seconds < 3 || d->seconds > 120 || d->workers < 1 ||
      d->workers > 32) {
    fprintf(stderr, "mesh_demo: --seconds 3-120, --workers 1-32\n");
    return 2;
  }
  char abs[PATH_MAX];
  if (!make_dirs(out) || !realpath(out, abs)) {
    fprintf(stderr, "mesh_demo: %s: %s\n", out, strerror(errno));
    return 1;
  }
  if (strlen(abs) >= sizeof d->out) {
    fprintf(stderr, "mesh_demo: %s: path too long\n", abs);
    return 1;
  }
  snprintf(d->out, sizeof d->out, "%s", abs);
  char cwd[PATH_MAX];
  size_t n = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
  bool below = n > 1 && strncmp(abs, cwd, n) == 0 && abs[n] == '/';
  snprintf(d->show, sizeof d->show, "%s", below ? abs + n + 1 : abs);
  return -1; /* go on */
}

static void init_eps(demo_t *d) {
  static const char *const names[] = {"v1-a", "v1-b", "v2"};
  static const char *const xds_names[] = {"v1-a", "v1-b", "v2-a", "v2-b"};
  d->neps = d->xds_script ? 4 : 3;
  for (size_t i = 0; i < d->neps; i++) {
    demo_ep_t *e = &d->eps[i];
    snprintf(e->name, sizeof e->name, "%s",
             d->xds_script ? xds_names[i] : names[i]);
    snprintf(e->subset, sizeof e->subset, "%.2s", e->name);
    pthread_mutex_init(&e->mu, NULL);
    e->killed_at = -1;
    e->ejected_at = -1;
  }
  d->victim = 1; /* v1-b */
}

static bool setup(demo_t *d) {
  path_in(d, d->spans_path, "spans", ".jsonl");
  unlink(d->spans_path);
  for (size_t i = 0; i < d->neps; i++) {
    char stats[DEMO_PATH_MAX];
    path_in(d, stats, d->eps[i].name, ".stats");
    unlink(stats);
  }
  if (!mint(d))
    return false;
  for (size_t i = 0; i < d->neps; i++) {
    /* v2, the canary, is a little slower than v1 */
    const char *work = strcmp(d->eps[i].subset, "v2") ? "500-2500"
                                                        : "1500-4500";
    if (!backend_config(d, &d->eps[i]) || !spawn_backend(d, &d->eps[i], work))
      return false;
  }
  if (d->xds_script && !demo_xds_start(d))
    return false;
  return client_config(d, "frontend", false) &&
         client_config(d, "reports", true);
}

static void free_demo(demo_t *d) {
  for (size_t i = 0; i < d->neps; i++) {
    free(d->eps[i].lat_us);
    pthread_mutex_destroy(&d->eps[i].mu);
  }
  pthread_mutex_destroy(&d->err_mu);
  pthread_mutex_destroy(&d->ev_mu);
  free(d);
}

static bool run(demo_t *d) {
  mesh_t *client = new_mesh(d, "frontend");
  mesh_t *intruder = client ? new_mesh(d, "reports") : NULL;
  if (!intruder) {
    mesh_free(client);
    return false;
  }
  char logp[DEMO_PATH_MAX];
  path_in(d, logp, "frontend", ".log");
  client_log = fopen(logp, "w");
  mesh_set_log(client, MESH_LOG_INFO, on_log, d);
  demo_spans_attach(client, d->spans_path, "frontend", d);
  demo_spans_attach(intruder, d->spans_path, "reports", NULL);
  ui_banner(d, mesh_admin_port(client));
  pthread_t threads[32];
  if (d->xds_script && !demo_xds_ready(d, client)) {
    mesh_free(intruder);
    mesh_free(client);
    return false;
  }
  d->t0 = demo_now();
  int n = demo_client_start(d, client, threads);
  timeline(d, intruder);
  atomic_store(&d->stop, true);
  for (int i = 0; i < n; i++)
    pthread_join(threads[i], NULL);
  flush_events(d);
  mesh_free(intruder);
  mesh_free(client);
  pthread_mutex_lock(&log_mu);
  if (client_log)
    fclose(client_log);
  client_log = NULL;
  pthread_mutex_unlock(&log_mu);
  return n == d->workers;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "backend") == 0)
    return demo_backend_main(argc, argv);
  demo_t *d = calloc(1, sizeof *d);
  if (!d)
    return 1;
  d->seconds = 12;
  d->workers = 4;
  pthread_mutex_init(&d->err_mu, NULL);
  pthread_mutex_init(&d->ev_mu, NULL);
  bool no_color = false;
  int rc = parse_args(d, argc, argv, &no_color);
  if (rc >= 0) {
    free_demo(d);
    return rc;
  }
  ui_init(d, no_color);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_int);
  signal(SIGTERM, on_int);
  d->t_intruder = d->xds_script ? 2 * d->seconds : d->seconds / 6;
  d->t_kill = d->seconds / 3;
  init_eps(d);
  bool ok = setup(d) && run(d);
  if (d->xds_script)
    demo_xds_stop(d);
  stop_backends(d);
  demo_spans_close();
  unsigned long denials = read_stats(d);
  span_stats_t sp;
  demo_spans_scan(d->spans_path, &sp);
  if (ok)
    ok = d->xds_script ? ui_xds_report(d) : ui_report(d, denials, &sp);
  write_summary(d, denials, &sp, ok);
  free_demo(d);
  return ok ? 0 : 1;
}

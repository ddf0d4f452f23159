/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_demo: a small service mesh on loopback, on libmesh's public API.
 *
 * One program, two roles:
 *   mesh_demo [options]          the orchestrator: mints a trust domain,
 *                                starts the backends (this program again,
 *                                in backend mode), runs the client, kills a
 *                                backend, sends an intruder, prints a report
 *   mesh_demo backend ...        one instance of the service "work"
 *
 * Files: main.c (orchestration), backend.c, client.c (the calls, the
 * intruder), spans.c (span hooks: JSON lines and per-endpoint stats),
 * ui.c (terminal output). */
#ifndef MESH_DEMO_H
#define MESH_DEMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <mesh/mesh.h>

#define DEMO_TD "demo.mesh"
#define DEMO_SERVICE "work"
#define DEMO_ID_WORK "spiffe://" DEMO_TD "/ns/demo/sa/work"
#define DEMO_ID_CLIENT "spiffe://" DEMO_TD "/ns/demo/sa/frontend"
#define DEMO_ID_INTRUDER "spiffe://" DEMO_TD "/ns/demo/sa/reports"
#define DEMO_POLICY "frontend-only"

#define DEMO_MAX_EPS 4 /* 3 in the first act, 4 with --xds */
#define DEMO_OUT_MAX 512   /* output directory: leaves room for names */
#define DEMO_PATH_MAX 1024

/* One backend instance, as the client side sees it. */
typedef struct demo_ep {
  char name[16];   /* "v1-a" */
  char subset[8];  /* "v1" */
  char key[64];    /* "127.0.0.1:port", as the library names endpoints */
  int port;
  pid_t pid;
  /* client-side counters, from the "mesh.try" spans */
  atomic_ulong ok_tries, failed_tries, ejections;
  pthread_mutex_t mu;  /* guards lat_us */
  uint32_t *lat_us;    /* latency of each successful try, microseconds */
  size_t nlat, caplat;
  /* timeline, seconds since the start (< 0: never); ejected_at is set by
   * the thread whose call triggered the ejection */
  double killed_at;
  _Atomic double ejected_at;
  /* from the backend's own stats file at exit */
  bool have_stats;
  unsigned long served, denied;
} demo_ep_t;

/* Everything the run shares between threads. */
typedef struct demo {
  char out[DEMO_OUT_MAX];       /* output directory, absolute */
  char show[DEMO_OUT_MAX];      /* the same as shown: relative when below
                                   the working directory */
  char spans_path[DEMO_PATH_MAX];
  double seconds;               /* length of the load phase */
  double t_intruder, t_kill;    /* when the intruder calls, the kill */
  size_t victim;                /* index in eps of the backend killed */
  int workers;
  bool color, utf8;
  double t0;                    /* monotonic start, seconds */
  demo_ep_t eps[DEMO_MAX_EPS];
  size_t neps;
  /* calls made by the client (logical calls, retries inside) */
  atomic_ulong calls, failed, retries;
  atomic_bool stop;
  char last_error[512];
  pthread_mutex_t err_mu;
  /* events for the main thread to print (ejections come from workers) */
  pthread_mutex_t ev_mu;
  char events[16][256];
  size_t nevents;
  /* intruder */
  int intruder_attempts, intruder_denied, intruder_allowed;
  char intruder_reason[512];
  /* the xDS act (--xds SCRIPT): "work" follows a control plane (xds.c) */
  const char *xds_script;       /* NULL: the first act */
  pid_t cp_pid;
  FILE *cp_in, *cp_out;         /* the control plane's stdin, stdout */
  char boot[DEMO_PATH_MAX];     /* bootstrap.json the client reads */
  int xds_step;                 /* next step of the script */
  /* calls answered per phase of the script, counted from 0.5 s after a
   * push (calls in flight at a switch belong to neither phase) */
  struct demo_phase {
    char label[48];
    int w1, w2;                 /* the route's weights */
    double t0;                  /* counting from */
    bool counting, done;
    unsigned long start[DEMO_MAX_EPS], v1, v2, by[DEMO_MAX_EPS];
  } phase[4];
  size_t nphase;
} demo_t;

/* ---- main.c -------------------------------------------------------------- */
double demo_now(void);
/** Queue a line for the main thread to print (any thread). */
void demo_event(demo_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
demo_ep_t *demo_ep_by_key(demo_t *d, const char *key);

/* ---- backend.c ----------------------------------------------------------- */
/** `mesh_demo backend CONFIG NAME WORK_US SPANS STATS READY_FD`; returns
 *  the exit code. */
int demo_backend_main(int argc, char **argv);

/* ---- spans.c ------------------------------------------------------------- */
/** Append every sampled span of m to path as one JSON object per line
 *  (O_APPEND: several processes share the file).  d may be NULL (backend);
 *  with d, "mesh.try" spans also feed d's per-endpoint stats.
 *  @return MESH_OK or a negative code. */
int demo_spans_attach(mesh_t *m, const char *path, const char *process,
                      demo_t *d);
/** Close the file (after mesh_free of every context using it). */
void demo_spans_close(void);

typedef struct span_stats {
  unsigned long lines;  /* spans in the file */
  unsigned long bad;    /* lines that are not one JSON object */
  unsigned long traces; /* "mesh.call" spans of the client: one per trace */
  int processes;        /* distinct processes that wrote spans */
} span_stats_t;
/** Read the file back for the report.  @return false if unreadable. */
bool demo_spans_scan(const char *path, span_stats_t *out);

/* ---- client.c ------------------------------------------------------------ */
/** Start the load: d->workers threads calling the service until d->stop. */
int demo_client_start(demo_t *d, mesh_t *m, pthread_t *threads);
/** Make `n` calls with the intruder's context and record the outcome. */
void demo_intruder(demo_t *d, mesh_t *m, int n);

/* ---- xds.c (the xDS act) ------------------------------------------------ */
/** Start the control plane (python3 SCRIPT), give it the backends, write
 *  the bootstrap the client reads.  @return false on failure (printed). */
bool demo_xds_start(demo_t *d);
/** Wait (<= 10 s) until the client sees the first endpoint set. */
bool demo_xds_ready(demo_t *d, mesh_t *m);
/** The script: pushes at their time, phase accounting.  Main thread. */
void demo_xds_step(demo_t *d, double t);
/** Close the control plane's stdin, reap it. */
void demo_xds_stop(demo_t *d);

/* ---- ui.c ---------------------------------------------------------------- */
void ui_init(demo_t *d, bool no_color);
void ui_banner(const demo_t *d, int admin_port);
void ui_progress(demo_t *d, double t, unsigned long *prev_ok);
void ui_event(const demo_t *d, double t, const char *line);
/** Percentile p (0-100, nearest rank) of an endpoint's try latencies in
 *  ms; 0 without samples.  Sorts the samples: call after the load. */
double ui_percentile_ms(demo_ep_t *e, int p);
/** The final report; returns true when every claim of the demo held. */
bool ui_report(demo_t *d, unsigned long backend_denials,
               const span_stats_t *spans);
/** The xDS act's report: the table, each phase's observed split. */
bool ui_xds_report(demo_t *d);

#endif /* MESH_DEMO_H */

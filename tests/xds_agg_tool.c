/* SPDX-License-Identifier: Apache-2.0 */
/* tests/xds_agg_tool BOOTSTRAP FIRST_USE_MAX RESOURCE_TIMEOUT_MS NAME:MODE...:
 * real mTLS backends on loopback (child processes, tests/test_call_backend.c;
 * their HTTP answers name them in "x-backend") and a libmesh context with
 * an "xds" section and NO services: every name it calls is subscribed on
 * first use (xds/firstuse.c) through the real ADS stream.  Prints
 * {"ports": {...}} first, then answers commands read from stdin, one JSON
 * line each:
 *   call NAME N T   N sequential GETs of "/" to NAME through mesh_http_call
 *                   with a T ms timeout: {"calls", "by": {backend: n},
 *                   "failed", "errors": {"MESH_ERR_...": n}, "last_error",
 *                   "ms_max"}
 *   dial NAME T     one mesh_dial of NAME (connect timeout T ms): {"code",
 *                   "ms", "error"}
 *   grpc NAME T     one mesh_grpc_unary of /mesh.v1.Echo/Echo to NAME (T ms
 *                   timeout): {"code", "status" (-1: no call), "message"
 *                   (the call's status message, else the error), "ms"}
 *   view            the admin view "xds"
 *   quit            stop the backends, exit
 * A backend NAME:MODE@ADDR=OTHER listens on ADDR (127.x) at backend
 * OTHER's port (two backends behind one DNS name); $XDS_TOOL_LOGICAL_DNS
 * is the xds section's "logical_dns" object.
 * Driven by tests/xds/test_xds_agg.py and test_xds_ldns.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh/mesh.h"
#include "telemetry/telemetry.h"
#include "test_call_backend.h"

#define NB_MAX 8

static tcb_t be[NB_MAX];
static int nb;
static mesh_t *m;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* st.message inside a JSON string */
static void clean(char *s) {
  for (; *s; s++)
    if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
      *s = '\'';
}

static void cmd_call(const char *name, unsigned long n, long timeout) {
  unsigned long by[NB_MAX] = {0}, errs[64] = {0}, failed = 0;
  long ms_max = 0;
  char last[256] = "";
  for (unsigned long i = 0; i < n; i++) {
    mesh_http_request_t *rq = mesh_http_request_new("GET", "/");
    mesh_http_request_set_timeout(rq, (int)timeout);
    mesh_http_response_t *rs = NULL;
    mesh_status_t st;
    long t0 = now_ms();
    int rc = mesh_http_call(m, name, rq, &rs, &st);
    long ms = now_ms() - t0;
    ms_max = ms > ms_max ? ms : ms_max;
    const char *b = rc == MESH_OK && mesh_http_response_status(rs) == 200
                        ? mesh_http_response_header(rs, "x-backend") : NULL;
    int k = -1;
    for (int j = 0; b && j < nb; j++)
      if (strcmp(b, be[j].name) == 0)
        k = j;
    if (k >= 0) {
      by[k]++;
    } else {
      failed++;
      if (rc < 0 && -rc < 64)
        errs[-rc]++;
      snprintf(last, sizeof last, "%s: %.200s", mesh_code_name(rc),
               rc ? st.message : "bad status");
      clean(last);
    }
    mesh_http_response_free(rs);
    mesh_http_request_free(rq);
  }
  printf("{\"calls\": %lu, \"by\": {", n);
  for (int i = 0; i < nb; i++)
    printf("%s\"%s\": %lu", i ? ", " : "", be[i].name, by[i]);
  printf("}, \"errors\": {");
  for (int i = 0, k = 0; i < 64; i++)
    if (errs[i])
      printf("%s\"%s\": %lu", k++ ? ", " : "", mesh_code_name(-i), errs[i]);
  printf("}, \"failed\": %lu, \"ms_max\": %ld, \"last_error\": \"%s\"}\n",
         failed, ms_max, last);
}

static void cmd_dial(const char *name, long timeout) {
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_set_timeout(o, (int)timeout);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  long t0 = now_ms();
  int rc = mesh_dial(m, name, o, &c, &st);
  long ms = now_ms() - t0;
  mesh_conn_close(c);
  mesh_dial_opts_free(o);
  char msg[sizeof st.message];
  snprintf(msg, sizeof msg, "%s", rc ? st.message : "");
  clean(msg);
  printf("{\"code\": \"%s\", \"ms\": %ld, \"error\": \"%s\"}\n",
         mesh_code_name(rc), ms, msg);
}

static void cmd_grpc(const char *name, long timeout) {
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_timeout(o, (int)timeout);
  void *resp = NULL;
  size_t rl = 0;
  mesh_grpc_call_t *c = NULL;
  mesh_status_t st;
  long t0 = now_ms();
  int rc = mesh_grpc_unary(m, name, "/mesh.v1.Echo/Echo", o, "ping", 4, &resp,
                           &rl, &c, &st);
  long ms = now_ms() - t0;
  char msg[sizeof st.message];
  snprintf(msg, sizeof msg, "%s", c ? mesh_grpc_call_status_message(c)
                                    : rc ? st.message : "");
  clean(msg);
  printf("{\"code\": \"%s\", \"status\": %d, \"message\": \"%s\", "
         "\"ms\": %ld}\n", mesh_code_name(rc), c ? mesh_grpc_call_status(c) : -1,
         msg, ms);
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  mesh_grpc_call_opts_free(o);
}

static void cmd_view(void) {
  cJSON *v = mesh__view_render(m, "xds");
  char *s = v ? cJSON_PrintUnformatted(v) : NULL;
  printf("%s\n", s ? s : "{\"error\": \"view\"}");
  free(s);
  cJSON_Delete(v);
}

static void commands(void) {
  char line[512], name[160];
  unsigned long n;
  long t;
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "call %159s %lu %ld", name, &n, &t) == 3)
      cmd_call(name, n, t);
    else if (sscanf(line, "dial %159s %ld", name, &t) == 2)
      cmd_dial(name, t);
    else if (sscanf(line, "grpc %159s %ld", name, &t) == 2)
      cmd_grpc(name, t);
    else if (strncmp(line, "view", 4) == 0)
      cmd_view();
    else
      break;
    fflush(stdout);
  }
}

static int run(const char *boot, const char *max, const char *dne) {
  char cfg[4096];
  const char *ld = getenv("XDS_TOOL_LOGICAL_DNS"); /* xds.logical_dns */
  snprintf(cfg, sizeof cfg,
           "{\"log\": {\"level\": \"error\"}, %s, \"xds\": {\"bootstrap\": "
           "\"%s\", \"first_use_max\": %s, \"resource_timeout_ms\": %s%s%s}}",
           tcb_client_identity(), boot, max, dne,
           ld ? ", \"logical_dns\": " : "", ld ? ld : "");
  mesh_status_t st;
  if (mesh_new(cfg, &m, &st)) {
    clean(st.message);
    printf("{\"error\": \"%s\"}\n", st.message);
    return 1;
  }
  commands();
  mesh_free(m);
  return 0;
}

int main(int argc, char **argv) {
  int rc = tcb_maybe_backend(argc, argv);
  if (rc >= 0)
    return rc;
  if (argc < 5 || argc - 4 > NB_MAX || !tcb_init())
    return 2;
  bool ok = true;
  for (int i = 4; i < argc && ok; i++) {
    char name[32], mode[32], at[16] = "", same[32] = "";
    ok = sscanf(argv[i], "%31[^:]:%31[^@]@%15[^=]=%31s", name, mode, at, same) >= 2;
    int port = 0; /* NAME:MODE@ADDR=OTHER: on ADDR, at OTHER's port */
    for (int j = 0; j < nb; j++)
      if (strcmp(be[j].name, same) == 0)
        port = be[j].port;
    ok = ok && (!at[0] || port) &&
         tcb_start_at(&be[nb], at[0] ? at : NULL, name, mode, port);
    nb += ok;
  }
  if (ok) {
    printf("{\"ports\": {");
    for (int i = 0; i < nb; i++)
      printf("%s\"%s\": %d", i ? ", " : "", be[i].name, be[i].port);
    printf("}}\n");
    fflush(stdout);
    rc = run(argv[1], argv[2], argv[3]);
  } else {
    printf("{\"error\": \"backends did not start\"}\n");
    rc = 1;
  }
  for (int i = 0; i < nb; i++)
    if (be[i].pid > 0)
      tcb_stop(&be[i]);
  return rc;
}

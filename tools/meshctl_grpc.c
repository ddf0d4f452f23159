/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl grpc: call a gRPC method without protos (like grpcurl with raw
 * bytes), or serve the echo service.  `call` sends standard input as one
 * message (or, with --stream, as a sequence of length-prefixed frames),
 * writes the response bytes (framed the same way with --stream) to
 * standard output, the peer's SPIFFE ID and the status name to standard
 * error, and exits with the gRPC status code. */
#include "meshctl.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char grpc_help[] =
    "usage: meshctl grpc call --config FILE --to TARGET /pkg.Svc/Method\n"
    "                         [--timeout DURATION] [--stream]\n"
    "       meshctl grpc serve --config FILE [--listen HOST:PORT]\n"
    "\n"
    "call   send standard input as one message and write the response\n"
    "       message to standard output; with --stream, standard input is a\n"
    "       sequence of gRPC length-prefixed frames (one message each) and\n"
    "       the responses come back framed the same way.  Standard error\n"
    "       shows the peer's SPIFFE ID and the status name; the exit code\n"
    "       is the gRPC status code (14 UNAVAILABLE when no server answered,\n"
    "       2 also for usage errors).\n"
    "  --config FILE       libmesh JSON config with an identity section\n"
    "  --to TARGET         \"host:port\" or a configured service\n"
    "  --timeout DURATION  the deadline (e.g. 500ms, 2s, 1m); default: the\n"
    "                      method's configured timeout, else the service's\n"
    "  --stream            framed messages both ways (client, server or\n"
    "                      bidi streaming)\n"
    "\n"
    "serve  serve the echo service over mTLS (ALPN h2): /mesh.v1.Echo/Echo\n"
    "       (unary) and /mesh.v1.Echo/Stream (bidi) send each message back as\n"
    "       it came; any other method is UNIMPLEMENTED.  Each call's peer\n"
    "       SPIFFE ID and method go to standard error.\n"
    "  --listen HOST:PORT  default: the config's inbound.listen\n";

#define EXIT_UNAVAILABLE 14

/* "500ms", "2s", "1m30s"...: milliseconds, or -1. */
static int64_t parse_timeout(const char *s) {
  size_t n = strlen(s);
  if (n > 2 && !strcmp(s + n - 2, "ms")) {
    char *end;
    long long v = strtoll(s, &end, 10);
    return end == s + n - 2 && v > 0 && v < 86400000LL ? v : -1;
  }
  int64_t secs;
  if (!meshctl_parse_duration(s, &secs) || secs <= 0 || secs > 86400)
    return -1;
  return secs * 1000;
}

static char *slurp_stdin(size_t *len) {
  return meshctl_read_file("-", len);
}

/* Exit code and report of a finished call (or of one that never started). */
static int report(int rc, mesh_grpc_call_t *call, const mesh_status_t *st) {
  int code = call ? mesh_grpc_call_status(call) : -1;
  if (code < 0) {
    fprintf(stderr, "meshctl grpc: %s: %s\nstatus: UNAVAILABLE\n",
            mesh_code_name(rc), st->message[0] ? st->message
                                               : mesh_strerror(rc));
    return EXIT_UNAVAILABLE;
  }
  fprintf(stderr, "peer: %s\n", mesh_grpc_call_peer_id(call));
  const char *msg = mesh_grpc_call_status_message(call);
  fprintf(stderr, "status: %s%s%s\n", mesh_grpc_status_name(code),
          *msg ? ": " : "", msg);
  return code > 255 ? 2 : code;
}

static int call_unary(mesh_t *m, const char *to, const char *method,
                      const mesh_grpc_call_opts_t *o) {
  size_t len = 0;
  char *in = slurp_stdin(&len);
  if (!in) {
    fprintf(stderr, "meshctl grpc: cannot read standard input\n");
    return MESHCTL_USAGE;
  }
  void *resp = NULL;
  size_t rl = 0;
  mesh_grpc_call_t *call = NULL;
  mesh_status_t st;
  int rc = mesh_grpc_unary(m, to, method, o, in, len, &resp, &rl, &call, &st);
  free(in);
  if (resp)
    fwrite(resp, 1, rl, stdout);
  fflush(stdout);
  mesh_grpc_free(resp);
  int ret = report(rc, call, &st);
  mesh_grpc_call_free(call);
  return ret;
}

/* Send every framed message of in, half-close, write every response. */
static int stream_all(mesh_grpc_call_t *call, const uint8_t *in, size_t len,
                      mesh_status_t *st) {
  size_t off = 0;
  while (off < len) {
    if (len - off < 5 || in[off] != 0) {
      fprintf(stderr, "meshctl grpc: standard input: a frame at byte %zu is "
                      "cut short or compressed\n", off);
      mesh_grpc_call_cancel(call);
      return MESH_ERR_PARSE;
    }
    size_t n = (size_t)in[off + 1] << 24 | (size_t)in[off + 2] << 16 |
               (size_t)in[off + 3] << 8 | in[off + 4];
    if (n > len - off - 5) {
      fprintf(stderr, "meshctl grpc: standard input: frame at byte %zu "
                      "announces %zu bytes, %zu left\n", off, n, len - off - 5);
      mesh_grpc_call_cancel(call);
      return MESH_ERR_PARSE;
    }
    int rc = mesh_grpc_call_send(call, in + off + 5, n, st);
    if (rc != MESH_OK)
      break;
    off += 5 + n;
  }
  mesh_grpc_call_close_send(call, st);
  for (;;) {
    void *msg;
    size_t ml;
    int r = mesh_grpc_call_recv(call, &msg, &ml, st);
    if (r != 1)
      return r;
    uint8_t pre[5] = {0, (uint8_t)(ml >> 24), (uint8_t)(ml >> 16),
                      (uint8_t)(ml >> 8), (uint8_t)ml};
    fwrite(pre, 1, 5, stdout);
    fwrite(msg, 1, ml, stdout);
    fflush(stdout);
    mesh_grpc_free(msg);
  }
}

static int call_stream(mesh_t *m, const char *to, const char *method,
                       const mesh_grpc_call_opts_t *o) {
  size_t len = 0;
  char *in = slurp_stdin(&len);
  if (!in) {
    fprintf(stderr, "meshctl grpc: cannot read standard input\n");
    return MESHCTL_USAGE;
  }
  mesh_grpc_call_t *call = NULL;
  mesh_status_t st;
  int rc = mesh_grpc_call_start(m, to, method, o, &call, &st);
  if (rc == MESH_OK)
    stream_all(call, (const uint8_t *)in, len, &st);
  free(in);
  if (rc == MESH_OK)
    rc = mesh_grpc_call_finish(call, &st);
  int ret = report(rc, call, &st);
  mesh_grpc_call_free(call);
  return ret;
}

static int grpc_call(int argc, char **argv) {
  const char *config = NULL, *to = NULL, *timeout = NULL, *pos[1];
  bool stream = false, help = false;
  size_t npos = 0;
  const meshctl_opt_t opts[] = {{"config", &config, NULL},
                                {"to", &to, NULL},
                                {"timeout", &timeout, NULL},
                                {"stream", NULL, &stream},
                                {NULL, NULL, NULL}};
  if (!meshctl_parse_args(argc, argv, 1, opts, &help, pos, 1, &npos)) {
    fputs(grpc_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(grpc_help, stdout);
    return MESHCTL_OK;
  }
  if (!config || !to || npos != 1) {
    fprintf(stderr, "meshctl grpc call: --config, --to and the method are "
                    "required\n\n%s", grpc_help);
    return MESHCTL_USAGE;
  }
  int64_t ms = timeout ? parse_timeout(timeout) : 0;
  if (ms < 0) {
    fprintf(stderr, "meshctl grpc call: invalid --timeout \"%s\"\n", timeout);
    return MESHCTL_USAGE;
  }
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_status_t st;
  mesh_t *m = NULL;
  int rc = o ? mesh_new_from_file(config, &m, &st) : MESH_ERR_NOMEM;
  if (rc != MESH_OK) {
    mesh_grpc_call_opts_free(o);
    meshctl_report(rc, &st);
    return MESHCTL_USAGE;
  }
  mesh_grpc_call_opts_set_timeout(o, (int)ms);
  int ret = stream ? call_stream(m, to, pos[0], o)
                   : call_unary(m, to, pos[0], o);
  mesh_grpc_call_opts_free(o);
  mesh_free(m);
  return ret;
}

/* ---- serve ------------------------------------------------------------------------ */

static mesh_grpc_server_t *server;

/* SIGINT/SIGTERM are blocked in every thread and taken here with sigwait,
 * so the shutdown (which takes locks) never runs in a signal handler. */
static void *signal_thread(void *arg) {
  sigset_t *set = arg;
  int sig;
  if (sigwait(set, &sig) == 0)
    mesh_grpc_server_shutdown(server);
  return NULL;
}

/* Echo and Stream are the same loop: every message back as it came. */
static int echo(mesh_grpc_server_call_t *call, void *user) {
  (void)user;
  fprintf(stderr, "call %s from %s\n", mesh_grpc_server_call_method(call),
          mesh_grpc_server_call_peer_id(call));
  mesh_status_t st;
  for (;;) {
    void *msg;
    size_t len;
    int r = mesh_grpc_server_call_recv(call, &msg, &len, &st);
    if (r == 0)
      return MESH_GRPC_OK;
    if (r < 0) {
      fprintf(stderr, "call %s: %s\n", mesh_grpc_server_call_method(call),
              st.message);
      return r == MESH_ERR_CANCELLED ? MESH_GRPC_CANCELLED : MESH_GRPC_INTERNAL;
    }
    r = mesh_grpc_server_call_send(call, msg, len, &st);
    mesh_grpc_free(msg);
    if (r != MESH_OK)
      return MESH_GRPC_CANCELLED;
  }
}

/* The config with "h2" first in tls.alpn (grpcio refuses TLS without
 * it).  @return the JSON text (caller frees) or NULL. */
static char *config_with_h2(const char *path) {
  size_t len;
  char *text = meshctl_read_file(path, &len);
  cJSON *root = text ? cJSON_Parse(text) : NULL;
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return NULL;
  }
  cJSON *tls = cJSON_GetObjectItemCaseSensitive(root, "tls");
  if (!tls)
    tls = cJSON_AddObjectToObject(root, "tls");
  cJSON *alpn = cJSON_GetObjectItemCaseSensitive(tls, "alpn");
  if (!alpn)
    alpn = cJSON_AddArrayToObject(tls, "alpn");
  bool has = false;
  const cJSON *it;
  cJSON_ArrayForEach(it, alpn) has = has || (cJSON_IsString(it) &&
                                             !strcmp(it->valuestring, "h2"));
  if (!has && cJSON_IsArray(alpn))
    cJSON_InsertItemInArray(alpn, 0, cJSON_CreateString("h2"));
  char *out = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return out;
}

static int grpc_serve(int argc, char **argv) {
  const char *config = NULL, *listen_at = NULL;
  bool help = false;
  const meshctl_opt_t opts[] = {{"config", &config, NULL},
                                {"listen", &listen_at, NULL},
                                {NULL, NULL, NULL}};
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help)) {
    fputs(grpc_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(grpc_help, stdout);
    return MESHCTL_OK;
  }
  if (!config) {
    fprintf(stderr, "meshctl grpc serve: --config is required\n\n%s",
            grpc_help);
    return MESHCTL_USAGE;
  }
  char *json = config_with_h2(config);
  if (!json) {
    fprintf(stderr, "meshctl grpc serve: cannot read %s as JSON\n", config);
    return MESHCTL_FAIL;
  }
  mesh_status_t st;
  mesh_t *m;
  mesh_listener_t *l = NULL;
  int rc = mesh_new(json, &m, &st);
  free(json);
  if (rc != MESH_OK)
    return meshctl_report(rc, &st);
  rc = mesh_listen(m, listen_at, &l, &st);
  if (rc == MESH_OK)
    rc = mesh_grpc_server_new(m, &server, &st);
  if (rc == MESH_OK)
    rc = mesh_grpc_server_add_method(server, "/mesh.v1.Echo/Echo", echo, NULL,
                                     &st);
  if (rc == MESH_OK)
    rc = mesh_grpc_server_add_method(server, "/mesh.v1.Echo/Stream", echo,
                                     NULL, &st);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_t sig_t;
  bool sig_started = false;
  if (rc == MESH_OK) {
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every thread */
    sig_started = pthread_create(&sig_t, NULL, signal_thread, &set) == 0;
    printf("listening on %d\n", mesh_listener_port(l));
    fflush(stdout);
    rc = mesh_grpc_server_serve(server, l, &st);
  }
  if (sig_started) {
    pthread_kill(sig_t, SIGTERM); /* no-op if it already took one */
    pthread_join(sig_t, NULL);
  }
  mesh_grpc_server_free(server);
  mesh_listener_close(l);
  mesh_free(m);
  return rc == MESH_OK ? MESHCTL_OK : meshctl_report(rc, &st);
}

int meshctl_grpc(int argc, char **argv) {
  if (argc < 2) {
    fputs(grpc_help, stderr);
    return MESHCTL_USAGE;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
    fputs(grpc_help, stdout);
    return MESHCTL_OK;
  }
  if (!strcmp(sub, "call"))
    return grpc_call(argc - 1, argv + 1);
  if (!strcmp(sub, "serve"))
    return grpc_serve(argc - 1, argv + 1);
  fprintf(stderr, "meshctl grpc: unknown subcommand \"%s\"\n\n%s", sub,
          grpc_help);
  return MESHCTL_USAGE;
}

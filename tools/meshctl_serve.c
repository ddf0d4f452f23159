/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl serve: an mTLS server with a config's identity and inbound
 * policy.  Prints each peer's SPIFFE ID (or why it was refused) and echoes
 * what it reads, or answers one HTTP request naming the peer (--http). */
#include "meshctl.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char serve_help[] =
    "usage: meshctl serve --config FILE [--listen HOST:PORT] [--count N]\n"
    "                     [--http]\n"
    "\n"
    "Accept mutual-TLS connections with the identity and the inbound policy\n"
    "(mode, allowed peers) of the config, print each peer's SPIFFE ID or the\n"
    "reason it was refused, and echo what it sends until it closes.\n"
    "\n"
    "  --config FILE       libmesh JSON config with an identity section\n"
    "  --listen HOST:PORT  default: the config's inbound.listen\n"
    "  --count N           exit after N accepted connections (default: run\n"
    "                      until interrupted)\n"
    "  --http              answer one HTTP/1.1 request with \"hello <peer "
    "ID>\"\n"
    "                      instead of echoing (try it with curl --cert)\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void echo(mesh_conn_t *c) {
  char buf[4096];
  for (;;) {
    long n = mesh_conn_read(c, buf, sizeof buf);
    if (n <= 0 || mesh_conn_write_all(c, buf, (size_t)n) != MESH_OK)
      return;
  }
}

static void http(mesh_conn_t *c) {
  char req[8192];
  size_t got = 0;
  while (got < sizeof req - 1) {
    long n = mesh_conn_read(c, req + got, sizeof req - 1 - got);
    if (n <= 0)
      return;
    got += (size_t)n;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n"))
      break;
  }
  const char *id = mesh_conn_peer_id(c);
  char resp[3072];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n"
                   "hello %s\n",
                   strlen(id) + 7, id[0] ? id : "plaintext peer");
  if (n > 0 && (size_t)n < sizeof resp)
    mesh_conn_write_all(c, resp, (size_t)n);
  mesh_conn_shutdown(c);
}

int meshctl_serve(int argc, char **argv) {
  const char *config = NULL, *listen = NULL, *count_s = NULL;
  bool use_http = false, help = false;
  const meshctl_opt_t opts[] = {{"config", &config, NULL},
                                {"listen", &listen, NULL},
                                {"count", &count_s, NULL},
                                {"http", NULL, &use_http},
                                {NULL, NULL, NULL}};
  if (!meshctl_parse_opts(argc, argv, 1, opts, &help)) {
    fputs(serve_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(serve_help, stdout);
    return MESHCTL_OK;
  }
  long count = -1;
  if (count_s) {
    char *end;
    count = strtol(count_s, &end, 10);
    if (*end || count <= 0) {
      fprintf(stderr, "meshctl serve: invalid --count \"%s\"\n", count_s);
      return MESHCTL_USAGE;
    }
  }
  if (!config) {
    fprintf(stderr, "meshctl serve: --config is required\n\n%s", serve_help);
    return MESHCTL_USAGE;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  mesh_status_t st;
  mesh_t *m;
  int rc = mesh_new_from_file(config, &m, &st);
  if (rc != MESH_OK)
    return meshctl_report(rc, &st);
  mesh_listener_t *l;
  rc = mesh_listen(m, listen, &l, &st);
  if (rc != MESH_OK) {
    mesh_free(m);
    return meshctl_report(rc, &st);
  }
  char self[MESH_SPIFFE_ID_MAX + 1] = "?";
  mesh_self_id(m, self, sizeof self);
  printf("serving %s on port %d\n", self, mesh_listener_port(l));
  fflush(stdout);
  while (!stop && count != 0) {
    mesh_conn_t *c;
    rc = mesh_accept(l, 500, &c, &st);
    if (rc == MESH_ERR_TIMEOUT)
      continue;
    if (rc != MESH_OK) {
      printf("refused: %s: %s\n", mesh_code_name(rc), st.message);
      fflush(stdout);
      continue;
    }
    printf("peer %s from %s (%s %s%s)\n",
           mesh_conn_is_tls(c) ? mesh_conn_peer_id(c) : "(plaintext)",
           mesh_conn_peer_addr(c),
           mesh_conn_is_tls(c) ? mesh_conn_tls_version(c) : "no TLS",
           mesh_conn_cipher(c), mesh_conn_resumed(c) ? ", resumed" : "");
    fflush(stdout);
    if (use_http)
      http(c);
    else
      echo(c);
    mesh_conn_close(c);
    if (count > 0)
      count--;
  }
  mesh_listener_close(l);
  mesh_free(m);
  return MESHCTL_OK;
}

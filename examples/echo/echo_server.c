/* SPDX-License-Identifier: Apache-2.0 */
/* echo_server: an mTLS echo server on libmesh.
 *
 *   echo_server CONFIG.json [HOST:PORT] [COUNT]
 *
 * Listens on HOST:PORT (default or "": the config's inbound.listen), accepts
 * peers that present an SVID allowed by the config's "inbound" section,
 * prints each peer's SPIFFE ID, and echoes back what it reads.  Serves
 * COUNT connections, then exits (default: until Ctrl-C). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <mesh/mesh.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* Echo until the peer closes. */
static void serve(mesh_conn_t *c) {
  char buf[4096];
  for (;;) {
    long n = mesh_conn_read(c, buf, sizeof buf);
    if (n == 0)
      break; /* peer closed */
    if (n < 0) {
      fprintf(stderr, "read: %s\n", mesh_conn_errmsg(c));
      break;
    }
    if (mesh_conn_write_all(c, buf, (size_t)n) != MESH_OK) {
      fprintf(stderr, "write: %s\n", mesh_conn_errmsg(c));
      break;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s CONFIG.json [HOST:PORT] [COUNT]\n", argv[0]);
    return 2;
  }
  const char *addr = argc > 2 && argv[2][0] ? argv[2] : NULL;
  long count = argc > 3 ? strtol(argv[3], NULL, 10) : -1;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  mesh_status_t st;
  mesh_t *m;
  if (mesh_new_from_file(argv[1], &m, &st) != MESH_OK) {
    fprintf(stderr, "config: %s\n", st.message);
    return 1;
  }
  mesh_listener_t *l;
  if (mesh_listen(m, addr, &l, &st) != MESH_OK) {
    fprintf(stderr, "listen: %s\n", st.message);
    mesh_free(m);
    return 1;
  }
  char self[MESH_SPIFFE_ID_MAX + 1] = "?";
  mesh_self_id(m, self, sizeof self);
  printf("echo server %s listening on port %d\n", self,
         mesh_listener_port(l));
  fflush(stdout);

  while (!stop && count != 0) {
    mesh_conn_t *c;
    int rc = mesh_accept(l, 500, &c, &st);
    if (rc == MESH_ERR_TIMEOUT)
      continue; /* check for Ctrl-C twice a second */
    if (rc != MESH_OK) {
      fprintf(stderr, "refused a peer: %s (%s)\n", st.message,
              mesh_code_name(rc));
      continue;
    }
    /* A PERMISSIVE listener hands over plaintext peers: no identity. */
    printf("peer %s from %s: %s %s%s\n",
           mesh_conn_is_tls(c) ? mesh_conn_peer_id(c) : "(plaintext)",
           mesh_conn_peer_addr(c),
           mesh_conn_is_tls(c) ? mesh_conn_tls_version(c) : "no TLS",
           mesh_conn_cipher(c), mesh_conn_resumed(c) ? " (resumed)" : "");
    fflush(stdout);
    serve(c);
    mesh_conn_close(c);
    if (count > 0)
      count--;
  }
  mesh_listener_close(l);
  mesh_free(m);
  return 0;
}

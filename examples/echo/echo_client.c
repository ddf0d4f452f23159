/* SPDX-License-Identifier: Apache-2.0 */
/* echo_client: an mTLS echo client on libmesh.
 *
 *   echo_client CONFIG.json HOST:PORT [MESSAGE] [PEER-PATTERN]
 *
 * Dials HOST:PORT with the SVID from the config, prints the server's
 * SPIFFE ID, sends MESSAGE (default "hello") and prints the echo.  With
 * PEER-PATTERN (e.g. spiffe://example.org/echo-server), any other server
 * identity is refused. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <mesh/mesh.h>

int main(int argc, char **argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: %s CONFIG.json HOST:PORT [MESSAGE] [PEER]\n",
            argv[0]);
    return 2;
  }
  const char *msg = argc > 3 ? argv[3] : "hello";
  signal(SIGPIPE, SIG_IGN);

  mesh_status_t st;
  mesh_t *m;
  if (mesh_new_from_file(argv[1], &m, &st) != MESH_OK) {
    fprintf(stderr, "config: %s\n", st.message);
    return 1;
  }
  mesh_dial_opts_t *opts = mesh_dial_opts_new();
  if (argc > 4)
    mesh_dial_opts_add_peer(opts, argv[4]);
  mesh_conn_t *c;
  int rc = mesh_dial(m, argv[2], opts, &c, &st);
  mesh_dial_opts_free(opts);
  if (rc != MESH_OK) {
    fprintf(stderr, "dial %s: %s (%s)\n", argv[2], st.message,
            mesh_code_name(rc));
    mesh_free(m);
    return 1;
  }
  printf("connected to %s at %s: %s %s\n", mesh_conn_peer_id(c), argv[2],
         mesh_conn_tls_version(c), mesh_conn_cipher(c));

  size_t len = strlen(msg);
  char buf[4096];
  size_t got = 0;
  rc = mesh_conn_write_all(c, msg, len);
  while (rc == MESH_OK && got < len && got < sizeof buf - 1) {
    long n = mesh_conn_read(c, buf + got, sizeof buf - 1 - got);
    if (n <= 0) {
      rc = n == 0 ? MESH_ERR_PEER_CLOSED : (int)n;
      break;
    }
    got += (size_t)n;
  }
  if (rc != MESH_OK) {
    fprintf(stderr, "echo: %s\n", mesh_conn_errmsg(c));
  } else {
    buf[got] = '\0';
    printf("echo: %s\n", buf);
  }
  mesh_conn_shutdown(c);
  mesh_conn_close(c);
  mesh_free(m);
  return rc == MESH_OK ? 0 : 1;
}

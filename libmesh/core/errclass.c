/* SPDX-License-Identifier: Apache-2.0 */
/* The one table that classifies error codes: what a code says about the
 * endpoint, the peer's identity and the connection.  The call layer
 * (outlier reports, try outcomes, result labels) and tls (log levels) read
 * it instead of keeping switches of their own. */
#include "core/core.h"

#define HOST MESH__EF_HOST_FAULT
#define IDENT MESH__EF_IDENTITY
#define BROKEN MESH__EF_BROKEN
#define RESET MESH__EF_RESET
#define SETUP MESH__EF_SETUP

/* MESH_ERR_SVID is not a host fault: it mostly means our own SVID is not
 * loaded, which must not eject every endpoint. */
static const struct {
  int code;
  unsigned flags;
} classes[] = {
    {MESH_ERR_CONNECT, HOST | SETUP},
    {MESH_ERR_TIMEOUT, HOST},
    {MESH_ERR_TLS, HOST | BROKEN | SETUP},
    {MESH_ERR_PLAINTEXT_PEER, HOST | IDENT | SETUP},
    {MESH_ERR_CERT_UNTRUSTED, HOST | IDENT | SETUP},
    {MESH_ERR_CERT_EXPIRED, HOST | IDENT | SETUP},
    {MESH_ERR_CERT_NOT_YET_VALID, HOST | IDENT | SETUP},
    {MESH_ERR_PEER_ID, HOST | IDENT | SETUP},
    {MESH_ERR_TRUST_DOMAIN, HOST | IDENT | SETUP},
    {MESH_ERR_NO_PEER_CERT, HOST | IDENT | SETUP},
    {MESH_ERR_SVID, IDENT},
    {MESH_ERR_SPIFFE_ID, IDENT},
    {MESH_ERR_RESET, HOST | BROKEN | RESET},
    {MESH_ERR_PEER_CLOSED, HOST | BROKEN | RESET},
    {MESH_ERR_CLOSED, BROKEN},
    {MESH_ERR_IO, HOST | BROKEN},
};

unsigned mesh__err_class(int code) {
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
    if (classes[i].code == code)
      return classes[i].flags;
  return 0;
}

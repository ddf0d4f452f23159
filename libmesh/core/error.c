/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes: text and names.  Codes are never renumbered. */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

struct code_info {
  int code;
  const char *name;
  const char *text;
};

static const struct code_info codes[] = {
  {MESH_OK, "MESH_OK", "success"},
  {MESH_ERR_INVALID_ARG, "MESH_ERR_INVALID_ARG", "invalid argument"},
  {MESH_ERR_NOMEM, "MESH_ERR_NOMEM", "out of memory"},
  {MESH_ERR_CONFIG, "MESH_ERR_CONFIG", "invalid configuration"},
  {MESH_ERR_IO, "MESH_ERR_IO", "I/O error"},
  {MESH_ERR_CLOSED, "MESH_ERR_CLOSED", "handle is closed"},
  {MESH_ERR_WANT_READ, "MESH_ERR_WANT_READ", "operation wants to read"},
  {MESH_ERR_WANT_WRITE, "MESH_ERR_WANT_WRITE", "operation wants to write"},
  {MESH_ERR_TIMEOUT, "MESH_ERR_TIMEOUT", "timed out"},
  {MESH_ERR_CONNECT, "MESH_ERR_CONNECT", "connection failed"},
  {MESH_ERR_TLS, "MESH_ERR_TLS", "TLS failure"},
  {MESH_ERR_PLAINTEXT_PEER, "MESH_ERR_PLAINTEXT_PEER", "peer is not speaking TLS"},
  {MESH_ERR_CERT_UNTRUSTED, "MESH_ERR_CERT_UNTRUSTED", "certificate not trusted"},
  {MESH_ERR_CERT_EXPIRED, "MESH_ERR_CERT_EXPIRED", "certificate expired"},
  {MESH_ERR_CERT_NOT_YET_VALID, "MESH_ERR_CERT_NOT_YET_VALID", "certificate not yet valid"},
  {MESH_ERR_PEER_ID, "MESH_ERR_PEER_ID", "peer identity not authorized"},
  {MESH_ERR_TRUST_DOMAIN, "MESH_ERR_TRUST_DOMAIN", "unknown trust domain"},
  {MESH_ERR_NO_PEER_CERT, "MESH_ERR_NO_PEER_CERT", "peer presented no certificate"},
  {MESH_ERR_KEY_MISMATCH, "MESH_ERR_KEY_MISMATCH", "private key does not match certificate"},
  {MESH_ERR_PEM, "MESH_ERR_PEM", "malformed PEM or DER data"},
  {MESH_ERR_SVID, "MESH_ERR_SVID", "certificate is not a valid X.509-SVID"},
  {MESH_ERR_SPIFFE_ID, "MESH_ERR_SPIFFE_ID", "malformed SPIFFE ID"},
  {MESH_ERR_PEER_CLOSED, "MESH_ERR_PEER_CLOSED", "peer closed the connection"},
  {MESH_ERR_RESET, "MESH_ERR_RESET", "connection reset by peer"},
  {MESH_ERR_NO_ENDPOINTS, "MESH_ERR_NO_ENDPOINTS", "no usable endpoint"},
  {MESH_ERR_UNKNOWN_SERVICE, "MESH_ERR_UNKNOWN_SERVICE", "unknown service"},
  {MESH_ERR_CIRCUIT_OPEN, "MESH_ERR_CIRCUIT_OPEN", "circuit breaker open"},
  {MESH_ERR_RETRY_BUDGET, "MESH_ERR_RETRY_BUDGET", "retries exhausted"},
  {MESH_ERR_DEADLINE, "MESH_ERR_DEADLINE", "deadline exceeded"},
  {MESH_ERR_DENIED, "MESH_ERR_DENIED", "denied by authorization policy"},
  {MESH_ERR_HTTP_PARSE, "MESH_ERR_HTTP_PARSE", "malformed HTTP message"},
  {MESH_ERR_HTTP_TOO_LARGE, "MESH_ERR_HTTP_TOO_LARGE", "HTTP message too large"},
  {MESH_ERR_DISCOVERY, "MESH_ERR_DISCOVERY", "discovery failed"},
  {MESH_ERR_NOT_FOUND, "MESH_ERR_NOT_FOUND", "not found"},
  {MESH_ERR_UNSUPPORTED, "MESH_ERR_UNSUPPORTED", "not supported"},
  {MESH_ERR_INTERNAL, "MESH_ERR_INTERNAL", "internal error"},
  {MESH_ERR_PARSE, "MESH_ERR_PARSE", "malformed input"},
  {MESH_ERR_FD_LIMIT, "MESH_ERR_FD_LIMIT", "out of file descriptors"},
  {MESH_ERR_BUFFER, "MESH_ERR_BUFFER", "buffer too small"},
  {MESH_ERR_UPSTREAM, "MESH_ERR_UPSTREAM", "upstream returned an error"},
  {MESH_ERR_GRPC_STATUS, "MESH_ERR_GRPC_STATUS", "gRPC call ended with an error status"},
  {MESH_ERR_MSG_TOO_LARGE, "MESH_ERR_MSG_TOO_LARGE", "message larger than the limit"},
  {MESH_ERR_CANCELLED, "MESH_ERR_CANCELLED", "call cancelled"},
  {MESH_ERR_GRPC_PROTOCOL, "MESH_ERR_GRPC_PROTOCOL", "gRPC protocol violation"},
};

static const struct code_info *find(int code) {
  if (code > 0 || code < -(int)(sizeof codes / sizeof codes[0] - 1))
    return NULL;
  return &codes[-code]; /* the table is dense and ordered by -code */
}

const char *mesh_strerror(int code) {
  const struct code_info *ci = find(code);
  return ci ? ci->text : "unknown error code";
}

const char *mesh_code_name(int code) {
  const struct code_info *ci = find(code);
  return ci ? ci->name : "MESH_ERR_UNKNOWN";
}

int mesh__fail(mesh_status_t *st, int code, const char *fmt, ...) {
  if (!st)
    return code;
  st->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->message, sizeof st->message, fmt, ap);
  va_end(ap);
  /* messages quote URLs (etcd, OPA, collectors): never their userinfo */
  mesh__redact_userinfo(st->message, sizeof st->message);
  return code;
}

void mesh__ok(mesh_status_t *st) {
  if (!st)
    return;
  st->code = MESH_OK;
  st->message[0] = '\0';
}

/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — error codes and status detail.
 *
 * 0 is success; every error is a negative constant that is never renumbered.
 * A new code is appended with the release that added it.  The detail of a
 * failure (which file, which peer, which check) travels in a mesh_status_t
 * that the caller passes in: never in thread-local state, because Go moves
 * goroutines between threads.
 */
#ifndef MESH_ERROR_H
#define MESH_ERROR_H

#include <mesh/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mesh_code {
  MESH_OK = 0,
  MESH_ERR_INVALID_ARG = -1,   /* 0.1: NULL or out-of-range argument */
  MESH_ERR_NOMEM = -2,         /* 0.1: allocation failed */
  MESH_ERR_CONFIG = -3,        /* 0.1: bad configuration (path in detail) */
  MESH_ERR_IO = -4,            /* 0.1: file or socket I/O error */
  MESH_ERR_CLOSED = -5,        /* 0.1: handle already closed / shut down */
  MESH_ERR_WANT_READ = -6,     /* 0.1: non-blocking: wait for readability */
  MESH_ERR_WANT_WRITE = -7,    /* 0.1: non-blocking: wait for writability */
  MESH_ERR_TIMEOUT = -8,       /* 0.1: connect, handshake or I/O timed out */
  MESH_ERR_CONNECT = -9,       /* 0.1: TCP connect refused or unreachable */
  MESH_ERR_TLS = -10,          /* 0.1: TLS protocol failure */
  MESH_ERR_PLAINTEXT_PEER = -11, /* 0.1: peer spoke plaintext, not TLS */
  MESH_ERR_CERT_UNTRUSTED = -12, /* 0.1: chain does not verify to a bundle */
  MESH_ERR_CERT_EXPIRED = -13,   /* 0.1: a certificate has expired */
  MESH_ERR_CERT_NOT_YET_VALID = -14, /* 0.1: a certificate is not valid yet */
  MESH_ERR_PEER_ID = -15,      /* 0.1: peer SPIFFE ID not authorized */
  MESH_ERR_TRUST_DOMAIN = -16, /* 0.1: no bundle for the peer's trust domain */
  MESH_ERR_NO_PEER_CERT = -17, /* 0.1: peer sent no certificate */
  MESH_ERR_KEY_MISMATCH = -18, /* 0.1: private key does not match cert */
  MESH_ERR_PEM = -19,          /* 0.1: malformed PEM / DER */
  MESH_ERR_SVID = -20,         /* 0.1: certificate violates X.509-SVID rules */
  MESH_ERR_SPIFFE_ID = -21,    /* 0.1: malformed SPIFFE ID */
  MESH_ERR_PEER_CLOSED = -22,  /* 0.1: peer closed the connection (EOF) */
  MESH_ERR_RESET = -23,        /* 0.1: connection reset by peer */
  MESH_ERR_NO_ENDPOINTS = -24, /* 0.1: service has no usable endpoint */
  MESH_ERR_UNKNOWN_SERVICE = -25, /* 0.1: service not in the config */
  MESH_ERR_CIRCUIT_OPEN = -26, /* 0.1: circuit breaker limit reached */
  MESH_ERR_RETRY_BUDGET = -27, /* 0.1: retry budget or max retries exhausted */
  MESH_ERR_DEADLINE = -28,     /* 0.1: overall call deadline exceeded */
  MESH_ERR_DENIED = -29,       /* 0.1: authorization denied */
  MESH_ERR_HTTP_PARSE = -30,   /* 0.1: malformed HTTP/1.1 message */
  MESH_ERR_HTTP_TOO_LARGE = -31, /* 0.1: HTTP header or body over limit */
  MESH_ERR_DISCOVERY = -32,    /* 0.1: discovery source failed */
  MESH_ERR_NOT_FOUND = -33,    /* 0.1: no such item */
  MESH_ERR_UNSUPPORTED = -34,  /* 0.1: feature not available in this build */
  MESH_ERR_INTERNAL = -35,     /* 0.1: bug: unexpected library state */
  MESH_ERR_PARSE = -36,        /* 0.1: malformed input (trace context etc.) */
  MESH_ERR_FD_LIMIT = -37,     /* 0.1: out of file descriptors */
  MESH_ERR_BUFFER = -38,       /* 0.1: caller's buffer too small */
  MESH_ERR_UPSTREAM = -39,     /* 0.1: upstream answered an error status */
  MESH_ERR_GRPC_STATUS = -40,  /* 0.2: gRPC call ended with a non-OK status
                                  (the code: mesh_grpc_call_status()) */
  MESH_ERR_MSG_TOO_LARGE = -41, /* 0.2: gRPC message over the size limit */
  MESH_ERR_CANCELLED = -42,    /* 0.2: the call was cancelled */
  MESH_ERR_GRPC_PROTOCOL = -43, /* 0.2: peer broke the gRPC protocol */
} mesh_code_t;

/* Detail of a failure.  Plain data, fixed size: it will not grow.
 * Pass NULL where no detail is wanted. */
typedef struct mesh_status {
  int code;           /* the mesh_code_t that was returned */
  char message[384];  /* NUL-terminated, e.g. "services.x.lb.policy: ..." */
} mesh_status_t;

/** Static English text for a code; never NULL (unknown codes say so). */
MESH_EXTERN const char *mesh_strerror(int code);

/** Symbolic name of a code, e.g. "MESH_ERR_TIMEOUT"; never NULL. */
MESH_EXTERN const char *mesh_code_name(int code);

#ifdef __cplusplus
}
#endif
#endif /* MESH_ERROR_H */

/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the TLS backend interface (in the spirit of libcurl's
 * vtls).  One table per TLS library, chosen at configure time
 * (--with-tls=mbedtls|openssl); exactly one is linked in and exported as
 * mesh__tls_be.
 *
 * A backend is a mechanism, never a policy: it builds contexts from the
 * settings and credentials it is given, drives the record layer, and
 * reports what happened in backend-neutral terms.  Everything that is mesh
 * logic (SPIFFE checks of the peer chain, authorizers, rotation, ALPN and
 * resumption policy, error codes and messages, metrics, spans) lives above
 * it in tls/{conn,handshake,io,verify,errmap,sesscache,observe}.c.
 *
 * Contract for peer verification: the backend hands the peer chain (leaf
 * first, as identity/'s X.509 seam objects: x509_be.h, over the chosen
 * TLS library's own certificates)
 * to mesh__verify_chain() during the handshake and turns a refusal into the
 * alert mesh__tls_refusal_alert(code) names (errmap.c: one table for all
 * backends).  After a resumed handshake, the session's
 * leaf goes through mesh__verify_resumed(). */
#ifndef MESH_TLS_BACKEND_H
#define MESH_TLS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"
#include "identity/identity.h"

struct mesh__tls;
struct mesh__tlsgen;

/* Why a handshake failed, in backend-neutral terms (errmap.c words it). */
typedef enum mesh__hsf_kind {
  MESH__HSF_VERIFY,    /* certificate refused: our check (c->verify_code)
                          or the backend's own (code + detail) */
  MESH__HSF_NO_CERT,   /* the peer sent no certificate */
  MESH__HSF_ALERT,     /* the peer sent a fatal alert (alert) */
  MESH__HSF_RESET,     /* connection reset */
  MESH__HSF_EOF,       /* peer closed */
  MESH__HSF_SYSCALL,   /* socket error in c->sys_errno */
  MESH__HSF_NOMEM,
  MESH__HSF_KEY_USAGE, /* certificate key usage forbids this role */
  MESH__HSF_NO_CIPHER, /* no cipher suite in common */
  MESH__HSF_VERSION,   /* no protocol version in common */
  MESH__HSF_OTHER,     /* anything else: detail says what */
} mesh__hsf_kind_t;

typedef struct mesh__hsf {
  mesh__hsf_kind_t kind;
  int alert;           /* MESH__HSF_ALERT: the description */
  int code;            /* MESH__HSF_VERIFY by the backend: mesh code */
  char detail[160];    /* backend's own words (library error string) */
} mesh__hsf_t;

/* Opaque saved client session. */
typedef struct mesh__be_sess mesh__be_sess_t;

typedef struct mesh__tls_backend {
  const char *name;          /* "mbedtls", "openssl" */
  /** Library name and version, e.g. "mbedTLS 2.28.3". */
  const char *(*lib_version)(void);
  /** Can this build negotiate TLS 1.3? */
  bool (*has_tls13)(void);

  /* process/part state (t->be) */
  int (*init)(struct mesh__tls *t, mesh_status_t *st);
  void (*fini)(struct mesh__tls *t);

  /* one credentials generation (g->be): client and server contexts */
  int (*gen_new)(struct mesh__tls *t, struct mesh__tlsgen *g,
                 mesh_status_t *st);
  void (*gen_free)(struct mesh__tlsgen *g);

  /* per connection (c->be); alpn: NULL = the generation's list */
  int (*conn_setup)(mesh_conn_t *c, const char *const *alpn,
                    mesh_status_t *st);
  void (*conn_free)(mesh_conn_t *c);
  /** One handshake step: MESH_OK (done), MESH_ERR_WANT_READ/WRITE, or
   *  MESH_ERR_TLS with *f filled in. */
  int (*handshake)(mesh_conn_t *c, mesh__hsf_t *f);
  /** Did the finished handshake resume a session? */
  bool (*resumed)(const mesh_conn_t *c);
  /** >0 bytes, 0 at a clean end (close_notify or FIN between records;
   *  c->rx_close_notify set for the former), MESH_ERR_WANT_READ/WRITE,
   *  MESH_ERR_TLS with c->truncated set for a FIN inside a record, or
   *  another MESH_ERR_*. */
  long (*read)(mesh_conn_t *c, void *buf, size_t len);
  long (*write)(mesh_conn_t *c, const void *buf, size_t len);
  /** MESH_OK, MESH_ERR_WANT_READ/WRITE or an error. */
  int (*close_notify)(mesh_conn_t *c);
  /** Before a client closes: process what already arrived without
   *  waiting (TLS 1.3 session tickets come after the handshake; a client
   *  that never read would otherwise never resume).  A read: returns and
   *  sets what read does (the caller judges how the connection ended). */
  long (*drain)(mesh_conn_t *c);
  /** Record buffers between records (optional; NULL: the backend has one
   *  policy).  keep: hold them while the connection is in use (no
   *  allocation per record); !keep: give them back now if empty, and
   *  again whenever they empty (an idle pooled connection, the
   *  per-connection memory target). */
  void (*buffers)(mesh_conn_t *c, bool keep);
  /** Send a fatal alert now (best effort). */
  void (*send_alert)(mesh_conn_t *c, int desc);
  /** Plaintext bytes buffered and not yet returned by read. */
  size_t (*pending)(const mesh_conn_t *c);
  const char *(*cipher)(const mesh_conn_t *c);
  const char *(*version)(const mesh_conn_t *c);
  const char *(*alpn)(const mesh_conn_t *c);
  /** The peer chain, leaf first, as a new chain in *out (the caller
   *  frees it with mesh__x509_chain_free).  For a resumed session, at
   *  least the leaf.  @return MESH_OK, MESH_ERR_NOT_FOUND, MESH_ERR_NOMEM. */
  int (*peer_chain)(const mesh_conn_t *c, mesh__x509_chain_t **out);

  /* client sessions (tls/sesscache.c keeps them) */
  mesh__be_sess_t *(*sess_get)(mesh_conn_t *c);
  bool (*sess_set)(mesh_conn_t *c, mesh__be_sess_t *s);
  void (*sess_free)(mesh__be_sess_t *s);
} mesh__tls_backend_t;

extern const mesh__tls_backend_t mesh__tls_be;

/** The mesh's cipher suites in its order of preference (tls/suites.c),
 *  NULL-terminated, named as mesh_conn_cipher() reports them
 *  ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLS-AES-128-GCM-SHA256").
 *  Every backend offers them in this order as a client and, in TLS 1.2,
 *  picks by this order as a server; it leaves out only a suite its
 *  library lacks. */
extern const char *const mesh__tls_suites12[];
extern const char *const mesh__tls_suites13[];

/** Shared peer decision for a full handshake (tls/verify.c): chain is the
 *  peer's, leaf first.  fast: the backend already verified the chain
 *  against the union of the bundles and top is the root it chained to (or
 *  NULL).  Records the result on c (verify_code, errmsg, peer_id).
 *  @return MESH_OK or the refusal's mesh code. */
int mesh__verify_chain(mesh_conn_t *c, const mesh__x509_chain_t *chain,
                       bool fast, const mesh__x509_t *top);

#endif /* MESH_TLS_BACKEND_H */

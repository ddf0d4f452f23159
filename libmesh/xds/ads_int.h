/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal, ads.c and ads_more.c only: the ADS session's state. */
#ifndef MESH_XDS_ADS_INT_H
#define MESH_XDS_ADS_INT_H

/* include after xds/xds.h */

typedef struct res {
  char *name;
  int status;             /* mesh__xds_status_t */
  char *version;          /* of the response that last carried it */
  int64_t updated_ms;
  int64_t asked_ms;        /* first requested on this stream (A27 timer) */
  char err[300];
  bool want;              /* in the current subscription set */
  bool sent;              /* in the last request sent */
  void *obj;              /* the cached (last good) decoded resource */
} res_t;

typedef struct tstate {
  res_t *r;
  size_t n, cap;
  char *version;          /* last ACKed version_info */
  char *nonce;            /* last nonce received */
  bool due;               /* a request must be sent */
  char nack[384];         /* error_detail of the due request ("" = ACK) */
} tstate_t;

struct mesh__xds_ads {
  char *node_id, *cluster, *region, *zone, *subzone;
  char *meta;              /* node metadata, JSON text (sent as Struct) */
  bool ignore_deletion;
  bool node_sent;
  char **roots[MESH__XDS_T_N_];
  size_t nroots[MESH__XDS_T_N_];
  tstate_t t[MESH__XDS_T_N_];
  mesh__xds_sink_t sink;
  uint64_t updates, nacks;
  /* the bootstrap's certificate provider instances (A29: a TLS context
   * naming another is refused); checked only with a bootstrap */
  char **insts;
  size_t ninsts;
  bool check_insts;
};

#endif /* MESH_XDS_ADS_INT_H */

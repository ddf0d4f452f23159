/* SPDX-License-Identifier: Apache-2.0 */
/* xDS test vectors: protobuf text format encoded by protoc --encode against
 * libmesh/xds/proto (the vectors stay readable; no binary blob committed). */
#ifndef MESH_TESTS_XDS_VEC_H
#define MESH_TESTS_XDS_VEC_H

#include <stddef.h>
#include <stdint.h>

/** Encode text as message meshxds.<type>; malloc'd bytes in *out, length
 *  in *len.  Returns 0, or -1 (protoc failed: the text names a field the
 *  .proto does not have). */
int xv_encode(const char *type, const char *text, uint8_t **out, size_t *len);

/** The text form of an Any holding meshxds.<type> encoded from text, with
 *  type URL url: `type_url: "..." value: "\ooo..."` (malloc'd; NULL on
 *  failure). */
char *xv_any(const char *url, const char *type, const char *text);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — symbol export and version macros. */
#ifndef MESH_EXPORT_H
#define MESH_EXPORT_H

/* The library is built with -fvisibility=hidden; only declarations marked
 * MESH_EXTERN are part of the ABI. */
#if defined(BUILDING_LIBMESH) && defined(__GNUC__)
#define MESH_EXTERN __attribute__((visibility("default")))
#else
#define MESH_EXTERN
#endif

#define MESH_VERSION_MAJOR 0
#define MESH_VERSION_MINOR 1
#define MESH_VERSION_PATCH 0
#define MESH_VERSION_STRING "0.1.0"
/* 0xMMmmpp, comparable with < and > */
#define MESH_VERSION_NUM \
  ((MESH_VERSION_MAJOR << 16) | (MESH_VERSION_MINOR << 8) | MESH_VERSION_PATCH)

#endif /* MESH_EXPORT_H */

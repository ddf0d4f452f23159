/* SPDX-License-Identifier: Apache-2.0 */
/* Internal side of cancel tokens (include/mesh/cancel.h). */
#ifndef MESH_CORE_CANCEL_INT_H
#define MESH_CORE_CANCEL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <mesh/cancel.h>

/* Sleep ms milliseconds unless c fires first (c may be NULL: a plain
 * sleep).  @return true if the token fired (at once or during the sleep). */
bool mesh__cancel_sleep(const mesh_cancel_t *c, int64_t ms);

#endif

/* Fuzz the configuration path: JSON text -> validation -> context. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  mesh_config_check(s, NULL, NULL);
  /* mesh_new only for documents without file references would be ideal;
   * external worker mode keeps it thread-free and fast. */
  mesh_t *m = NULL;
  if (!strstr(s, "\"path\"") && !strstr(s, "cert") && !strstr(s, "etcd") &&
      !strstr(s, "listen") && !strstr(s, "dns") && !strstr(s, "endpoint") &&
      !strstr(s, "register"))
    if (mesh_new(s, &m, NULL) == MESH_OK)
      mesh_free(m);
  free(s);
  return 0;
}

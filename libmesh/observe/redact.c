/* Secret redaction for log lines and the admin /config view: values of
 * keys that name secrets, PEM private-key blocks and bearer tokens. */
#include "observe/observe.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define REDACTED "[REDACTED]"

static const char *const secret_words[] = {
    "password", "passwd", "token", "key", "secret", "authorization",
    "credential", "credentials", "cookie", NULL};

bool mesh__secret_key(const char *key, size_t len) {
  if (!key)
    return false;
  for (size_t w = 0; secret_words[w]; w++) {
    size_t n = strlen(secret_words[w]);
    if (len < n)
      continue;
    /* the whole key or its last word: "key", "private_key", "X-Api-Key",
     * "apiKey", "client.secret" */
    if (strncasecmp(key + len - n, secret_words[w], n) == 0)
      return true;
  }
  return false;
}

/* Replace line[start, end) with rep, keeping the line NUL-terminated within
 * cap (the tail is cut if it does not fit).  Returns the new end of rep. */
static size_t splice(char *line, size_t cap, size_t start, size_t end,
                     const char *rep) {
  size_t len = strlen(line), rl = strlen(rep);
  if (start + rl + 1 > cap)
    rl = cap - start - 1;
  size_t tail = len - end;
  if (start + rl + tail + 1 > cap)
    tail = cap - start - rl - 1;
  memmove(line + start + rl, line + end, tail);
  memcpy(line + start, rep, rl);
  line[start + rl + tail] = '\0';
  return start + rl;
}

static bool keychar(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

/* The end of a value starting at v: a quoted string (with \" escapes) or a
 * run up to the next space. */
static size_t value_end(const char *line, size_t v) {
  size_t i = v;
  if (line[i] == '"') {
    for (i++; line[i] && line[i] != '"'; i++)
      if (line[i] == '\\' && line[i + 1])
        i++;
    return line[i] ? i + 1 : i;
  }
  while (line[i] && line[i] != ' ' && line[i] != ',' && line[i] != '&' &&
         line[i] != '"')
    i++;
  return i;
}

static int redact_pem(char *line, size_t cap) {
  int n = 0;
  size_t from = 0;
  for (;;) {
    char *b = strstr(line + from, "-----BEGIN ");
    char *hdr_end = b ? strstr(b + 11, "-----") : NULL;
    if (!hdr_end)
      return n;
    /* only private keys: certificates are public */
    bool priv = memmem(b, (size_t)(hdr_end - b), "PRIVATE KEY", 11) != NULL;
    char *end = strstr(hdr_end + 5, "-----END ");
    char *stop = end ? strstr(end + 9, "-----") : NULL;
    size_t s = (size_t)(b - line);
    size_t e = stop ? (size_t)(stop - line) + 5 : strlen(line);
    if (!priv) {
      from = e;
      continue;
    }
    from = splice(line, cap, s, e, "[REDACTED PRIVATE KEY]");
    n++;
  }
}

int mesh__log_redact(char *line, size_t cap) {
  if (!line || cap == 0)
    return 0;
  int n = redact_pem(line, cap);
  for (size_t i = 0; line[i]; i++) {
    /* "Bearer <token>" / "Basic <creds>" anywhere */
    if ((strncasecmp(line + i, "bearer ", 7) == 0 ||
         strncasecmp(line + i, "basic ", 6) == 0) &&
        (i == 0 || !keychar(line[i - 1]))) {
      size_t v = i + (tolower((unsigned char)line[i]) == 'b' &&
                              tolower((unsigned char)line[i + 1]) == 'e'
                          ? 7
                          : 6);
      size_t e = v;
      while (line[e] && line[e] != ' ' && line[e] != '"' && line[e] != ',')
        e++;
      if (e > v && strncmp(line + v, REDACTED, strlen(REDACTED)) != 0) {
        i = splice(line, cap, v, e, REDACTED) - 1;
        n++;
      }
      continue;
    }
    if (line[i] != '=' && line[i] != ':')
      continue;
    size_t k = i;
    while (k > 0 && keychar(line[k - 1]))
      k--;
    if (k == i || !mesh__secret_key(line + k, i - k))
      continue;
    size_t v = i + 1;
    while (line[v] == ' ' && line[i] == ':')
      v++;
    /* keep an auth scheme word, redact what follows it */
    if (strncasecmp(line + v, "bearer ", 7) == 0)
      v += 7;
    else if (strncasecmp(line + v, "basic ", 6) == 0)
      v += 6;
    size_t e = value_end(line, v);
    if (e == v || strncmp(line + v, REDACTED, strlen(REDACTED)) == 0)
      continue;
    i = splice(line, cap, v, e, REDACTED) - 1;
    n++;
  }
  return n;
}

void mesh__json_redact(cJSON *node) {
  cJSON *next;
  for (cJSON *it = node ? node->child : NULL; it; it = next) {
    next = it->next; /* it may be replaced (and freed) below */
    if (it->string && mesh__secret_key(it->string, strlen(it->string)) &&
        !cJSON_IsObject(it) && !cJSON_IsArray(it) && !cJSON_IsNull(it)) {
      if (cJSON_IsString(it)) {
        cJSON_SetValuestring(it, REDACTED);
        continue;
      }
      cJSON *r = cJSON_CreateString(REDACTED);
      /* keeps the key; the old item is freed */
      if (r && !cJSON_ReplaceItemInObjectCaseSensitive(node, it->string, r))
        cJSON_Delete(r);
      continue;
    }
    if (cJSON_IsString(it) && (strstr(it->valuestring, "PRIVATE KEY") ||
                               strncasecmp(it->valuestring, "bearer ", 7) == 0)) {
      cJSON_SetValuestring(it, REDACTED);
      continue;
    }
    if (cJSON_IsObject(it) || cJSON_IsArray(it))
      mesh__json_redact(it);
  }
}

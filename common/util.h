/* common/util.h - allocation wrappers, the growable buffer and string vectors.
 *
 * mk_x* allocation functions abort on out-of-memory (there is no sensible recovery in a
 * build tool); everything else reports errors through common/error.h.
 */
#ifndef MK_COMMON_UTIL_H
#define MK_COMMON_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/error.h"

#define MK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *mk_xmalloc(size_t n);
void *mk_xcalloc(size_t n, size_t size);
void *mk_xrealloc(void *p, size_t n);
/* realloc of an array of n * size, checked for overflow. */
void *mk_xreallocarray(void *p, size_t n, size_t size);
char *mk_xstrdup(const char *s);
char *mk_xstrndup(const char *s, size_t n);
char *mk_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mk_xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* a + b + c in a new string, without printf's cost (path joins in walks of many files). */
char *mk_xconcat3(const char *a, const char *b, const char *c);

bool mk_str_has_prefix(const char *s, const char *prefix);
bool mk_str_has_suffix(const char *s, const char *suffix);
/* Standard base64 (RFC 4648, padded) of n bytes. Caller frees. */
char *mk_base64(const void *data, size_t n);
/* s with control bytes (other than newline and tab) and DEL written as \xNN, so that text
 * from a file or a server cannot drive the terminal it is printed on. Caller frees. */
char *mk_str_escape_control(const char *s);
/* Strict decimal parse of a whole string; returns -1 on junk or overflow. */
int mk_parse_u64(const char *s, uint64_t *ret);
int mk_parse_int(const char *s, int *ret);

/* Growable byte buffer. data is always NUL-terminated (data[len] == 0) once anything was
 * appended; `max` caps len (0 = no cap) and appends past it fail with MK_ERR_INVALID. */
struct mk_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t max;
};
#define MK_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void mk_buf_init(struct mk_buf *b, size_t max);
int mk_buf_append(struct mk_buf *b, const void *data, size_t n, struct mk_error **err);
int mk_buf_puts(struct mk_buf *b, const char *s, struct mk_error **err);
int mk_buf_putc(struct mk_buf *b, char c, struct mk_error **err);
int mk_buf_printf(struct mk_buf *b, struct mk_error **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Unchecked variants for buffers without a cap (max == 0); abort on misuse. */
void mk_buf_add(struct mk_buf *b, const void *data, size_t n);
void mk_buf_adds(struct mk_buf *b, const char *s);
void mk_buf_addc(struct mk_buf *b, char c);
void mk_buf_addf(struct mk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mk_buf_reset(struct mk_buf *b);
/* Returns the data (never NULL: "" for an empty buffer) and leaves b empty; caller frees. */
char *mk_buf_detach(struct mk_buf *b);
void mk_buf_release(struct mk_buf *b);

/* NULL-terminated vector of owned strings. v is NULL until the first push. */
struct mk_strv {
    char **v;
    size_t n;
    size_t alloc;
};
#define MK_STRV_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void mk_strv_push(struct mk_strv *sv, const char *s); /* copies s */
void mk_strv_push_take(struct mk_strv *sv, char *s);  /* takes ownership of s */
void mk_strv_pushf(struct mk_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mk_strv_copy(struct mk_strv *dst, const struct mk_strv *src); /* appends src to dst */
void mk_strv_clear(struct mk_strv *sv);
void mk_strv_release(struct mk_strv *sv);
/* For "KEY=VALUE" lists: the value of the last entry for key, or NULL. */
const char *mk_strv_env_get(const struct mk_strv *sv, const char *key);
/* Replaces the entry for key (keeping its position) or appends "key=value". */
void mk_strv_env_set(struct mk_strv *sv, const char *key, const char *value);

/* Set by the CLI's SIGINT/SIGTERM handler; long operations poll it and stop with
 * MK_ERR_INTERRUPTED, cleaning up as on any other failure. Atomic (lock-free, so fine in a
 * signal handler) because registry transfer threads read it while the handler writes it. */
#include <stdatomic.h>
extern volatile atomic_int mk_interrupted;

#include "common/banned.h"

#endif

/* common/util.c - allocation wrappers, buffer, string vectors. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

volatile atomic_int mk_interrupted;

static void oom(void)
{
    fputs("mkimg: out of memory\n", stderr);
    abort();
}

void *mk_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *mk_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *mk_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *mk_xreallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        oom();
    return mk_xrealloc(p, n * size);
}

char *mk_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        oom();
    return p;
}

char *mk_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        oom();
    return p;
}

char *mk_xvasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        oom();
    return s;
}

char *mk_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = mk_xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

char *mk_xconcat3(const char *a, const char *b, const char *c)
{
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *p = mk_xmalloc(na + nb + nc + 1);
    memcpy(p, a, na);
    memcpy(p + na, b, nb);
    memcpy(p + na + nb, c, nc + 1);
    return p;
}

bool mk_str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool mk_str_has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

char *mk_base64(const void *data, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char *out = mk_xmalloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

char *mk_str_escape_control(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) ? 4 : 1;
    char *out = mk_xmalloc(n + 1), *o = out;
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

int mk_parse_u64(const char *s, uint64_t *ret)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *ret = v;
    return 0;
}

int mk_parse_int(const char *s, int *ret)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < INT_MIN || v > INT_MAX)
        return -1;
    *ret = (int)v;
    return 0;
}

void mk_buf_init(struct mk_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->alloc = 0;
    b->max = max;
}

static void buf_grow(struct mk_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        oom();
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    b->data = mk_xrealloc(b->data, n);
    b->alloc = n;
}

int mk_buf_append(struct mk_buf *b, const void *data, size_t n, struct mk_error **err)
{
    if (b->max && (n > b->max || b->len > b->max - n))
        return mk_error_set(err, MK_ERR_INVALID, 0, "data larger than the limit of %zu bytes",
                            b->max);
    buf_grow(b, n);
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int mk_buf_puts(struct mk_buf *b, const char *s, struct mk_error **err)
{
    return mk_buf_append(b, s, strlen(s), err);
}

int mk_buf_putc(struct mk_buf *b, char c, struct mk_error **err)
{
    return mk_buf_append(b, &c, 1, err);
}

int mk_buf_printf(struct mk_buf *b, struct mk_error **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = mk_xvasprintf(fmt, ap);
    va_end(ap);
    return mk_buf_puts(b, s, err);
}

void mk_buf_add(struct mk_buf *b, const void *data, size_t n)
{
    if (mk_buf_append(b, data, n, NULL) < 0)
        MK_BUG("mk_buf_add past the buffer's cap");
}

void mk_buf_adds(struct mk_buf *b, const char *s)
{
    mk_buf_add(b, s, strlen(s));
}

void mk_buf_addc(struct mk_buf *b, char c)
{
    mk_buf_add(b, &c, 1);
}

void mk_buf_addf(struct mk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = mk_xvasprintf(fmt, ap);
    va_end(ap);
    mk_buf_adds(b, s);
}

void mk_buf_reset(struct mk_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *mk_buf_detach(struct mk_buf *b)
{
    char *p = b->data ? b->data : mk_xstrdup("");
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}

void mk_buf_release(struct mk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void mk_strv_push_take(struct mk_strv *sv, char *s)
{
    if (sv->n + 2 > sv->alloc) {
        sv->alloc = sv->alloc ? sv->alloc * 2 : 8;
        sv->v = mk_xreallocarray(sv->v, sv->alloc, sizeof(char *));
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
}

void mk_strv_push(struct mk_strv *sv, const char *s)
{
    mk_strv_push_take(sv, mk_xstrdup(s));
}

void mk_strv_pushf(struct mk_strv *sv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_strv_push_take(sv, mk_xvasprintf(fmt, ap));
    va_end(ap);
}

void mk_strv_copy(struct mk_strv *dst, const struct mk_strv *src)
{
    for (size_t i = 0; i < src->n; i++)
        mk_strv_push(dst, src->v[i]);
}

void mk_strv_clear(struct mk_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    sv->n = 0;
    if (sv->v)
        sv->v[0] = NULL;
}

void mk_strv_release(struct mk_strv *sv)
{
    mk_strv_clear(sv);
    free(sv->v);
    sv->v = NULL;
    sv->alloc = 0;
}

static ssize_t env_index(const struct mk_strv *sv, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = sv->n; i-- > 0;) {
        const char *e = sv->v[i];
        if (strncmp(e, key, klen) == 0 && (e[klen] == '=' || e[klen] == '\0'))
            return (ssize_t)i;
    }
    return -1;
}

const char *mk_strv_env_get(const struct mk_strv *sv, const char *key)
{
    ssize_t i = env_index(sv, key);
    if (i < 0)
        return NULL;
    const char *eq = strchr(sv->v[i], '=');
    return eq ? eq + 1 : "";
}

void mk_strv_env_set(struct mk_strv *sv, const char *key, const char *value)
{
    ssize_t i = env_index(sv, key);
    char *e = mk_xasprintf("%s=%s", key, value ? value : "");
    if (i < 0) {
        mk_strv_push_take(sv, e);
        return;
    }
    free(sv->v[i]);
    sv->v[i] = e;
}

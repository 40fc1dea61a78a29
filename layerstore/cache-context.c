/* layerstore/cache-context.c - a build context's file-digest table (ROOT/cache/context/):
 * the header line, then one line per file "PATH\tSIZE\tMTIME_NS\tINODE\tDIGEST". Lines,
 * not JSON: a big context has hundreds of thousands of files and the table is read at the
 * start of every build. A line that does not parse is skipped (that file is hashed again). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

/* mk_parse_u64 without strtoull's locale and errno handling: three numbers a line, hundreds
 * of thousands of lines at the start of a build. Digits only, no overflow. [s, e) */
static bool parse_dec(const char *s, const char *e, uint64_t *ret)
{
    uint64_t v = 0;
    if (s == e)
        return false;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (unsigned)(*s - '0'), &v))
            return false;
    }
    *ret = v;
    return true;
}

/* mk_digest_valid for the DIGEST field [s, s + len), without a NUL after it. */
static bool digest_field_ok(const char *s, size_t len)
{
    if (len != MK_DIGEST_LEN || memcmp(s, "sha256:", 7) != 0)
        return false;
    unsigned bad = 0;
    for (size_t i = 7; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bad |= !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    return !bad;
}

bool layerstore_context_line_parse(char *line, size_t len, struct mk_context_file *ret)
{
    const char *end = line + len;
    char *f[5];
    const char *fe[5];
    char *p = line;
    for (size_t nf = 0; nf < 5; nf++) {
        f[nf] = p;
        char *tab = nf < 4 ? memchr(p, '\t', (size_t)(end - p)) : NULL;
        if (nf < 4 && !tab)
            return false;
        fe[nf] = tab ? tab : end;
        p = tab ? tab + 1 : p;
    }
    /* A tab in the digest field is one field too many. */
    if (fe[0] == f[0] || !digest_field_ok(f[4], (size_t)(end - f[4])) ||
        !parse_dec(f[1], fe[1], &ret->size) || !parse_dec(f[2], fe[2], &ret->mtime_ns) ||
        !parse_dec(f[3], fe[3], &ret->ino))
        return false;
    f[0][fe[0] - f[0]] = '\0';
    ret->path = f[0];
    memcpy(ret->digest, f[4], MK_DIGEST_LEN);
    ret->digest[MK_DIGEST_LEN] = '\0';
    return true;
}

/* One read of the whole file: a table is read at the start of every build that copies from
 * the context, and a big one is megabytes. */
int layerstore_context_table_read(struct mk_store *store, const char *key, char **ret_data,
                                  char **ret_body, struct mk_error **err)
{
    if (!mk_digest_valid(key))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid cache key \"%s\"", key);
    _cleanup_free_ char *rel =
        mk_xasprintf("cache/%s/%s", ls_cache_dirs[LS_CACHE_CONTEXT], mk_digest_hex(key));
    _cleanup_close_ int fd = openat(store->root_fd, rel, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return mk_error_set(err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                            "opening \"%s\"", rel);
    if (st.st_size < 0 || (uint64_t)st.st_size > LS_CACHE_VALUE_MAX)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\": too large", rel);
    size_t cap = (size_t)st.st_size + 1, len = 0;
    _cleanup_free_ char *data = mk_xmalloc(cap + 1);
    for (;;) {
        /* One byte more than the size: a file that grew since is read whole. */
        if (len == cap) {
            if (cap > LS_CACHE_VALUE_MAX)
                return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\": too large", rel);
            cap *= 2;
            data = mk_xrealloc(data, cap + 1);
        }
        ssize_t n = mk_read_some(fd, data + len, cap - len, err);
        if (n < 0)
            return mk_error_wrap(err, "reading \"%s\"", rel);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    data[len] = '\0';
    ls_mark_used_at(store->root_fd, rel);
    const char *body;
    if (memchr(data, '\0', len) || !ls_cache_header_ok(LS_CACHE_CONTEXT, key, data, &body))
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: another format", key);
    *ret_body = data + (body - data);
    *ret_data = MK_TAKE_PTR(data);
    return 0;
}

int layerstore_context_table_get(struct mk_store *store, const char *key,
                                 struct mk_context_file **ret, size_t *ret_n, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    char *line;
    if (layerstore_context_table_read(store, key, &data, &line, err) < 0)
        return -1;
    struct mk_context_file *files = NULL;
    size_t n = 0, cap = 0;
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        /* a line cut short (no '\n') is no line */
        struct mk_context_file f;
        if (!layerstore_context_line_parse(line, (size_t)(nl - line), &f))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            files = mk_xreallocarray(files, cap, sizeof(*files));
        }
        files[n] = f;
        files[n].path = mk_xstrdup(f.path);
        n++;
    }
    *ret = files;
    *ret_n = n;
    return 0;
}

/* What "%" PRIu64 gives, without printf: a table line per context file. */
static void add_dec(struct mk_buf *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    mk_buf_add(b, d + i, sizeof(d) - i);
}

int layerstore_context_table_put(struct mk_store *store, const char *key,
                                 const struct mk_context_file *files, size_t n,
                                 struct mk_error **err)
{
    struct mk_buf b = MK_BUF_INIT;
    _cleanup_free_ char *head = ls_cache_header(LS_CACHE_CONTEXT, key);
    mk_buf_adds(&b, head);
    for (size_t i = 0; i < n; i++) {
        const struct mk_context_file *f = &files[i];
        if (!f->path || !*f->path || !mk_digest_valid(f->digest) || strpbrk(f->path, "\t\n"))
            continue;
        size_t before = b.len;
        mk_buf_adds(&b, f->path);
        mk_buf_addc(&b, '\t');
        add_dec(&b, f->size);
        mk_buf_addc(&b, '\t');
        add_dec(&b, f->mtime_ns);
        mk_buf_addc(&b, '\t');
        add_dec(&b, f->ino);
        mk_buf_addc(&b, '\t');
        mk_buf_add(&b, f->digest, MK_DIGEST_LEN);
        mk_buf_addc(&b, '\n');
        if (b.len > LS_CACHE_VALUE_MAX) {
            b.len = before; /* the cap: keep what fits */
            b.data[b.len] = '\0';
            break;
        }
    }
    int r = ls_cache_write(store, LS_CACHE_CONTEXT, key, b.data, b.len, err);
    mk_buf_release(&b);
    return r;
}

void layerstore_context_table_free(struct mk_context_file *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++)
        free(files[i].path);
    free(files);
}

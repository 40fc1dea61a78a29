/* layerstore/cache-context.c - a build context's file-digest table (ROOT/cache/context/):
 * the header line, then one line per file "PATH\tSIZE\tMTIME_NS\tINODE\tDIGEST". Lines,
 * not JSON: a big context has hundreds of thousands of files and the table is read at the
 * start of every build. A line that does not parse is skipped (that file is hashed again). */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "layerstore/internal.h"

/* mk_parse_u64 without strtoull's locale and errno handling: three numbers a line, hundreds
 * of thousands of lines at the start of a build. Digits only, no overflow. */
static bool parse_dec(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *ret = v;
    return true;
}

static bool parse_line(char *line, struct mk_context_file *ret)
{
    char *f[5];
    size_t nf = 0;
    for (char *p = line; nf < 5; nf++) {
        f[nf] = p;
        char *tab = strchr(p, '\t');
        if (!tab) {
            nf++;
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    if (nf != 5 || !*f[0] || !mk_digest_valid(f[4]) || !parse_dec(f[1], &ret->size) ||
        !parse_dec(f[2], &ret->mtime_ns) || !parse_dec(f[3], &ret->ino))
        return false;
    ret->path = f[0];
    memcpy(ret->digest, f[4], MK_DIGEST_SIZE);
    return true;
}

int layerstore_context_table_get(struct mk_store *store, const char *key,
                                 struct mk_context_file **ret, size_t *ret_n, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    const char *body;
    if (ls_cache_read(store, LS_CACHE_CONTEXT, key, &data, &len, err) < 0)
        return -1;
    if (strlen(data) != len || !ls_cache_header_ok(LS_CACHE_CONTEXT, key, data, &body))
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: another format", key);
    struct mk_context_file *files = NULL;
    size_t n = 0, cap = 0;
    char *line = (char *)body;
    while (*line) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break; /* a line cut short is no line */
        *nl = '\0';
        struct mk_context_file f;
        if (parse_line(line, &f)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                files = mk_xreallocarray(files, cap, sizeof(*files));
            }
            files[n] = f;
            files[n].path = mk_xstrdup(f.path);
            n++;
        }
        line = nl + 1;
    }
    *ret = files;
    *ret_n = n;
    return 0;
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
        mk_buf_addf(&b, "%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%s\n", f->path, f->size,
                    f->mtime_ns, f->ino, f->digest);
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

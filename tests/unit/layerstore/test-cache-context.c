/* Context tables (layerstore/cache-context.c) as read from the store: a line whose size,
 * mtime or inode is not a plain decimal number that fits in 64 bits is skipped (that file is
 * hashed again), every other line is kept with its numbers exact. */
#include <string.h>

#include "common/util.h"
#include "layerstore/internal.h"
#include "layerstore/layerstore.h"
#include "tap.h"

static void test_numbers(struct mk_store *st)
{
    struct mk_error *err = NULL;
    char key[MK_DIGEST_SIZE], d[MK_DIGEST_SIZE];
    mk_sha256_buffer("context", 7, key);
    mk_sha256_buffer("file", 4, d);
    _cleanup_free_ char *head = ls_cache_header(LS_CACHE_CONTEXT, key);
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_adds(&b, head);
    mk_buf_addf(&b, "max\t18446744073709551615\t0\t7\t%s\n", d);
    mk_buf_addf(&b, "over\t18446744073709551616\t1\t2\t%s\n", d);
    mk_buf_addf(&b, "letter\t12a\t1\t2\t%s\n", d);
    mk_buf_addf(&b, "minus\t1\t-1\t2\t%s\n", d);
    mk_buf_addf(&b, "empty\t1\t\t2\t%s\n", d);
    mk_buf_addf(&b, "plus\t1\t2\t+3\t%s\n", d);
    mk_buf_addf(&b, "space\t 1\t2\t3\t%s\n", d);
    mk_buf_addf(&b, "ok\t0012\t1796661234123456789\t42\t%s\n", d);
    tap_ok(ls_cache_write(st, LS_CACHE_CONTEXT, key, b.data, b.len, &err) == 0,
           "a table is written");
    mk_buf_release(&b);
    struct mk_context_file *f = NULL;
    size_t n = 0;
    tap_ok(layerstore_context_table_get(st, key, &f, &n, &err) == 0, "and read");
    tap_ok(n == 2, "two lines of eight parse (got %zu)", n);
    tap_ok(n == 2 && strcmp(f[0].path, "max") == 0 && f[0].size == UINT64_MAX && f[0].ino == 7,
           "the largest 64-bit number is one");
    tap_ok(n == 2 && strcmp(f[1].path, "ok") == 0 && f[1].size == 12 &&
               f[1].mtime_ns == 1796661234123456789ULL && f[1].ino == 42 &&
               strcmp(f[1].digest, d) == 0,
           "leading zeros, nanosecond mtimes and the digest");
    layerstore_context_table_free(f, n);
    mk_error_free(err);
}

int main(void)
{
    tap_tmpdir();
    struct mk_error *err = NULL;
    struct mk_store *st = NULL;
    tap_ok(layerstore_open("store", &st, &err) == 0, "a store opens");
    if (st)
        test_numbers(st);
    layerstore_free(st);
    mk_error_free(err);
    return tap_done();
}

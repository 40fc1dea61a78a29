/* The file-digest cache (builder/cache.c): digests right whatever order files are asked in,
 * a changed file hashed again, new files added, and the table written in the order of the
 * context walk (the order a rebuild asks in, so that it reads the table line by line), each
 * path once. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"
#include "tap.h"

/* Writes data to ctx/rel (its directory made already). */
static void put(const char *rel, const char *data)
{
    _cleanup_free_ char *path = mk_xasprintf("ctx/%s", rel);
    if (mk_write_file_atomic(AT_FDCWD, path, data, strlen(data), 0644, NULL) < 0) {
        perror(path);
        exit(1);
    }
}

/* Names whose strcmp order of whole paths is not the walk's ('-' and '.' sort before '/'). */
static const char *const files[] = {"b", "a/x", "a-b", "ab", "a/y/z", "a.c", "a/y-1"};
#define N_FILES (sizeof(files) / sizeof(files[0]))

struct walked {
    struct mk_strv paths;
};

static int collect(const char *rel, const struct stat *st, void *arg, struct mk_error **err)
{
    (void)err;
    if (S_ISREG(st->st_mode))
        mk_strv_push(&((struct walked *)arg)->paths, rel);
    return 0;
}

/* hc's digest of rel is the sha256 of its content. */
static bool digest_ok(struct mk_hashcache *hc, int ctxfd, const char *rel)
{
    struct stat st;
    char got[MK_DIGEST_SIZE], want[MK_DIGEST_SIZE];
    _cleanup_free_ char *path = mk_xasprintf("ctx/%s", rel);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (lstat(path, &st) < 0 || mk_read_file_at(AT_FDCWD, path, 1 << 20, &data, &len, NULL) < 0)
        return false;
    mk_sha256_buffer(data, len, want);
    return builder_hashcache_file(hc, ctxfd, rel, &st, got, NULL) == 0 && strcmp(got, want) == 0;
}

static void table_paths(struct mk_store *st, struct mk_strv *ret)
{
    _cleanup_free_ char *abs = realpath("ctx", NULL);
    _cleanup_free_ char *material = mk_xasprintf("mkimg-filehash-v1\n%s", abs);
    char key[MK_DIGEST_SIZE];
    mk_sha256_buffer(material, strlen(material), key);
    struct mk_context_file *f = NULL;
    size_t n = 0;
    if (layerstore_context_table_get(st, key, &f, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        mk_strv_push(ret, f[i].path);
    layerstore_context_table_free(f, n);
}

static char *joined(const struct mk_strv *l)
{
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_adds(&b, "");
    for (size_t i = 0; i < l->n; i++)
        mk_buf_addf(&b, "%s%s", i ? " " : "", l->v[i]);
    return mk_buf_detach(&b);
}

int main(void)
{
    tap_tmpdir();
    struct mk_error *err = NULL;
    struct mk_store *st = NULL;
    mk_mkdir_p("ctx/a/y", 0755, NULL);
    for (size_t i = 0; i < N_FILES; i++)
        put(files[i], files[i]);
    struct mk_context *ctx = NULL;
    if (layerstore_open("store", &st, &err) < 0 ||
        builder_context_open("ctx", NULL, &ctx, &err) < 0) {
        tap_ok(false, "a store and a context open");
        return tap_done();
    }
    int ctxfd = builder_context_dirfd(ctx);
    struct walked w = {MK_STRV_INIT};
    tap_ok(builder_context_walk(ctx, ".", collect, &w, NULL) == 0 && w.paths.n == N_FILES,
           "the context walks");
    _cleanup_free_ char *walk = joined(&w.paths);

    /* A first build: every file hashed, in the order given (not the walk's). */
    struct mk_hashcache *hc = NULL;
    tap_ok(builder_hashcache_open(st, "ctx", &hc, NULL) == 0, "an empty cache opens");
    bool ok = true;
    for (size_t i = 0; i < N_FILES; i++)
        ok &= digest_ok(hc, ctxfd, files[i]);
    tap_ok(ok, "digests of files asked in any order");
    tap_ok(builder_hashcache_save(hc, NULL) == 0, "the table is saved");
    builder_hashcache_free(hc);
    struct mk_strv t1 = MK_STRV_INIT;
    table_paths(st, &t1);
    _cleanup_free_ char *got1 = joined(&t1);
    tap_ok(strcmp(got1, walk) == 0, "in the walk's order (got \"%s\", walk \"%s\")", got1, walk);
    mk_strv_release(&t1);

    /* A rebuild in walk order, one file changed, one added, one asked twice. */
    put("a-b", "changed, and longer");
    put("a/new", "new");
    tap_ok(builder_hashcache_open(st, "ctx", &hc, NULL) == 0, "the table opens");
    ok = true;
    mk_strv_clear(&w.paths);
    builder_context_walk(ctx, ".", collect, &w, NULL);
    for (size_t i = 0; i < w.paths.n; i++)
        ok &= digest_ok(hc, ctxfd, w.paths.v[i]);
    ok &= digest_ok(hc, ctxfd, "a/x");
    tap_ok(ok, "digests in walk order: the changed file's is new, the new file's right");
    tap_ok(builder_hashcache_save(hc, NULL) == 0, "the table is saved again");
    builder_hashcache_free(hc);
    struct mk_strv t2 = MK_STRV_INIT;
    table_paths(st, &t2);
    _cleanup_free_ char *got2 = joined(&t2), *walk2 = joined(&w.paths);
    tap_ok(strcmp(got2, walk2) == 0, "with the new file in its place, each path once (got \"%s\")",
           got2);
    mk_strv_release(&t2);

    /* Out of order, from the table: the last file first, then the rest backwards. */
    tap_ok(builder_hashcache_open(st, "ctx", &hc, NULL) == 0, "the table opens again");
    ok = true;
    for (size_t i = w.paths.n; i-- > 0;)
        ok &= digest_ok(hc, ctxfd, w.paths.v[i]);
    tap_ok(ok, "digests of every file asked backwards");
    builder_hashcache_free(hc);

    mk_strv_release(&w.paths);
    builder_context_free(ctx);
    layerstore_free(st);
    mk_error_free(err);
    return tap_done();
}

/* builder/cache.c - the file-digest cache that lets a rebuild skip reading unchanged
 * context files.
 *
 * Per build context (keyed by its absolute path), a table relpath -> (size, mtime, inode,
 * sha256) kept in the store as one context table (layerstore_context_table_get/put). A
 * file whose size, mtime and inode are unchanged is not read again; everything else is
 * hashed and the table rewritten at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

struct hc_entry {
    char *path;
    uint64_t size, mtime_ns, ino;
    char digest[MK_DIGEST_SIZE];
    bool used, known; /* known: digest holds one (checked when the table was read) */
};

struct mk_hashcache {
    struct mk_store *store;
    char key[MK_DIGEST_SIZE];
    struct hc_entry *tab; /* open addressing, power-of-two size */
    size_t cap, n;
    size_t loaded; /* digests the stored table held when opened */
    bool dirty;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    /* The table takes the low bits, which in FNV depend only on the low bits of each byte:
     * paths that differ in a digit or two crowded a few slots. Mixed as murmur3's fmix64. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static struct hc_entry *hc_slot(struct mk_hashcache *hc, const char *path)
{
    size_t i = hash_str(path) & (hc->cap - 1);
    while (hc->tab[i].path && strcmp(hc->tab[i].path, path) != 0)
        i = (i + 1) & (hc->cap - 1);
    return &hc->tab[i];
}

/* Makes room for at least want entries (at most half full), or doubles the table. */
static void hc_grow_to(struct mk_hashcache *hc, size_t want)
{
    struct hc_entry *old = hc->tab;
    size_t oldcap = hc->cap;
    hc->cap = oldcap ? oldcap * 2 : 1024;
    while (hc->cap < 2 * want)
        hc->cap *= 2;
    hc->tab = mk_xcalloc(hc->cap, sizeof(*hc->tab));
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].path)
            *hc_slot(hc, old[i].path) = old[i];
    free(old);
}

/* The entry of path, added if missing with path (owned) as its name, else owned is freed. */
static struct hc_entry *hc_put_take(struct mk_hashcache *hc, char *owned)
{
    if ((hc->n + 1) * 2 > hc->cap)
        hc_grow_to(hc, hc->n + 1);
    struct hc_entry *e = hc_slot(hc, owned);
    if (!e->path) {
        e->path = owned;
        hc->n++;
    } else {
        free(owned);
    }
    return e;
}

static struct hc_entry *hc_put(struct mk_hashcache *hc, const char *path)
{
    if (hc->cap && (hc->n + 1) * 2 <= hc->cap) {
        struct hc_entry *e = hc_slot(hc, path);
        if (e->path)
            return e;
    }
    return hc_put_take(hc, mk_xstrdup(path));
}

int builder_hashcache_open(struct mk_store *store, const char *context_dir,
                           struct mk_hashcache **ret, struct mk_error **err)
{
    _cleanup_free_ char *abs = realpath(context_dir, NULL);
    if (!abs)
        return mk_error_errno(err, "resolving \"%s\"", context_dir);
    struct mk_hashcache *hc = mk_xcalloc(1, sizeof(*hc));
    hc->store = store;
    _cleanup_free_ char *material = mk_xasprintf("mkimg-filehash-v1\n%s", abs);
    mk_sha256_buffer(material, strlen(material), hc->key);
    struct mk_context_file *files = NULL;
    size_t n = 0;
    struct mk_error *e = NULL;
    bool have = layerstore_context_table_get(store, hc->key, &files, &n, &e) == 0;
    hc_grow_to(hc, have ? n : 0);
    if (have) {
        for (size_t i = 0; i < n; i++) {
            /* The paths move into the table: one allocation per file, not two. */
            struct hc_entry *en = hc_put_take(hc, MK_TAKE_PTR(files[i].path));
            en->size = files[i].size;
            en->mtime_ns = files[i].mtime_ns;
            en->ino = files[i].ino;
            memcpy(en->digest, files[i].digest, MK_DIGEST_SIZE);
            en->known = true;
        }
        layerstore_context_table_free(files, n);
        hc->loaded = n;
    }
    mk_error_free(e);
    *ret = hc;
    return 0;
}

int builder_hashcache_file(struct mk_hashcache *hc, int ctxfd, const char *rel,
                           const struct stat *st, char out[MK_DIGEST_SIZE], struct mk_error **err)
{
    uint64_t mt = (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
    struct hc_entry *e = hc_put(hc, rel);
    e->used = true;
    if (e->known && e->size == (uint64_t)st->st_size && e->mtime_ns == mt &&
        e->ino == (uint64_t)st->st_ino) {
        memcpy(out, e->digest, MK_DIGEST_SIZE);
        return 0;
    }
    _cleanup_close_ int fd = mk_open_in_root(ctxfd, rel, O_RDONLY, 0, err);
    if (fd < 0)
        return -1;
    if (mk_sha256_fd(fd, out, NULL, err) < 0)
        return mk_error_wrap(err, "hashing \"%s\"", rel);
    e->size = (uint64_t)st->st_size;
    e->mtime_ns = mt;
    e->ino = (uint64_t)st->st_ino;
    memcpy(e->digest, out, MK_DIGEST_SIZE);
    e->known = true;
    hc->dirty = true;
    return 0;
}

bool builder_hashcache_was_empty(const struct mk_hashcache *hc)
{
    return hc->loaded == 0;
}

bool builder_hashcache_known(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                             char out[MK_DIGEST_SIZE])
{
    uint64_t mt = (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
    struct hc_entry *e = hc->cap ? hc_slot(hc, rel) : NULL;
    if (!e || !e->path || !e->known || e->size != (uint64_t)st->st_size || e->mtime_ns != mt ||
        e->ino != (uint64_t)st->st_ino)
        return false;
    e->used = true;
    memcpy(out, e->digest, MK_DIGEST_SIZE);
    return true;
}

void builder_hashcache_put(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                           const char digest[MK_DIGEST_SIZE])
{
    struct hc_entry *e = hc_put(hc, rel);
    e->used = true;
    e->size = (uint64_t)st->st_size;
    e->mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
    e->ino = (uint64_t)st->st_ino;
    memcpy(e->digest, digest, MK_DIGEST_SIZE);
    e->known = true;
    hc->dirty = true;
}

int builder_hashcache_save(struct mk_hashcache *hc, struct mk_error **err)
{
    if (!hc || !hc->dirty)
        return 0;
    struct mk_context_file *files = mk_xcalloc(hc->n ? hc->n : 1, sizeof(*files));
    size_t n = 0;
    for (size_t i = 0; i < hc->cap && n < hc->n; i++) {
        const struct hc_entry *e = &hc->tab[i];
        if (!e->path || !e->known)
            continue;
        /* Borrowed: the table is written before hc changes. */
        files[n] = (struct mk_context_file){
            .path = e->path, .size = e->size, .mtime_ns = e->mtime_ns, .ino = e->ino};
        memcpy(files[n].digest, e->digest, MK_DIGEST_SIZE);
        n++;
    }
    int r = layerstore_context_table_put(hc->store, hc->key, files, n, err);
    free(files);
    return r;
}

void builder_hashcache_free(struct mk_hashcache *hc)
{
    if (!hc)
        return;
    for (size_t i = 0; i < hc->cap; i++)
        free(hc->tab[i].path);
    free(hc->tab);
    free(hc);
}

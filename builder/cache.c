/* builder/cache.c - the file-digest cache that lets a rebuild skip reading unchanged
 * context files.
 *
 * Per build context (keyed by its absolute path), a table relpath -> (size, mtime, inode,
 * sha256) kept in the store as one context table (layerstore_context_table_read/put). A
 * file whose size, mtime and inode are unchanged is not read again; everything else is
 * hashed and the table rewritten at the end.
 *
 * The walks ask for files in one order (each directory's entries sorted by name, a
 * directory's contents right after it), and the table is written in that order. So it is
 * read as it is asked: the next line is parsed (in place, in the buffer the file was read
 * into) and compared with the file asked for. Only a file out of that order (a new one, a
 * COPY of another part of the context first) has the rest of the table parsed and indexed.
 * A rebuild of an unchanged context thus hashes no path and copies none.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

/* 48 bytes: a big context's table is tens of thousands of them. */
struct hc_entry {
    char *path;         /* into hc->data, or owned (owned_path) */
    const char *digest; /* "sha256:...": into hc->data, or owned (owned_digest) */
    uint64_t size, mtime_ns, ino;
    uint32_t hash; /* of path, once indexed */
    bool owned_path, owned_digest;
};

struct mk_hashcache {
    struct mk_store *store;
    char key[MK_DIGEST_SIZE];
    char *data;            /* the table as read, its lines parsed in place */
    char *next;            /* the first line not parsed yet */
    struct hc_entry *ents; /* the lines parsed, in order; then the files added */
    size_t n, alloc;
    size_t cur;      /* the entry the next file asked for is expected at */
    size_t n_owned;  /* entries with a path or digest of their own */
    uint32_t *slots; /* NULL, or the index: entry + 1, open addressing, power-of-two size */
    size_t cap;
    bool was_empty; /* the stored table held no line when opened */
    bool dirty;
};

static uint32_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    /* The table takes the low bits, which in FNV depend only on the low bits of each byte:
     * paths that differ in a digit or two crowded a few slots. Mixed as murmur3's fmix64. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

static struct hc_entry *hc_append(struct mk_hashcache *hc)
{
    if (hc->n == hc->alloc) {
        hc->alloc = hc->alloc ? hc->alloc * 2 : 256;
        hc->ents = mk_xreallocarray(hc->ents, hc->alloc, sizeof(*hc->ents));
    }
    struct hc_entry *e = &hc->ents[hc->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

/* Parses the next line of the table into a new entry; false at its end. */
static bool hc_parse_next(struct mk_hashcache *hc)
{
    while (hc->next && *hc->next) {
        char *line = hc->next;
        char *nl = strchr(line, '\n');
        if (!nl) {
            hc->next = NULL; /* a line cut short is no line */
            return false;
        }
        hc->next = nl + 1;
        struct mk_context_file f;
        if (!layerstore_context_line_parse(line, (size_t)(nl - line), &f))
            continue;
        /* The line ends with the digest (parsed: MK_DIGEST_LEN bytes): kept where it is. */
        *nl = '\0';
        struct hc_entry *e = hc_append(hc);
        e->path = f.path;
        e->digest = nl - MK_DIGEST_LEN;
        e->size = f.size;
        e->mtime_ns = f.mtime_ns;
        e->ino = f.ino;
        return true;
    }
    return false;
}

/* The slot of path in the index: its entry's, or the empty one where it goes. */
static uint32_t *hc_slot(struct mk_hashcache *hc, const char *path, uint32_t hash)
{
    size_t i = hash & (hc->cap - 1);
    while (hc->slots[i]) {
        const struct hc_entry *e = &hc->ents[hc->slots[i] - 1];
        if (e->hash == hash && strcmp(e->path, path) == 0)
            break;
        i = (i + 1) & (hc->cap - 1);
    }
    return &hc->slots[i];
}

/* Indexes entry i (the first of a path stays; a table has each path once). */
static void hc_index_add(struct mk_hashcache *hc, size_t i)
{
    struct hc_entry *e = &hc->ents[i];
    e->hash = hash_str(e->path);
    uint32_t *slot = hc_slot(hc, e->path, e->hash);
    if (!*slot)
        *slot = (uint32_t)(i + 1);
}

/* Room for n entries at most half full: the index made anew, of every entry. */
static void hc_index_resize(struct mk_hashcache *hc, size_t n)
{
    size_t cap = 1024;
    while (cap < 2 * n)
        cap *= 2;
    free(hc->slots);
    hc->slots = mk_xcalloc(cap, sizeof(*hc->slots));
    hc->cap = cap;
    for (size_t i = 0; i < hc->n; i++)
        hc_index_add(hc, i);
}

/* The whole table parsed and indexed (once). */
static void hc_index(struct mk_hashcache *hc)
{
    if (hc->slots)
        return;
    while (hc_parse_next(hc))
        ;
    hc_index_resize(hc, hc->n + 1);
}

static struct hc_entry *hc_find(struct mk_hashcache *hc, const char *path)
{
    if (hc->cur < hc->n || (!hc->slots && hc_parse_next(hc))) {
        struct hc_entry *e = &hc->ents[hc->cur];
        if (strcmp(e->path, path) == 0) {
            hc->cur++;
            return e;
        }
    }
    hc_index(hc);
    uint32_t i = *hc_slot(hc, path, hash_str(path));
    if (!i)
        return NULL;
    hc->cur = i; /* the file after it is expected next */
    return &hc->ents[i - 1];
}

static struct hc_entry *hc_add(struct mk_hashcache *hc, const char *path)
{
    hc_index(hc);
    if ((hc->n + 1) * 2 > hc->cap)
        hc_index_resize(hc, hc->n + 1);
    struct hc_entry *e = hc_append(hc);
    e->path = mk_xstrdup(path);
    e->owned_path = true;
    hc->n_owned++;
    hc_index_add(hc, hc->n - 1);
    return e;
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
    struct mk_error *e = NULL;
    hc->was_empty = true;
    if (layerstore_context_table_read(store, hc->key, &hc->data, &hc->next, &e) == 0) {
        /* A line is at least 80 bytes: room for every line at once. */
        hc->alloc = strlen(hc->next) / 80 + 1;
        hc->ents = mk_xreallocarray(NULL, hc->alloc, sizeof(*hc->ents));
        hc->was_empty = !*hc->next;
    }
    mk_error_free(e);
    *ret = hc;
    return 0;
}

static uint64_t hc_mtime(const struct stat *st)
{
    return (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
}

/* The entry of rel when it holds a digest made from a file with st (size, mtime, inode). */
static struct hc_entry *hc_lookup(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                                  struct hc_entry **found)
{
    struct hc_entry *e = hc_find(hc, rel);
    *found = e;
    if (e && e->digest && e->size == (uint64_t)st->st_size && e->mtime_ns == hc_mtime(st) &&
        e->ino == (uint64_t)st->st_ino)
        return e;
    return NULL;
}

/* Records digest for rel (entry e if it has one) as made from a file with st. */
static void hc_set(struct mk_hashcache *hc, struct hc_entry *e, const char *rel,
                   const struct stat *st, const char digest[MK_DIGEST_SIZE])
{
    if (!e)
        e = hc_add(hc, rel);
    e->size = (uint64_t)st->st_size;
    e->mtime_ns = hc_mtime(st);
    e->ino = (uint64_t)st->st_ino;
    if (!e->owned_digest) {
        e->digest = mk_xmalloc(MK_DIGEST_SIZE);
        e->owned_digest = true;
        hc->n_owned += !e->owned_path;
    }
    memcpy((char *)e->digest, digest, MK_DIGEST_SIZE);
    hc->dirty = true;
}

int builder_hashcache_file(struct mk_hashcache *hc, int ctxfd, const char *rel,
                           const struct stat *st, char out[MK_DIGEST_SIZE], struct mk_error **err)
{
    struct hc_entry *e;
    const struct hc_entry *hit = hc_lookup(hc, rel, st, &e);
    if (hit) {
        memcpy(out, hit->digest, MK_DIGEST_SIZE);
        return 0;
    }
    _cleanup_close_ int fd = mk_open_in_root(ctxfd, rel, O_RDONLY, 0, err);
    if (fd < 0)
        return -1;
    if (mk_sha256_fd(fd, out, NULL, err) < 0)
        return mk_error_wrap(err, "hashing \"%s\"", rel);
    hc_set(hc, e, rel, st, out);
    return 0;
}

bool builder_hashcache_was_empty(const struct mk_hashcache *hc)
{
    return hc->was_empty;
}

bool builder_hashcache_known(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                             char out[MK_DIGEST_SIZE])
{
    struct hc_entry *e;
    const struct hc_entry *hit = hc_lookup(hc, rel, st, &e);
    if (!hit)
        return false;
    memcpy(out, hit->digest, MK_DIGEST_SIZE);
    return true;
}

void builder_hashcache_put(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                           const char digest[MK_DIGEST_SIZE])
{
    struct hc_entry *e;
    if (!hc_lookup(hc, rel, st, &e) || memcmp(e->digest, digest, MK_DIGEST_SIZE) != 0)
        hc_set(hc, e, rel, st, digest);
}

/* The walks' order: each directory's entries by name (strcmp), a directory's contents right
 * after it; so a name that ends (at '/' or at the end) goes before a longer one. */
static int walk_order(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x == y) {
            if (!x)
                return 0;
            continue;
        }
        if (!x || x == '/')
            return -1;
        if (!y || y == '/')
            return 1;
        return x < y ? -1 : 1;
    }
}

/* Entries (by index) in the walks' order; of a path twice, the first. */
static int cmp_walk_order(const void *a, const void *b, void *arg)
{
    const struct hc_entry *ents = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = walk_order(ents[i].path, ents[j].path);
    return c ? c : i < j ? -1 : i > j;
}

int builder_hashcache_save(struct mk_hashcache *hc, struct mk_error **err)
{
    if (!hc || !hc->dirty)
        return 0;
    while (hc_parse_next(hc))
        ;
    _cleanup_free_ size_t *order = mk_xreallocarray(NULL, hc->n ? hc->n : 1, sizeof(*order));
    bool sorted = true;
    for (size_t i = 0; i < hc->n; i++) {
        order[i] = i;
        sorted &= i == 0 || walk_order(hc->ents[i - 1].path, hc->ents[i].path) < 0;
    }
    /* Usually in order already: a rebuild asks in that order, a new file is the exception. */
    if (!sorted)
        qsort_r(order, hc->n, sizeof(*order), cmp_walk_order, hc->ents);
    /* Borrowed: the table is written before hc changes. */
    struct mk_context_file *files = mk_xreallocarray(NULL, hc->n ? hc->n : 1, sizeof(*files));
    size_t n = 0;
    for (size_t i = 0; i < hc->n; i++) {
        const struct hc_entry *e = &hc->ents[order[i]];
        if (!e->digest || (n && strcmp(files[n - 1].path, e->path) == 0))
            continue;
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
    /* Only files hashed in this build own memory: none on a rebuild of the same context. */
    for (size_t i = 0; hc->n_owned && i < hc->n; i++) {
        if (hc->ents[i].owned_path)
            free(hc->ents[i].path);
        if (hc->ents[i].owned_digest)
            free((char *)hc->ents[i].digest);
    }
    free(hc->ents);
    free(hc->slots);
    free(hc->data);
    free(hc);
}

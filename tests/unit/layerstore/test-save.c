/* mkimg save's tar: a valid archive of the store's blobs, whose blob bytes reach the archive
 * by copy_file_range or in 1 MiB writes (a layer compressed on the way), not in libarchive's
 * 10 KiB records. This binary
 * defines write() and copy_file_range() itself, so the calls the store makes come here and
 * are counted per file descriptor. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/layerstore.h"
#include "tap.h"
#include "store-fixture.h"

static int watched = -1;
static size_t n_writes, n_small_writes, n_copies;

ssize_t write(int fd, const void *buf, size_t n)
{
    if (fd == watched) {
        n_writes++;
        n_small_writes += n < (1u << 20);
    }
    return syscall(SYS_write, fd, buf, n);
}

ssize_t copy_file_range(int in, loff_t *in_off, int out, loff_t *out_off, size_t n, unsigned flags)
{
    if (out == watched)
        n_copies++;
    return syscall(SYS_copy_file_range, in, in_off, out, out_off, n, flags);
}

static void watch(int fd)
{
    watched = fd;
    n_writes = n_small_writes = n_copies = 0;
}

/* Entries of the tar at path whose content hashes to their blobs/sha256/<hex> name, and
 * entries in all; -1 when libarchive cannot read it to the end. */
static int check_tar(const char *path, int *ret_entries)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    int good = 0, n = 0;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        archive_read_free(a);
        return -1;
    }
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        n++;
        struct mk_sha256 *h = mk_sha256_new();
        const void *buf;
        size_t len;
        la_int64_t off;
        while (archive_read_data_block(a, &buf, &len, &off) == ARCHIVE_OK)
            mk_sha256_update(h, buf, len);
        char d[MK_DIGEST_SIZE];
        mk_sha256_final(h, d);
        mk_sha256_free(h);
        const char *name = archive_entry_pathname(e);
        if (strncmp(name, "blobs/sha256/", 13) == 0 && strlen(name) == 13 + 64)
            good += strcmp(name + 13, mk_digest_hex(d)) == 0;
    }
    archive_read_free(a);
    *ret_entries = n;
    return r == ARCHIVE_EOF ? good : -1;
}

struct drain {
    int fd;
    int out;
};

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(d->fd, buf, sizeof(buf))) > 0)
        if (syscall(SYS_write, d->out, buf, (size_t)n) != n)
            break;
    return NULL;
}

int main(void)
{
    struct mk_store *st = fixture_store();
    struct mk_error *err = NULL;
    /* A 3 MiB file of noise: its compressed layer is over 3 MiB too. */
    mkdir("root", 0755);
    int fd = open("root/noise", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 3 * 1024; i++) {
        uint64_t block[128];
        for (int k = 0; k < 128; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block[k] = x;
        }
        if (syscall(SYS_write, fd, block, sizeof(block)) != (long)sizeof(block))
            return 1;
    }
    close(fd);
    struct mk_image *img = NULL;
    tap_ok(layerstore_import(st, "root", "noise:latest", &img, &err) == 0, "import a 3 MiB layer");
    layerstore_image_free(img);
    const char *names[] = {"noise:latest"};

    /* To a file: the config goes by copy_file_range, the layer (no compressed copy yet) is
     * compressed straight into the archive in 1 MiB writes, the rest in a few writes. */
    int out = open("a.tar", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    watch(out);
    tap_ok(layerstore_save(st, names, 1, MK_ARCHIVE_OCI, MK_COMPRESS_ZSTD, 0, out, NULL, &err) == 0,
           "save to a file");
    watched = -1;
    close(out);
    tap_diag("to a file: %zu writes, %zu copy_file_range", n_writes, n_copies);
    tap_ok(n_writes <= 8 && n_copies >= 1 && n_writes - n_small_writes >= 2,
           "to a file: the config by copy_file_range, the layer in 1 MiB writes, %zu in all",
           n_writes);
    int entries = 0;
    tap_is_int(check_tar("a.tar", &entries), 3, "config, layer and manifest are named by digest");
    tap_is_int(entries, 7, "oci-layout, two directories, three blobs and index.json");

    /* Into a pipe (no copy_file_range): 1 MiB writes. */
    int p[2];
    if (pipe(p) < 0)
        return 1;
    int copy = open("b.tar", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct drain d = {p[0], copy};
    pthread_t t;
    pthread_create(&t, NULL, drain_main, &d);
    watch(p[1]);
    tap_ok(layerstore_save(st, names, 1, MK_ARCHIVE_OCI, MK_COMPRESS_ZSTD, 0, p[1], NULL, &err) ==
               0,
           "save into a pipe");
    watched = -1;
    close(p[1]);
    pthread_join(t, NULL);
    close(p[0]);
    close(copy);
    tap_diag("into a pipe: %zu writes, %zu under 1 MiB", n_writes, n_small_writes);
    tap_ok(n_writes <= 16 && n_writes - n_small_writes >= 3,
           "into a pipe: the layer in 1 MiB writes (%zu writes in all)", n_writes);
    _cleanup_free_ char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    bool read = mk_read_file_at(AT_FDCWD, "a.tar", 64u << 20, &a, &alen, NULL) == 0 &&
                mk_read_file_at(AT_FDCWD, "b.tar", 64u << 20, &b, &blen, NULL) == 0;
    tap_ok(read && alen == blen && memcmp(a, b, alen) == 0, "the same bytes either way (%zu)",
           alen);
    tap_ok(alen % 512 == 0 && alen > 3u << 20, "whole 512-byte blocks");

    /* A compression stream (push) with a limit stops there until allowed on, and can be
     * stopped while it waits; gzip, of which no copy is cached yet. */
    struct mk_image *im = NULL;
    if (layerstore_image_get(st, "noise:latest", &im, &err) < 0)
        return 1;
    for (int pass = 0; pass < 2; pass++) {
        struct mk_compress_stream *cs = NULL;
        tap_ok(layerstore_compress_stream_start(st, &im->layers[0], MK_COMPRESS_GZIP, 1u << 20, &cs,
                                                &err) == 0,
               "start a gzip stream limited to 1 MiB");
        if (!cs)
            break;
        bool ended = false;
        layerstore_compress_stream_wait(cs, 1u << 20, &ended);
        usleep(300 * 1000);
        uint64_t n = layerstore_compress_stream_wait(cs, 0, &ended);
        tap_ok(!ended && n >= 1u << 20 && n <= 2u << 20,
               "it stops at its limit (%llu bytes written of a 3 MiB layer)",
               (unsigned long long)n);
        if (pass == 0) {
            layerstore_compress_stream_free(cs); /* stopped while held: must not hang */
            tap_ok(true, "a held stream is stopped");
            continue;
        }
        layerstore_compress_stream_allow(cs, UINT64_MAX);
        char dg[MK_DIGEST_SIZE];
        uint64_t size = 0;
        int r = layerstore_compress_stream_digest(cs, dg, &size);
        tap_ok(r == 0 && size > 3u << 20, "allowed on, it ends (%llu bytes)",
               (unsigned long long)size);
        struct mk_layer_desc res = {0};
        tap_ok(layerstore_compress_stream_finish(cs, false, &res, &err) == 0 &&
                   strcmp(res.digest, dg) == 0,
               "and its copy is stored under its digest");
        free(res.media_type);
        layerstore_compress_stream_free(cs);
    }
    layerstore_image_free(im);

    if (err)
        tap_diag("error: %s", err->msg);
    mk_error_free(err);
    layerstore_free(st);
    return tap_done();
}

/* bench/layer-bench.c - the layer store's hot loops, timed alone.
 *
 *   layer-bench DIR OUT                            the deterministic tar of a directory written
 *                                                  to a file while hashing (a RUN or COPY
 *                                                  step's commit), fsynced
 *   layer-bench compress gzip|zstd LEVEL THREADS IN OUT
 *                                                  one stream compressed as push and save do
 *                                                  it (compress-stream.c), not fsynced
 *
 * Prints seconds, bytes and the sha256 of what was written; bench/layer.sh puts the figures
 * next to `tar -c | tee | sha256sum` and gzip, pigz and zstd. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static ssize_t fd_read(void *ctx, void *buf, size_t n, struct mk_error **err)
{
    return mk_read_some(*(int *)ctx, buf, n, err);
}

static int compress_main(char **argv)
{
    int c = layerstore_compression_parse(argv[2]);
    int level = (int)strtol(argv[3], NULL, 10);
    unsigned threads = (unsigned)strtoul(argv[4], NULL, 10);
    int in = open(argv[5], O_RDONLY | O_CLOEXEC);
    int out = open(argv[6], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (c < 0 || in < 0 || out < 0) {
        fprintf(stderr, "layer-bench: bad compression or cannot open a file\n");
        return 1;
    }
    double t0 = now();
    char digest[MK_DIGEST_SIZE];
    uint64_t size = 0;
    struct mk_error *err = NULL;
    if (ls_compress_stream(fd_read, &in, out, (enum mk_compression)c, level, threads, digest, &size,
                           &err) < 0) {
        fprintf(stderr, "layer-bench: %s\n", err->msg);
        return 1;
    }
    printf("%.3f %llu %s\n", now() - t0, (unsigned long long)size, digest);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "compress") == 0)
        return compress_main(argv);
    if (argc != 3) {
        fprintf(stderr, "usage: layer-bench DIR OUT\n"
                        "       layer-bench compress gzip|zstd LEVEL THREADS IN OUT\n");
        return 2;
    }
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dfd < 0 || out < 0) {
        perror("open");
        return 1;
    }
    double t0 = now();
    char digest[MK_DIGEST_SIZE];
    uint64_t size = 0;
    struct mk_error *err = NULL;
    if (ls_tar_write_dir(dfd, out, MK_EPOCH_NONE, digest, &size, &err) < 0 || fsync(out) < 0) {
        fprintf(stderr, "layer-bench: %s\n", err ? err->msg : "fsync failed");
        return 1;
    }
    printf("%.3f %llu %s\n", now() - t0, (unsigned long long)size, digest);
    return 0;
}

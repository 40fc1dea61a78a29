/* bench/layer-bench.c - layer creation: the deterministic tar of a directory written to a
 * file while hashing (what a RUN or COPY step's commit does). Usage: layer-bench DIR OUT.
 * Prints seconds and bytes; bench/layer.sh puts it next to `tar -c | tee | sha256sum`. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "layerstore/internal.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: layer-bench DIR OUT\n");
        return 2;
    }
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dfd < 0 || out < 0) {
        perror("open");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char digest[MK_DIGEST_SIZE];
    uint64_t size = 0;
    struct mk_error *err = NULL;
    if (ls_tar_write_dir(dfd, out, digest, &size, &err) < 0 || fsync(out) < 0) {
        fprintf(stderr, "layer-bench: %s\n", err ? err->msg : "fsync failed");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.3f %llu %s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           (unsigned long long)size, digest);
    return 0;
}

/* libFuzzer target: arbitrary bytes as a layer (any compression) through ls_tar_apply into a
 * fresh temp dir, removed after each input. Odd-sized inputs run in rootless mode so both
 * device and setuid paths get covered. Lower caps keep decompression bombs fast. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int in = memfd_create("layer", MFD_CLOEXEC);
    if (in < 0 || mk_write_all(in, data, size, NULL) < 0 || lseek(in, 0, SEEK_SET) < 0)
        abort();
    const char *tmp = getenv("TMPDIR");
    char *dir = mk_mkdtemp_in(tmp && *tmp ? tmp : "/tmp", "fuzz-layer-tar-", NULL);
    if (!dir)
        abort();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        abort();
    struct ls_apply_opts opts = {.rootless = size & 1, .max_entries = 5000, .max_bytes = 32u << 20};
    char digest[MK_DIGEST_SIZE];
    uint64_t n = 0;
    struct mk_error *err = NULL;
    int r = ls_tar_apply(in, dfd, &opts, -1, digest, &n, &err);
    /* The contract: failure always comes with an error, success never does. */
    if ((r < 0) != (err != NULL) || (r == 0 && !mk_digest_valid(digest)))
        abort();
    mk_error_free(err);
    close(dfd);
    close(in);
    if (mk_rm_rf(dir, NULL) < 0)
        abort();
    free(dir);
    return 0;
}

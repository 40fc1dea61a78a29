/* Replays the Dockerfile fuzz corpus (tests/fuzz/corpus/dockerfile, found through $MKIMG_TOP)
 * through the fuzz target's own entry point; under the sanitizer build this is the
 * regression check for everything the fuzzer ever found. */
#include <dirent.h>
#include <stdint.h>

#include "../../fuzz/fuzz-dockerfile.c"
#include "tap.h"

int main(void)
{
    const char *top = getenv("MKIMG_TOP");
    _cleanup_free_ char *dir =
        mk_xasprintf("%s/tests/fuzz/corpus/dockerfile", top && *top ? top : ".");
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d) {
        tap_ok(0, "open corpus %s", dir);
        return tap_done();
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *path = mk_xasprintf("%s/%s", dir, e->d_name);
        _cleanup_fclose_ FILE *f = fopen(path, "rb");
        struct mk_buf b = MK_BUF_INIT;
        char chunk[4096];
        size_t got;
        if (!f) {
            tap_ok(0, "read %s", e->d_name);
            continue;
        }
        mk_buf_add(&b, "", 0);
        while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
            mk_buf_add(&b, chunk, got);
        LLVMFuzzerTestOneInput((const uint8_t *)b.data, b.len);
        mk_buf_release(&b);
        n++;
    }
    tap_ok(n > 0, "replayed %d corpus inputs without a crash", n);
    return tap_done();
}

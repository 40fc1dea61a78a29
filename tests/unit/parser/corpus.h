/* tests/unit/parser/corpus.h - replays a committed fuzz corpus (tests/fuzz/corpus/NAME, found
 * through $MKIMG_TOP) through the fuzz target's own entry point, which the including test
 * compiles in. Under the sanitizer build this is the regression check for every input the
 * fuzzer found. */
#ifndef MK_TESTS_CORPUS_H
#define MK_TESTS_CORPUS_H

#include <dirent.h>
#include <stdint.h>

#include "common/util.h"
#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline int corpus_replay(const char *name)
{
    const char *top = getenv("MKIMG_TOP");
    _cleanup_free_ char *dir =
        mk_xasprintf("%s/tests/fuzz/corpus/%s", top && *top ? top : ".", name);
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
        /* An exact-size heap copy, so ASan sees reads past the input. */
        while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
            mk_buf_add(&b, chunk, got);
        uint8_t *exact = mk_xmalloc(b.len ? b.len : 1);
        if (b.len)
            memcpy(exact, b.data, b.len);
        LLVMFuzzerTestOneInput(exact, b.len);
        free(exact);
        mk_buf_release(&b);
        n++;
    }
    tap_ok(n > 0, "replayed %d %s corpus inputs without a crash", n, name);
    return tap_done();
}

#endif

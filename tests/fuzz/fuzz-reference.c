/* libFuzzer target: image references. Whatever registry_ref_parse accepts has a domain, a
 * lowercase path and a tag or digest, and writing it back out parses to the same thing;
 * whatever it refuses comes with an MK_ERR_INVALID message. Also compiled into
 * tests/unit/registry/test-reference-fuzz-corpus.c, which replays the corpus. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "registry/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct mk_ref *a, const struct mk_ref *b)
{
    if (strcmp(a->domain, b->domain) != 0 || strcmp(a->path, b->path) != 0 ||
        (a->tag == NULL) != (b->tag == NULL) || (a->tag && strcmp(a->tag, b->tag) != 0) ||
        (a->digest == NULL) != (b->digest == NULL) ||
        (a->digest && strcmp(a->digest, b->digest) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = mk_xstrndup((const char *)data, size);
    struct mk_ref *r = NULL;
    struct mk_error *err = NULL;
    if (registry_ref_parse(s, &r, &err) < 0) {
        if (r || !err || err->code != MK_ERR_INVALID || !err->msg || !err->msg[0])
            abort();
        mk_error_free(err);
        free(s);
        return 0;
    }
    if (err || !r || !r->domain || !r->path || (!r->tag && !r->digest))
        abort();
    for (const char *p = r->path; *p; p++)
        if (isupper((unsigned char)*p))
            abort();
    if (!registry_ref_host(r))
        abort();
    char *again =
        mk_xasprintf("%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
                     r->digest ? "@" : "", r->digest ? r->digest : "");
    struct mk_ref *r2 = NULL;
    if (registry_ref_parse(again, &r2, NULL) < 0)
        abort();
    check_same(r, r2);
    registry_ref_free(r2);
    registry_ref_free(r);
    free(again);
    free(s);
    return 0;
}

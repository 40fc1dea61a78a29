/* libFuzzer target: image references. Whatever mk_ref_parse accepts has a domain, a
 * lowercase path, a tag or digest and fits the caps, its qualified form parses to the same
 * thing and it has a local name; whatever it refuses comes with an MK_ERR_INVALID message
 * and has no local name. Also compiled into
 * tests/unit/common/test-reference-fuzz-corpus.c, which replays the corpus. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ref.h"
#include "common/util.h"

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
    if (mk_ref_parse(s, &r, &err) < 0) {
        if (r || !err || err->code != MK_ERR_INVALID || !err->msg || !err->msg[0])
            abort();
        mk_error_free(err);
        if (mk_ref_local_name(s, NULL))
            abort();
        free(s);
        return 0;
    }
    if (err || !r || !r->domain || !r->path || (!r->tag && !r->digest))
        abort();
    for (const char *p = r->path; *p; p++)
        if (isupper((unsigned char)*p))
            abort();
    if (strlen(r->domain) + 1 + strlen(r->path) > MK_REF_NAME_MAX ||
        (r->tag && strlen(r->tag) > MK_REF_TAG_MAX) || !mk_ref_registry_host(r->domain))
        abort();
    char *local = mk_ref_local_name(s, NULL);
    if (!local)
        abort();
    free(local);
    char *again = mk_ref_qualified(r);
    struct mk_ref *r2 = NULL;
    if (mk_ref_parse(again, &r2, NULL) < 0)
        abort();
    check_same(r, r2);
    mk_ref_free(r2);
    mk_ref_free(r);
    free(again);
    free(s);
    return 0;
}

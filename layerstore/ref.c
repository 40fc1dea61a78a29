/* layerstore/ref.c - local image names as stored in index.json's ref.name annotations. */
#include <ctype.h>
#include <string.h>

#include "layerstore/internal.h"

#define REF_MAX 512

/* [a-z0-9]+ joined by single separators [._-] (and "__"), never at either end. */
static bool valid_repo_component(const char *s, size_t n)
{
    if (n == 0 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    unsigned char last = (unsigned char)s[n - 1];
    if (!(islower(last) || isdigit(last)))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* host or host:port, where host is DNS-ish ([A-Za-z0-9.-]) */
static bool valid_domain(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n;
    if (hn == 0)
        return false;
    for (size_t i = 0; i < hn; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-'))
            return false;
    if (colon) {
        size_t pn = n - hn - 1;
        if (pn == 0 || pn > 5)
            return false;
        for (size_t i = hn + 1; i < n; i++)
            if (!isdigit((unsigned char)s[i]))
                return false;
    }
    return true;
}

static bool valid_tag(const char *t, size_t n)
{
    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

static char *ref_error(const char *ref, const char *why, struct mk_error **err)
{
    mk_error_set(err, MK_ERR_INVALID, 0, "invalid reference \"%s\": %s", ref, why);
    return NULL;
}

char *layerstore_normalize_ref(const char *ref, struct mk_error **err)
{
    if (!ref || !*ref)
        return ref_error("", "empty name", err);
    size_t len = strlen(ref);
    if (len > REF_MAX)
        return ref_error(ref, "too long", err);
    const char *at = strchr(ref, '@');
    size_t name_end = at ? (size_t)(at - ref) : len;
    if (at && !mk_digest_valid(at + 1))
        return ref_error(ref, "bad digest", err);
    /* A tag's colon comes after the last slash; a port's before it. */
    const char *slash = memrchr(ref, '/', name_end);
    const char *base = slash ? slash : ref;
    const char *colon = memrchr(base, ':', name_end - (size_t)(base - ref));
    size_t repo_end = colon ? (size_t)(colon - ref) : name_end;
    if (colon && name_end - repo_end - 1 > 128)
        return ref_error(ref, "a tag has at most 128 characters", err);
    if (colon && !valid_tag(colon + 1, name_end - repo_end - 1))
        return ref_error(ref, "bad tag", err);
    if (repo_end == 0)
        return ref_error(ref, "missing repository name", err);
    /* The first component is a registry host when it looks like one and more follow. */
    size_t pos = 0;
    const char *first_slash = memchr(ref, '/', repo_end);
    if (first_slash) {
        size_t fn = (size_t)(first_slash - ref);
        if (memchr(ref, '.', fn) || memchr(ref, ':', fn) ||
            (fn == 9 && memcmp(ref, "localhost", 9) == 0)) {
            if (!valid_domain(ref, fn))
                return ref_error(ref, "bad registry host", err);
            pos = fn + 1;
        }
    }
    while (pos <= repo_end) {
        const char *next = memchr(ref + pos, '/', repo_end - pos);
        size_t end = next ? (size_t)(next - ref) : repo_end;
        if (!valid_repo_component(ref + pos, end - pos)) {
            for (size_t i = pos; i < end; i++)
                if (isupper((unsigned char)ref[i]))
                    return ref_error(ref, "repository name must be lowercase", err);
            return ref_error(ref, "bad repository name", err);
        }
        pos = end + 1;
    }
    if (!colon && !at)
        return mk_xasprintf("%s:latest", ref);
    return mk_xstrdup(ref);
}

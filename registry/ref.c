/* registry/ref.c - image reference parsing (distribution/reference grammar, simplified). */
#include <ctype.h>
#include <string.h>

#include "common/digest.h"
#include "common/util.h"
#include "registry/registry.h"

static bool valid_path_component(const char *s, size_t n)
{
    /* [a-z0-9]+ separated by [._-] / "__" / "-+" */
    if (n == 0 || (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (islower(c) || isdigit(c))
            continue;
        if (c == '.' || c == '_' || c == '-') {
            if (i + 1 == n)
                return false;
            continue;
        }
        return false;
    }
    return true;
}

static bool valid_tag(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

int registry_ref_parse(const char *s, struct mk_ref **ret, struct mk_error **err)
{
    if (!s || !*s)
        return mk_error_set(err, MK_ERR_INVALID, 0, "empty image reference");
    if (strlen(s) > 4096)
        return mk_error_set(err, MK_ERR_INVALID, 0, "image reference too long");
    _cleanup_free_ char *copy = mk_xstrdup(s);
    char *digest = NULL, *tag = NULL;
    char *at = strchr(copy, '@');
    if (at) {
        *at = '\0';
        digest = at + 1;
        if (!mk_digest_valid(digest))
            return mk_error_set(err, MK_ERR_INVALID, 0, "invalid digest in reference \"%s\"", s);
    }
    char *slash = strrchr(copy, '/');
    char *colon = strrchr(copy, ':');
    if (colon && (!slash || colon > slash)) {
        *colon = '\0';
        tag = colon + 1;
        if (!valid_tag(tag))
            return mk_error_set(err, MK_ERR_INVALID, 0, "invalid tag in reference \"%s\"", s);
    }
    char *domain = NULL, *path = copy;
    char *first = strchr(copy, '/');
    if (first) {
        size_t dl = (size_t)(first - copy);
        if (memchr(copy, '.', dl) || memchr(copy, ':', dl) ||
            (dl == 9 && strncmp(copy, "localhost", 9) == 0) || memchr(copy, '[', dl)) {
            *first = '\0';
            domain = copy;
            path = first + 1;
        }
    }
    for (char *p = path;;) {
        char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!valid_path_component(p, n))
            return mk_error_set(err, MK_ERR_INVALID, 0,
                                "invalid reference format \"%s\": repository name must be "
                                "lowercase letters, digits and separators",
                                s);
        if (!e)
            break;
        p = e + 1;
    }
    struct mk_ref *r = mk_xcalloc(1, sizeof(*r));
    r->domain = mk_xstrdup(domain ? domain : "docker.io");
    if (!domain && !strchr(path, '/'))
        r->path = mk_xasprintf("library/%s", path);
    else
        r->path = mk_xstrdup(path);
    r->tag = tag ? mk_xstrdup(tag) : (digest ? NULL : mk_xstrdup("latest"));
    r->digest = digest ? mk_xstrdup(digest) : NULL;
    *ret = r;
    return 0;
}

void registry_ref_free(struct mk_ref *ref)
{
    if (!ref)
        return;
    free(ref->domain);
    free(ref->path);
    free(ref->tag);
    free(ref->digest);
    free(ref);
}

const char *registry_ref_host(const struct mk_ref *ref)
{
    return strcmp(ref->domain, "docker.io") == 0 ? "registry-1.docker.io" : ref->domain;
}

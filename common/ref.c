/* common/ref.c - image references (distribution/reference grammar, docker's normalization). */
#include <stdarg.h>
#include <string.h>

#include "common/digest.h"
#include "common/ref.h"
#include "common/util.h"

/* Longer input is refused before it is looked at (and before it lands in a message). */
#define REF_INPUT_MAX 4096
#define REF_PORT_DIGITS_MAX 5

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

static int ref_error(const char *s, struct mk_error **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ref_error(const char *s, struct mk_error **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *why = mk_xvasprintf(fmt, ap);
    va_end(ap);
    return mk_error_set(err, MK_ERR_INVALID, 0, "invalid reference \"%s\": %s", s, why);
}

/* [a-z0-9]+ joined by ".", "_", "__" or a run of "-". */
static bool path_component_ok(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && is_lower_alnum(s[i]))
            i++;
        if (i == start)
            return false;
        if (i == n)
            return true;
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i += i + 1 < n && s[i + 1] == '_' ? 2 : 1;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return false;
        }
    }
}

/* A DNS name of labels [A-Za-z0-9] with inner "-", or "[hex and colons]". */
static bool host_name_ok(const char *s, size_t n)
{
    if (n > 0 && s[0] == '[') {
        if (n < 3 || s[n - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < n; i++)
            if (!is_hex(s[i]) && s[i] != ':')
                return false;
        return true;
    }
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alnum(s[i]) && !(s[i] == '-' && label > 0))
            return false;
        label++;
    }
    return true;
}

/* HOST or HOST:PORT; an IPv6 address is bracketed, so its colons are not the port's. */
static bool domain_ok(const char *s, size_t n)
{
    const char *end = s + n;
    const char *close = s[0] == '[' ? memchr(s, ']', n) : NULL;
    const char *colon = memchr(close ? close : s, ':', (size_t)(end - (close ? close : s)));
    size_t hn = colon ? (size_t)(colon - s) : n;
    if (colon && (!is_digits(colon + 1, (size_t)(end - colon - 1)) ||
                  (size_t)(end - colon - 1) > REF_PORT_DIGITS_MAX))
        return false;
    return host_name_ok(s, hn);
}

static bool tag_ok(const char *t, size_t n)
{
    if (n == 0 || !(is_alnum(t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(is_alnum(t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

/* Where the parts of s are, each checked; the tag is absent when tag is NULL. */
struct ref_parts {
    size_t domain_n; /* 0: none written */
    const char *path;
    size_t path_n;
    const char *tag;
    size_t tag_n;
    const char *digest;
};

static bool first_is_domain(const char *s, size_t n)
{
    return memchr(s, '.', n) || memchr(s, ':', n) || (n > 0 && s[0] == '[') ||
           (n == 9 && memcmp(s, "localhost", 9) == 0);
}

static int ref_split(const char *s, struct ref_parts *p, struct mk_error **err)
{
    memset(p, 0, sizeof(*p));
    if (!s || !*s)
        return ref_error("", err, "empty name");
    size_t len = strnlen(s, REF_INPUT_MAX + 1);
    if (len > REF_INPUT_MAX)
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid reference: longer than %d characters",
                            REF_INPUT_MAX);
    const char *at = strchr(s, '@');
    size_t name_end = at ? (size_t)(at - s) : len;
    if (at && !mk_digest_valid(at + 1))
        return ref_error(s, err, "bad digest (expected sha256: and 64 lowercase hex digits)");
    p->digest = at ? at + 1 : NULL;
    /* A tag's colon comes after the last slash; a port's before it. */
    const char *slash = memrchr(s, '/', name_end);
    const char *base = slash ? slash : s;
    const char *colon = memrchr(base, ':', name_end - (size_t)(base - s));
    size_t repo_end = colon ? (size_t)(colon - s) : name_end;
    if (colon) {
        p->tag = colon + 1;
        p->tag_n = name_end - repo_end - 1;
        if (p->tag_n > MK_REF_TAG_MAX)
            return ref_error(s, err, "a tag has at most %d characters", MK_REF_TAG_MAX);
        if (!tag_ok(p->tag, p->tag_n))
            return ref_error(s, err, "bad tag \"%.*s\"", (int)p->tag_n, p->tag);
    }
    if (repo_end == 0)
        return ref_error(s, err, "missing repository name");
    const char *first_slash = memchr(s, '/', repo_end);
    size_t fn = first_slash ? (size_t)(first_slash - s) : 0;
    if (first_slash && first_is_domain(s, fn)) {
        if (!domain_ok(s, fn))
            return ref_error(s, err, "bad registry host \"%.*s\"", (int)fn, s);
        p->domain_n = fn;
    }
    p->path = s + (p->domain_n ? fn + 1 : 0);
    p->path_n = repo_end - (size_t)(p->path - s);
    for (const char *c = p->path, *end = p->path + p->path_n; c <= end;) {
        const char *next = memchr(c, '/', (size_t)(end - c));
        size_t cn = next ? (size_t)(next - c) : (size_t)(end - c);
        if (!path_component_ok(c, cn)) {
            for (size_t i = 0; i < p->path_n; i++)
                if (p->path[i] >= 'A' && p->path[i] <= 'Z')
                    return ref_error(s, err, "repository name must be lowercase");
            return ref_error(s, err,
                             "bad repository name \"%.*s\" (lowercase letters and digits joined "
                             "by \".\", \"_\", \"__\" or \"-\", components split by \"/\")",
                             (int)p->path_n, p->path);
        }
        c += cn + 1;
    }
    return 0;
}

/* ret_bare: neither tag nor digest was written. */
static int ref_parse(const char *s, struct mk_ref **ret, bool *ret_bare, struct mk_error **err)
{
    struct ref_parts p;
    if (ref_split(s, &p, err) < 0)
        return -1;
    struct mk_ref *r = mk_xcalloc(1, sizeof(*r));
    r->domain = p.domain_n ? mk_xstrndup(s, p.domain_n) : mk_xstrdup("docker.io");
    if (strcmp(r->domain, "index.docker.io") == 0) {
        free(r->domain);
        r->domain = mk_xstrdup("docker.io");
    }
    bool library = strcmp(r->domain, "docker.io") == 0 && !memchr(p.path, '/', p.path_n);
    r->path = mk_xasprintf("%s%.*s", library ? "library/" : "", (int)p.path_n, p.path);
    if (strlen(r->domain) + 1 + strlen(r->path) > MK_REF_NAME_MAX) {
        mk_ref_free(r);
        return ref_error(s, err, "repository name must not be more than %d characters",
                         MK_REF_NAME_MAX);
    }
    r->tag = p.tag ? mk_xstrndup(p.tag, p.tag_n) : (p.digest ? NULL : mk_xstrdup("latest"));
    r->digest = p.digest ? mk_xstrdup(p.digest) : NULL;
    *ret = r;
    *ret_bare = !p.tag && !p.digest;
    return 0;
}

int mk_ref_parse(const char *s, struct mk_ref **ret, struct mk_error **err)
{
    bool bare;
    return ref_parse(s, ret, &bare, err);
}

void mk_ref_free(struct mk_ref *ref)
{
    if (!ref)
        return;
    free(ref->domain);
    free(ref->path);
    free(ref->tag);
    free(ref->digest);
    free(ref);
}

char *mk_ref_qualified(const struct mk_ref *ref)
{
    return mk_xasprintf("%s/%s%s%s%s%s", ref->domain, ref->path, ref->tag ? ":" : "",
                        ref->tag ? ref->tag : "", ref->digest ? "@" : "",
                        ref->digest ? ref->digest : "");
}

char *mk_ref_familiar(const struct mk_ref *ref)
{
    bool hub = strcmp(ref->domain, "docker.io") == 0;
    const char *path = ref->path;
    if (hub && mk_str_has_prefix(path, "library/") && !strchr(path + 8, '/'))
        path += 8;
    return mk_xasprintf("%s%s%s%s%s%s%s", hub ? "" : ref->domain, hub ? "" : "/", path,
                        ref->tag ? ":" : "", ref->tag ? ref->tag : "", ref->digest ? "@" : "",
                        ref->digest ? ref->digest : "");
}

char *mk_ref_local_name(const char *s, struct mk_error **err)
{
    struct mk_ref *r = NULL;
    bool bare;
    if (ref_parse(s, &r, &bare, err) < 0)
        return NULL;
    mk_ref_free(r);
    return bare ? mk_xasprintf("%s:latest", s) : mk_xstrdup(s);
}

const char *mk_ref_registry_host(const char *domain)
{
    return strcmp(domain, "docker.io") == 0 ? "registry-1.docker.io" : domain;
}

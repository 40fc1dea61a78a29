/* common/platform.c - parsing and containerd's normalization of platforms. */
#include <stdio.h>
#include <string.h>

#include "common/platform.h"
#include "common/util.h"

/* OCI/Go names for what uname and other tools call the architectures. */
static const char *const arch_alias[][2] = {
    {"x86_64", "amd64"}, {"x86-64", "amd64"}, {"aarch64", "arm64"}, {"armhf", "arm"},
    {"armel", "arm"},    {"i386", "386"},     {"i686", "386"},      {"ppc64el", "ppc64le"},
};

/* Go's GOOS values: a lone word that is one of these names no architecture. containerd would
 * read it as that OS on the host's architecture; the registry client always refused it, so
 * it stays refused rather than a pull of whatever the host is. */
static const char *const known_os[] = {
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd",    "illumos", "ios",
    "js",  "linux",   "netbsd", "openbsd",   "plan9",   "solaris", "wasip1",  "windows",
};

const char *mk_host_arch(void)
{
#if defined(__x86_64__)
    return "amd64";
#elif defined(__aarch64__)
    return "arm64";
#elif defined(__arm__)
    return "arm";
#elif defined(__i386__)
    return "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return "ppc64le";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#else
    return "unknown";
#endif
}

static void normalize(struct mk_platform *p)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(arch_alias); i++)
        if (strcmp(p->arch, arch_alias[i][0]) == 0)
            snprintf(p->arch, sizeof(p->arch), "%s", arch_alias[i][1]);
    if (strcmp(p->arch, "arm64") == 0 && strcmp(p->variant, "v8") == 0)
        p->variant[0] = '\0';
    if (strcmp(p->arch, "arm") == 0 && !p->variant[0])
        snprintf(p->variant, sizeof(p->variant), "v7");
}

void mk_platform_set(struct mk_platform *ret, const char *os, const char *arch, const char *variant)
{
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->os, sizeof(ret->os), "%s", os);
    snprintf(ret->arch, sizeof(ret->arch), "%s", arch);
    snprintf(ret->variant, sizeof(ret->variant), "%s", variant ? variant : "");
    normalize(ret);
}

void mk_platform_host(struct mk_platform *ret)
{
    mk_platform_set(ret, "linux", mk_host_arch(), NULL);
}

static bool word_ok(const char *s, size_t n)
{
    if (n == 0 || n >= MK_PLATFORM_PART_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool is_known_os(const char *s, size_t n)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(known_os); i++)
        if (strlen(known_os[i]) == n && memcmp(known_os[i], s, n) == 0)
            return true;
    return false;
}

int mk_platform_parse(const char *s, struct mk_platform *ret, struct mk_error **err)
{
    if (!s || !*s) {
        mk_platform_host(ret);
        return 0;
    }
    char part[3][MK_PLATFORM_PART_MAX];
    size_t n = 0;
    for (const char *q = s;; n++) {
        size_t len = strcspn(q, "/");
        if (n == 3 || !word_ok(q, len) || (!q[len] && n == 0 && is_known_os(q, len)))
            return mk_error_set(err, MK_ERR_USAGE, 0,
                                "invalid platform \"%s\" (expected OS/ARCH[/VARIANT], e.g. "
                                "linux/arm64)",
                                s);
        snprintf(part[n], sizeof(part[n]), "%.*s", (int)len, q);
        if (!q[len]) {
            n++;
            break;
        }
        q += len + 1;
    }
    if (n == 1)
        mk_platform_set(ret, "linux", part[0], NULL);
    else
        mk_platform_set(ret, part[0], part[1], n == 3 ? part[2] : NULL);
    return 0;
}

void mk_platform_format(const struct mk_platform *p, char out[MK_PLATFORM_MAX])
{
    snprintf(out, MK_PLATFORM_MAX, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "",
             p->variant);
}

bool mk_platform_equal(const struct mk_platform *a, const struct mk_platform *b)
{
    return strcmp(a->os, b->os) == 0 && strcmp(a->arch, b->arch) == 0 &&
           strcmp(a->variant, b->variant) == 0;
}

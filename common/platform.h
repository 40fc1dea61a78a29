/* common/platform.h - image platforms: "os/arch[/variant]" as OCI and containerd name them.
 *
 * The one parser and normalizer of platforms, shared by the store (which platform an image
 * or an index entry is), the registry client (which entry of an index to pull) and the
 * builder (--platform, FROM --platform). Normalization is containerd's platforms.Normalize:
 * x86_64 -> amd64, aarch64 -> arm64, arm64's default variant v8 is dropped, arm without one
 * is v7. A single word is an architecture on linux, as BuildKit reads "--platform arm64"; one
 * that names an OS ("linux") is refused.
 */
#ifndef MK_COMMON_PLATFORM_H
#define MK_COMMON_PLATFORM_H

#include <stdbool.h>

#include "common/error.h"

/* "os/arch/variant" and each of its parts fit in these. */
#define MK_PLATFORM_PART_MAX 32
#define MK_PLATFORM_MAX (3 * MK_PLATFORM_PART_MAX)

struct mk_platform {
    char os[MK_PLATFORM_PART_MAX];
    char arch[MK_PLATFORM_PART_MAX];    /* OCI/Go naming: amd64, arm64, arm, 386, ... */
    char variant[MK_PLATFORM_PART_MAX]; /* "" for none */
};

/* "os/arch[/variant]" or "arch"; NULL or "" is the host's. Each part is
 * [a-z0-9_-]. Normalized. MK_ERR_USAGE, naming s, for anything else. */
int mk_platform_parse(const char *s, struct mk_platform *ret, struct mk_error **err);
/* linux/<host arch> (arm is arm/v7). */
void mk_platform_host(struct mk_platform *ret);
/* Host architecture in OCI/Go naming: amd64, arm64, ... ("unknown" elsewhere). */
const char *mk_host_arch(void);
/* A platform from the strings of a config or an index entry (variant may be NULL; parts too
 * long are cut), normalized. */
void mk_platform_set(struct mk_platform *ret, const char *os, const char *arch,
                     const char *variant);
/* "linux/arm64", "linux/arm/v7". */
void mk_platform_format(const struct mk_platform *p, char out[MK_PLATFORM_MAX]);
bool mk_platform_equal(const struct mk_platform *a, const struct mk_platform *b);

#endif

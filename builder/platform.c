/* builder/platform.c - building for other platforms: whether this host can run a platform's
 * programs (natively or through QEMU user emulation registered in binfmt_misc), and one build
 * per platform joined into an image index.
 *
 * Emulation needs nothing from mkimg: with a binfmt_misc handler registered with the F flag
 * the kernel opens the interpreter (qemu-aarch64 etc.) at registration time, so exec of a
 * foreign binary works inside RUN's namespaces and chroot, where the interpreter's path does
 * not exist. qemu-user is an ordinary x86-64 process there, so RUN's seccomp filter applies
 * to it as to anything else. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

#define BINFMT_DIR "/proc/sys/fs/binfmt_misc"

/* QEMU's names for the OCI architectures it emulates. */
static const char *const qemu_arch[][2] = {
    {"amd64", "x86_64"},    {"arm64", "aarch64"},     {"arm", "arm"},
    {"386", "i386"},        {"ppc64le", "ppc64le"},   {"s390x", "s390x"},
    {"riscv64", "riscv64"}, {"mips64le", "mips64el"}, {"loong64", "loongarch64"},
};

/* What /proc/sys/fs/binfmt_misc/NAME says: enabled, and with the F flag. */
static void binfmt_state(const char *name, bool *ret_found, bool *ret_enabled, bool *ret_fix)
{
    *ret_found = *ret_enabled = *ret_fix = false;
    _cleanup_free_ char *path = mk_xasprintf("%s/%s", BINFMT_DIR, name);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(AT_FDCWD, path, 1 << 16, &data, &len, NULL) < 0)
        return;
    *ret_found = true;
    *ret_enabled = mk_str_has_prefix(data, "enabled");
    const char *f = strstr(data, "\nflags: ");
    if (f) {
        f += 8;
        size_t n = strcspn(f, "\n");
        *ret_fix = memchr(f, 'F', n) != NULL;
    }
}

int builder_platform_check_run(const struct mk_platform *p, struct mk_error **err)
{
    struct mk_platform host;
    layerstore_platform_host(&host);
    char want[MK_PLATFORM_MAX];
    layerstore_platform_format(p, want);
    if (strcmp(p->os, "linux") != 0)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, 0, "RUN for %s: only linux programs can run",
                            want);
    if (strcmp(p->arch, host.arch) == 0)
        return 0;
    const char *q = NULL;
    for (size_t i = 0; i < MK_ARRAY_SIZE(qemu_arch); i++)
        if (strcmp(qemu_arch[i][0], p->arch) == 0)
            q = qemu_arch[i][1];
    if (!q)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                            "RUN for %s: no QEMU user emulation is known for architecture \"%s\"",
                            want, p->arch);
    _cleanup_free_ char *name = mk_xasprintf("qemu-%s", q);
    bool found, enabled, fix;
    binfmt_state(name, &found, &enabled, &fix);
    const char *why = !found     ? "is not registered in " BINFMT_DIR
                      : !enabled ? "is disabled"
                      : !fix     ? "lacks the F flag (it cannot work inside a container)"
                                 : NULL;
    if (!why)
        return 0;
    return mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                        "RUN for %s needs QEMU user emulation, but binfmt_misc handler \"%s\" "
                        "%s (install qemu-user-static and binfmt-support)",
                        want, name, why);
}

MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)

int builder_build_platforms(struct mk_store *store, const struct mk_build_opts *opts,
                            const struct mk_strv *platforms, struct mk_image ***ret_images,
                            char ret_index[MK_DIGEST_SIZE], struct mk_error **err)
{
    size_t n = platforms->n;
    if (n == 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "--platform: no platform given");
    struct mk_platform_entry *entries = mk_xcalloc(n, sizeof(*entries));
    struct mk_image **imgs = mk_xcalloc(n + 1, sizeof(*imgs));
    struct mk_build_opts one = *opts;
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        r = layerstore_platform_parse(platforms->v[i], &entries[i].platform, err);
        for (size_t k = 0; r == 0 && k < i; k++)
            if (layerstore_platform_equal(&entries[i].platform, &entries[k].platform))
                r = mk_error_set(err, MK_ERR_USAGE, 0, "platform \"%s\" given twice",
                                 platforms->v[i]);
        if (r < 0)
            mk_error_set_where(err, "--platform");
    }
    /* Every platform's stages are checked (emulation present where RUN needs it) before
     * the first build starts. */
    one.plan_only = true;
    for (size_t i = 0; r == 0 && i < n; i++) {
        one.platform = platforms->v[i];
        r = builder_build(store, &one, NULL, err);
    }
    one.plan_only = false;
    /* The per-platform images stay out of index.json when the index gets a name. */
    memset(&one.tags, 0, sizeof(one.tags));
    one.no_tag = opts->tags.n > 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        one.platform = platforms->v[i];
        r = builder_build(store, &one, &imgs[i], err);
        if (r == 0) {
            layerstore_image_platform_entry(imgs[i], &entries[i]);
        } else {
            char p[MK_PLATFORM_MAX];
            layerstore_platform_format(&entries[i].platform, p);
            mk_error_wrap(err, "building for %s", p);
        }
    }
    char index[MK_DIGEST_SIZE] = "";
    if (r == 0 && opts->tags.n == 0)
        r = layerstore_index_write(store, entries, n, index, NULL, err);
    for (size_t i = 0; r == 0 && i < opts->tags.n; i++) {
        r = layerstore_tag_entries(store, entries, n, opts->tags.v[i], index, err);
        if (r < 0) {
            for (size_t k = 0; k < i; k++)
                layerstore_untag(store, opts->tags.v[k], NULL);
            mk_error_set_where(err, opts->tags.v[i]);
        }
    }
    free(entries);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            layerstore_image_free(imgs[i]);
        free(imgs);
        return -1;
    }
    *ret_images = imgs;
    memcpy(ret_index, index, MK_DIGEST_SIZE);
    return 0;
}

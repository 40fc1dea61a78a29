/* Replays the layer-tar fuzz corpus (tests/fuzz/corpus/layer-tar, found through $MKIMG_TOP)
 * through ls_tar_apply with the fuzz target's settings, next to a canary directory. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"
#include "tap.h"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    const char *top = getenv("MKIMG_TOP");
    char *corpus = mk_xasprintf("%s/tests/fuzz/corpus/layer-tar", top && *top ? top : ".");
    const char *tmp = tap_tmpdir();
    DIR *d = opendir(corpus);
    if (!d) {
        printf("# no corpus at %s (set MKIMG_TOP)\n", corpus);
        return 1;
    }
    struct mk_strv names = MK_STRV_INIT;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.')
            mk_strv_push(&names, de->d_name);
    closedir(d);
    if (names.n)
        qsort(names.v, names.n, sizeof(char *), cmp);
    tap_ok(names.n > 0, "corpus has seeds");
    mkdir("canary", 0755);
    int applied = 0;
    for (size_t i = 0; i < names.n; i++) {
        char *path = mk_xasprintf("%s/%s", corpus, names.v[i]);
        char *root = mk_xasprintf("r%zu", i);
        int in = open(path, O_RDONLY | O_CLOEXEC);
        for (int rootless = 0; rootless < 2; rootless++) {
            mkdir(root, 0755);
            int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            lseek(in, 0, SEEK_SET);
            struct ls_apply_opts opts = {
                .rootless = rootless, .max_entries = 5000, .max_bytes = 32u << 20};
            char digest[MK_DIGEST_SIZE];
            uint64_t n = 0;
            struct mk_error *err = NULL;
            int r = ls_tar_apply(in, dfd, &opts, -1, digest, &n, &err);
            tap_ok(in >= 0 && dfd >= 0 && (r < 0) == (err != NULL), "%s%s: %s", names.v[i],
                   rootless ? " (rootless)" : "", r == 0 ? digest : err->msg);
            applied += r == 0;
            mk_error_free(err);
            close(dfd);
            mk_rm_rf(root, NULL);
        }
        close(in);
        free(root);
        free(path);
    }
    tap_ok(applied > 0, "some seeds apply cleanly");
    /* Only the canary dir may remain in the temp dir, and it must be empty. */
    d = opendir(".");
    int extra = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        extra +=
            strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "canary");
    if (d)
        closedir(d);
    d = opendir("canary");
    int in_canary = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        in_canary += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    if (d)
        closedir(d);
    tap_ok(extra == 0 && in_canary == 0, "nothing was written outside the roots");
    mk_strv_release(&names);
    free(corpus);
    mk_rm_rf(tmp, NULL);
    return tap_done();
}

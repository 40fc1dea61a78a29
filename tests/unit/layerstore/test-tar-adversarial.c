/* Layer tars from untrusted sources: escapes, planted symlinks, hostile hardlinks and
 * whiteouts, rootless restrictions, caps, and the replace rules, each applied next to a
 * canary directory that must stay untouched. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"
#include "tap.h"

struct ent {
    char type; /* f file, d dir, l symlink, h hardlink, c char device, p fifo */
    const char *path;
    const char *link; /* symlink or hardlink target; for files the xattr "name=value" */
    const char *data;
    mode_t mode;
};

static void make_tar(const char *out, const struct ent *es, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax(a);
    archive_write_open_filename(a, out);
    for (size_t i = 0; i < n; i++) {
        const struct ent *e = &es[i];
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e->path);
        archive_entry_set_mtime(ae, 1500000000, 0);
        archive_entry_set_perm(ae, e->mode ? e->mode : 0644);
        switch (e->type) {
        case 'd':
            archive_entry_set_filetype(ae, AE_IFDIR);
            break;
        case 'l':
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e->link);
            break;
        case 'h':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e->link);
            break;
        case 'c':
            archive_entry_set_filetype(ae, AE_IFCHR);
            archive_entry_set_rdev(ae, makedev(1, 3));
            break;
        case 'p':
            archive_entry_set_filetype(ae, AE_IFIFO);
            break;
        default:
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_size(ae, e->data ? (int64_t)strlen(e->data) : 0);
            if (e->link) {
                const char *eq = strchr(e->link, '=');
                char *name = mk_xstrndup(e->link, (size_t)(eq - e->link));
                archive_entry_xattr_add_entry(ae, name, eq + 1, strlen(eq + 1));
                free(name);
            }
        }
        archive_write_header(a, ae);
        if (e->type == 'f' && e->data)
            archive_write_data(a, e->data, strlen(e->data));
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static int case_n;
static char croot[64], ccanary[128];

/* Builds the tar, applies it into a fresh caseN/root next to caseN/canary/victim. */
static int apply_ents(const struct ent *es, size_t n, const struct ls_apply_opts *opts,
                      struct mk_error **err)
{
    char dir[32], tar[64];
    snprintf(dir, sizeof(dir), "case%d", ++case_n);
    snprintf(croot, sizeof(croot), "%s/root", dir);
    snprintf(ccanary, sizeof(ccanary), "%s/canary", dir);
    snprintf(tar, sizeof(tar), "%s/layer.tar", dir);
    mkdir(dir, 0755);
    mkdir(croot, 0755);
    mkdir(ccanary, 0755);
    char victim[160];
    snprintf(victim, sizeof(victim), "%s/victim", ccanary);
    mk_write_all(open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), "safe", 4, NULL);
    make_tar(tar, es, n);
    int rfd = open(croot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ifd = open(tar, O_RDONLY | O_CLOEXEC);
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
    int r = ls_tar_apply(ifd, rfd, opts, -1, digest, &size, err);
    close(rfd);
    close(ifd);
    return r;
}

/* The canary directory holds exactly "victim", a single-link regular file saying "safe". */
static bool canary_intact(void)
{
    DIR *d = opendir(ccanary);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n += strcmp(de->d_name, "victim") == 0 ? 1 : 100;
    if (d)
        closedir(d);
    char path[160], buf[16] = "";
    snprintf(path, sizeof(path), "%s/victim", ccanary);
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    char x[4];
    return n == 1 && lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && got == 4 &&
           strcmp(buf, "safe") == 0 && getxattr(ccanary, "user.overlay.opaque", x, sizeof(x)) < 0;
}

static const char *in_root(const char *rel)
{
    static char p[5000];
    snprintf(p, sizeof(p), "%s/%s", croot, rel);
    return p;
}

static bool is_type(const char *rel, mode_t type)
{
    struct stat st;
    return lstat(in_root(rel), &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static mode_t mode_of(const char *rel)
{
    struct stat st;
    return lstat(in_root(rel), &st) == 0 ? st.st_mode & 07777 : 0xffff;
}

#define APPLY(opts, ...)                                                                           \
    ({                                                                                             \
        const struct ent _es[] = {__VA_ARGS__};                                                    \
        mk_error_free(err);                                                                        \
        err = NULL;                                                                                \
        apply_ents(_es, MK_ARRAY_SIZE(_es), (opts), &err);                                         \
    })

static bool failed_with(int r, const struct mk_error *err, int code, const char *needle)
{
    if (r == 0 || !err) {
        tap_diag("unexpected success");
        return false;
    }
    tap_diag("error: %s", err->msg);
    return err->code == code && (!needle || strstr(err->msg, needle));
}

/* True when the uid map is not the initial namespace's identity map. */
static bool in_user_namespace(void)
{
    char buf[128] = "";
    FILE *f = fopen("/proc/self/uid_map", "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long a = 0, b = 0, c = 0;
    return sscanf(buf, "%lu %lu %lu", &a, &b, &c) != 3 || a != 0 || b != 0 || c != 4294967295UL;
}

/* Paths, links and whiteouts that try to leave the root. */
static void test_escapes(void)
{
    struct mk_error *err = NULL;
    struct ls_apply_opts root = {0};
    int r;
    r = APPLY(&root, {'f', "../canary/x", NULL, "pwned", 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, "leaves the layer root") && canary_intact(),
           "\"../canary/x\" is refused");
    r = APPLY(&root, {'d', "a/", NULL, NULL, 0755}, {'f', "a/../../canary/x", NULL, "pwned", 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, NULL) && canary_intact(),
           "\"a/../../canary/x\" is refused");
    r = APPLY(&root, {'f', "/tmp/mkimg-h4-abs/x", NULL, "abs", 0});
    tap_ok(r == 0 && is_type("tmp/mkimg-h4-abs/x", S_IFREG) &&
               access("/tmp/mkimg-h4-abs", F_OK) < 0,
           "absolute path lands inside the root");
    r = APPLY(&root, {'l', "a", "/", NULL, 0777}, {'f', "a/x", NULL, "x", 0});
    tap_ok(r == 0 && is_type("x", S_IFREG) && is_type("a", S_IFLNK) && canary_intact(),
           "symlink \"a -> /\" then \"a/x\" stays in the root");
    r = APPLY(&root, {'l', "a", "../../../../../../..", NULL, 0777}, {'f', "a/x", NULL, "x", 0});
    tap_ok(r == 0 && is_type("x", S_IFREG) && canary_intact(),
           "symlink \"a -> ../../..\" then \"a/x\" stays in the root");
    r = APPLY(&root, {'l', "c", "../canary", NULL, 0777}, {'f', "c/victim", NULL, "pwned", 0});
    tap_ok(canary_intact(), "symlink to the canary then \"c/victim\": canary untouched (%s)",
           r == 0 ? "applied" : "refused");
    r = APPLY(&root, {'h', "h", "../canary/victim", NULL, 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, NULL) && canary_intact(),
           "hardlink to \"../canary/victim\" is refused");
    r = APPLY(&root, {'h', "h", "/etc/passwd", NULL, 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, "hardlink") && canary_intact(),
           "hardlink to an absolute path resolves inside the root (missing there)");
    r = APPLY(&root, {'l', "s", "../canary/victim", NULL, 0777}, {'h', "h", "s", NULL, 0},
              {'f', "s", NULL, "pwned", 0});
    tap_ok(r == 0 && is_type("h", S_IFLNK) && is_type("s", S_IFREG) && canary_intact(),
           "hardlink to a symlink leaving the root links the symlink; a file replaces it");
    r = APPLY(&root, {'f', "../.wh.victim", NULL, NULL, 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, NULL) && canary_intact(),
           "whiteout \"../.wh.victim\" is refused");
    r = APPLY(&root, {'l', "c", "../canary", NULL, 0777}, {'f', "c/.wh.victim", NULL, NULL, 0},
              {'f', "c/.wh..wh..opq", NULL, NULL, 0});
    tap_ok(canary_intact(), "whiteouts through a symlink to the canary: untouched (%s)",
           r == 0 ? "applied" : "refused");
    mk_error_free(err);
}

/* Rootless: no devices, no setuid; as root they are kept. */
static void test_rootless(void)
{
    struct mk_error *err = NULL;
    struct ls_apply_opts root = {0};
    struct ls_apply_opts rootless = {.rootless = true};
    int r;
    r = APPLY(&rootless, {'c', "dev/null", NULL, NULL, 0666}, {'f', "suid", NULL, "s", 04755},
              {'f', "sgid", NULL, "s", 02755}, {'f', ".wh.gone", NULL, NULL, 0},
              {'p', "fifo", NULL, NULL, 0600});
    tap_ok(r == 0, "rootless apply");
    tap_ok(access(in_root("dev/null"), F_OK) < 0, "rootless: device node skipped");
    tap_is_int(mode_of("suid"), 0755, "rootless: setuid dropped");
    tap_is_int(mode_of("sgid"), 0755, "rootless: setgid dropped");
    struct stat st;
    tap_ok(lstat(in_root("gone"), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == 0,
           "rootless: whiteouts still made");
    tap_ok(is_type("fifo", S_IFIFO), "rootless: fifos made");
    if (in_user_namespace()) {
        /* Run rootless by t0290: mapped root cannot make device nodes. */
        tap_skip("as root: devices and setuid kept (in a user namespace)");
    } else {
        r = APPLY(&root, {'c', "dev/null", NULL, NULL, 0666}, {'f', "suid", NULL, "s", 04755});
        tap_ok(r == 0 && is_type("dev/null", S_IFCHR) && mode_of("suid") == 04755,
               "as root: devices and setuid kept");
    }
    mk_error_free(err);
}

/* Entry, byte and path-length caps. */
static void test_caps(void)
{
    struct mk_error *err = NULL;
    struct ls_apply_opts root = {0};
    int r;
    struct ls_apply_opts few = {.max_entries = 10};
    r = APPLY(&few, {'f', "1", NULL, NULL, 0}, {'f', "2", NULL, NULL, 0}, {'f', "3", NULL, NULL, 0},
              {'f', "4", NULL, NULL, 0}, {'f', "5", NULL, NULL, 0}, {'f', "6", NULL, NULL, 0},
              {'f', "7", NULL, NULL, 0}, {'f', "8", NULL, NULL, 0}, {'f', "9", NULL, NULL, 0},
              {'f', "10", NULL, NULL, 0}, {'f', "11", NULL, NULL, 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, "more than 10 entries"), "entry cap");
    r = APPLY(&few, {'f', "1", NULL, NULL, 0}, {'f', "2", NULL, NULL, 0}, {'f', "3", NULL, NULL, 0},
              {'f', "4", NULL, NULL, 0}, {'f', "5", NULL, NULL, 0}, {'f', "6", NULL, NULL, 0},
              {'f', "7", NULL, NULL, 0}, {'f', "8", NULL, NULL, 0}, {'f', "9", NULL, NULL, 0},
              {'f', "10", NULL, NULL, 0});
    tap_ok(r == 0, "entry cap: exactly the cap is fine");
    char *big = mk_xmalloc(20001);
    memset(big, 'x', 20000);
    big[20000] = '\0';
    struct ls_apply_opts small = {.max_bytes = 8192};
    r = APPLY(&small, {'f', "big", NULL, big, 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, "larger than 8192 bytes"), "byte cap");
    char *longp = mk_xmalloc(5000);
    for (int i = 0; i < 4998; i += 2)
        memcpy(longp + i, "a/", 2);
    memcpy(longp + 4998, "f", 2);
    r = APPLY(&root, {'f', longp, NULL, "x", 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, "longer than 4096"), "path length cap");
    free(longp);
    free(big);
    mk_error_free(err);
}

/* Replace rules, whiteouts, opaque markers, xattrs, hardlinks. */
static void test_replace(void)
{
    struct mk_error *err = NULL;
    struct ls_apply_opts root = {0};
    int r;
    r = APPLY(&root, {'f', "f", NULL, "file", 0}, {'d', "f/", NULL, NULL, 0750},
              {'f', "f/g", NULL, "g", 0}, {'d', "d/", NULL, NULL, 0755}, {'f', "d/x", NULL, "x", 0},
              {'f', "d", NULL, "now a file", 0}, {'d', "k/", NULL, NULL, 0755},
              {'f', "k/x", NULL, "x", 0}, {'d', "k/", NULL, NULL, 0700},
              {'l', "a", "/", NULL, 0777}, {'d', "a/", NULL, NULL, 0755},
              {'f', "a/y", NULL, "y", 0});
    tap_ok(r == 0 && is_type("f", S_IFDIR) && is_type("f/g", S_IFREG) && is_type("d", S_IFREG) &&
               is_type("k/x", S_IFREG) && mode_of("k") == 0700 && is_type("a", S_IFDIR) &&
               is_type("a/y", S_IFREG) && access(in_root("y"), F_OK) < 0,
           "replace rules: entries replace non-directories, dir over dir keeps contents");
    r = APPLY(&root, {'f', "o/.wh..wh..opq", NULL, NULL, 0}, {'d', "o/", NULL, NULL, 0711},
              {'f', ".wh.w", NULL, NULL, 0}, {'f', "w", NULL, "real", 0},
              {'f', "v", NULL, "real", 0}, {'f', ".wh.v", NULL, NULL, 0},
              {'f', ".wh..wh.plnk", NULL, NULL, 0});
    char x[4] = "";
    tap_ok(r == 0 && getxattr(in_root("o"), "user.overlay.opaque", x, sizeof(x)) == 1 &&
               mode_of("o") == 0711,
           "opaque marker before its directory");
    tap_ok(is_type("w", S_IFREG) && is_type("v", S_IFREG),
           "whiteout and real entry of one name in one layer: the real entry wins");
    tap_ok(access(in_root(".wh..wh.plnk"), F_OK) < 0 && access(in_root(".wh.plnk"), F_OK) < 0,
           "aufs bookkeeping entries are dropped");
    r = APPLY(&root, {'d', "ro/", NULL, NULL, 0555}, {'f', "ro/f", NULL, "f", 0444});
    tap_ok(r == 0 && is_type("ro/f", S_IFREG) && mode_of("ro") == 0555, "read-only directory");
    r = APPLY(&root, {'f', "x", "trusted.overlay.redirect=/etc", "x", 0},
              {'f', "y", "user.overlay.opaque=y", "y", 0}, {'f', "z", "user.ok=1", "z", 0});
    tap_ok(r == 0 && getxattr(in_root("x"), "trusted.overlay.redirect", x, sizeof(x)) < 0 &&
               getxattr(in_root("y"), "user.overlay.opaque", x, sizeof(x)) < 0 &&
               getxattr(in_root("z"), "user.ok", x, sizeof(x)) == 1,
           "overlay xattrs from the tar are never restored, others are");
    r = APPLY(&root, {'d', "dir/", NULL, NULL, 0755}, {'h', "hd", "dir", NULL, 0});
    tap_ok(failed_with(r, err, MK_ERR_INVALID, "hardlink"), "hardlink to a directory is refused");
    mk_error_free(err);
}

/* A sparse entry: a few bytes in the tar, 64 MiB on disk. */
static void test_sparse(void)
{
    struct mk_error *err = NULL;
    int r;
    {
        struct archive *a = archive_write_new();
        archive_write_set_format_pax(a);
        archive_write_open_filename(a, "sparse.tar");
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, "sparse");
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, 0644);
        archive_entry_set_size(ae, 64 << 20);
        archive_entry_sparse_add_entry(ae, (64 << 20) - 512, 512);
        archive_write_header(a, ae);
        char block[512] = "end";
        archive_write_data(a, block, sizeof(block));
        archive_entry_free(ae);
        archive_write_close(a);
        archive_write_free(a);
        struct stat sst;
        stat("sparse.tar", &sst);
        mkdir("sp", 0755);
        int sfd = open("sp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int tfd = open("sparse.tar", O_RDONLY | O_CLOEXEC);
        struct ls_apply_opts mib = {.max_bytes = 1 << 20};
        char sd[MK_DIGEST_SIZE];
        uint64_t ss;
        mk_error_free(err);
        err = NULL;
        r = ls_tar_apply(tfd, sfd, &mib, -1, sd, &ss, &err);
        tap_ok(sst.st_size < 100000 && failed_with(r, err, MK_ERR_INVALID, "unpacks to more than"),
               "byte cap also bounds what sparse entries unpack to");
        close(sfd);
        close(tfd);
    }
    mk_error_free(err);
}

/* Garbage and non-tar input. */
static void test_garbage(void)
{
    struct mk_error *err = NULL;
    struct ls_apply_opts root = {0};
    int r;
    mk_write_all(open("garbage", O_WRONLY | O_CREAT | O_CLOEXEC, 0644),
                 "this is not a tar archive at all, just some words....", 50, NULL);
    int ifd = open("garbage", O_RDONLY | O_CLOEXEC);
    mkdir("g", 0755);
    int gfd = open("g", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
    mk_error_free(err);
    err = NULL;
    r = ls_tar_apply(ifd, gfd, &root, -1, digest, &size, &err);
    tap_ok(failed_with(r, err, MK_ERR_PARSE, NULL), "garbage input: parse error");
    close(ifd);
    close(gfd);
    mk_error_free(err);
}

int main(void)
{
    const char *tmp = tap_tmpdir();
    if (geteuid() != 0) {
        printf("# needs root for whiteout devices and owners\n");
        return 77;
    }
    test_escapes();
    test_rootless();
    test_caps();
    test_replace();
    test_sparse();
    test_garbage();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "%s", tmp);
    mk_rm_rf(cmd, NULL);
    return tap_done();
}

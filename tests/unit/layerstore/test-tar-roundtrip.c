/* Layer tars: deterministic writing, write -> apply round trips, whiteout and opaque
 * conversion both ways, compressed input, and independent readers (tar, sha256sum). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"
#include "tap.h"

/* Runs a shell command line; returns its exit status (or -1). */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = mk_xvasprintf(fmt, ap);
    va_end(ap);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    free(cmd);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *path)
{
    char *s = NULL;
    if (mk_read_file_at(AT_FDCWD, path, 1 << 20, &s, NULL, NULL) < 0)
        return mk_xstrdup("");
    return s;
}

static int write_layer(const char *dir, const char *out, char digest[MK_DIGEST_SIZE],
                       uint64_t *size)
{
    struct mk_error *err = NULL;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int r = ls_tar_write_dir(dfd, ofd, MK_EPOCH_NONE, digest, size, &err);
    if (r < 0)
        tap_diag("write %s: %s", dir, err->msg);
    mk_error_free(err);
    close(dfd);
    close(ofd);
    return r;
}

static int apply_layer(const char *in, const char *dir, int tee_fd, char digest[MK_DIGEST_SIZE],
                       uint64_t *size, struct mk_error **err)
{
    mkdir(dir, 0755);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ifd = open(in, O_RDONLY | O_CLOEXEC);
    struct ls_apply_opts opts = {0};
    int r = ls_tar_apply(ifd, dfd, &opts, tee_fd, digest, size, err);
    close(dfd);
    close(ifd);
    return r;
}

/* sha256sum of a file as "sha256:<hex>". */
static char *sha256sum(const char *path)
{
    sh("sha256sum < '%s' | cut -c1-64 > sum.out", path);
    char *hex = slurp("sum.out");
    hex[strcspn(hex, "\n")] = '\0';
    char *d = mk_xasprintf("sha256:%s", hex);
    free(hex);
    return d;
}

static void set_mtime(const char *path, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 123456789}};
    utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static void make_tree(const char *d)
{
    char p[512];
#define P(rel) (snprintf(p, sizeof(p), "%s/%s", d, rel), p)
    mkdir(d, 0755);
    mkdir(P("etc"), 0755);
    sh("printf 'root:x:0:0::/root:/bin/sh\\n' > %s/etc/passwd", d);
    sh("head -c 300000 /dev/urandom > %s/etc/big", d);
    mkdir(P("ro"), 0755);
    sh("echo inside > %s/ro/file", d);
    chmod(P("ro"), 0555);
    mkdir(P("tmp"), 0755);
    chmod(P("tmp"), 01777);
    sh("echo suid > %s/suid && chmod 4755 %s/suid", d, d);
    sh("echo sgid > %s/sgid && chmod 2711 %s/sgid", d, d);
    sh("echo owned > %s/owned && chown 1234:5678 %s/owned", d, d);
    symlink("etc/passwd", P("link"));
    symlink("/nonexistent/abs", P("dangling"));
    lchown(P("link"), 42, 43);
    mkfifo(P("fifo"), 0640);
    mknod(P("null"), S_IFCHR | 0666, makedev(1, 3));
    mknod(P("loop9"), S_IFBLK | 0660, makedev(7, 9));
    sh("echo hard > %s/hard1 && ln %s/hard1 %s/hard2 && ln %s/hard1 %s/etc/hard3", d, d, d, d, d);
    setxattr(P("etc/passwd"), "user.comment", "hello", 5, 0);
    setxattr(P("etc/passwd"), "user.overlay.origin", "x", 1, 0);
    static const unsigned char cap[20] = {1, 0, 0, 2, 0, 4, 0, 0}; /* cap_net_bind_service */
    setxattr(P("suid"), "security.capability", cap, sizeof(cap), 0);
    /* Overlay upperdir conventions: a deleted file and a directory that was recreated. */
    mknod(P("gone"), S_IFCHR | 0, makedev(0, 0));
    mkdir(P("opq"), 0750);
    sh("echo new > %s/opq/new", d);
    setxattr(P("opq"), "trusted.overlay.opaque", "y", 1, 0);
    mknod(P("opq/.keep-me"), S_IFCHR | 0, makedev(0, 0));
    const char *all[] = {"etc/passwd",   "etc/big", "ro/file", "suid",  "sgid",  "owned", "link",
                         "dangling",     "fifo",    "null",    "loop9", "hard1", "gone",  "opq/new",
                         "opq/.keep-me", "opq",     "tmp",     "etc",   "ro"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(all); i++)
        set_mtime(P(all[i]), 1600000000 + (time_t)i * 1000);
#undef P
}

static bool same_xattr(const char *a, const char *b, const char *name)
{
    char va[256], vb[256];
    ssize_t na = lgetxattr(a, name, va, sizeof(va)), nb = lgetxattr(b, name, vb, sizeof(vb));
    return na >= 0 && na == nb && memcmp(va, vb, (size_t)na) == 0;
}

/* An upperdir written against its lowerdirs: what overlay copied up unchanged is left out,
 * with overlay's rules for whiteouts, opaque directories, hardlinks and xattrs. */
static void diff_tests(void)
{
    sh("mkdir -p lo1/a lo1/b lo1/c lo1/e lo2/b up && cd lo1 && echo x >a/file && "
       "ln -s file a/link && echo bx >b/x && echo cy >c/y && echo h >h1 && echo xa >xa && "
       "setfattr -n user.foo -v 1 xa && echo m >e/m && touch -d @1000 a/file e/m && "
       "touch -h -d @1000 a/link");
    /* lo2 above lo1: c is whited out, b is opaque (hides lo1's b/x). */
    mknod("lo2/c", S_IFCHR | 0, makedev(0, 0));
    setxattr("lo2/b", "user.overlay.opaque", "y", 1, 0);
    sh("cd up && cp -a ../lo1/a ../lo1/xa ../lo1/h1 . && mkdir b c && cp -a ../lo1/b/x b/ && "
       "cp -a ../lo1/c/y c/ && ln h1 h2 && setfattr -n user.foo -v 2 xa && mkdir d && "
       "cp -a ../lo1/e . && touch -d @2000 e/m && touch -d @0 a ../lo1/a");
    struct ls_lowers l = {mk_xcalloc(2, sizeof(int)), 2};
    l.fds[0] = open("lo2", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    l.fds[1] = open("lo1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dfd = open("up", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ofd = open("diff.tar", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char digest[MK_DIGEST_SIZE];
    uint64_t size = 0;
    struct mk_error *err = NULL;
    int r = ls_tar_write_diff(dfd, &l, ofd, MK_EPOCH_NONE, digest, &size, &err);
    if (r < 0)
        tap_diag("%s", err->msg);
    mk_error_free(err);
    close(dfd);
    close(ofd);
    ls_lowers_release(&l);
    sh("tar tf diff.tar 2>/dev/null | tr '\\n' ' ' > diff.names");
    char *names = slurp("diff.names");
    tap_is_str(names, "b/ b/x c/ c/y d/ e/ e/m h1 h2 xa ",
               "written: what an opaque dir or a whiteout hides, hardlinks, other xattrs, a new "
               "dir, an mtime change and its unchanged parent; not a/, a/file, a/link");
    free(names);
}

/* An independent reader's view of the layer l1.tar: GNU tar. */
static void check_gnu_tar_view(void)
{
    tap_is_int(sh("tar tvf l1.tar > list.txt 2>/dev/null"), 0, "GNU tar lists the layer");
    tap_is_int(sh("tar tf l1.tar | grep -q '^\\./\\|^/'"), 1, "no \"./\" or \"/\" prefixes");
    tap_is_int(sh("tar tf l1.tar | grep -qx 'etc/' && tar tf l1.tar | grep -qx 'etc/passwd'"), 0,
               "directories end with \"/\", files do not");
    tap_is_int(sh("grep -q '^-rwsr-xr-x 0/0 .* suid$' list.txt"), 0, "setuid mode kept");
    tap_is_int(sh("grep -q '^drwxrwxrwt 0/0 .* tmp/$' list.txt"), 0, "sticky directory kept");
    tap_is_int(sh("grep -q '^-rw-r--r-- 1234/5678 .* owned$' list.txt"), 0,
               "numeric owner, no user or group names");
    tap_is_int(sh("grep -q '^-rw-r--r-- 0/0 *5 .* etc/hard3$' list.txt && "
                  "grep -q '^hrw-r--r-- 0/0 .* hard1 link to etc/hard3$' list.txt && "
                  "grep -q '^hrw-r--r-- 0/0 .* hard2 link to etc/hard3$' list.txt"),
               0, "second and later hardlinks are link entries to the first path");
    tap_is_int(sh("grep -q '^crw-r--r-- 0/0 *1,3 .* null$' list.txt && "
                  "grep -q '^brw-r----- 0/0 *7,9 .* loop9$' list.txt && "
                  "grep -q '^prw-r----- .* fifo$' list.txt"),
               0, "devices and fifos");
    tap_is_int(sh("grep -q '^lrwxrwxrwx 42/43 .* link -> etc/passwd$' list.txt"), 0, "symlink");
    tap_is_int(sh("tar tf l1.tar | grep -qx '.wh.gone' && ! tar tf l1.tar | grep -qx gone"), 0,
               "a 0/0 char device becomes \".wh.NAME\"");
    tap_is_int(sh("tar tf l1.tar | grep -n . | grep -A1 ':opq/$' | grep -q ':opq/.wh..wh..opq$'"),
               0, "an opaque directory is followed by its \".wh..wh..opq\" entry");
    tap_is_int(sh("tar tf l1.tar | grep -n . | grep -A1 ':opq/.wh..wh..opq$' | "
                  "grep -q ':opq/.wh..keep-me$'"),
               0, "whiteouts come before their siblings");
    tap_is_int(sh("tar tvf l1.tar | grep '\\.wh\\.' | grep -vq '^---------- 0/0 *0 1970-01-01'"), 1,
               "whiteout entries: empty, mode 0, owner 0, mtime 0");
    tap_is_int(sh("grep -aq 'overlay' l1.tar"), 1, "no overlay xattr is written");
    tap_is_int(sh("grep -aq 'SCHILY.xattr.user.comment=hello' l1.tar && "
                  "grep -aq 'SCHILY.xattr.security.capability' l1.tar"),
               0, "xattrs incl. security.capability in PAX headers");
    tap_is_int(sh("grep -aqi 'atime\\|ctime\\|uname\\|gname' l1.tar"), 1,
               "no atime, ctime, uname or gname records");
    tap_is_int(sh("mkdir gnu && tar -C gnu -xf l1.tar 2>/dev/null && cmp gnu/etc/big src/etc/big"),
               0, "GNU tar extracts the content");
}

/* Pax headers only where an entry needs one: plain entries are bare ustar headers (each one
 * used to carry a "hdrcharset=BINARY" pax header, 1 KiB); names that are not ASCII, UTF-8 or
 * not, keep their bytes through write -> apply -> write. */
static void test_names(void)
{
    mkdir("plain", 0755);
    mkdir("plain/b", 0755);
    sh("printf hello > plain/a && printf x > plain/b/c");
    sh("touch -d @1600000000 plain/a plain/b/c plain/b");
    char d[MK_DIGEST_SIZE];
    uint64_t size = 0;
    tap_ok(write_layer("plain", "plain.tar", d, &size) == 0, "write a tree of plain entries");
    /* a, b/, b/c: three headers, two data blocks, the two end blocks. */
    tap_is_int(size, 7 * 512, "plain entries get no pax header");
    tap_is_int(sh("grep -aq 'hdrcharset' plain.tar"), 1, "no hdrcharset record in a plain tar");

    mkdir("names", 0755);
    const char *utf8 = "caf\xc3\xa9", *raw = "bin\xff\xfe";
    char p[64];
    snprintf(p, sizeof(p), "names/%s", utf8);
    sh("printf one > '%s'", p);
    snprintf(p, sizeof(p), "names/%s", raw);
    sh("printf two > '%s'", p);
    sh("touch -d @1600000000 names/*");
    char d1[MK_DIGEST_SIZE], d2[MK_DIGEST_SIZE], d3[MK_DIGEST_SIZE];
    uint64_t s1 = 0, s2 = 0;
    tap_ok(write_layer("names", "names.tar", d1, &s1) == 0, "write names that are not ASCII");
    /* Both files' ustar headers and data, their two pax headers with their data (one block
     * each), the two end blocks. */
    tap_is_int(s1, (2 + 2 + 2 * 2 + 2) * 512,
               "only the two entries with such names get a pax header");
    struct mk_error *err = NULL;
    tap_ok(apply_layer("names.tar", "names-out", -1, d2, &s2, &err) == 0, "apply it");
    mk_error_free(err);
    struct stat st;
    snprintf(p, sizeof(p), "names-out/%s", utf8);
    bool ok = lstat(p, &st) == 0 && st.st_size == 3;
    snprintf(p, sizeof(p), "names-out/%s", raw);
    tap_ok(ok && lstat(p, &st) == 0 && st.st_size == 3, "both names come back byte for byte");
    tap_ok(write_layer("names-out", "names2.tar", d3, &s2) == 0 && strcmp(d1, d3) == 0,
           "write -> apply -> write gives the same bytes");
    tap_is_int(sh("[ \"$(grep -ao 'hdrcharset=BINARY' names.tar | wc -l)\" = 2 ] && "
                  "[ \"$(tar tf names.tar 2>/dev/null | wc -l)\" = 2 ]"),
               0, "one hdrcharset record per such name, and GNU tar lists both");
}

/* Writing a layer reads its files without moving their atime (O_NOATIME): under relatime a
 * first read after a write (atime <= mtime) dirties every inode, and a journal commit writes
 * them all back. Skipped where a plain read does not move it either (noatime mounts). */
static void test_atime(void)
{
    mkdir("atime", 0755);
    sh("printf data > atime/f && printf data > atime/ctl");
    struct timespec ts[2] = {{1000, 0}, {2000, 0}}; /* atime before mtime */
    utimensat(AT_FDCWD, "atime/f", ts, 0);
    utimensat(AT_FDCWD, "atime/ctl", ts, 0);
    struct stat st;
    sh("cat atime/ctl > /dev/null");
    if (stat("atime/ctl", &st) < 0 || st.st_atim.tv_sec == 1000) {
        tap_skip("a read does not update atime on this file system");
        return;
    }
    sh("rm atime/ctl");
    char d[MK_DIGEST_SIZE];
    uint64_t size = 0;
    write_layer("atime", "atime.tar", d, &size);
    tap_ok(stat("atime/f", &st) == 0 && st.st_atim.tv_sec == 1000,
           "writing a layer leaves its files' atime alone");
}

/* Compressed input: the diff_id is always that of the uncompressed tar (d1, s1); truncated
 * streams are parse errors; an empty tree is two zero blocks. */
static void test_compressed_and_truncated(const char *d1, uint64_t s1)
{
    struct mk_error *err = NULL;
    char d3[MK_DIGEST_SIZE];
    uint64_t s3 = 0;
    const char *tools[] = {"gzip", "zstd -q", "xz", "bzip2"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(tools); i++) {
        char in[64], out[64];
        snprintf(in, sizeof(in), "l1.%zu", i);
        snprintf(out, sizeof(out), "c%zu", i);
        if (sh("%s -c < l1.tar > %s", tools[i], in) != 0) {
            tap_skip("%s not installed", tools[i]);
            continue;
        }
        char cd[MK_DIGEST_SIZE] = "";
        uint64_t cs = 0;
        int r = apply_layer(in, out, -1, cd, &cs, &err);
        if (err)
            tap_diag("%s", err->msg);
        mk_error_free(err);
        err = NULL;
        tap_ok(r == 0 && strcmp(cd, d1) == 0 && cs == s1, "%s input gives the plain diff_id",
               tools[i]);
    }

    /* Truncated streams are parse errors. */
    sh("head -c %llu l1.tar > trunc.tar", (unsigned long long)(s1 / 2 + 100));
    char td[MK_DIGEST_SIZE];
    uint64_t ts = 0;
    tap_ok(apply_layer("trunc.tar", "t1", -1, td, &ts, &err) < 0 && err &&
               err->code == MK_ERR_PARSE,
           "truncated tar: parse error");
    if (err)
        tap_diag("%s", err->msg);
    mk_error_free(err);
    err = NULL;
    sh("gzip -c < l1.tar | head -c 2000 > trunc.gz");
    tap_ok(apply_layer("trunc.gz", "t2", -1, td, &ts, &err) < 0 && err && err->code == MK_ERR_PARSE,
           "truncated gzip: parse error");
    if (err)
        tap_diag("%s", err->msg);
    mk_error_free(err);
    err = NULL;

    /* An empty tree is two zero blocks. */
    mkdir("empty", 0755);
    tap_ok(write_layer("empty", "e.tar", d3, &s3) == 0 && s3 == 1024, "empty tree: 1024 bytes");
    tap_ok(apply_layer("e.tar", "e", -1, td, &ts, &err) == 0 && strcmp(td, d3) == 0,
           "empty layer applies");
    mk_error_free(err);
}

int main(void)
{
    const char *tmp = tap_tmpdir();
    if (geteuid() != 0) {
        printf("# needs root for devices, owners and trusted xattrs\n");
        return 77;
    }
    make_tree("src");
    char d1[MK_DIGEST_SIZE], d2[MK_DIGEST_SIZE], d3[MK_DIGEST_SIZE];
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    tap_ok(write_layer("src", "l1.tar", d1, &s1) == 0, "write a tree with every file type");
    char *sum = sha256sum("l1.tar");
    tap_is_str(d1, sum, "diff_id is the sha256sum of the written bytes");
    free(sum);
    struct stat st;
    stat("l1.tar", &st);
    tap_is_int(s1, st.st_size, "size is the byte count written");
    tap_ok(s1 % 512 == 0, "tar ends on a 512-byte block");

    tap_ok(write_layer("src", "l2.tar", d2, &s2) == 0 && strcmp(d1, d2) == 0,
           "writing twice gives the same bytes");
    /* New atime and ctime everywhere, same content. */
    sh("cat src/etc/passwd src/etc/big > /dev/null; chmod 755 src/etc; chown 0:0 src/etc");
    tap_ok(write_layer("src", "l2.tar", d2, &s2) == 0 && strcmp(d1, d2) == 0,
           "atime and ctime do not change the bytes");
    /* A copy: other inode numbers, other creation order. */
    sh("cp -a src copy");
    tap_ok(write_layer("copy", "l3.tar", d3, &s3) == 0 && strcmp(d1, d3) == 0,
           "a copy of the tree (other inodes) gives the same bytes");
    if (strcmp(d1, d3) != 0)
        sh("tar tvf l1.tar > a.lst; tar tvf l3.tar > b.lst; diff a.lst b.lst | sed 's/^/# /'");

    check_gnu_tar_view();
    test_atime();

    /* Apply: the overlay lowerdir must write back to the very same bytes. */
    struct mk_error *err = NULL;
    char a1[MK_DIGEST_SIZE];
    uint64_t as = 0;
    int tee = open("tee.tar", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    tap_ok(apply_layer("l1.tar", "dst", tee, a1, &as, &err) == 0, "apply the layer");
    if (err)
        tap_diag("%s", err->msg);
    mk_error_free(err);
    err = NULL;
    close(tee);
    tap_is_str(a1, d1, "apply computes the same diff_id");
    tap_is_int(as, s1, "apply counts the same size");
    tap_is_int(sh("cmp -s tee.tar l1.tar"), 0, "tee receives the uncompressed stream");
    tap_ok(write_layer("dst", "l4.tar", d3, &s3) == 0, "write the applied tree");
    tap_is_str(d3, d1, "write -> apply -> write gives the same bytes");
    if (strcmp(d1, d3) != 0)
        sh("tar tvf l1.tar > a.lst; tar tvf l4.tar > b.lst; diff a.lst b.lst | sed 's/^/# /'");

    struct stat a, b;
    tap_ok(lstat("dst/gone", &a) == 0 && S_ISCHR(a.st_mode) && a.st_rdev == makedev(0, 0),
           "\".wh.NAME\" becomes a 0/0 char device");
    char v[8] = "";
    tap_ok(getxattr("dst/opq", "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y',
           "\".wh..wh..opq\" sets user.overlay.opaque=y");
    tap_ok(lstat("dst/hard1", &a) == 0 && lstat("dst/etc/hard3", &b) == 0 && a.st_ino == b.st_ino &&
               a.st_nlink == 3,
           "hardlinks share one inode");
    tap_ok(lstat("dst/ro", &a) == 0 && (a.st_mode & 07777) == 0555 && a.st_mtime == 1600018000,
           "read-only directory: mode and mtime set after its contents");
    tap_ok(lstat("dst/suid", &a) == 0 && (a.st_mode & 07777) == 04755, "setuid kept as root");
    tap_ok(same_xattr("src/suid", "dst/suid", "security.capability") &&
               same_xattr("src/etc/passwd", "dst/etc/passwd", "user.comment"),
           "xattrs restored");
    tap_ok(lgetxattr("dst/etc/passwd", "user.overlay.origin", v, sizeof(v)) < 0,
           "overlay xattrs are not carried over");
    tap_ok(lstat("dst/owned", &a) == 0 && a.st_uid == 1234 && a.st_gid == 5678, "owner restored");
    tap_ok(lstat("dst/link", &a) == 0 && S_ISLNK(a.st_mode) && a.st_uid == 42 &&
               a.st_mtime == 1600006000,
           "symlink owner and mtime restored");
    tap_ok(lstat("dst/null", &a) == 0 && S_ISCHR(a.st_mode) && a.st_rdev == makedev(1, 3),
           "device restored as root");

    test_compressed_and_truncated(d1, s1);
    diff_tests();
    test_names();
    sh("rm -rf '%s'", tmp);
    return tap_done();
}

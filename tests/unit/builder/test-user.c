/* tests/unit/builder/test-user.c - USER resolution against a rootfs's passwd and group files. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "builder/internal.h"
#include "common/fsutil.h"
#include "tap.h"

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(data, f);
    fclose(f);
}

static void check(int rootfd, const char *user, long want_uid, long want_gid,
                  const char *want_groups)
{
    uid_t uid = 1234;
    gid_t gid = 1234;
    gid_t *groups = NULL;
    size_t n = 0;
    struct mk_error *e = NULL;
    char *home = NULL;
    int r = builder_resolve_user_groups(rootfd, user, &uid, &gid, &groups, &n, &home, &e);
    free(home);
    struct mk_buf b = MK_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        mk_buf_addf(&b, "%s%u", i ? "," : "", (unsigned)groups[i]);
    char *got = mk_buf_detach(&b);
    if (!tap_ok(r == 0 && (long)uid == want_uid && (long)gid == want_gid &&
                    strcmp(got, want_groups) == 0,
                "\"%s\" -> %ld:%ld [%s]", user, want_uid, want_gid, want_groups))
        tap_diag("  got r=%d %u:%u [%s] %s", r, (unsigned)uid, (unsigned)gid, got, e ? e->msg : "");
    free(got);
    free(groups);
    mk_error_free(e);
}

static void check_fails(int rootfd, const char *user, int code, const char *msg)
{
    uid_t uid = 1234;
    gid_t gid = 1234;
    struct mk_error *e = NULL;
    int r = builder_resolve_user(rootfd, user, &uid, &gid, &e);
    if (!tap_ok(r < 0 && e && e->code == code && strcmp(e->msg, msg) == 0 && uid == 1234,
                "\"%s\" fails: %s", user, msg))
        tap_diag("  got r=%d code=%d msg=%s", r, e ? e->code : 0, e ? e->msg : "(none)");
    mk_error_free(e);
}

int main(void)
{
    tap_tmpdir();
    if (mkdir("root", 0755) < 0 || mkdir("root/etc", 0755) < 0 || mkdir("bare", 0755) < 0 ||
        mkdir("evil", 0755) < 0 || mkdir("evil/etc", 0755) < 0)
        return 1;
    write_file("root/etc/passwd", "# comment\n"
                                  "root:x:0:0:root:/root:/bin/sh\n"
                                  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                                  "broken line without fields\n"
                                  "bad:x:notanumber:1::/:/bin/sh\n"
                                  "app:x:1000:1001::/home/app:/bin/sh\n"
                                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    write_file("root/etc/group", "root:x:0:\n"
                                 "daemon:x:1:\n"
                                 "wheel:x:10:root,app\n"
                                 "appgrp:x:1001:\n"
                                 "staff:x:50:other,app\n"
                                 "nogroup:x:65534:\n");
    int rootfd = open("root", O_PATH | O_DIRECTORY);
    check(rootfd, "root", 0, 0, "10");
    check(rootfd, "", 0, 0, "10");
    check(rootfd, "app", 1000, 1001, "10,50");
    check(rootfd, "1000", 1000, 1001, "10,50");
    check(rootfd, "app:staff", 1000, 50, "10,50");
    check(rootfd, "app:65534", 1000, 65534, "10,50");
    check(rootfd, "1000:nogroup", 1000, 65534, "10,50");
    check(rootfd, "1000:4242", 1000, 4242, "10,50");
    check(rootfd, "4242", 4242, 0, "");
    check(rootfd, "4242:4243", 4242, 4243, "");
    check(rootfd, "daemon", 1, 1, "");
    check_fails(rootfd, "nosuch", MK_ERR_NOT_FOUND,
                "unable to find user \"nosuch\": no matching entry in passwd file");
    check_fails(rootfd, "app:nosuchgroup", MK_ERR_NOT_FOUND,
                "unable to find group \"nosuchgroup\": no matching entry in group file");
    check_fails(rootfd, "bad", MK_ERR_NOT_FOUND,
                "unable to find user \"bad\": no matching entry in passwd file");
    check_fails(rootfd, "app:", MK_ERR_INVALID, "invalid user \"app:\"");
    check_fails(rootfd, ":0", MK_ERR_INVALID, "invalid user \":0\"");
    check_fails(rootfd, "4294967295", MK_ERR_NOT_FOUND,
                "unable to find user \"4294967295\": no matching entry in passwd file");

    static const char *const homes[][2] = {
        {"root", "/root"}, {"app:staff", "/home/app"}, {"1000", "/home/app"}, {"4242", "/"}};
    for (size_t i = 0; i < MK_ARRAY_SIZE(homes); i++) {
        uid_t u;
        gid_t g;
        char *home = NULL;
        int r = builder_resolve_user_groups(rootfd, homes[i][0], &u, &g, NULL, NULL, &home, NULL);
        tap_ok(r == 0 && home && strcmp(home, homes[i][1]) == 0, "home of \"%s\" is %s (%s)",
               homes[i][0], homes[i][1], home ? home : "none");
        free(home);
    }

    /* No passwd at all (scratch images): numeric ids still work. */
    int bare = open("bare", O_PATH | O_DIRECTORY);
    check(bare, "123:456", 123, 456, "");
    check(bare, "0", 0, 0, "");
    check(bare, "", 0, 0, "");
    {
        uid_t u = 1;
        gid_t g = 1;
        tap_ok(builder_resolve_user(bare, NULL, &u, &g, NULL) == 0 && u == 0 && g == 0,
               "no USER is root even without a passwd file");
    }
    check_fails(bare, "root", MK_ERR_NOT_FOUND,
                "unable to find user \"root\": no matching entry in passwd file");

    /* An absolute symlink must resolve inside the image, never to the host's file. */
    write_file("hostpasswd", "hostonly:x:777:777::/:/bin/sh\n");
    char *abs = realpath("hostpasswd", NULL);
    if (!abs || symlink(abs, "evil/etc/passwd") < 0 ||
        symlink("../../../../../../etc/group", "evil/etc/group") < 0)
        return 1;
    int evil = open("evil", O_PATH | O_DIRECTORY);
    check_fails(evil, "hostonly", MK_ERR_NOT_FOUND,
                "unable to find user \"hostonly\": no matching entry in passwd file");
    /* A relative escape is clamped at the image root, where it names itself: a loop, not
     * the host's /etc/group (which has a "root" group). */
    {
        uid_t u;
        gid_t g = 1234;
        struct mk_error *e = NULL;
        int r = builder_resolve_user(evil, "0:root", &u, &g, &e);
        tap_ok(r < 0 && e && e->sys_errno == ELOOP && g == 1234,
               "a group file symlinked out of the root is not followed out");
        mk_error_free(e);
    }
    free(abs);

    /* A huge passwd is refused instead of read whole. */
    int fd = open("root/etc/passwd", O_WRONLY | O_TRUNC);
    if (fd < 0 || ftruncate(fd, 5 << 20) < 0)
        return 1;
    close(fd);
    uid_t u;
    gid_t g;
    struct mk_error *e = NULL;
    int r = builder_resolve_user(rootfd, "app", &u, &g, &e);
    tap_ok(r < 0 && e && e->code == MK_ERR_INVALID, "an oversized passwd is rejected (%s)",
           e ? e->msg : "no error");
    mk_error_free(e);
    close(rootfd), close(bare), close(evil);
    return tap_done();
}

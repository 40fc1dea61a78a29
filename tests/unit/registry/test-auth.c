/* Credentials: base64, auth.json written like podman's, docker's config.json keys and
 * credential helpers. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fsutil.h"
#include "registry/internal.h"
#include "tap.h"

static void test_base64(void)
{
    const char *cases[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"user:pw", "dXNlcjpwdw=="}};
    for (size_t i = 0; i < MK_ARRAY_SIZE(cases); i++) {
        char *e = reg_base64(cases[i][0], strlen(cases[i][0]));
        tap_is_str(e, cases[i][1], "base64 \"%s\"", cases[i][0]);
        size_t n = 0;
        char *d = reg_base64_decode(e, &n);
        tap_ok(d && n == strlen(cases[i][0]) && memcmp(d, cases[i][0], n) == 0, "round trip");
        free(e);
        free(d);
    }
    const char *bad[] = {"a", "ab=c", "a===", "@@@@", "Zg==Zg=="};
    for (size_t i = 0; i < MK_ARRAY_SIZE(bad); i++) {
        char *d = reg_base64_decode(bad[i], NULL);
        tap_ok(d == NULL, "bad base64 \"%s\" refused", bad[i]);
        free(d);
    }
}

static void write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || mk_write_all(fd, data, strlen(data), NULL) < 0)
        tap_ok(0, "write %s", path);
    close(fd);
}

int main(void)
{
    const char *dir = tap_tmpdir();
    char *home = mk_xasprintf("%s/home", dir);
    char *run = mk_xasprintf("%s/run", dir);
    mk_mkdir_p(home, 0700, NULL);
    mk_mkdir_p(run, 0700, NULL);
    setenv("HOME", home, 1);
    setenv("XDG_RUNTIME_DIR", run, 1);
    unsetenv("REGISTRY_AUTH_FILE");
    test_base64();

    char *path = registry_auth_file(NULL);
    char *want = mk_xasprintf("%s/containers/auth.json", run);
    tap_is_str(path, want, "podman's default auth file");
    char *creds = NULL;
    tap_is_int(registry_auth_lookup(NULL, "r.example:5000", &creds, NULL), 0, "no file: none");
    tap_is_int(registry_auth_store(NULL, "r.example:5000", "u:p:w", NULL), 0, "store");
    struct stat st;
    tap_ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the file is private");
    tap_is_int(registry_auth_lookup(NULL, "r.example:5000", &creds, NULL), 1, "found");
    tap_is_str(creds, "u:p:w", "a password may contain \":\"");
    free(creds);
    creds = NULL;
    tap_is_int(registry_auth_lookup(NULL, "other.example", &creds, NULL), 0, "other host: none");
    struct mk_error *err = NULL;
    tap_is_int(registry_auth_store(NULL, "r.example:5000", NULL, NULL), 0, "remove");
    tap_ok(registry_auth_store(NULL, "r.example:5000", NULL, &err) < 0 && err &&
               err->code == MK_ERR_NOT_FOUND,
           "removing again is not found");
    mk_error_free(err);
    err = NULL;

    /* docker's config.json: index.docker.io's key, and a credential helper */
    char *ddir = mk_xasprintf("%s/.docker", home);
    mk_mkdir_p(ddir, 0700, NULL);
    char *dcfg = mk_xasprintf("%s/config.json", ddir);
    write_file(dcfg,
               "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"aHViOnNlY3JldA==\"}},"
               "\"credHelpers\":{\"helped.example\":\"mkimgtest\"}}",
               0600);
    tap_is_int(registry_auth_lookup(NULL, "registry-1.docker.io", &creds, NULL), 1,
               "docker hub's old key matches");
    tap_is_str(creds, "hub:secret", "docker hub credentials");
    free(creds);
    creds = NULL;
    char *bin = mk_xasprintf("%s/bin", dir);
    mk_mkdir_p(bin, 0755, NULL);
    char *helper = mk_xasprintf("%s/docker-credential-mkimgtest", bin);
    write_file(helper,
               "#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = helped.example ] || "
               "exit 1\necho '{\"ServerURL\":\"helped.example\",\"Username\":\"hu\","
               "\"Secret\":\"hs\"}'\n",
               0755);
    char *newpath = mk_xasprintf("%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", newpath, 1);
    tap_is_int(registry_auth_lookup(NULL, "helped.example", &creds, NULL), 1,
               "credential helper answers");
    tap_is_str(creds, "hu:hs", "credentials from the helper");
    free(creds);
    creds = NULL;

    /* --authfile is the only file consulted */
    char *af = mk_xasprintf("%s/af.json", dir);
    tap_is_int(registry_auth_store(af, "a.example", "x:y", NULL), 0, "store in --authfile");
    tap_is_int(registry_auth_lookup(af, "registry-1.docker.io", &creds, NULL), 0,
               "--authfile hides the other files");
    tap_is_int(registry_auth_lookup(af, "a.example", &creds, NULL), 1, "--authfile entry");
    free(creds);
    creds = NULL;
    write_file(af, "{\"auths\":{\"a.example\":{\"auth\":\"!!\"}}}", 0600);
    tap_ok(registry_auth_lookup(af, "a.example", &creds, &err) < 0 && err &&
               err->code == MK_ERR_PARSE,
           "a broken entry is an error");
    mk_error_free(err);
    err = NULL;
    write_file(af, "[", 0600);
    tap_ok(registry_auth_lookup(af, "a.example", &creds, &err) < 0 && err, "broken JSON");
    mk_error_free(err);

    free(af);
    free(newpath);
    free(helper);
    free(bin);
    free(dcfg);
    free(ddir);
    free(path);
    free(want);
    free(home);
    free(run);
    return tap_done();
}

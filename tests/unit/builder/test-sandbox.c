/* tests/unit/builder/test-sandbox.c - the RUN sandbox over a busybox lowerdir, as root and as
 * an unprivileged user who entered the rootless user namespace. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#include "builder/internal.h"
#include "common/fsutil.h"
#include "tap.h"

static const char *tmp;
static char top[4096];
static struct mk_strv lowers = MK_STRV_INIT;
static int step_no;
static char *last_error; /* the last run_sh's sandbox error, NULL when it ran */

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

static char *slurp(const char *path)
{
    char *s = NULL;
    struct mk_error *e = NULL;
    if (mk_read_file_at(AT_FDCWD, path, 1 << 20, &s, NULL, &e) < 0) {
        mk_error_free(e);
        return mk_xstrdup("(unreadable)");
    }
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n')
        s[--n] = '\0';
    return s;
}

/* lower/: busybox with its applets, a passwd/group, a file to delete; no dev, proc, sys. */
static char *make_lower(const char *name)
{
    char *l = mk_xasprintf("%s/%s", tmp, name);
    char *bin = mk_xasprintf("%s/bin", l), *etc = mk_xasprintf("%s/etc", l);
    if (mkdir(l, 0755) < 0 || mkdir(bin, 0755) < 0 || mkdir(etc, 0755) < 0)
        exit(1);
    char *bb = mk_xasprintf("%s/busybox", bin);
    int in = open("/bin/busybox", O_RDONLY), out = open(bb, O_WRONLY | O_CREAT, 0755);
    char buf[65536];
    ssize_t n;
    if (in < 0 || out < 0)
        exit(77);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            exit(1);
    close(in);
    close(out);
    static const char *const applets[] = {
        "sh",   "echo", "ls",   "cat", "id", "touch", "rm",   "mkdir",    "hostname", "sleep",
        "true", "pwd",  "grep", "cut", "tr", "chown", "stat", "readlink", "wc"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(applets); i++) {
        char *ln = mk_xasprintf("%s/%s", bin, applets[i]);
        if (symlink("busybox", ln) < 0)
            exit(1);
        free(ln);
    }
    char *p = mk_xasprintf("%s/passwd", etc), *g = mk_xasprintf("%s/group", etc);
    write_file(p, "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    write_file(g, "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n");
    /* A dangling symlink where the sandbox mounts its hostname file. */
    char *hn = mk_xasprintf("%s/hostname", etc);
    if (symlink("../run/hostname-of-some-daemon", hn) < 0)
        exit(1);
    free(hn);
    char *v = mk_xasprintf("%s/victim", l);
    write_file(v, "delete me\n");
    free(bin), free(etc), free(bb), free(p), free(g), free(v);
    return l;
}

/* Rootless, the store's files belong to the user (root in its namespace): a root-owned
 * lowerdir would be unmapped there, and overlay could not copy its dirs up. */
static void chown_tree(const char *path, uid_t uid, gid_t gid)
{
    if (lchown(path, uid, gid) < 0)
        exit(1);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *c = mk_xasprintf("%s/%s", path, de->d_name);
        if (de->d_type == DT_DIR)
            chown_tree(c, uid, gid);
        else if (lchown(c, uid, gid) < 0)
            exit(1);
        free(c);
    }
    if (d)
        closedir(d);
}

struct step {
    char *dir, *upper, *work, *out;
};

static void step_new(struct step *s, const char *base)
{
    s->dir = mk_xasprintf("%s/step%d", base, ++step_no);
    s->upper = mk_xasprintf("%s/upper", s->dir);
    s->work = mk_xasprintf("%s/work", s->dir);
    s->out = mk_xasprintf("%s/out", s->dir);
    if (mkdir(s->dir, 0755) < 0 || mkdir(s->upper, 0755) < 0 || mkdir(s->work, 0755) < 0) {
        perror("step_new");
        exit(1);
    }
}

static void step_free(struct step *s)
{
    free(s->dir), free(s->upper), free(s->work), free(s->out);
}

struct run_opts {
    const char *user, *cwd, *hostname, *home;
    enum mk_network net;
    const struct mk_strv *lowerdirs;
};

/* Runs `sh -c cmd`; returns the status (-1 on a sandbox error, printed as a diagnostic). */
static int run_sh(struct step *s, const char *cmd, const struct run_opts *o, char **ret_out)
{
    struct mk_strv env = MK_STRV_INIT;
    if (o && o->home)
        mk_strv_pushf(&env, "HOME=%s", o->home);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    int fd = open(s->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct mk_sandbox_spec spec = {
        .lowerdirs = o && o->lowerdirs ? o->lowerdirs : &lowers,
        .upperdir = s->upper,
        .workdir = s->work,
        .argv = argv,
        .env = &env,
        .cwd = o ? o->cwd : NULL,
        .user = o ? o->user : NULL,
        .hostname = o ? o->hostname : NULL,
        .network = o ? o->net : MK_NET_HOST,
        .stdout_fd = fd,
        .stderr_fd = fd,
    };
    struct mk_error *e = NULL;
    int status = -1;
    free(last_error);
    last_error = NULL;
    if (builder_sandbox_run(&spec, &status, &e) < 0) {
        last_error = mk_error_format(e);
        tap_diag("sandbox error: %s", last_error);
        mk_error_free(e);
        status = -1;
    }
    close(fd);
    mk_strv_release(&env);
    /* Output that no check can mistake for what a command printed, or for nothing. */
    if (ret_out)
        *ret_out = last_error ? mk_xasprintf("(sandbox error: %s)", last_error) : slurp(s->out);
    return status;
}

/* This process's network interfaces, one name a line, as /proc/net/dev lists them. */
static char *net_interfaces(void)
{
    char *dev = slurp("/proc/net/dev");
    struct mk_buf b = MK_BUF_INIT;
    char *save = NULL;
    int line = 0;
    for (char *l = strtok_r(dev, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(l, ':');
        if (++line <= 2 || !colon)
            continue;
        *colon = '\0';
        mk_buf_addf(&b, "%s%s", b.len ? "\n" : "", l + strspn(l, " "));
    }
    free(dev);
    return mk_buf_detach(&b);
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = false;
    closedir(d);
    return empty;
}

/* USER: uid, gid, supplementary groups and HOME from the container's passwd and group. */
static void test_users(void)
{
    struct step s;
    char *out;

    step_new(&s, tmp);
    run_sh(&s, "id -u; id -g", &(struct run_opts){.user = "1000"}, &out);
    tap_is_str(out, "1000\n1000", "USER 1000 runs as uid 1000, gid from passwd");
    free(out);
    run_sh(&s, "id -u; id -g", &(struct run_opts){.user = "nobody"}, &out);
    tap_is_str(out, "65534\n65534", "USER nobody");
    free(out);
    run_sh(&s, "id -u; id -g; id -G", &(struct run_opts){.user = "app:nogroup"}, &out);
    tap_is_str(out, "1000\n65534\n65534 50", "USER app:nogroup with supplementary group staff");
    free(out);
    run_sh(&s, "echo $HOME", NULL, &out);
    tap_is_str(out, "/root", "HOME from passwd when the env has none");
    free(out);
    run_sh(&s, "echo $HOME", &(struct run_opts){.user = "app"}, &out);
    tap_is_str(out, "/home/app", "HOME of USER app");
    free(out);
    run_sh(&s, "echo $HOME", &(struct run_opts){.user = "app", .home = "/x"}, &out);
    tap_is_str(out, "/x", "HOME from the env wins");
    free(out);
    run_sh(&s, "id -u", &(struct run_opts){.user = "4321:4321"}, &out);
    tap_is_str(out, "4321", "USER uid:gid without passwd entry");
    free(out);
    tap_ok(run_sh(&s, "true", &(struct run_opts){.user = "nosuchuser"}, NULL) == -1 && last_error &&
               strstr(last_error, "\"nosuchuser\""),
           "unknown user is a sandbox error that names it");
    step_free(&s);
}

/* The namespaces: host name, /etc/hosts, pid 1, /dev, the network, a read-only /sys. */
static void test_namespaces(void)
{
    struct step s;
    char *out;

    step_new(&s, tmp);
    run_sh(&s, "hostname; grep -c localhost /etc/hosts; readlink /etc/hostname", NULL, &out);
    tap_is_str(out, "mkimg\n2\n../run/hostname-of-some-daemon",
               "default hostname, /etc/hosts; a dangling /etc/hostname symlink is left alone");
    free(out);
    run_sh(&s, "hostname", &(struct run_opts){.hostname = "box"}, &out);
    tap_is_str(out, "box", "hostname from the spec");
    free(out);
    run_sh(&s, "echo $$; readlink /proc/self", NULL, &out);
    int pid = -1;
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
    mk_parse_int(out, &pid);
    tap_ok(pid > 0 && pid <= 3 && nl && atol(nl + 1) > 0, "new pid namespace: sh is pid %s", out);
    free(out);
    run_sh(&s, "ls /dev; test -c /dev/null && echo 1 > /dev/null && echo nullok", NULL, &out);
    tap_ok(strstr(out, "null\n") && strstr(out, "zero\n") && strstr(out, "urandom\n") &&
               strstr(out, "pts\n") && strstr(out, "shm\n") && strstr(out, "ptmx\n") &&
               strstr(out, "nullok"),
           "/dev has null, zero, urandom, pts, shm, ptmx");
    free(out);
    run_sh(&s, "cut -d: -f1 /proc/net/dev | grep -v '|' | tr -d ' '",
           &(struct run_opts){.net = MK_NET_NONE}, &out);
    tap_is_str(out, "lo", "network none: only lo");
    free(out);
    run_sh(&s, "cut -d: -f1 /proc/net/dev | grep -v '|' | tr -d ' '", NULL, &out);
    char *host_if = net_interfaces();
    tap_is_str(out, host_if, "host network: the host's interfaces");
    free(out), free(host_if);
    run_sh(&s, "touch /sys/x 2>/dev/null && echo writable; grep ' /sys ' /proc/mounts", NULL, &out);
    tap_ok(strstr(out, "writable") == NULL && strstr(out, "sysfs /sys sysfs ro,"),
           "/sys is mounted read-only (%s)", out);
    free(out);
    step_free(&s);
}

static void test_basics(void)
{
    struct step s;
    char *out;

    step_new(&s, tmp);
    tap_is_int(run_sh(&s, "echo hello > /greeting", NULL, NULL), 0, "echo runs");
    char *p = mk_xasprintf("%s/greeting", s.upper);
    char *g = slurp(p);
    tap_is_str(g, "hello", "a file written by RUN lands in the upperdir");
    free(g), free(p);
    DIR *d = opendir(s.upper);
    struct dirent *de;
    struct mk_strv names = MK_STRV_INIT;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            mk_strv_push(&names, de->d_name);
    if (d)
        closedir(d);
    if (!tap_ok(names.n == 1, "no mount point stubs (dev, proc, sys, etc) left in the upperdir"))
        for (size_t i = 0; i < names.n; i++)
            tap_diag("  upper has %s", names.v[i]);
    mk_strv_release(&names);
    step_free(&s);

    step_new(&s, tmp);
    mode_t old_umask = umask(077);
    run_sh(&s, "umask; mkdir /d; stat -c %a /d", NULL, &out);
    umask(old_umask);
    tap_is_str(out, "0022\n755", "the RUN's umask is 022 whatever mkimg's is");
    free(out);
    step_free(&s);

    step_new(&s, tmp);
    tap_is_int(run_sh(&s, "exit 3", NULL, NULL), 3, "exit 3 gives status 3");
    tap_ok(dir_is_empty(s.upper), "a RUN that writes nothing leaves an empty upperdir");
    step_free(&s);

    step_new(&s, tmp);
    tap_is_int(run_sh(&s, "kill -9 $$", NULL, NULL), 137, "killed by SIGKILL gives 137");
    step_free(&s);

    test_users();

    test_namespaces();

    step_new(&s, tmp);
    tap_is_int(run_sh(&s, "rm /victim", NULL, NULL), 0, "rm of a lower file");
    p = mk_xasprintf("%s/victim", s.upper);
    struct stat st;
    tap_ok(lstat(p, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0),
           "deleting a lower file leaves a 0/0 whiteout in the upperdir");
    free(p);
    step_free(&s);

    step_new(&s, tmp);
    run_sh(&s, "pwd", &(struct run_opts){.cwd = "/work/dir"}, &out);
    tap_is_str(out, "/work/dir", "cwd is created and entered");
    free(out);
    p = mk_xasprintf("%s/work/dir", s.upper);
    tap_ok(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0,
           "the created cwd stays in the upperdir, owned by root");
    free(p);
    step_free(&s);

    step_new(&s, tmp);
    tap_is_int(run_sh(&s, "exec nosuchcmd", NULL, &out), 127, "missing command gives 127");
    free(out);
    /* argv without a shell: the lookup uses the container's PATH. */
    char *argv[] = {"nosuchcmd", NULL};
    char *argv2[] = {"echo", "direct", NULL};
    int fd = open(s.out, O_WRONLY | O_TRUNC | O_CLOEXEC);
    struct mk_sandbox_spec spec = {.lowerdirs = &lowers,
                                   .upperdir = s.upper,
                                   .workdir = s.work,
                                   .argv = argv,
                                   .stdout_fd = fd,
                                   .stderr_fd = fd};
    int status = -1;
    struct mk_error *e = NULL;
    tap_ok(builder_sandbox_run(&spec, &status, &e) == 0 && status == 127,
           "exec failure is status 127");
    out = slurp(s.out);
    tap_ok(strstr(out, "\"nosuchcmd\"") != NULL, "exec failure names the command: %s", out);
    free(out);
    spec.argv = argv2;
    if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        exit(1);
    tap_ok(builder_sandbox_run(&spec, &status, &e) == 0 && status == 0, "exec through PATH");
    out = slurp(s.out);
    tap_is_str(out, "direct", "echo found in the default PATH");
    free(out);
    spec.stdout_fd = spec.stderr_fd = -1;
    if (ftruncate(fd, 0) < 0)
        exit(1);
    tap_ok(builder_sandbox_run(&spec, &status, &e) == 0 && status == 0, "output fds -1: discarded");
    out = slurp(s.out);
    tap_is_str(out, "", "nothing written");
    free(out);
    close(fd);
    mk_error_free(e);
    step_free(&s);
}

/* Extra mounts: a read-only bind of a host dir, a tmpfs; their stubs do not reach the layer. */
static void test_extra_mounts(void)
{
    struct step s;
    step_new(&s, tmp);
    char *src = mk_xasprintf("%s/hostdir", s.dir);
    char *f = mk_xasprintf("%s/hostfile", src);
    if (mkdir(src, 0755) < 0)
        exit(1);
    write_file(f, "from host");
    struct mk_sandbox_mount mounts[] = {
        {.type = MK_MOUNT_BIND, .source = src, .target = "/mnt/ro", .readonly = true},
        {.type = MK_MOUNT_TMPFS, .target = "/cache"},
    };
    struct mk_strv env = MK_STRV_INIT;
    char *argv[] = {"sh", "-c",
                    "cat /mnt/ro/hostfile; echo; touch /mnt/ro/x 2>/dev/null || echo ro; "
                    "echo t > /cache/t && cat /cache/t",
                    NULL};
    int fd = open(s.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct mk_sandbox_spec spec = {.lowerdirs = &lowers,
                                   .upperdir = s.upper,
                                   .workdir = s.work,
                                   .argv = argv,
                                   .env = &env,
                                   .mounts = mounts,
                                   .n_mounts = MK_ARRAY_SIZE(mounts),
                                   .stdout_fd = fd,
                                   .stderr_fd = fd};
    int status = -1;
    struct mk_error *e = NULL;
    tap_ok(builder_sandbox_run(&spec, &status, &e) == 0 && status == 0, "RUN with extra mounts");
    close(fd);
    char *out = slurp(s.out);
    tap_is_str(out, "from host\nro\nt", "read-only bind and tmpfs mounts");
    free(out);
    tap_ok(dir_is_empty(s.upper), "their mount points are not left in the upperdir");
    char *x = mk_xasprintf("%s/x", src);
    tap_ok(access(x, F_OK) < 0, "nothing written to the host dir");
    free(x), free(src), free(f);
    mk_error_free(e);
    step_free(&s);
}

static int write_fn(int rootfd, void *arg, struct mk_error **err)
{
    _cleanup_close_ int fd =
        mk_open_in_root(rootfd, "/from-call", O_WRONLY | O_CREAT | O_TRUNC, 0644, err);
    if (fd < 0)
        return -1;
    return mk_write_all(fd, arg, strlen(arg), err);
}

static int fail_fn(int rootfd, void *arg, struct mk_error **err)
{
    (void)rootfd, (void)arg;
    return mk_error_set(err, MK_ERR_NOT_FOUND, ENOENT, "no file \"%s\"", "x");
}

struct read_arg {
    char f[64], bottom[64];
};

static int read_fn(int rootfd, void *arg, struct mk_error **err)
{
    struct read_arg *a = arg;
    _cleanup_close_ int ffd = mk_open_in_root(rootfd, "/f", O_RDONLY, 0, err);
    _cleanup_close_ int bfd = mk_open_in_root(rootfd, "/bottom", O_RDONLY, 0, err);
    if (ffd < 0 || bfd < 0)
        return -1;
    ssize_t n1 = read(ffd, a->f, sizeof(a->f) - 1),
            n2 = read(bfd, a->bottom, sizeof(a->bottom) - 1);
    /* The answer has to cross back to the parent: fn runs in a child, so report via error. */
    return mk_error_set(err, MK_ERR_FAILED, 0, "%.*s|%.*s", (int)(n1 > 0 ? n1 : 0), a->f,
                        (int)(n2 > 0 ? n2 : 0), a->bottom);
}

/* More layers than one page of mount options can name: needs the new mount API. */
static void test_many_layers(void)
{
    struct mk_strv layers = MK_STRV_INIT;
    char *base = mk_xasprintf("%s/layers", tmp);
    if (mkdir(base, 0755) < 0)
        exit(1);
    for (int i = 0; i < 80; i++) {
        char *d =
            mk_xasprintf("%s/layer-with-a-rather-long-name-as-store-digests-have-%064d", base, i);
        char *f = mk_xasprintf("%s/f", d);
        if (mkdir(d, 0755) < 0)
            exit(1);
        char num[16];
        snprintf(num, sizeof(num), "%d", i);
        write_file(f, num);
        if (i == 79) {
            char *b = mk_xasprintf("%s/bottom", d);
            write_file(b, "bottom");
            free(b);
        }
        mk_strv_push_take(&layers, d);
        free(f);
    }
    struct step s;
    step_new(&s, tmp);
    struct mk_sandbox_spec spec = {.lowerdirs = &layers, .upperdir = s.upper, .workdir = s.work};
    struct read_arg a = {{0}, {0}};
    struct mk_error *e = NULL;
    builder_sandbox_call(&spec, read_fn, &a, &e);
    tap_ok(e && strcmp(e->msg, "0|bottom") == 0,
           "80 long lowerdirs: top-most first, bottom one visible (%s)", e ? e->msg : "no error");
    mk_error_free(e);
    e = NULL;

    /* The mount(2) fallback: fine for a few layers, a clear error past one page. */
    builder_sandbox_legacy_mount = true;
    builder_sandbox_call(&spec, read_fn, &a, &e);
    tap_ok(e && e->code == MK_ERR_INVALID &&
               strstr(e->msg, "layers do not fit in one page of mount options"),
           "mount(2) fallback: too many layers is a clear error (%s)", e ? e->msg : "no error");
    mk_error_free(e);
    e = NULL;
    for (int i = 2; i < 79; i++)
        free(layers.v[i]);
    layers.v[2] = layers.v[79];
    layers.v[3] = NULL;
    layers.n = 3;
    builder_sandbox_call(&spec, read_fn, &a, &e);
    tap_ok(e && strcmp(e->msg, "0|bottom") == 0, "mount(2) fallback with 3 layers (%s)",
           e ? e->msg : "no error");
    mk_error_free(e);
    builder_sandbox_legacy_mount = false;
    mk_strv_release(&layers);
    free(base);
    step_free(&s);
}

static void test_call(void)
{
    struct step s;
    step_new(&s, tmp);
    struct mk_sandbox_spec spec = {.lowerdirs = &lowers, .upperdir = s.upper, .workdir = s.work};
    struct mk_error *e = NULL;
    tap_is_int(builder_sandbox_call(&spec, write_fn, "via call", &e), 0, "sandbox_call runs fn");
    char *p = mk_xasprintf("%s/from-call", s.upper);
    char *got = slurp(p);
    tap_is_str(got, "via call", "fn's file lands in the upperdir");
    free(got), free(p);
    tap_is_int(builder_sandbox_call(&spec, fail_fn, NULL, &e), -1, "fn's failure is returned");
    tap_ok(e && e->code == MK_ERR_NOT_FOUND && e->sys_errno == ENOENT &&
               strcmp(e->msg, "no file \"x\"") == 0,
           "fn's error (code, errno, message) is carried back");
    mk_error_free(e);
    e = NULL;
    step_free(&s);

    step_new(&s, tmp);
    struct mk_strv none = MK_STRV_INIT;
    spec = (struct mk_sandbox_spec){.lowerdirs = &none, .upperdir = s.upper, .workdir = s.work};
    tap_is_int(builder_sandbox_call(&spec, write_fn, "scratch", &e), 0, "scratch rootfs");
    p = mk_xasprintf("%s/from-call", s.upper);
    got = slurp(p);
    tap_is_str(got, "scratch", "scratch: file in the upperdir");
    free(got), free(p);
    mk_error_free(e);
    step_free(&s);
}

static void on_term(int sig)
{
    (void)sig;
    mk_interrupted = 1;
}

/* The container's sleep, told from any other sleep on the machine by its argument (our pid). */
static char sleep_arg[32];

static bool sleep_running(void)
{
    char want[64];
    int len = snprintf(want, sizeof(want), "sleep%c%s", 0, sleep_arg) + 1;
    DIR *d = opendir("/proc");
    struct dirent *de;
    bool found = false;
    while (d && (de = readdir(d))) {
        char path[300], cmd[64] = "";
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
        close(fd);
        if (n == len && memcmp(cmd, want, (size_t)len) == 0)
            found = true;
    }
    if (d)
        closedir(d);
    return found;
}

static void test_interrupt(void)
{
    struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART, like the CLI */
    sigaction(SIGTERM, &sa, NULL);
    struct step s;
    step_new(&s, tmp);
    snprintf(sleep_arg, sizeof(sleep_arg), "%d", 100000 + (int)getpid());
    pid_t killer = fork();
    if (killer == 0) {
        bool seen = false;
        for (int i = 0; i < 600 && !(seen = sleep_running()); i++)
            usleep(50000);
        kill(getppid(), SIGTERM);
        _exit(seen ? 0 : 1);
    }
    char *argv[] = {"sleep", sleep_arg, NULL};
    struct mk_sandbox_spec spec = {.lowerdirs = &lowers,
                                   .upperdir = s.upper,
                                   .workdir = s.work,
                                   .argv = argv,
                                   .stdout_fd = 2,
                                   .stderr_fd = 2};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status;
    struct mk_error *e = NULL;
    int r = builder_sandbox_run(&spec, &status, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int killer_status = -1;
    waitpid(killer, &killer_status, 0);
    tap_ok(WIFEXITED(killer_status) && WEXITSTATUS(killer_status) == 0,
           "the container's sleep was running when SIGTERM came");
    tap_ok(r < 0 && e && e->code == MK_ERR_INTERRUPTED, "SIGTERM gives MK_ERR_INTERRUPTED");
    tap_ok(t1.tv_sec - t0.tv_sec < 5, "and returns quickly (%lds)", (long)(t1.tv_sec - t0.tv_sec));
    char *mi = slurp("/proc/self/mountinfo");
    tap_ok(strstr(mi, s.dir) == NULL, "no mount left in /proc/self/mountinfo");
    free(mi);
    usleep(200000);
    tap_ok(!sleep_running(), "the container's sleep is gone");
    tap_ok(dir_is_empty(s.upper), "nothing leaked into the upperdir");
    mk_error_free(e);
    mk_interrupted = 0;
    signal(SIGTERM, SIG_DFL);
    step_free(&s);
}

/* The rootless part: as mkimgtest, enter the user namespace, then run the sandbox in it.
 * Runs in a forked child that reports back through its exit code and files. */
static void test_rootless(void)
{
    bool strict = getenv("MKIMG_TEST_STRICT") && strcmp(getenv("MKIMG_TEST_STRICT"), "1") == 0;
    char *script = mk_xasprintf("%s/tests/lib/rootless-setup.sh", top);
    int pfd[2];
    if (pipe(pfd) < 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        execlp("bash", "bash", script, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char name[64] = "";
    ssize_t n = read(pfd[0], name, sizeof(name) - 1);
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    free(script);
    if (n > 0 && name[n - 1] == '\n')
        name[n - 1] = '\0';
    struct passwd *pw = n > 0 ? getpwnam(name) : NULL;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !pw) {
        if (strict)
            tap_ok(0, "rootless setup (tests/lib/rootless-setup.sh) failed");
        else
            tap_skip("rootless: cannot set up an unprivileged user with subordinate ids (userns)");
        return;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    char *base = mk_xasprintf("%s/rootless", tmp);
    if (chmod(tmp, 0755) < 0 || mkdir(base, 0755) < 0 || chown(base, uid, gid) < 0)
        exit(1);
    char *single_file = mk_xasprintf("%s/single", base);
    char *rl_lower = make_lower("lower-rootless");
    chown_tree(rl_lower, uid, gid);
    mk_strv_clear(&lowers);
    mk_strv_push_take(&lowers, rl_lower);
    pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
            _exit(10);
        /* An exec'd unprivileged mkimg is dumpable; a setuid() without exec is not, and
         * would leave our /proc files to the host's root. */
        prctl(PR_SET_DUMPABLE, 1);
        bool single = true;
        struct mk_error *e = NULL;
        if (builder_enter_userns(&single, &e) < 0) {
            char *m = mk_error_format(e);
            fprintf(stderr, "# enter_userns: %s\n", m);
            _exit(11);
        }
        bool single2 = !single;
        if (builder_enter_userns(&single2, &e) < 0 || single2 != single)
            _exit(12);
        write_file(single_file, single ? "single" : "ranges");
        struct step s;
        step_new(&s, base);
        char *out;
        if (run_sh(&s,
                   "id -u; touch /mine /theirs && chown 1000:1000 /theirs && echo ok; "
                   "grep -c ' /sys sysfs ro,' /proc/mounts",
                   NULL, &out) != 0) {
            fflush(stdout);
            _exit(13);
        }
        write_file(s.out, out);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rootless: sandbox runs as %s (exit %d)", name,
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char *single = slurp(single_file);
    tap_is_str(single, "ranges", "rootless: subordinate ranges mapped through newuidmap");
    free(single);
    char *p = mk_xasprintf("%s/step%d/out", base, step_no + 1);
    char *out = slurp(p);
    tap_is_str(out, "0\nok\n1", "rootless: root inside, chown to 1000 works, /sys read-only");
    free(out), free(p);
    struct stat sm, sth;
    char *mine = mk_xasprintf("%s/step%d/upper/mine", base, step_no + 1);
    char *theirs = mk_xasprintf("%s/step%d/upper/theirs", base, step_no + 1);
    tap_ok(stat(mine, &sm) == 0 && sm.st_uid == uid,
           "rootless: root's file is the user's on the host");
    if (stat(theirs, &sth) < 0)
        sth.st_uid = 0;
    tap_ok(sth.st_uid != uid && sth.st_uid >= 65536,
           "rootless: uid 1000's file has a subordinate id on the host (%u)", (unsigned)sth.st_uid);
    free(mine), free(theirs), free(base), free(single_file);
}

/* A user without subordinate ranges (nobody): only its own id is mapped, setgroups(2) is
 * denied, and the sandbox still runs as root inside. */
static void test_single_id(void)
{
    struct passwd *pw = getpwnam("nobody");
    if (!pw) {
        tap_skip("no user nobody");
        return;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    char *base = mk_xasprintf("%s/single-id", tmp);
    if (chmod(tmp, 0755) < 0 || mkdir(base, 0755) < 0 || chown(base, uid, gid) < 0)
        exit(1);
    char *lower = make_lower("lower-nobody");
    chown_tree(lower, uid, gid);
    mk_strv_clear(&lowers);
    mk_strv_push_take(&lowers, lower);
    int pfd[2];
    if (pipe(pfd) < 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
            _exit(10);
        prctl(PR_SET_DUMPABLE, 1);
        bool single = false;
        struct mk_error *e = NULL;
        if (builder_enter_userns(&single, &e) < 0 || !single)
            _exit(11);
        struct step s;
        step_new(&s, base);
        char *out = NULL;
        int st1 = run_sh(&s, "id -u; touch /mine && echo ok", NULL, &out);
        int st2 = run_sh(&s, "true", &(struct run_opts){.user = "1000"}, NULL);
        dprintf(pfd[1], "%d|%s|%d", st1, out, st2);
        fflush(stdout);
        _exit(0);
    }
    close(pfd[1]);
    char buf[256] = "";
    ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    buf[n > 0 ? n : 0] = '\0';
    tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "single id: enter_userns reports single (exit %d)",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    tap_is_str(buf, "0|0\nok|-1", "single id: root inside works, USER 1000 is a setup error");
    free(base);
}

int main(void)
{
    if (!getcwd(top, sizeof(top)))
        return 1;
    const char *t = getenv("MKIMG_TOP");
    if (t && *t)
        snprintf(top, sizeof(top), "%s", t);
    if (geteuid() != 0) {
        printf("# needs root (the rootless part drops privileges itself)\n");
        return 77;
    }
    alarm(300);
    tmp = tap_tmpdir();
    mk_strv_push_take(&lowers, make_lower("lower"));
    test_basics();
    test_extra_mounts();
    test_call();
    test_many_layers();
    test_interrupt();
    test_rootless();
    test_single_id();
    mk_strv_release(&lowers);
    struct mk_error *e = NULL;
    mk_rm_rf(tmp, &e);
    mk_error_free(e);
    return tap_done();
}

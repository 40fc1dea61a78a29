/* The build context walker against fsutil's and BuildKit's tests (dockerignore/ in the
 * conformance data): context-walk.tsv and context-scenarios.tsv, each tree built in a temp
 * dir and walked with builder_context_walk. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../parser/tsv.h"
#include "builder/internal.h"
#include "common/fsutil.h"
#include "tap.h"

static int row_no;

/* Creates a fresh directory for one row; returns its path (caller frees). */
static char *row_dir(void)
{
    char *d = mk_xasprintf("row%d", ++row_no);
    _cleanup_free_ char *ctx = mk_xasprintf("%s/ctx", d);
    if (mkdir(d, 0755) < 0 || mkdir(ctx, 0755) < 0) {
        perror("mkdir");
        exit(1);
    }
    return d;
}

static void write_file(const char *path, const char *data)
{
    _cleanup_free_ char *parent = mk_xstrdup(path);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = '\0';
        mk_mkdir_p(parent, 0755, NULL);
    }
    FILE *f = fopen(path, "w");
    if (!f || fputs(data, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* tree: [[path, "file"|"dir"] | [path, "symlink", target], ...] below ctx. */
static void build_tree(const char *ctx, json_t *tree)
{
    size_t i;
    json_t *e;
    json_array_foreach(tree, i, e)
    {
        const char *p = json_string_value(json_array_get(e, 0));
        const char *type = json_string_value(json_array_get(e, 1));
        _cleanup_free_ char *full = mk_xasprintf("%s/%s", ctx, p);
        if (strcmp(type, "dir") == 0) {
            mk_mkdir_p(full, 0755, NULL);
        } else if (strcmp(type, "file") == 0) {
            write_file(full, "");
        } else {
            _cleanup_free_ char *parent = mk_xstrdup(full);
            *strrchr(parent, '/') = '\0';
            mk_mkdir_p(parent, 0755, NULL);
            if (symlink(json_string_value(json_array_get(e, 2)), full) < 0) {
                perror(full);
                exit(1);
            }
        }
    }
}

static int collect(const char *rel, const struct stat *st, void *arg, struct mk_error **err)
{
    struct mk_strv *out = arg;
    (void)err;
    if (strcmp(rel, ".") == 0)
        return 0; /* fsutil does not report the root */
    if (S_ISDIR(st->st_mode)) {
        mk_strv_pushf(out, "dir %s", rel);
    } else if (S_ISLNK(st->st_mode)) {
        /* The target is read through the walk's own root: tests only. */
        char target[4096];
        ssize_t n = readlink(rel, target, sizeof(target) - 1);
        target[n < 0 ? 0 : n] = '\0';
        mk_strv_pushf(out, "symlink:%s %s", target, rel);
    } else {
        mk_strv_pushf(out, "file %s", rel);
    }
    return 0;
}

/* The exclude patterns go into a Dockerfile.dockerignore outside the context, so the ignore
 * file itself is not part of the tree. */
static void write_ignore(const char *dir, json_t *exclude)
{
    if (!json_array_size(exclude))
        return;
    struct mk_buf b = MK_BUF_INIT;
    size_t i;
    json_t *v;
    json_array_foreach(exclude, i, v) mk_buf_addf(&b, "%s\n", json_string_value(v));
    _cleanup_free_ char *ign = mk_xasprintf("%s/Dockerfile.dockerignore", dir);
    write_file(ign, b.data);
    mk_buf_release(&b);
}

/* Opens dir/ctx (with dir/Dockerfile.dockerignore) and walks from start. Returns 0 or -1.
 * Uses _exit on setup failures: it also runs in a forked child sharing our stdio. */
static int open_and_walk(const char *dir, const char *start, struct mk_strv *out,
                         struct mk_error **err)
{
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    _cleanup_free_ char *df = mk_xasprintf("%s/Dockerfile", dir);
    struct mk_context *ctx = NULL;
    if (builder_context_open(ctxdir, df, &ctx, err) < 0)
        return -1;
    /* collect() reads symlink targets relative to the cwd: walk from inside the context. */
    int cwd = open(".", O_PATH | O_DIRECTORY);
    int r = chdir(ctxdir) == 0 ? 0 : -1;
    if (r == 0)
        r = builder_context_walk(ctx, start, collect, out, err);
    if (fchdir(cwd) < 0)
        _exit(1);
    close(cwd);
    builder_context_free(ctx);
    return r;
}

/* As open_and_walk, in a child running as nobody (the mode-0000 rows need a user without
 * CAP_DAC_OVERRIDE). Returns 0, -1, or 77 when the child could not drop privileges. */
static int walk_unprivileged(const char *dir, struct mk_strv *out)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                               setresuid(65534, 65534, 65534) < 0))
            _exit(77);
        struct mk_strv lines = MK_STRV_INIT;
        struct mk_error *err = NULL;
        int r = open_and_walk(dir, ".", &lines, &err);
        FILE *f = fdopen(fds[1], "w");
        for (size_t i = 0; i < lines.n; i++)
            fprintf(f, "%s\n", lines.v[i]);
        if (r < 0)
            fprintf(f, "# %s\n", err->msg);
        fclose(f);
        _exit(r < 0 ? 1 : 0);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        line[n - 1] = '\0';
        if (line[0] == '#')
            tap_diag("child: %s", line + 2);
        else
            mk_strv_push(out, line);
    }
    free(line);
    fclose(f);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status) == 0 ? 0 : WEXITSTATUS(status) == 77 ? 77 : -1;
}

static bool walk_row(char **c, int nc)
{
    (void)nc;
    json_t *tree = tsv_json(c[1]), *include = tsv_json(c[2]), *exclude = tsv_json(c[3]),
           *follow = tsv_json(c[4]), *expected = tsv_json(c[7]);
    const char *op = c[5], *outcome = c[6];
    bool ok = true, stacked = json_is_array(json_array_get(exclude, 0));
    struct mk_strv got = MK_STRV_INIT;
    struct mk_error *err = NULL;
    _cleanup_free_ char *dir = row_dir();
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    if (json_array_size(include) || json_array_size(follow) || stacked) {
        /* Include filters, FollowPaths and stacked filters are fsutil options BuildKit uses
         * for other purposes; a build context only has one .dockerignore. */
        tap_skip("%s %s: %s", c[0], op,
                 stacked                   ? "stacked filters"
                 : json_array_size(follow) ? "follow paths"
                                           : "include filters");
        tsv_skip_row();
        goto out;
    }
    build_tree(ctxdir, tree);
    write_ignore(dir, exclude);
    int r;
    if (strcmp(c[0], "TestWalkerPermissionDenied") == 0) {
        _cleanup_free_ char *locked = mk_xasprintf("%s/foo/bar", ctxdir);
        chmod(locked, 0);
        r = walk_unprivileged(dir, &got);
        chmod(locked, 0755);
        if (r == 77) {
            tap_skip("%s: cannot drop privileges", c[0]);
            tsv_skip_row();
            goto out;
        }
    } else if (mk_str_has_prefix(op, "open:")) {
        struct mk_context *ctx = NULL;
        struct stat st;
        _cleanup_free_ char *df = mk_xasprintf("%s/Dockerfile", dir);
        r = builder_context_open(ctxdir, df, &ctx, &err);
        if (r == 0) {
            bool exists = fstatat(builder_context_dirfd(ctx), op + 5, &st, 0) == 0;
            bool visible = exists && !builder_context_excluded(ctx, op + 5);
            ok = visible == (strcmp(outcome, "ok") == 0);
            builder_context_free(ctx);
        } else {
            ok = false;
        }
        goto out;
    } else {
        r = open_and_walk(dir, mk_str_has_prefix(op, "walk:") ? op + 5 : ".", &got, &err);
    }
    if (strcmp(outcome, "error") == 0)
        ok = r < 0;
    else
        ok = r == 0 && tsv_strv_equals_json(&got, expected);
    if (!ok) {
        tap_diag("%s %s: %s", c[0], c[3], r < 0 && err ? err->msg : "");
        for (size_t i = 0; i < got.n; i++)
            tap_diag("  got \"%s\"", got.v[i]);
    }
out:
    mk_error_free(err);
    mk_strv_release(&got);
    json_decref(tree);
    json_decref(include);
    json_decref(exclude);
    json_decref(follow);
    json_decref(expected);
    return ok;
}

static bool scenario_row(char **c, int nc)
{
    (void)nc;
    json_t *files = tsv_json(c[1]), *df = tsv_json(c[2]), *present = tsv_json(c[4]),
           *absent = tsv_json(c[5]);
    _cleanup_free_ char *dir = row_dir();
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    const char *k;
    json_t *v;
    json_object_foreach(files, k, v)
    {
        _cleanup_free_ char *p = mk_xasprintf("%s/%s", ctxdir, k);
        write_file(p, json_string_value(v));
    }
    _cleanup_free_ char *dfpath = mk_xasprintf("%s/%s", ctxdir, json_string_value(df));
    struct mk_context *ctx = NULL;
    struct mk_error *err = NULL;
    struct mk_strv got = MK_STRV_INIT;
    bool ok;
    int r = builder_context_open(ctxdir, dfpath, &ctx, &err);
    if (r == 0) {
        int cwd = open(".", O_PATH | O_DIRECTORY);
        r = chdir(ctxdir) == 0 ? builder_context_walk(ctx, ".", collect, &got, &err) : -1;
        if (fchdir(cwd) < 0)
            exit(1);
        close(cwd);
    }
    if (strcmp(c[3], "error") == 0) {
        ok = r < 0;
    } else {
        ok = r == 0;
        json_object_foreach(present, k, v)
        {
            _cleanup_free_ char *want = mk_xasprintf("file %s", k);
            bool found = false;
            for (size_t i = 0; i < got.n; i++)
                found |= strcmp(got.v[i], want) == 0;
            /* The content comes through the context's own fd, as COPY reads it. */
            _cleanup_free_ char *data = NULL;
            _cleanup_close_ int fd =
                found ? mk_open_in_root(builder_context_dirfd(ctx), k, O_RDONLY, 0, NULL) : -1;
            char buf[256] = "";
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
            if (n >= 0)
                buf[n] = '\0';
            ok &= found && strcmp(buf, json_string_value(v)) == 0;
        }
        size_t i;
        json_array_foreach(absent, i, v)
        {
            _cleanup_free_ char *bad = mk_xasprintf("file %s", json_string_value(v));
            for (size_t j = 0; j < got.n; j++)
                ok &= strcmp(got.v[j], bad) != 0;
        }
    }
    if (!ok) {
        tap_diag("%s (%s): %s", c[0], c[2], r < 0 && err ? err->msg : "");
        for (size_t i = 0; i < got.n; i++)
            tap_diag("  got \"%s\"", got.v[i]);
    }
    builder_context_free(ctx);
    mk_error_free(err);
    mk_strv_release(&got);
    json_decref(files);
    json_decref(df);
    json_decref(present);
    json_decref(absent);
    return ok;
}

/* Behaviour beyond the tables: containment, NOT_FOUND, callback errors, excluded(). */
static void test_extra(void)
{
    _cleanup_free_ char *dir = row_dir();
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    _cleanup_free_ char *outside = mk_xasprintf("%s/secret", dir);
    write_file(outside, "secret");
    _cleanup_free_ char *a = mk_xasprintf("%s/a/b/c", ctxdir);
    write_file(a, "c");
    _cleanup_free_ char *ign = mk_xasprintf("%s/.dockerignore", ctxdir);
    write_file(ign, "a/b\n!a/b/c\n");
    _cleanup_free_ char *esc = mk_xasprintf("%s/esc", ctxdir);
    if (symlink("../secret", esc) < 0)
        exit(1);

    struct mk_context *ctx = NULL;
    struct mk_error *err = NULL;
    tap_ok(builder_context_open(ctxdir, NULL, &ctx, &err) == 0, "open with .dockerignore");
    tap_ok(!builder_context_excluded(ctx, "./a/b/c") && builder_context_excluded(ctx, "a/b/"),
           "excluded() normalises paths");
    tap_ok(builder_context_walk(ctx, "missing", collect, NULL, &err) < 0 &&
               err->code == MK_ERR_NOT_FOUND,
           "missing start is NOT_FOUND");
    mk_error_free(err);
    err = NULL;
    _cleanup_close_ int fd = mk_open_in_root(builder_context_dirfd(ctx), "esc", O_RDONLY, 0, NULL);
    tap_ok(fd < 0, "a symlink out of the context does not reach outside");
    struct mk_strv got = MK_STRV_INIT;
    int cwd = open(".", O_PATH | O_DIRECTORY);
    if (chdir(ctxdir) < 0)
        exit(1);
    int r = builder_context_walk(ctx, ".", collect, &got, &err);
    if (fchdir(cwd) < 0)
        exit(1);
    close(cwd);
    tap_ok(r == 0 && got.n == 5 && strcmp(got.v[0], "file .dockerignore") == 0 &&
               strcmp(got.v[1], "dir a") == 0 && strcmp(got.v[2], "dir a/b") == 0 &&
               strcmp(got.v[3], "file a/b/c") == 0 &&
               strcmp(got.v[4], "symlink:../secret esc") == 0,
           "walk: .dockerignore sent, re-included file with its parents, symlink reported");
    mk_strv_release(&got);
    builder_context_free(ctx);
    /* A glob exception re-includes files deep inside an excluded directory. */
    _cleanup_free_ char *deep = mk_xasprintf("%s/build/x/important.txt", ctxdir);
    _cleanup_free_ char *other = mk_xasprintf("%s/build/x/other.txt", ctxdir);
    write_file(deep, "i");
    write_file(other, "o");
    write_file(ign, "build\n!**/important.txt\n");
    tap_ok(builder_context_open(ctxdir, NULL, &ctx, &err) == 0, "open with a glob exception");
    cwd = open(".", O_PATH | O_DIRECTORY);
    if (chdir(ctxdir) < 0)
        exit(1);
    r = builder_context_walk(ctx, "build", collect, &got, &err);
    if (fchdir(cwd) < 0)
        exit(1);
    close(cwd);
    tap_ok(r == 0 && got.n == 3 && strcmp(got.v[0], "dir build") == 0 &&
               strcmp(got.v[1], "dir build/x") == 0 &&
               strcmp(got.v[2], "file build/x/important.txt") == 0,
           "walk: \"!**/important.txt\" reaches into the excluded build/");
    mk_strv_release(&got);
    builder_context_free(ctx);
    tap_ok(builder_context_open("/nonexistent-mkimg", NULL, &ctx, &err) < 0 &&
               err->code == MK_ERR_NOT_FOUND,
           "missing context dir");
    mk_error_free(err);
}

int main(void)
{
    const char *tmp = tap_tmpdir();
    /* The unprivileged child must reach the trees. */
    chmod(tmp, 0755);
    tsv_each_row("dockerignore/context-walk.tsv", 8, 44, walk_row);
    tsv_each_row("dockerignore/context-scenarios.tsv", 6, 4, scenario_row);
    test_extra();
    return tap_done();
}

/* The build context walker against fsutil's and BuildKit's tests (dockerignore/ in the
 * conformance data): context-walk.tsv and context-scenarios.tsv, each tree built in a temp
 * dir and walked with builder_context_walk_filtered (every context-walk row) and with
 * builder_context_walk (rows with one exclude list, read from a .dockerignore). */
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

/* The filter layers of one row. */
struct row_filters {
    struct mk_walk_filter f[8];
    struct mk_strv lists[8 + 2];
    size_t n;
};

static void strv_from_json(struct mk_strv *sv, json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) mk_strv_push(sv, json_string_value(v));
}

/* One layer with include, exclude and follow paths, or (exclude a list of lists) one layer
 * per list, innermost first. */
static void row_filters_init(struct row_filters *rf, json_t *include, json_t *exclude,
                             json_t *follow)
{
    memset(rf, 0, sizeof(*rf));
    strv_from_json(&rf->lists[0], include);
    strv_from_json(&rf->lists[1], follow);
    rf->f[0] = (struct mk_walk_filter){.include = &rf->lists[0], .follow_paths = &rf->lists[1]};
    rf->n = 1;
    if (!json_is_array(json_array_get(exclude, 0))) {
        strv_from_json(&rf->lists[2], exclude);
        rf->f[0].exclude = &rf->lists[2];
        return;
    }
    size_t i;
    json_t *layer;
    json_array_foreach(exclude, i, layer)
    {
        if (i >= 8)
            break;
        strv_from_json(&rf->lists[2 + i], layer);
        if (i > 0)
            rf->f[i] = (struct mk_walk_filter){0};
        rf->f[i].exclude = &rf->lists[2 + i];
        rf->n = i + 1;
    }
}

static void row_filters_release(struct row_filters *rf)
{
    for (size_t i = 0; i < sizeof(rf->lists) / sizeof(rf->lists[0]); i++)
        mk_strv_release(&rf->lists[i]);
}

/* Walks dir/ctx from start: through rf with builder_context_walk_filtered, or (rf NULL) with
 * builder_context_walk, dir/Dockerfile.dockerignore as the ignore file. Returns 0 or -1.
 * Uses _exit on setup failures: it also runs in a forked child sharing our stdio. */
static int open_and_walk(const char *dir, const char *start, const struct row_filters *rf,
                         struct mk_strv *out, struct mk_error **err)
{
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    _cleanup_free_ char *df = mk_xasprintf("%s/Dockerfile", dir);
    struct mk_context *ctx = NULL;
    if (builder_context_open(ctxdir, df, &ctx, err) < 0)
        return -1;
    /* collect() reads symlink targets relative to the cwd: walk from inside the context. */
    int cwd = open(".", O_PATH | O_DIRECTORY);
    int r = chdir(ctxdir) == 0 ? 0 : -1;
    if (r == 0 && rf)
        r = builder_context_walk_filtered(builder_context_dirfd(ctx), start, rf->f, rf->n, collect,
                                          out, err);
    else if (r == 0)
        r = builder_context_walk(ctx, start, collect, out, err);
    if (fchdir(cwd) < 0)
        _exit(1);
    close(cwd);
    builder_context_free(ctx);
    return r;
}

/* As open_and_walk, in a child running as nobody (the mode-0000 rows need a user without
 * CAP_DAC_OVERRIDE). Returns 0, -1, or 77 when the child could not drop privileges. */
static int walk_unprivileged(const char *dir, const struct row_filters *rf, struct mk_strv *out)
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
        int r = open_and_walk(dir, ".", rf, &lines, &err);
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

/* Runs row c one way: through rf, or (rf NULL) builder_context_walk and
 * builder_context_excluded. Returns 1 when the outcome is the expected one, 0 if not, 77
 * when the row cannot run here. */
static int walk_once(char **c, const char *dir, const struct row_filters *rf, json_t *expected)
{
    const char *op = c[5], *outcome = c[6];
    const char *how = rf ? "filtered" : "dockerignore";
    struct mk_strv got = MK_STRV_INIT;
    struct mk_error *err = NULL;
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    bool ok;
    int r;
    if (strcmp(c[0], "TestWalkerPermissionDenied") == 0) {
        _cleanup_free_ char *locked = mk_xasprintf("%s/foo/bar", ctxdir);
        chmod(locked, 0);
        r = walk_unprivileged(dir, rf, &got);
        chmod(locked, 0755);
        if (r == 77) {
            mk_strv_release(&got);
            return 77;
        }
    } else if (mk_str_has_prefix(op, "open:")) {
        struct mk_context *ctx = NULL;
        _cleanup_free_ char *df = mk_xasprintf("%s/Dockerfile", dir);
        bool want = strcmp(outcome, "ok") == 0;
        r = builder_context_open(ctxdir, df, &ctx, &err);
        if (r == 0 && rf) {
            _cleanup_close_ int fd = builder_context_open_filtered(
                builder_context_dirfd(ctx), op + 5, rf->f, rf->n, O_RDONLY, &err);
            char buf[16];
            /* The tree's files are empty. */
            ok = want ? fd >= 0 && read(fd, buf, sizeof(buf)) == 0
                      : fd < 0 && err->code == MK_ERR_NOT_FOUND;
        } else if (r == 0) {
            struct stat st;
            bool exists = fstatat(builder_context_dirfd(ctx), op + 5, &st, 0) == 0;
            ok = (exists && !builder_context_excluded(ctx, op + 5)) == want;
        } else {
            ok = false;
        }
        if (!ok)
            tap_diag("%s %s (%s): %s", c[0], op, how, err ? err->msg : "");
        builder_context_free(ctx);
        mk_error_free(err);
        return ok;
    } else {
        r = open_and_walk(dir, mk_str_has_prefix(op, "walk:") ? op + 5 : ".", rf, &got, &err);
    }
    if (strcmp(outcome, "error") == 0)
        ok = r < 0;
    else
        ok = r == 0 && tsv_strv_equals_json(&got, expected);
    if (!ok) {
        tap_diag("%s %s %s %s (%s): %s", c[0], c[2], c[3], c[4], how, r < 0 && err ? err->msg : "");
        for (size_t i = 0; i < got.n; i++)
            tap_diag("  got \"%s\"", got.v[i]);
    }
    mk_error_free(err);
    mk_strv_release(&got);
    return ok;
}

static bool walk_row(char **c, int nc)
{
    (void)nc;
    json_t *tree = tsv_json(c[1]), *include = tsv_json(c[2]), *exclude = tsv_json(c[3]),
           *follow = tsv_json(c[4]), *expected = tsv_json(c[7]);
    bool stacked = json_is_array(json_array_get(exclude, 0));
    /* builder_context_walk has one .dockerignore: only exclude lists go through it too. */
    bool legacy = !json_array_size(include) && !json_array_size(follow) && !stacked;
    struct row_filters rf;
    row_filters_init(&rf, include, exclude, follow);
    _cleanup_free_ char *dir = row_dir();
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    build_tree(ctxdir, tree);
    if (legacy)
        write_ignore(dir, exclude);
    int r = walk_once(c, dir, &rf, expected);
    if (r == 1 && legacy)
        r = walk_once(c, dir, NULL, expected);
    if (r == 77) {
        tap_skip("%s: cannot drop privileges", c[0]);
        tsv_skip_row();
    }
    row_filters_release(&rf);
    json_decref(tree);
    json_decref(include);
    json_decref(exclude);
    json_decref(follow);
    json_decref(expected);
    return r != 0;
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

/* Follow paths through symlink loops and out-of-root targets stay inside the root. */
static void test_follow_extra(void)
{
    _cleanup_free_ char *dir = row_dir();
    _cleanup_free_ char *ctxdir = mk_xasprintf("%s/ctx", dir);
    _cleanup_free_ char *in = mk_xasprintf("%s/in", ctxdir);
    _cleanup_free_ char *other = mk_xasprintf("%s/other", ctxdir);
    write_file(in, "");
    write_file(other, "");
    static const char *const links[][2] = {{"a", "b"}, {"b", "a"}, {"up", "../../in"}};
    for (size_t i = 0; i < 3; i++) {
        _cleanup_free_ char *l = mk_xasprintf("%s/%s", ctxdir, links[i][0]);
        if (symlink(links[i][1], l) < 0)
            exit(1);
    }
    struct mk_strv follow = MK_STRV_INIT, got = MK_STRV_INIT;
    mk_strv_push(&follow, "a");
    mk_strv_push(&follow, "up");
    struct mk_walk_filter f = {.follow_paths = &follow};
    struct mk_error *err = NULL;
    int cwd = open(".", O_PATH | O_DIRECTORY);
    if (chdir(ctxdir) < 0)
        exit(1);
    _cleanup_close_ int root = open(".", O_PATH | O_DIRECTORY);
    int r = builder_context_walk_filtered(root, ".", &f, 1, collect, &got, &err);
    if (fchdir(cwd) < 0)
        exit(1);
    close(cwd);
    tap_ok(r == 0 && got.n == 4 && strcmp(got.v[0], "symlink:b a") == 0 &&
               strcmp(got.v[1], "symlink:a b") == 0 && strcmp(got.v[2], "file in") == 0 &&
               strcmp(got.v[3], "symlink:../../in up") == 0,
           "follow paths: a symlink loop ends, \"../..\" stops at the root, other left out");
    mk_error_free(err);
    mk_strv_release(&got);
    mk_strv_release(&follow);
}

int main(void)
{
    const char *tmp = tap_tmpdir();
    /* The unprivileged child must reach the trees. */
    chmod(tmp, 0755);
    tsv_each_row("dockerignore/context-walk.tsv", 8, 44, walk_row);
    tsv_each_row("dockerignore/context-scenarios.tsv", 6, 4, scenario_row);
    test_extra();
    test_follow_extra();
    return tap_done();
}

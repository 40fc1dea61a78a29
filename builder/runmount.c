/* builder/runmount.c - RUN --mount=type=bind from the build context: the files .dockerignore
 * excludes stay invisible, as they are to COPY.
 *
 * The context directory is shown through an overlay whose top layer (the mask) holds a
 * whiteout for each excluded entry that sits in a visible directory. A directory of the mask
 * also stands for the real one in the merged view, so it gets the real one's mode, owner and
 * times. Whiteouts are 0/0 character devices, which Linux lets anyone create (5.8 and later).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

struct mask {
    struct mk_strv visible; /* every entry the walk reported (context-relative) */
    struct mk_strv dirs;    /* the visible directories, parents first */
    int ctxfd, maskfd;
    const char *rel; /* the bound directory (context-relative, normalized) */
    bool any;
};

static int collect(const char *relpath, const struct stat *st, void *arg, struct mk_error **err)
{
    (void)err;
    struct mask *m = arg;
    mk_strv_push(&m->visible, relpath);
    if (S_ISDIR(st->st_mode))
        mk_strv_push(&m->dirs, relpath);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_visible(const struct mask *m, const char *path)
{
    return bsearch(&path, m->visible.v, m->visible.n, sizeof(char *), cmp_str) != NULL;
}

/* The path below the bound directory ("" for itself). */
static const char *below(const struct mask *m, const char *path)
{
    if (strcmp(m->rel, ".") == 0)
        return strcmp(path, ".") == 0 ? "" : path;
    size_t n = strlen(m->rel);
    return path[n] == '/' ? path + n + 1 : "";
}

static int copy_dir_attrs(int ctxfd, const char *real, int dfd, struct mk_error **err)
{
    struct stat st;
    _cleanup_close_ int fd = mk_open_in_root(ctxfd, real, O_PATH | O_DIRECTORY, 0, err);
    if (fd < 0 || fstat(fd, &st) < 0)
        return mk_error_errno(err, "stat \"%s\"", real);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    if (fchown(dfd, st.st_uid, st.st_gid) < 0 || fchmod(dfd, st.st_mode & 07777) < 0 ||
        futimens(dfd, ts) < 0)
        return mk_error_errno(err, "copying the attributes of \"%s\"", real);
    return 0;
}

/* The mask directory standing for the visible directory dir, made on first use. */
static int mask_dir(struct mask *m, const char *dir, struct mk_error **err)
{
    const char *sub = below(m, dir);
    if (!*sub) {
        if (!m->any && copy_dir_attrs(m->ctxfd, dir, m->maskfd, err) < 0)
            return -1;
        m->any = true;
        return fcntl(m->maskfd, F_DUPFD_CLOEXEC, 3);
    }
    _cleanup_close_ int fd = mk_open_in_root(m->maskfd, sub, O_RDONLY | O_DIRECTORY, 0, NULL);
    if (fd >= 0)
        return MK_TAKE_FD(fd);
    _cleanup_free_ char *parent = mk_xstrdup(dir);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    _cleanup_close_ int pfd = mask_dir(m, slash ? parent : ".", err);
    if (pfd < 0)
        return -1;
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    if (mkdirat(pfd, name, 0700) < 0)
        return mk_error_errno(err, "creating the mask of \"%s\"", dir);
    fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || copy_dir_attrs(m->ctxfd, dir, fd, err) < 0)
        return fd < 0 ? mk_error_errno(err, "opening the mask of \"%s\"", dir) : -1;
    return MK_TAKE_FD(fd);
}

static int mask_children(struct mask *m, const char *dir, struct mk_error **err)
{
    _cleanup_close_ int dfd = mk_open_in_root(m->ctxfd, dir, O_RDONLY | O_DIRECTORY, 0, err);
    if (dfd < 0)
        return -1;
    DIR *d = fdopendir(MK_TAKE_FD(dfd));
    if (!d)
        return mk_error_errno(err, "reading \"%s\"", dir);
    struct dirent *de;
    int r = 0;
    while (r == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *child =
            strcmp(dir, ".") == 0 ? mk_xstrdup(de->d_name) : mk_xasprintf("%s/%s", dir, de->d_name);
        if (is_visible(m, child))
            continue;
        _cleanup_close_ int pfd = mask_dir(m, dir, err);
        if (pfd < 0 || mknodat(pfd, de->d_name, S_IFCHR | 0, makedev(0, 0)) < 0)
            r = pfd < 0 ? -1 : mk_error_errno(err, "hiding \"%s\"", child);
    }
    closedir(d);
    return r;
}

int builder_context_mask(const struct mk_context *ctx, const char *rel, const char *maskdir,
                         bool *ret_any, struct mk_error **err)
{
    struct mask m = {.visible = MK_STRV_INIT, .dirs = MK_STRV_INIT, .rel = rel};
    m.ctxfd = builder_context_dirfd(ctx);
    m.maskfd = open(maskdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = m.maskfd < 0 ? mk_error_errno(err, "opening \"%s\"", maskdir)
                         : builder_context_walk(ctx, rel, collect, &m, err);
    if (r == 0 && m.visible.n)
        qsort(m.visible.v, m.visible.n, sizeof(char *), cmp_str);
    for (size_t i = 0; r == 0 && i < m.dirs.n; i++)
        r = mask_children(&m, m.dirs.v[i], err);
    if (r == 0)
        *ret_any = m.any;
    if (m.maskfd >= 0)
        close(m.maskfd);
    mk_strv_release(&m.visible);
    mk_strv_release(&m.dirs);
    return r;
}

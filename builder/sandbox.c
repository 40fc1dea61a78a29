/* builder/sandbox.c - the RUN sandbox: namespaces, the overlay root and a minimal /dev.
 *
 * A child is cloned straight into new user, mount, pid, ipc and uts namespaces (raw clone
 * with fork semantics, as bubblewrap does, so the child is pid 1 of its pid namespace and
 * mounting /proc there is allowed). The parent writes the child's id maps, which mirror
 * our own range, then releases it. Every mount lives only in the child's mount namespace,
 * so no mount can outlive the child whatever happens to mkimg.
 *
 * The child reports back through a close-on-exec pipe: an error from the setup, and the
 * mount points it had to create in the rootfs. The parent removes those from the upperdir
 * after the child is gone, when they stayed empty, so they do not leak into the layer.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define REPORT_MSG_MAX 3000 /* one record stays below PIPE_BUF, so writes are atomic */

/* REC_EXIT: the command's exit status (code), sent by pid 1 once nothing else runs in the
 * container (run_init), the last record. */
enum record_type { REC_ERROR = 'E', REC_CREATED = 'C', REC_EXIT = 'X' };

struct record_hdr {
    char type;
    int code;
    int sys_errno;
    unsigned len;
};

enum sandbox_mode { MODE_RUN, MODE_CALL };

struct child_ctx {
    const struct mk_sandbox_spec *spec;
    enum sandbox_mode mode;
    mk_sandbox_fn fn;
    void *fn_arg;
    int report_fd;         /* write end of the report pipe */
    int upper_fd;          /* the upperdir, to tell which mount points we create */
    const char *workspace; /* private dir next to upperdir: merged/, empty/, hosts, hostname */
    const char *hostname;
    const char *uid_map, *gid_map; /* for the command's user namespace */
    const int *trees; /* per spec mount: the detached tree its bind (or lower_fd) shows, or -1 */
};

static void send_record(int fd, char type, int code, int sys_errno, const char *msg)
{
    char buf[sizeof(struct record_hdr) + REPORT_MSG_MAX];
    size_t len = strlen(msg);
    if (len > REPORT_MSG_MAX)
        len = REPORT_MSG_MAX;
    struct record_hdr h = {
        .type = type, .code = code, .sys_errno = sys_errno, .len = (unsigned)len};
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), msg, len);
    ssize_t ignored = write(fd, buf, sizeof(h) + len);
    (void)ignored;
}

static void send_error(int fd, const struct mk_error *e)
{
    send_record(fd, REC_ERROR, e ? e->code : MK_ERR_FAILED, e ? e->sys_errno : 0,
                e ? e->msg : "sandbox setup failed");
}

static void fd_path(char buf[static 64], int fd)
{
    snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

/* ---- parent side helpers ---------------------------------------------------------------- */

/* Our own id map, each extent mapped to itself: a container sees exactly the ids we have. */
static int identity_map(const char *file, char **ret, struct mk_error **err)
{
    _cleanup_free_ char *map = NULL;
    if (mk_read_file_at(AT_FDCWD, file, 4096, &map, NULL, err) < 0)
        return -1;
    struct mk_buf b = MK_BUF_INIT;
    char *save = NULL;
    for (char *line = strtok_r(map, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        unsigned long inside, outside, count;
        if (sscanf(line, "%lu %lu %lu", &inside, &outside, &count) != 3)
            continue;
        mk_buf_addf(&b, "%lu %lu %lu\n", inside, inside, count);
    }
    if (b.len == 0) {
        mk_buf_release(&b);
        return mk_error_set(err, MK_ERR_UNSUPPORTED, 0, "\"%s\" maps no ids", file);
    }
    *ret = mk_buf_detach(&b);
    return 0;
}

static int write_at_proc(pid_t pid, const char *name, const char *data)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(data);
    return write(fd, data, len) == (ssize_t)len ? 0 : -1;
}

static int write_child_maps(pid_t pid, const char *uid_map, const char *gid_map,
                            struct mk_error **err)
{
    if (write_at_proc(pid, "uid_map", uid_map) < 0)
        return mk_error_errno(err, "writing the container's uid map");
    if (write_at_proc(pid, "gid_map", gid_map) < 0) {
        /* Only a process without CAP_SETGID above the namespace has to give up
         * setgroups(2) before mapping gids (the single-id rootless case). */
        if (errno != EPERM || write_at_proc(pid, "setgroups", "deny") < 0 ||
            write_at_proc(pid, "gid_map", gid_map) < 0)
            return mk_error_errno(err, "writing the container's gid map");
    }
    return 0;
}

static int read_int_file(const char *path, long *ret)
{
    _cleanup_free_ char *s = NULL;
    struct mk_error *e = NULL;
    if (mk_read_file_at(AT_FDCWD, path, 64, &s, NULL, &e) < 0) {
        mk_error_free(e);
        return -1;
    }
    char *end;
    *ret = strtol(s, &end, 10);
    return end == s ? -1 : 0;
}

/* Says which switch to flip when the kernel refuses the namespaces. */
static int clone_error(int saved, struct mk_error **err)
{
    long v;
    if (read_int_file("/proc/sys/user/max_user_namespaces", &v) == 0 && v == 0)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                            "user namespaces are disabled (sysctl user.max_user_namespaces=0): "
                            "enable them with \"sysctl -w user.max_user_namespaces=15000\"");
    if (geteuid() != 0 && read_int_file("/proc/sys/kernel/unprivileged_userns_clone", &v) == 0 &&
        v == 0)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                            "unprivileged user namespaces are disabled (sysctl "
                            "kernel.unprivileged_userns_clone=0): enable them with \"sysctl -w "
                            "kernel.unprivileged_userns_clone=1\"");
    if (saved == ENOSPC)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                            "too many namespaces (raise sysctl user.max_user_namespaces)");
    return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                        "creating the container's namespaces (user, mount, pid, ipc, uts) failed");
}

struct child_report {
    struct mk_error *error;
    struct mk_strv created;
    bool exited; /* REC_EXIT came, with status */
    int status;
};

/* Reads one record; false at EOF. A record is written with one write(2) below PIPE_BUF,
 * so once its header is readable, its body is too. */
static bool read_report(int fd, struct child_report *rep)
{
    struct record_hdr h;
    char msg[REPORT_MSG_MAX + 1];
    ssize_t n;
    while ((n = read(fd, &h, sizeof(h))) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(h) || h.len > REPORT_MSG_MAX)
        return false;
    if (h.len && read(fd, msg, h.len) != (ssize_t)h.len)
        return false;
    msg[h.len] = '\0';
    if (h.type == REC_ERROR && !rep->error)
        mk_error_set(&rep->error, h.code, h.sys_errno, "%s", msg);
    else if (h.type == REC_CREATED)
        mk_strv_push(&rep->created, msg);
    else if (h.type == REC_EXIT) {
        rep->exited = true;
        rep->status = h.code;
    }
    return true;
}

/* A container whose command's status wait_child returned while its pid 1 was still exiting:
 * a pidfd of it (immune to pid reuse), or -1. */
static int pending_pidfd = -1;

void builder_sandbox_reap(void)
{
    if (pending_pidfd < 0)
        return;
    siginfo_t si;
    /* ECHILD: reaped already (a fork's waitpid(-1)), or not our child (in a fork). */
    while (waitid(P_PIDFD, (id_t)pending_pidfd, &si, WEXITED) < 0 && errno == EINTR)
        ;
    mk_closep(&pending_pidfd);
}

/* Waits for the child while draining its reports (so it never blocks on a full pipe); a
 * signal to mkimg (mk_interrupted) kills it. A pidfd lets us poll with a timeout, so a
 * signal that lands just before we block is not missed. A container's pid 1 reports the
 * command's status once nothing else runs in it (REC_EXIT): the caller goes on from there
 * (reads the upperdir, commits the layer) while pid 1 exits, which tears down its mounts:
 * an overlay over a tree of many files takes tens of ms to let go of its dentries and
 * inodes (a RUN that walked 20,000 files: ~35 ms). It is reaped later
 * (builder_sandbox_reap). */
static int wait_child(pid_t pid, int rep_fd, struct child_report *rep, int *ret_wstatus,
                      struct mk_error **err)
{
    _cleanup_close_ int pidfd = pidfd_open(pid, 0);
    bool rep_open = true;
    for (;;) {
        if (mk_interrupted) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            while (rep_open && read_report(rep_fd, rep))
                ;
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        }
        int st;
        pid_t r = waitpid(pid, &st, pidfd >= 0 ? WNOHANG : 0);
        if (r == pid) {
            while (rep_open && read_report(rep_fd, rep))
                ;
            *ret_wstatus = st;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return mk_error_errno(err, "waiting for the container");
        if (r == 0) {
            struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN},
                                  {.fd = rep_open ? rep_fd : -1, .events = POLLIN}};
            if (poll(p, 2, 200) > 0 && (p[1].revents & (POLLIN | POLLHUP)))
                rep_open = read_report(rep_fd, rep);
            if (rep->exited && pidfd >= 0) {
                *ret_wstatus = (rep->status & 0xff) << 8; /* as waitpid's: exited, status */
                pending_pidfd = MK_TAKE_FD(pidfd);
                return 0;
            }
        }
    }
}

static bool has_opaque_xattr(int dirfd)
{
    char fdp[64], v[8];
    fd_path(fdp, dirfd);
    return getxattr(fdp, "user.overlay.opaque", v, sizeof(v)) > 0 ||
           getxattr(fdp, "trusted.overlay.opaque", v, sizeof(v)) > 0;
}

/* Removes the mount points the child created, deepest first, if they stayed empty. The
 * upperdir may hold symlinks the RUN made, so every lookup stays inside it. */
static void remove_created(int upper_fd, const struct mk_strv *created)
{
    for (size_t i = created->n; i-- > 0;) {
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int pfd =
            mk_open_parent_in_root(upper_fd, created->v[i], false, &name, NULL);
        if (pfd < 0)
            continue;
        struct stat st;
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode) && st.st_size == 0) {
            unlinkat(pfd, name, 0);
        } else if (S_ISDIR(st.st_mode)) {
            _cleanup_close_ int dfd =
                openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            /* An empty opaque dir hides the lower one: removing it would change the layer. */
            if (dfd >= 0 && !has_opaque_xattr(dfd))
                unlinkat(pfd, name, AT_REMOVEDIR);
        }
    }
}

/* ---- child side ------------------------------------------------------------------------- */

static int overlay_error(int saved, int fsfd, struct mk_error **err)
{
    char kmsg[512] = "";
    if (fsfd >= 0) {
        ssize_t n = read(fsfd, kmsg, sizeof(kmsg) - 1);
        kmsg[n > 0 ? n : 0] = '\0';
        if (n > 0 && kmsg[n - 1] == '\n')
            kmsg[n - 1] = '\0';
    }
    if (saved == ENODEV)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                            "mounting the root file system: overlayfs is not available "
                            "(load it with \"modprobe overlay\")");
    if (saved == EPERM)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                            "mounting the root file system: the kernel refuses overlayfs in a "
                            "user namespace (needs Linux 5.11 or later)%s%s",
                            *kmsg ? ": " : "", kmsg);
    return mk_error_set(err, MK_ERR_IO, saved, "mounting the overlay root file system%s%s",
                        *kmsg ? " (" : "", *kmsg ? kmsg : "");
}

/* The new mount API takes one lowerdir per call ("lowerdir+", Linux 6.8), so the layer count
 * is not limited by the one-page option string mount(2) accepts. With throwaway (the upperdir
 * is a step's, committed with a syncfs of its own, or discarded), the mount is "volatile"
 * (Linux 5.10): without it the unmount when the container's mount namespace goes away
 * syncs the whole upper file system, one journal commit per step that nothing needs. */
static int mount_overlay_fsconfig(const struct mk_sandbox_spec *spec, const char *empty,
                                  const char *target, bool throwaway, bool *ret_unsupported,
                                  struct mk_error **err)
{
    *ret_unsupported = false;
    _cleanup_close_ int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fsfd < 0) {
        if (errno == ENOSYS) {
            *ret_unsupported = true;
            return -1;
        }
        return overlay_error(errno, -1, err);
    }
    size_t n = spec->lowerdirs ? spec->lowerdirs->n : 0;
    for (size_t i = 0; i < (n ? n : 1); i++) {
        const char *dir = n ? spec->lowerdirs->v[i] : empty;
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", dir, 0) < 0) {
            if (i == 0 && errno == EINVAL) {
                *ret_unsupported = true;
                return -1;
            }
            return overlay_error(errno, fsfd, err);
        }
    }
    if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", spec->upperdir, 0) < 0 ||
        fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", spec->workdir, 0) < 0 ||
        fsconfig(fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
        return overlay_error(errno, fsfd, err);
    /* Where "volatile" is unknown the mount is only slower. */
    if (throwaway)
        (void)fsconfig(fsfd, FSCONFIG_SET_FLAG, "volatile", NULL, 0);
    if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return overlay_error(errno, fsfd, err);
    _cleanup_close_ int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
    if (mfd < 0)
        return overlay_error(errno, fsfd, err);
    if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return mk_error_errno(err, "attaching the overlay root file system");
    return 0;
}

bool builder_sandbox_legacy_mount;

static int mount_overlay(const struct mk_sandbox_spec *spec, const char *empty, const char *target,
                         bool throwaway, struct mk_error **err)
{
    bool unsupported = true;
    if (!builder_sandbox_legacy_mount &&
        mount_overlay_fsconfig(spec, empty, target, throwaway, &unsupported, err) == 0)
        return 0;
    if (!unsupported)
        return -1;
    struct mk_buf opts = MK_BUF_INIT;
    mk_buf_init(&opts, 4095);
    int r = mk_buf_puts(&opts, "lowerdir=", err);
    size_t n = spec->lowerdirs ? spec->lowerdirs->n : 0;
    for (size_t i = 0; r == 0 && i < (n ? n : 1); i++) {
        const char *dir = n ? spec->lowerdirs->v[i] : empty;
        if (strpbrk(dir, ":,")) {
            r = mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                             "layer path \"%s\" cannot be passed to mount(2)", dir);
            break;
        }
        r = mk_buf_printf(&opts, err, "%s%s", i ? ":" : "", dir);
    }
    if (r == 0)
        r = mk_buf_printf(&opts, err, ",upperdir=%s,workdir=%s,userxattr", spec->upperdir,
                          spec->workdir);
    if (r < 0) {
        mk_buf_release(&opts);
        return mk_error_wrap(err,
                             "%zu layers do not fit in one page of mount options (Linux 6.8 "
                             "lifts this limit)",
                             n);
    }
    r = mount("overlay", target, "overlay", 0, opts.data);
    int saved = errno;
    mk_buf_release(&opts);
    return r < 0 ? overlay_error(saved, -1, err) : 0;
}

/* Opens (creating when missing) a mount point inside the rootfs; every path component we
 * add is reported so the parent can take it out of the upperdir again. */
static int mount_point(struct child_ctx *c, int rootfd, const char *path, bool dir,
                       struct mk_error **err)
{
    int fd = mk_open_in_root(rootfd, path, O_PATH | (dir ? O_DIRECTORY : 0), 0, NULL);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT)
        return mk_error_errno(err, "opening mount point \"%s\"", path);
    _cleanup_free_ char *copy = mk_xstrdup(path + (*path == '/'));
    for (char *p = copy;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (fstatat(c->upper_fd, copy, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
            send_record(c->report_fd, REC_CREATED, 0, 0, copy);
        *p = saved;
        if (!saved)
            break;
    }
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = mk_open_parent_in_root(rootfd, path, true, &name, err);
    if (pfd < 0)
        return -1;
    if (dir) {
        if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST)
            return mk_error_errno(err, "creating mount point \"%s\"", path);
    } else {
        int f = openat(pfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0)
            return mk_error_errno(err, "creating mount point \"%s\"", path);
        close(f);
    }
    return mk_open_in_root(rootfd, path, O_PATH | (dir ? O_DIRECTORY : 0), 0, err);
}

/* A detached copy of the tree at dirfd/path (path "" = dirfd itself), read-only when asked
 * before anyone can see it. The fd is the tree: attach_tree puts it somewhere without any
 * lookup by name, and closing an unattached one unmounts it. */
static int clone_tree(int dirfd, const char *path, bool readonly, const char *what,
                      struct mk_error **err)
{
    _cleanup_close_ int tree =
        open_tree(dirfd, path,
                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (*path ? 0 : AT_EMPTY_PATH));
    if (tree < 0) {
        if (errno == ENOSYS)
            return mk_error_set(err, MK_ERR_UNSUPPORTED, errno,
                                "bind-mounting %s needs open_tree(2) and mount_setattr(2) "
                                "(Linux 5.12 or later)",
                                what);
        return mk_error_errno(err, "bind-mounting %s", what);
    }
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (readonly && mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
        return mk_error_errno(err, "making %s read-only", what);
    return MK_TAKE_FD(tree);
}

static int attach_tree(int tree, int target_fd, const char *what, struct mk_error **err)
{
    if (move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return mk_error_errno(err, "bind-mounting %s", what);
    return 0;
}

static int bind_at(const char *source, int target_fd, bool readonly, const char *what,
                   struct mk_error **err)
{
    _cleanup_close_ int tree = clone_tree(AT_FDCWD, source, readonly, what, err);
    return tree < 0 ? -1 : attach_tree(tree, target_fd, what, err);
}

static int mount_fs_at(int target_fd, const char *type, unsigned long flags, const char *data,
                       struct mk_error **err)
{
    char t[64];
    fd_path(t, target_fd);
    if (mount(type, t, type, flags, data) < 0)
        return mk_error_errno(err, "mounting %s", type);
    return 0;
}

static int setup_dev(struct child_ctx *c, int rootfd, struct mk_error **err)
{
    {
        _cleanup_close_ int mp = mount_point(c, rootfd, "/dev", true, err);
        if (mp < 0 ||
            mount_fs_at(mp, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k", err) < 0)
            return mk_error_wrap(err, "setting up /dev");
    }
    _cleanup_close_ int dev = mk_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, 0, err);
    if (dev < 0)
        return -1;
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(nodes); i++) {
        char host[32];
        snprintf(host, sizeof(host), "/dev/%s", nodes[i]);
        if (access(host, F_OK) < 0)
            continue;
        int f = openat(dev, nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f < 0)
            return mk_error_errno(err, "creating \"%s\"", host);
        close(f);
        _cleanup_close_ int t = openat(dev, nodes[i], O_PATH | O_CLOEXEC);
        if (t < 0 || bind_at(host, t, false, host, err) < 0)
            return mk_error_errno(err, "setting up \"%s\"", host);
    }
    if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0)
        return mk_error_errno(err, "setting up /dev");
    {
        _cleanup_close_ int pts = openat(dev, "pts", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (pts < 0 || mount_fs_at(pts, "devpts", MS_NOSUID | MS_NOEXEC,
                                   "newinstance,ptmxmode=0666,mode=620", err) < 0)
            return mk_error_wrap(err, "setting up /dev/pts");
    }
    {
        _cleanup_close_ int shm = openat(dev, "shm", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (shm < 0 || mount_fs_at(shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                   "mode=1777,size=65536k", err) < 0)
            return mk_error_wrap(err, "setting up /dev/shm");
    }
    static const char *const links[][2] = {{"ptmx", "pts/ptmx"},
                                           {"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    for (size_t i = 0; i < MK_ARRAY_SIZE(links); i++)
        if (symlinkat(links[i][1], dev, links[i][0]) < 0)
            return mk_error_errno(err, "creating /dev/%s", links[i][0]);
    return 0;
}

/* /sys from the host, read-only (writable only for --security=insecure). A user namespace
 * may be refused this (locked submounts); builds rarely need /sys, so the RUN then goes on
 * without it. */
static void setup_sys(struct child_ctx *c, int rootfd)
{
    struct mk_error *e = NULL;
    _cleanup_close_ int mp = mount_point(c, rootfd, "/sys", true, &e);
    if (mp >= 0)
        bind_at("/sys", mp, !c->spec->insecure, "/sys", &e);
    mk_error_free(e);
}

/* runc's masked paths: a file shows /dev/null, a directory an empty read-only tmpfs. A path
 * this kernel does not have is skipped. */
static int mask_path(int rootfd, const char *path, struct mk_error **err)
{
    _cleanup_close_ int fd = mk_open_in_root(rootfd, path, O_PATH, 0, NULL);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0
                                                   : mk_error_errno(err, "masking \"%s\"", path);
    if (S_ISDIR(st.st_mode))
        return mount_fs_at(fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           "mode=755,size=4k", err) < 0
                   ? mk_error_wrap(err, "masking \"%s\"", path)
                   : 0;
    return bind_at("/dev/null", fd, true, path, err);
}

/* runc's read-only paths: the path bound onto itself, read-only. */
static int readonly_path(int rootfd, const char *path, struct mk_error **err)
{
    _cleanup_close_ int fd = mk_open_in_root(rootfd, path, O_PATH, 0, NULL);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? 0
                   : mk_error_errno(err, "making \"%s\" read-only", path);
    _cleanup_close_ int tree = clone_tree(fd, "", true, path, err);
    return tree < 0 ? -1 : attach_tree(tree, fd, path, err);
}

static int confine_paths(int rootfd, struct mk_error **err)
{
    for (size_t i = 0; builder_masked_paths[i]; i++)
        if (mask_path(rootfd, builder_masked_paths[i], err) < 0)
            return -1;
    for (size_t i = 0; builder_readonly_paths[i]; i++)
        if (readonly_path(rootfd, builder_readonly_paths[i], err) < 0)
            return -1;
    return 0;
}

/* For the /etc files: an image may keep a dangling symlink there (to a resolver's runtime
 * file). Nothing can be mounted on it without changing the image, so the RUN goes without. */
static int bind_etc_file(struct child_ctx *c, int rootfd, const char *host, const char *target,
                         bool readonly, struct mk_error **err)
{
    struct mk_error *e = NULL;
    _cleanup_close_ int mp = mount_point(c, rootfd, target, false, &e);
    if (mp < 0 && e->sys_errno == ELOOP) {
        mk_error_free(e);
        return 0;
    }
    if (mp < 0) {
        if (err && !*err)
            *err = e;
        else
            mk_error_free(e);
        return -1;
    }
    return bind_at(host, mp, readonly, target, err);
}

/* RUN --mount from a stage or image, or a writable or filtered view of the context: the
 * overlay is put together in our workspace (still in this mount namespace, so its subpath can
 * be bound like any host path), and pivot_root later takes the workspace out of sight. */
static int mount_overlay_at(struct child_ctx *c, int rootfd, const struct mk_sandbox_mount *m,
                            size_t i, struct mk_error **err)
{
    _cleanup_free_ char *dir = mk_xasprintf("%s/mount-%zu", c->workspace, i);
    _cleanup_free_ char *empty = mk_xasprintf("%s/empty", c->workspace);
    _cleanup_free_ char *lower = mk_xasprintf("%s/lower-%zu", c->workspace, i);
    if (mkdir(dir, 0755) < 0)
        return mk_error_errno(err, "creating \"%s\"", dir);
    _cleanup_(mk_strv_release) struct mk_strv lowers = MK_STRV_INIT;
    if (m->lowerdirs)
        mk_strv_copy(&lowers, m->lowerdirs);
    if (c->trees[i] >= 0) {
        /* The tree the caller resolved comes in by fd; overlayfs takes paths, so it is
         * attached in our private workspace first, where nothing else can swap it. */
        _cleanup_close_ int at = -1;
        if (mkdir(lower, 0755) < 0 ||
            (at = open(lower, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            return mk_error_errno(err, "creating \"%s\"", lower);
        if (attach_tree(c->trees[i], at, m->target, err) < 0)
            return -1;
        mk_strv_push(&lowers, lower);
    }
    struct mk_sandbox_spec ov = {
        .lowerdirs = &lowers, .upperdir = m->upperdir, .workdir = m->workdir};
    /* Not throwaway: a cache mount's upperdir is kept, and a volatile mount leaves its
     * workdir unfit for the next mount. */
    if (mount_overlay(&ov, empty, dir, false, err) < 0)
        return mk_error_wrap(err, "--mount target \"%s\"", m->target);
    _cleanup_close_ int top = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (top < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    const char *sub = m->subpath && *m->subpath ? m->subpath : "/";
    _cleanup_close_ int src = mk_open_in_root(top, sub, O_PATH, 0, NULL);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0)
        return mk_error_set(err, MK_ERR_NOT_FOUND, errno, "--mount source \"%s\" not found", sub);
    _cleanup_close_ int mp = mount_point(c, rootfd, m->target, S_ISDIR(st.st_mode), err);
    if (mp < 0)
        return -1;
    _cleanup_close_ int tree = clone_tree(src, "", m->readonly, m->target, err);
    return tree < 0 ? -1 : attach_tree(tree, mp, m->target, err);
}

static int setup_mounts(struct child_ctx *c, int rootfd, struct mk_error **err)
{
    const struct mk_sandbox_spec *spec = c->spec;
    {
        _cleanup_close_ int mp = mount_point(c, rootfd, "/proc", true, err);
        if (mp < 0 || mount_fs_at(mp, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
            return mk_error_wrap(err, "setting up /proc");
    }
    if (setup_dev(c, rootfd, err) < 0)
        return -1;
    setup_sys(c, rootfd);
    if (access("/etc/resolv.conf", R_OK) == 0 &&
        bind_etc_file(c, rootfd, "/etc/resolv.conf", "/etc/resolv.conf", true, err) < 0)
        return -1;
    _cleanup_free_ char *hosts = mk_xasprintf("%s/hosts", c->workspace);
    _cleanup_free_ char *hostname = mk_xasprintf("%s/hostname", c->workspace);
    if (bind_etc_file(c, rootfd, hosts, "/etc/hosts", false, err) < 0 ||
        bind_etc_file(c, rootfd, hostname, "/etc/hostname", false, err) < 0)
        return -1;
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct mk_sandbox_mount *m = &spec->mounts[i];
        if (m->type == MK_MOUNT_OVERLAY) {
            if (mount_overlay_at(c, rootfd, m, i, err) < 0)
                return -1;
            continue;
        }
        bool dir = true;
        struct stat st;
        if (m->type == MK_MOUNT_BIND) {
            if (fstat(c->trees[i], &st) < 0)
                return mk_error_errno(err, "mount source \"%s\"", m->source);
            dir = S_ISDIR(st.st_mode);
        }
        _cleanup_close_ int mp = mount_point(c, rootfd, m->target, dir, err);
        if (mp < 0)
            return -1;
        if (m->type == MK_MOUNT_BIND) {
            if (attach_tree(c->trees[i], mp, m->target, err) < 0)
                return -1;
        } else if (mount_fs_at(mp, "tmpfs", MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0),
                               "mode=755", err) < 0) {
            return mk_error_wrap(err, "mounting tmpfs on \"%s\"", m->target);
        }
    }
    return spec->insecure ? 0 : confine_paths(rootfd, err);
}

static void lo_up(void)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &ifr);
    }
}

static const char *env_path(const struct mk_strv *env)
{
    const char *p = env ? mk_strv_env_get(env, "PATH") : NULL;
    return p ? p : DEFAULT_PATH;
}

/* execvp with the container's PATH instead of ours; returns only on failure. */
static void exec_in_path(char *const argv[], char *const envp[], const char *path)
{
    const char *file = argv[0];
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return;
    }
    int first_errno = ENOENT;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char buf[4096];
        if ((size_t)snprintf(buf, sizeof(buf), "%.*s%s%s", (int)len, p, len ? "/" : "", file) <
            sizeof(buf)) {
            execve(buf, argv, envp);
            if (errno != ENOENT && errno != ENOTDIR && first_errno == ENOENT)
                first_errno = errno;
        }
        if (!colon)
            break;
        p = colon + 1;
    }
    errno = first_errno;
}

/* Who the RUN command runs as, resolved against the rootfs. */
struct run_user {
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t n_groups;
    char *home;
};

/* The environment, with HOME from passwd when the image sets none (as runc does). */
static char **command_env(const struct mk_strv *env, const char *home)
{
    struct mk_strv e = MK_STRV_INIT;
    if (env)
        mk_strv_copy(&e, env);
    if (!mk_strv_env_get(&e, "HOME"))
        mk_strv_env_set(&e, "HOME", home);
    return e.v;
}

/* The RUN process: credentials, no_new_privs, stdio, then exec. */
__attribute__((noreturn)) static void exec_command(struct child_ctx *c, const struct run_user *u)
{
    uid_t uid = u->uid;
    gid_t gid = u->gid;
    const struct mk_sandbox_spec *spec = c->spec;
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    setsid();
    int in = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = fcntl(spec->stdout_fd >= 0 ? spec->stdout_fd : in, F_DUPFD_CLOEXEC, 3);
    int errfd = fcntl(spec->stderr_fd >= 0 ? spec->stderr_fd : in, F_DUPFD_CLOEXEC, 3);
    struct mk_error *e = NULL;
    if (out < 0 || errfd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
        dup2(errfd, 2) < 0) {
        mk_error_errno(&e, "setting up the command's standard streams");
        goto fail;
    }
    /* Whatever mkimg had open without O_CLOEXEC must not reach the RUN command. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (!spec->insecure && builder_confine_bounding(&e) < 0)
        goto fail;
    /* Raw system calls: we are a raw clone of a process that may have had threads, and the
     * libc wrappers would wait for those to change their ids too (they never will). A
     * setgroups-denied namespace (single-id rootless) cannot have supplementary groups. */
    if (syscall(SYS_setgroups, u->n_groups, u->groups) < 0 && errno != EPERM) {
        mk_error_errno(&e, "setting supplementary groups");
        goto fail;
    }
    if (syscall(SYS_setresgid, gid, gid, gid) < 0 || syscall(SYS_setresuid, uid, uid, uid) < 0) {
        mk_error_set(&e, errno == EINVAL ? MK_ERR_UNSUPPORTED : MK_ERR_IO, errno,
                     "switching to user \"%s\" (uid %u, gid %u)%s",
                     spec->user ? spec->user : "root", (unsigned)uid, (unsigned)gid,
                     errno == EINVAL ? ": the id is not mapped (no /etc/subuid range?)" : "");
        goto fail;
    }
    if (!spec->insecure) {
        if (builder_confine_caps(&e) < 0)
            goto fail;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
            mk_error_errno(&e, "setting no_new_privs");
            goto fail;
        }
        if (builder_confine_seccomp(&e) < 0)
            goto fail;
    }
    exec_in_path(spec->argv, command_env(spec->env, u->home), env_path(spec->env));
    int saved = errno;
    if (saved == ENOENT && !strchr(spec->argv[0], '/'))
        dprintf(2, "mkimg: exec \"%s\": executable file not found in $PATH\n", spec->argv[0]);
    else
        dprintf(2, "mkimg: exec \"%s\": %s\n", spec->argv[0], strerror(saved));
    _exit(127);
fail:
    send_error(c->report_fd, e);
    _exit(127);
}

/* Raw clone with fork semantics: with CLONE_NEWPID, the child is pid 1 of its namespace. */
static pid_t clone_child(int flags)
{
    return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, 0);
}

static __attribute__((noreturn)) void init_fail(struct child_ctx *c, struct mk_error *e)
{
    send_error(c->report_fd, e);
    _exit(127);
}

/* Pid 1 of the container, in mkimg's user namespace: starts the command in a user namespace
 * and mount namespace of its own (so every mount above is locked for it), writes its id
 * maps, then reaps orphans until the command exits; the kernel kills the rest of the pid
 * namespace when we return. The command cannot signal us (pid 1 ignores what it has no
 * handler for) nor ptrace us (we hold capabilities in a namespace above its own). */
__attribute__((noreturn)) static void run_init(struct child_ctx *c, const struct run_user *u)
{
    struct mk_error *e = NULL;
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0) {
        mk_error_errno(&e, "creating a pipe");
        init_fail(c, e);
    }
    pid_t cmd = clone_child(c->spec->insecure ? 0 : CLONE_NEWUSER | CLONE_NEWNS);
    if (cmd < 0) {
        mk_error_errno(&e, "creating the command's user namespace");
        init_fail(c, e);
    }
    if (cmd == 0) {
        char byte;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(go[1]);
        if (read(go[0], &byte, 1) != 1)
            _exit(127);
        close(go[0]);
        exec_command(c, u);
    }
    close(go[0]);
    if (!c->spec->insecure && write_child_maps(cmd, c->uid_map, c->gid_map, &e) < 0) {
        kill(cmd, SIGKILL);
        init_fail(c, e);
    }
    if (write(go[1], "x", 1) != 1) {
        mk_error_errno(&e, "starting the command");
        kill(cmd, SIGKILL);
        init_fail(c, e);
    }
    close(go[1]);
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w == cmd) {
            int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            /* What the command left running dies now and is reaped, as the kernel would do
             * when we exit, but before the status goes out: then nothing writes to the
             * upperdir any more once mkimg reads it (wait_child). */
            kill(-1, SIGKILL);
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
            send_record(c->report_fd, REC_EXIT, code, 0, "");
            _exit(code);
        }
        if (w < 0 && errno != EINTR)
            _exit(127);
    }
}

static int child_setup(struct child_ctx *c, struct mk_error **err)
{
    const struct mk_sandbox_spec *spec = c->spec;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return mk_error_errno(err, "making mounts private");
    _cleanup_free_ char *merged = mk_xasprintf("%s/merged", c->workspace);
    _cleanup_free_ char *empty = mk_xasprintf("%s/empty", c->workspace);
    if (mount_overlay(spec, empty, merged, true, err) < 0)
        return -1;
    _cleanup_close_ int rootfd = open(merged, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return mk_error_errno(err, "opening the root file system");
    if (c->mode == MODE_CALL)
        return c->fn(rootfd, c->fn_arg, err);

    if (spec->network == MK_NET_NONE)
        lo_up();
    if (setup_mounts(c, rootfd, err) < 0)
        return -1;
    /* pivot_root rather than chroot: the host's tree is then unreachable, not just hidden. */
    if (chdir(merged) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return mk_error_errno(err, "entering the root file system");
    if (sethostname(c->hostname, strlen(c->hostname)) < 0)
        return mk_error_errno(err, "setting the hostname");
    _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return mk_error_errno(err, "opening the root file system");
    const char *cwd = spec->cwd && *spec->cwd ? spec->cwd : "/";
    {
        _cleanup_close_ int cwdfd = mk_mkdir_p_in_root(root, cwd, 0755, err);
        if (cwdfd < 0 || fchdir(cwdfd) < 0)
            return mk_error_wrap(err, "entering working directory \"%s\"", cwd);
    }
    /* Never freed: run_init does not return. */
    struct run_user u = {0};
    if (builder_resolve_user_groups(root, spec->user, &u.uid, &u.gid, &u.groups, &u.n_groups,
                                    &u.home, err) < 0)
        return -1;
    run_init(c, &u);
}

/* A file of the container's workspace. The workspace is private to this step, created
 * empty for it (mk_mkdtemp_in) and removed when the container is gone, so the file is
 * created fresh (O_EXCL, nothing planted is followed) and never fsynced: nothing reads it
 * after a crash, and an fsync here would cost a journal commit per file and step. */
static int write_workspace_file(int dfd, const char *name, const char *data, struct mk_error **err)
{
    _cleanup_close_ int fd =
        openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return mk_error_errno(err, "creating \"%s\" in the sandbox workspace", name);
    return mk_write_all(fd, data, strlen(data), err);
}

/* merged/ and empty/ for every sandbox; /etc/hosts and /etc/hostname only for a container
 * (a helper mounts neither). */
static int write_workspace_files(const char *workspace, enum sandbox_mode mode,
                                 const char *hostname, struct mk_error **err)
{
    _cleanup_close_ int dfd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", workspace);
    if (mkdirat(dfd, "merged", 0755) < 0 || mkdirat(dfd, "empty", 0755) < 0)
        return mk_error_errno(err, "creating sandbox directories in \"%s\"", workspace);
    if (mode != MODE_RUN)
        return 0;
    _cleanup_free_ char *hosts = mk_xasprintf(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n",
        hostname);
    _cleanup_free_ char *hn = mk_xasprintf("%s\n", hostname);
    if (write_workspace_file(dfd, "hosts", hosts, err) < 0 ||
        write_workspace_file(dfd, "hostname", hn, err) < 0)
        return -1;
    return 0;
}

/* Every bind source (and context lowerdir) as a detached tree, cloned here, in mkimg's own
 * mount namespace, from the fd or path the caller gave: the container's pid 1 only attaches
 * the trees, so nothing it mounts is looked up by a name someone could swap meanwhile. */
static int open_trees(const struct mk_sandbox_spec *spec, int *trees, struct mk_error **err)
{
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct mk_sandbox_mount *m = &spec->mounts[i];
        _cleanup_free_ char *what = mk_xasprintf("\"%s\"", m->source ? m->source : m->target);
        if (m->type == MK_MOUNT_BIND)
            trees[i] = m->has_source_fd ? clone_tree(m->source_fd, "", m->readonly, what, err)
                                        : clone_tree(AT_FDCWD, m->source, m->readonly, what, err);
        else if (m->type == MK_MOUNT_OVERLAY && m->has_lower_fd)
            trees[i] = clone_tree(m->lower_fd, "", true, what, err);
        else
            continue;
        if (trees[i] < 0)
            return mk_error_wrap(err, "--mount target \"%s\"", m->target);
    }
    return 0;
}

/* The container's workspace sits next to the upperdir, in the step's store tmpdir. */
static char *workspace_new(const char *upperdir, struct mk_error **err)
{
    _cleanup_free_ char *tmpdir = mk_xstrdup(upperdir);
    char *slash = strrchr(tmpdir, '/');
    if (slash && slash != tmpdir)
        *slash = '\0';
    else
        tmpdir[1] = '\0', tmpdir[0] = slash ? '/' : '.';
    return mk_mkdtemp_in(tmpdir, "sandbox-", err);
}

/* The cloned child: waits for the parent's go (maps written), sets the container up and runs
 * it; what fails is reported on rep[1]. */
__attribute__((noreturn)) static void child_main(struct child_ctx *c, int go[2], int rep[2])
{
    char byte;
    /* With the death signal armed, a parent gone before this point shows as EOF. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Layers must not depend on the umask of whoever runs mkimg. */
    umask(022);
    close(go[1]);
    close(rep[0]);
    if (read(go[0], &byte, 1) != 1)
        _exit(1);
    close(go[0]);
    struct mk_error *e = NULL;
    if (child_setup(c, &e) < 0) {
        send_error(rep[1], e);
        _exit(1);
    }
    _exit(0);
}

/* A volatile overlay leaves work/incompat/volatile/dirty in its workdir and refuses to be
 * mounted on that workdir again while it is there; callers may mount one workdir several
 * times (the mount is gone with the container, and the upperdir was never synced through
 * it anyway). The workdir is ours and never visible in the container. */
static void volatile_reset(const char *workdir)
{
    _cleanup_close_ int fd = open(workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    unlinkat(fd, "work/incompat/volatile/dirty", 0);
    unlinkat(fd, "work/incompat/volatile", AT_REMOVEDIR);
    unlinkat(fd, "work/incompat", AT_REMOVEDIR);
}

static int sandbox_spawn(const struct mk_sandbox_spec *spec, enum sandbox_mode mode,
                         mk_sandbox_fn fn, void *arg, int *ret_status, struct mk_error **err)
{
    builder_sandbox_reap();
    if (mk_interrupted)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
    if (!spec->upperdir || !spec->workdir || (mode == MODE_RUN && (!spec->argv || !spec->argv[0])))
        MK_BUG("sandbox spec without upperdir, workdir or argv");
    const char *hostname = spec->hostname && *spec->hostname ? spec->hostname : "mkimg";

    _cleanup_free_ char *uid_map = NULL, *gid_map = NULL;
    if (identity_map("/proc/self/uid_map", &uid_map, err) < 0 ||
        identity_map("/proc/self/gid_map", &gid_map, err) < 0)
        return -1;
    _cleanup_close_ int upper_fd = open(spec->upperdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (upper_fd < 0)
        return mk_error_errno(err, "opening upper directory \"%s\"", spec->upperdir);
    _cleanup_free_ char *workspace = workspace_new(spec->upperdir, err);
    if (!workspace)
        return -1;
    int r = -1;
    int go[2] = {-1, -1}, rep[2] = {-1, -1};
    struct child_report report = {.created = MK_STRV_INIT};
    _cleanup_free_ int *trees = mk_xreallocarray(NULL, spec->n_mounts + 1, sizeof(int));
    for (size_t i = 0; i < spec->n_mounts; i++)
        trees[i] = -1;
    if (write_workspace_files(workspace, mode, hostname, err) < 0)
        goto out;
    if (mode == MODE_RUN && open_trees(spec, trees, err) < 0)
        goto out;
    if (mode == MODE_RUN && !spec->insecure && builder_confine_seccomp_prepare(err) < 0)
        goto out;
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
        mk_error_errno(err, "creating a pipe");
        goto out;
    }
    /* A helper (MODE_CALL) runs mkimg's own code in a user namespace of its own. The
     * container's pid 1 (MODE_RUN) stays in ours, so that what it mounts is locked for the
     * command, which it starts in a new user namespace (run_init). */
    int flags = CLONE_NEWNS;
    if (mode == MODE_CALL)
        flags |= CLONE_NEWUSER;
    else
        flags |= CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                 (spec->network == MK_NET_NONE ? CLONE_NEWNET : 0);
    pid_t pid = clone_child(flags);
    if (pid < 0) {
        clone_error(errno, err);
        goto out;
    }
    if (pid == 0) {
        struct child_ctx c = {.spec = spec,
                              .mode = mode,
                              .fn = fn,
                              .fn_arg = arg,
                              .report_fd = rep[1],
                              .upper_fd = upper_fd,
                              .workspace = workspace,
                              .hostname = hostname,
                              .uid_map = uid_map,
                              .gid_map = gid_map,
                              .trees = trees};
        child_main(&c, go, rep);
    }
    close(go[0]);
    close(rep[1]);
    go[0] = rep[1] = -1;
    int wst = 0;
    if ((mode == MODE_CALL && write_child_maps(pid, uid_map, gid_map, err) < 0) ||
        write(go[1], "x", 1) != 1) {
        mk_error_set(err, MK_ERR_IO, errno, "starting the container");
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        goto out;
    }
    close(go[1]);
    go[1] = -1;
    int wr = wait_child(pid, rep[0], &report, &wst, err);
    remove_created(upper_fd, &report.created);
    volatile_reset(spec->workdir);
    if (wr < 0)
        goto out;
    if (report.error) {
        if (err && !*err)
            *err = MK_TAKE_PTR(report.error);
        if (mode == MODE_RUN)
            mk_error_wrap(err, "setting up the container for \"%s\"", spec->argv[0]);
        goto out;
    }
    if (mode == MODE_CALL && !(WIFEXITED(wst) && WEXITSTATUS(wst) == 0)) {
        mk_error_set(err, MK_ERR_FAILED, 0, "sandbox helper died (status %d)", wst);
        goto out;
    }
    if (ret_status)
        *ret_status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
    r = 0;
out:
    for (int i = 0; i < 2; i++) {
        mk_closep(&go[i]);
        mk_closep(&rep[i]);
    }
    for (size_t i = 0; i < spec->n_mounts; i++)
        mk_closep(&trees[i]);
    mk_error_free(report.error);
    mk_strv_release(&report.created);
    mk_rm_rf(workspace, NULL);
    return r;
}

int builder_sandbox_run(const struct mk_sandbox_spec *spec, int *ret_status, struct mk_error **err)
{
    return sandbox_spawn(spec, MODE_RUN, NULL, NULL, ret_status, err);
}

int builder_sandbox_call(const struct mk_sandbox_spec *spec, mk_sandbox_fn fn, void *arg,
                         struct mk_error **err)
{
    return sandbox_spawn(spec, MODE_CALL, fn, arg, NULL, err);
}

int builder_workspace_new(struct mk_store *store, const char *prefix, struct mk_workspace *ret,
                          struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    ret->tmp = layerstore_tmpdir(store, prefix, err);
    if (!ret->tmp)
        return -1;
    ret->upper = mk_xasprintf("%s/upper", ret->tmp);
    ret->work = mk_xasprintf("%s/work", ret->tmp);
    if (mkdir(ret->upper, 0755) < 0 || mkdir(ret->work, 0700) < 0) {
        mk_error_errno(err, "creating \"%s\"", ret->tmp);
        builder_workspace_release(store, ret);
        return -1;
    }
    return 0;
}

void builder_workspace_release(struct mk_store *store, struct mk_workspace *ws)
{
    if (ws->tmp)
        layerstore_tmpdir_remove(store, ws->tmp, NULL);
    free(ws->tmp);
    free(ws->upper);
    free(ws->work);
    memset(ws, 0, sizeof(*ws));
}

/* tests/data/sandbox/probe.c - tries, from inside a RUN step, what a container must not do.
 *
 * Built static by t4900 and copied into the image. Each argument names one attempt; for each
 * the probe prints "ESCAPE NAME" when the attempt worked and "blocked NAME (reason)" when
 * it failed, so a test can require one line per attempt (the probe ran) and no ESCAPE. No
 * attempt changes the host when it works: the sysctl write writes back the value it read,
 * the sensitive files are only opened for writing, never written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void result(const char *name, long r)
{
    if (r >= 0)
        printf("ESCAPE %s\n", name);
    else
        printf("blocked %s (%s)\n", name, strerror(errno));
    fflush(stdout);
}

/* mount -o remount,rw (both APIs); then a file created in PATH, or PATH opened for writing
 * (not written) when it is a file. Worked = writable afterwards. */
static long remount_rw(const char *path)
{
    struct mount_attr attr = {.attr_clr = MOUNT_ATTR_RDONLY};
    mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL);
    syscall(SYS_mount_setattr, AT_FDCWD, path, 0, &attr, sizeof(attr));
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    char f[4096];
    snprintf(f, sizeof(f), "%s/.mkimg-escape", path);
    int fd = S_ISDIR(st.st_mode) ? open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)
                                 : open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static long rewrite_sysctl(const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0)
        return -1;
    fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    long r = write(fd, buf, (size_t)n);
    close(fd);
    return r;
}

/* A masked file reads empty; an unmasked one has content. */
static long read_content(const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n == 0)
        errno = ENODATA;
    return n > 0 ? 0 : -1;
}

static long ptrace_init(void)
{
    if (ptrace(PTRACE_ATTACH, 1, NULL, NULL) < 0)
        return -1;
    waitpid(1, NULL, __WALL);
    ptrace(PTRACE_DETACH, 1, NULL, NULL);
    return 0;
}

static long clone_ns(unsigned long flags)
{
    long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return pid;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *arg = strchr(a, ':') ? strchr(a, ':') + 1 : "";
        long r;
        errno = 0;
        if (strcmp(a, "mount") == 0)
            r = mount("none", "/tmp", "tmpfs", 0, NULL);
        else if (strncmp(a, "remount:", 8) == 0)
            r = remount_rw(arg);
        else if (strncmp(a, "umount:", 7) == 0)
            r = umount2(arg, MNT_DETACH);
        else if (strncmp(a, "create:", 7) == 0)
            r = open(arg, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        else if (strncmp(a, "openw:", 6) == 0)
            r = open(arg, O_WRONLY | O_CLOEXEC);
        else if (strncmp(a, "sysctl:", 7) == 0)
            r = rewrite_sysctl(arg);
        else if (strncmp(a, "read:", 5) == 0)
            r = read_content(arg);
        else if (strcmp(a, "open_tree") == 0)
            r = syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */);
        else if (strcmp(a, "fsopen") == 0)
            r = syscall(SYS_fsopen, "tmpfs", 0);
        else if (strcmp(a, "pivot_root") == 0)
            r = syscall(SYS_pivot_root, "/tmp", "/tmp");
        else if (strcmp(a, "unshare_user") == 0)
            r = unshare(CLONE_NEWUSER);
        else if (strcmp(a, "unshare_mnt") == 0)
            r = unshare(CLONE_NEWNS);
        else if (strcmp(a, "clone_user") == 0)
            r = clone_ns(CLONE_NEWUSER);
        else if (strcmp(a, "setns") == 0) {
            int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
            r = fd < 0 ? -1 : setns(fd, 0);
        } else if (strcmp(a, "keyctl") == 0)
            r = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "mkimg-escape");
        else if (strcmp(a, "add_key") == 0)
            r = syscall(SYS_add_key, "user", "mkimg-escape", "x", 1, KEY_SPEC_PROCESS_KEYRING);
        else if (strcmp(a, "bpf") == 0) {
            union bpf_attr attr;
            memset(&attr, 0, sizeof(attr));
            attr.map_type = BPF_MAP_TYPE_ARRAY;
            attr.key_size = 4;
            attr.value_size = 4;
            attr.max_entries = 1;
            r = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
        } else if (strcmp(a, "perf_event_open") == 0) {
            /* What perf_event_paranoid=2 lets any user open: a user-space-only counter. */
            struct perf_event_attr attr;
            memset(&attr, 0, sizeof(attr));
            attr.type = PERF_TYPE_SOFTWARE;
            attr.size = sizeof(attr);
            attr.config = PERF_COUNT_SW_TASK_CLOCK;
            attr.disabled = 1;
            attr.exclude_kernel = 1;
            attr.exclude_hv = 1;
            r = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
        } else if (strcmp(a, "ptrace_init") == 0)
            r = ptrace_init();
        else if (strcmp(a, "proc1_root") == 0)
            r = open("/proc/1/root/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        else if (strcmp(a, "kexec") == 0)
            r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
        else if (strcmp(a, "init_module") == 0)
            r = syscall(SYS_finit_module, -1, "", 0);
        else if (strcmp(a, "sethostname") == 0)
            r = sethostname("pwned", 5);
        else {
            fprintf(stderr, "probe: unknown attempt %s\n", a);
            return 2;
        }
        result(a, r);
    }
    return 0;
}

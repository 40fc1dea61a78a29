/* builder/confine.c - what a RUN process may do once it runs: runc's default container.
 *
 * A RUN step (and `mkimg run`) gets no more than Docker gives a container by default:
 * - the capability bounding, permitted, effective and inheritable sets cut to Docker's
 *   default fourteen (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
 *   NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP), ambient cleared;
 * - a seccomp filter that refuses (EPERM) what runc's default profile refuses to a process
 *   without CAP_SYS_ADMIN and friends: every mount API call, pivot_root, new namespaces
 *   (unshare, setns, clone with a CLONE_NEW* flag), kexec and module loading, keyctl, bpf,
 *   perf_event_open, open_by_handle_at, io_uring, clock and swap changes, reboot; clone3 is
 *   answered ENOSYS so that libc falls back to clone(2), whose flags the filter can see;
 * - no_new_privs.
 * The paths runc masks and makes read-only are listed here too; the sandbox applies them.
 * The filter is an allowlist's complement on purpose: builds run arbitrary toolchains, and
 * what breaks a container escape is the short list above, not the long tail of harmless calls.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "builder/internal.h"

const char *const builder_masked_paths[] = {"/proc/asound",
                                            "/proc/acpi",
                                            "/proc/interrupts",
                                            "/proc/kcore",
                                            "/proc/keys",
                                            "/proc/latency_stats",
                                            "/proc/timer_list",
                                            "/proc/timer_stats",
                                            "/proc/sched_debug",
                                            "/proc/scsi",
                                            "/sys/firmware",
                                            "/sys/devices/virtual/powercap",
                                            NULL};

const char *const builder_readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};

/* Docker's default capability set (moby's oci/caps/defaults.go). */
static const int default_caps[] = {
    CAP_CHOWN,      CAP_DAC_OVERRIDE, CAP_FOWNER,      CAP_FSETID,           CAP_KILL,
    CAP_SETGID,     CAP_SETUID,       CAP_SETPCAP,     CAP_NET_BIND_SERVICE, CAP_NET_RAW,
    CAP_SYS_CHROOT, CAP_MKNOD,        CAP_AUDIT_WRITE, CAP_SETFCAP};

uint64_t builder_default_caps(void)
{
    uint64_t set = 0;
    for (size_t i = 0; i < MK_ARRAY_SIZE(default_caps); i++)
        set |= 1ull << default_caps[i];
    return set;
}

static int last_cap(void)
{
    int last = CAP_LAST_CAP;
    /* A newer kernel may know more capabilities than our headers: drop those too. */
    for (int c = last + 1; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
        last = c;
    return last;
}

int builder_confine_bounding(struct mk_error **err)
{
    uint64_t keep = builder_default_caps();
    int last = last_cap();
    for (int c = 0; c <= last; c++) {
        if (keep & (1ull << c))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            return mk_error_errno(err, "dropping capability %d from the bounding set", c);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return mk_error_errno(err, "clearing the ambient capabilities");
    return 0;
}

int builder_confine_caps(struct mk_error **err)
{
    uint64_t keep = builder_default_caps();
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return mk_error_errno(err, "reading the capability sets");
    for (int i = 0; i < 2; i++) {
        uint32_t k = (uint32_t)(keep >> (32 * i));
        data[i].permitted &= k;
        data[i].effective &= k;
        data[i].inheritable = data[i].permitted;
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return mk_error_errno(err, "setting the capability sets");
    return 0;
}

/* Calls refused outright: mount and namespace control, kernel and module control, key
 * management, bpf, perf, handle-based opens that bypass path checks, io_uring (its requests
 * never pass the filter), time, swap, accounting and reboot. */
static const char *const refused[] = {"mount",
                                      "umount",
                                      "umount2",
                                      "move_mount",
                                      "open_tree",
                                      "fsopen",
                                      "fsconfig",
                                      "fsmount",
                                      "fspick",
                                      "mount_setattr",
                                      "pivot_root",
                                      "setns",
                                      "kexec_load",
                                      "kexec_file_load",
                                      "init_module",
                                      "finit_module",
                                      "delete_module",
                                      "create_module",
                                      "query_module",
                                      "get_kernel_syms",
                                      "keyctl",
                                      "add_key",
                                      "request_key",
                                      "bpf",
                                      "perf_event_open",
                                      "open_by_handle_at",
                                      "lookup_dcookie",
                                      "fanotify_init",
                                      "io_uring_setup",
                                      "io_uring_enter",
                                      "io_uring_register",
                                      "acct",
                                      "swapon",
                                      "swapoff",
                                      "reboot",
                                      "syslog",
                                      "settimeofday",
                                      "stime",
                                      "clock_settime",
                                      "clock_adjtime",
                                      "adjtimex",
                                      "quotactl",
                                      "quotactl_fd",
                                      "uselib",
                                      "userfaultfd",
                                      "vhangup",
                                      "iopl",
                                      "ioperm",
                                      "nfsservctl",
                                      "_sysctl",
                                      "sethostname",
                                      "setdomainname"};

/* The calls whose CLONE_NEW* flags (first argument) must be clear. */
static const char *const ns_flag_calls[] = {"unshare", "clone"};
static const uint64_t ns_flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
                                    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME};

MK_DEFINE_CLEANUP(void, seccomp_release)

/* The filter's rules in a new libseccomp context. */
static int filter_new(scmp_filter_ctx *ret, struct mk_error **err)
{
    _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return mk_error_set(err, MK_ERR_IO, ENOMEM, "creating the seccomp filter");
    int r = 0;
    /* The same rules for the 32-bit ABIs an x86-64 kernel also runs: the filter sees calls
     * by number, and each ABI numbers them differently. Other ABIs are killed (libseccomp's
     * default for a foreign architecture). */
    if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) < 0 && r != -EEXIST)
            return mk_error_set(err, MK_ERR_IO, -r, "adding the x86 ABI to the seccomp filter");
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) < 0 && r != -EEXIST)
            return mk_error_set(err, MK_ERR_IO, -r, "adding the x32 ABI to the seccomp filter");
    } else if (seccomp_arch_native() == SCMP_ARCH_AARCH64) {
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_ARM)) < 0 && r != -EEXIST)
            return mk_error_set(err, MK_ERR_IO, -r, "adding the arm ABI to the seccomp filter");
    }
    for (size_t i = 0; i < MK_ARRAY_SIZE(refused); i++) {
        int nr = seccomp_syscall_resolve_name(refused[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a call on this architecture */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0 && r != -EDOM)
            return mk_error_set(err, MK_ERR_IO, -r, "seccomp rule for %s", refused[i]);
    }
    for (size_t i = 0; i < MK_ARRAY_SIZE(ns_flag_calls); i++) {
        int nr = seccomp_syscall_resolve_name(ns_flag_calls[i]);
        for (size_t f = 0; nr != __NR_SCMP_ERROR && f < MK_ARRAY_SIZE(ns_flags); f++) {
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[f], ns_flags[f]));
            if (r < 0)
                return mk_error_set(err, MK_ERR_IO, -r, "seccomp rule for %s", ns_flag_calls[i]);
        }
    }
    /* clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc use
     * clone(2) instead (as runc's profile does). */
    int nr = seccomp_syscall_resolve_name("clone3");
    if (nr != __NR_SCMP_ERROR && (r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0)) < 0)
        return mk_error_set(err, MK_ERR_IO, -r, "seccomp rule for clone3");
    *ret = MK_TAKE_PTR(ctx);
    return 0;
}

/* The compiled program, once per process (builder_confine_seccomp_prepare): libseccomp
 * builds it from the rules in about a millisecond and probes the kernel with a dozen
 * seccomp() calls each time, which every RUN paid in its child. */
static struct sock_fprog compiled;
static pthread_mutex_t compiled_lock = PTHREAD_MUTEX_INITIALIZER;

int builder_confine_seccomp_prepare(struct mk_error **err)
{
    pthread_mutex_lock(&compiled_lock);
    int ret = -1;
    _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
    _cleanup_close_ int fd = -1;
    if (compiled.filter) {
        ret = 0;
        goto out;
    }
    if (filter_new(&ctx, err) < 0)
        goto out;
    fd = memfd_create("mkimg-seccomp", MFD_CLOEXEC);
    int r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    off_t size = r < 0 ? -1 : lseek(fd, 0, SEEK_END);
    if (r < 0 || size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size > (off_t)(BPF_MAXINSNS * sizeof(struct sock_filter))) {
        mk_error_set(err, MK_ERR_IO, r < 0 ? -r : EINVAL, "compiling the seccomp filter");
        goto out;
    }
    struct sock_filter *prog = mk_xmalloc((size_t)size);
    if (pread(fd, prog, (size_t)size, 0) != size) {
        free(prog);
        mk_error_errno(err, "reading the compiled seccomp filter");
        goto out;
    }
    compiled.len = (unsigned short)((size_t)size / sizeof(struct sock_filter));
    compiled.filter = prog;
    ret = 0;
out:
    pthread_mutex_unlock(&compiled_lock);
    return ret;
}

int builder_confine_seccomp(struct mk_error **err)
{
    if (compiled.filter) {
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &compiled) < 0)
            return mk_error_errno(err, "loading the seccomp filter");
        return 0;
    }
    _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
    if (filter_new(&ctx, err) < 0)
        return -1;
    int r = seccomp_load(ctx);
    if (r < 0)
        return mk_error_set(err, MK_ERR_IO, -r, "loading the seccomp filter");
    return 0;
}

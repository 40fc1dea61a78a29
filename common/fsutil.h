/* common/fsutil.h - file system helpers shared by the store and the builder.
 *
 * Paths inside an image root or a build context are always resolved relative to a directory
 * fd with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): ".." and absolute symlinks stay
 * inside the root. Where openat2 is missing, refused (seccomp) or keeps racing renames
 * (EAGAIN, retried a bounded number of times), a user-space walk with the same rules is used.
 */
#ifndef MK_COMMON_FSUTIL_H
#define MK_COMMON_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/atomic-file.h"
#include "common/error.h"
#include "common/util.h"

/* Opens path (absolute or relative, either way inside root) below rootfd.
 * flags/mode as for openat(2); O_CLOEXEC is added. Returns an fd or -1 with *err set. */
int mk_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct mk_error **err);
/* Same, but a symlink as the last component is not followed (O_PATH|O_NOFOLLOW style
 * callers pass O_NOFOLLOW themselves). Parent directories still resolve inside root. */

/* Creates directory path and any missing parents below rootfd (mode for new ones).
 * Returns an O_DIRECTORY fd of the final directory. */
int mk_mkdir_p_in_root(int rootfd, const char *path, mode_t mode, struct mk_error **err);

/* Splits path into its parent (opened inside root, created when create_parents) and the
 * last component (*ret_name points into a newly allocated string the caller frees). */
int mk_open_parent_in_root(int rootfd, const char *path, bool create_parents, char **ret_name,
                           struct mk_error **err);

/* Host paths (not inside an image root). */
int mk_mkdir_p(const char *path, mode_t mode, struct mk_error **err);
/* Removes path recursively; a missing path is not an error. Does not cross mount points
 * and never follows symlinks. */
int mk_rm_rf(const char *path, struct mk_error **err);
int mk_rm_rf_at(int dirfd, const char *name, struct mk_error **err);

/* Reads a whole file (at most max bytes, else MK_ERR_INVALID) into a new NUL-terminated
 * string. dirfd may be AT_FDCWD. */
int mk_read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len,
                    struct mk_error **err);
int mk_write_all(int fd, const void *data, size_t len, struct mk_error **err);
/* read(2) retried on EINTR; returns bytes read (0 = EOF) or -1 with *err set. */
ssize_t mk_read_some(int fd, void *buf, size_t len, struct mk_error **err);
int mk_fsync_dir(int dirfd, struct mk_error **err);

/* llistxattr(2) of name in dirfd (a symlink itself, not its target): listxattrat(2) (Linux
 * 6.13), one lookup of one name; where the kernel lacks it, llistxattr of
 * /proc/self/fd/DIRFD/NAME, a walk through procfs on every call. As llistxattr: the size of
 * the list (list NULL, size 0: the size needed), or -1 with errno set. */
ssize_t mk_llistxattrat(int dirfd, const char *name, char *list, size_t size);

/* Tests only: resolve with the user-space walk instead of openat2 (on) or go back to
 * detecting openat2 (off). */
void mk_fsutil_test_force_fallback(bool on);
/* Tests only: fn runs before each openat2 system call and returns 0 to make the call or an
 * errno for the call to fail with instead; NULL turns it off. */
void mk_fsutil_test_inject_openat2(int (*fn)(void));

/* Creates a fresh directory "<parent>/<prefix>XXXXXX"; returns its path (caller frees). */
char *mk_mkdtemp_in(const char *parent, const char *prefix, struct mk_error **err);

#endif

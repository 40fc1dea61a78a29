/* common/atomic-file.h - output files that appear under their name only when complete.
 *
 * Every file mkimg writes for the user or into the store outside a locked temp dir goes
 * through here: `build -o type=tar|oci|docker`, `--iidfile`, `--metadata-file`, `save -o`,
 * `push --digestfile`, the auth file of `login`, index.json and the store's small files.
 * The content is written to a temp file in the target's own directory (so the rename is
 * atomic) under a random name created with O_CREAT|O_EXCL|O_NOFOLLOW: nothing planted in
 * that directory, a symlink least of all, is ever opened, whatever fs.protected_symlinks
 * says. The temp file is fsynced and renamed over the target, then the directory is
 * fsynced (mk_atomic_file_commit), or only renamed (mk_atomic_file_commit_unsynced: the
 * archives of `save -o` and `build -o type=oci|docker`, see docs/save.md). A symlink at the
 * target's own name is replaced by the file, never followed.
 * Except for a target that is a device or a FIFO (`save -o /dev/null`, `-o /dev/stdout`, a
 * named pipe): it cannot be replaced without breaking what else uses it (a rename would put
 * the archive where /dev/null was), so it is opened and written in place, and commit does
 * nothing. That is the target's own name, not a symlink, or a symlink owned by root or by
 * the caller (as fs.protected_symlinks would follow) to a character device or a FIFO: a
 * symlink someone else planted is still replaced, never followed.
 * Temp names are ".NAME.tmp.PID-RANDOM": `prune` removes those whose process is gone.
 */
#ifndef MK_COMMON_ATOMIC_FILE_H
#define MK_COMMON_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

struct mk_atomic_file {
    int fd;        /* write the content here (O_RDWR) */
    int dirfd;     /* the target's directory */
    char *name;    /* the target's name in dirfd */
    char *tmp;     /* the temp file's name in dirfd; NULL once committed */
    bool in_place; /* a device or FIFO written in place: no temp file, nothing to commit */
};

/* Creates the temp file for path (relative to dirfd, which may be AT_FDCWD; "dir/name" puts
 * it in dir) with mode (the umask applies). On failure f is left released. */
int mk_atomic_file_init(struct mk_atomic_file *f, int dirfd, const char *path, mode_t mode,
                        struct mk_error **err);
/* fsync, rename over the target, fsync of the directory. On failure the temp file is gone
 * and the target untouched. f still needs mk_atomic_file_release(). */
int mk_atomic_file_commit(struct mk_atomic_file *f, struct mk_error **err);
/* The rename alone, no fsync: for files whose readers take anything but the whole file
 * (a crash can leave the name with no or partial content) as absent. The target is never
 * seen half-written while the system runs. An existing regular file is swapped out
 * (RENAME_EXCHANGE) and unlinked, so that ext4 does not flush the new file as it does on a
 * rename over one. Fails as mk_atomic_file_commit. */
int mk_atomic_file_commit_unsynced(struct mk_atomic_file *f, struct mk_error **err);
/* Closes everything and removes the temp file unless it was committed. Accepts a released
 * (or zero-initialized with fds of -1) object; usable as _cleanup_(mk_atomic_file_release). */
void mk_atomic_file_release(struct mk_atomic_file *f);

/* The whole content at once: init, write, commit, release. */
int mk_write_file_atomic(int dirfd, const char *path, const void *data, size_t len, mode_t mode,
                         struct mk_error **err);

#endif

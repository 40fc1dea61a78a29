/* layerstore/internal.h - declarations shared by the layerstore's files. Not a public API. */
#ifndef MK_LAYERSTORE_INTERNAL_H
#define MK_LAYERSTORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "layerstore/layerstore.h"

/* ---- layer tars (layerstore/tar-write.c, layerstore/tar-apply.c) ---------------------------- */

/* Writes the layer tar of the tree at dirfd to out_fd: deterministic PAX (entries sorted by
 * path bytes, parents before children, mtime kept, no atime/ctime, uid/gid numeric with
 * empty uname/gname, modes incl. setuid/setgid/sticky, xattrs incl. security.capability
 * but never user.overlay.* / trusted.overlay.*, hardlinks within the tree as type 1,
 * symlinks, fifos, char/block devices). Overlay whiteouts (0/0 char devices) become empty
 * regular files ".wh.NAME"; a directory with user.overlay.opaque=y or
 * trusted.overlay.opaque=y gets an entry "DIR/.wh..wh..opq" right after the directory.
 * Hashes while writing: ret_diff_id = sha256 of the bytes written, ret_size their count. */
int ls_tar_write_dir(int dirfd, int out_fd, char ret_diff_id[MK_DIGEST_SIZE],
                     uint64_t *ret_size, struct mk_error **err);

struct ls_apply_opts {
    bool rootless;        /* not real root: skip device nodes (except whiteouts), drop
                           * setuid/setgid bits */
    uint64_t max_entries; /* 0 = default cap (1,000,000) */
    uint64_t max_bytes;   /* 0 = default cap (64 GiB of uncompressed data) */
};

/* Unpacks an untrusted layer tar (compression detected from content) from in_fd into the
 * empty directory dirfd, in overlay lowerdir format: ".wh.NAME" becomes a 0/0 char device
 * NAME, ".wh..wh..opq" sets user.overlay.opaque=y on its directory. Nothing is ever written
 * outside dirfd (no "..", absolute paths, symlinked parents or hardlinks leaving it).
 * Computes the digest of the uncompressed stream (ret_diff_id, ret_size); when tee_fd >= 0
 * the uncompressed tar bytes are also written there (import stores them as the blob).
 * On failure the caller removes the directory. */
int ls_tar_apply(int in_fd, int dirfd, const struct ls_apply_opts *opts, int tee_fd,
                 char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err);

/* ---- private to layerstore/tar-*.c ---------------------------------------------------------- */

/* Overlay's own xattrs describe the snapshot, never the image: not written, not restored. */
static inline bool ls_tar_xattr_is_overlay(const char *name)
{
    return strncmp(name, "user.overlay.", 13) == 0 || strncmp(name, "trusted.overlay.", 16) == 0;
}

/* ---- end of layerstore/tar-*.c section ------------------------------------------------------ */

#endif

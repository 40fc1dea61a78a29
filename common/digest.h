/* common/digest.h - SHA-256 content digests (OpenSSL EVP behind this header).
 *
 * Digest strings are "sha256:" + 64 lowercase hex digits (MK_DIGEST_LEN chars + NUL).
 */
#ifndef MK_COMMON_DIGEST_H
#define MK_COMMON_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define MK_DIGEST_LEN 71 /* strlen("sha256:") + 64 */
#define MK_DIGEST_SIZE (MK_DIGEST_LEN + 1)

struct mk_sha256;

/* Never fails except on OOM (aborts). Free with mk_sha256_free. */
struct mk_sha256 *mk_sha256_new(void);
void mk_sha256_update(struct mk_sha256 *h, const void *data, size_t n);
/* Writes "sha256:<hex>" to out; the context may not be updated afterwards. */
void mk_sha256_final(struct mk_sha256 *h, char out[MK_DIGEST_SIZE]);
void mk_sha256_free(struct mk_sha256 *h);

void mk_sha256_buffer(const void *data, size_t n, char out[MK_DIGEST_SIZE]);
/* Hashes everything readable from fd (from its current offset); counts bytes. */
int mk_sha256_fd(int fd, char out[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err);

/* true for "sha256:" followed by exactly 64 lowercase hex digits. */
bool mk_digest_valid(const char *digest);
/* The hex part of a valid digest (pointer into it). */
const char *mk_digest_hex(const char *digest);

/* OCI chain id: chain(0) = diff_id(0); chain(n) = sha256(chain(n-1) + " " + diff_id(n)). */
void mk_chain_id(const char *parent_chain, const char *diff_id, char out[MK_DIGEST_SIZE]);

#endif

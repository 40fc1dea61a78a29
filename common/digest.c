/* common/digest.c - SHA-256 through OpenSSL's EVP interface. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/digest.h"
#include "common/util.h"

struct mk_sha256 {
    EVP_MD_CTX *ctx;
};

struct mk_sha256 *mk_sha256_new(void)
{
    struct mk_sha256 *h = mk_xcalloc(1, sizeof(*h));
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        MK_BUG("EVP sha256 init failed");
    return h;
}

void mk_sha256_update(struct mk_sha256 *h, const void *data, size_t n)
{
    if (n && EVP_DigestUpdate(h->ctx, data, n) != 1)
        MK_BUG("EVP sha256 update failed");
}

void mk_sha256_final(struct mk_sha256 *h, char out[MK_DIGEST_SIZE])
{
    unsigned char md[32];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != 32)
        MK_BUG("EVP sha256 final failed");
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[MK_DIGEST_LEN] = '\0';
}

void mk_sha256_free(struct mk_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void mk_sha256_buffer(const void *data, size_t n, char out[MK_DIGEST_SIZE])
{
    struct mk_sha256 *h = mk_sha256_new();
    mk_sha256_update(h, data, n);
    mk_sha256_final(h, out);
    mk_sha256_free(h);
}

int mk_sha256_fd(int fd, char out[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    struct mk_sha256 *h = mk_sha256_new();
    uint64_t total = 0;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            mk_sha256_free(h);
            return mk_error_errno(err, "reading for digest");
        }
        if (n == 0)
            break;
        mk_sha256_update(h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    mk_sha256_final(h, out);
    mk_sha256_free(h);
    if (ret_size)
        *ret_size = total;
    return 0;
}

bool mk_digest_valid(const char *digest)
{
    /* A table rather than four comparisons a byte: context tables check 20,000 digests on
     * every save. */
    static const bool lower_hex[256] = {['0' ... '9'] = true, ['a' ... 'f'] = true};
    if (!digest || strncmp(digest, "sha256:", 7) != 0)
        return false;
    const unsigned char *p = (const unsigned char *)digest + 7;
    size_t i = 0;
    while (lower_hex[p[i]])
        i++;
    return i == MK_DIGEST_LEN - 7 && p[i] == '\0';
}

const char *mk_digest_hex(const char *digest)
{
    return digest + 7;
}

void mk_chain_id(const char *parent_chain, const char *diff_id, char out[MK_DIGEST_SIZE])
{
    if (!parent_chain || !*parent_chain) {
        memmove(out, diff_id, MK_DIGEST_LEN);
        out[MK_DIGEST_LEN] = '\0';
        return;
    }
    _cleanup_free_ char *s = mk_xasprintf("%s %s", parent_chain, diff_id);
    mk_sha256_buffer(s, strlen(s), out);
}

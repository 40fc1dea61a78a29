/* builder/addurl.c - ADD <url>: which sources are URLs, the file name a URL gives, and the
 * download into a store tmpdir that then serves as the copy's source root.
 *
 * As BuildKit (dockerfile2llb, httpsource): the file gets mode 0600 and, when the server sends
 * Last-Modified, that mtime; it is never unpacked unless --unpack=true; --checksum is a
 * sha256 digest of the content. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

/* No limit docker knows of; this one keeps a runaway server from filling the disk. */
#define ADD_URL_MAX ((uint64_t)64 << 30)

/* The URL's path after scheme and host, up to the query or fragment. */
static const char *url_path(const char *url, size_t *ret_len)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    *ret_len = *p == '/' ? strcspn(p, "?#") : 0;
    return p;
}

bool builder_is_git_url(const char *s)
{
    if (mk_str_has_prefix(s, "git@") || mk_str_has_prefix(s, "git://") ||
        mk_str_has_prefix(s, "ssh://"))
        return true;
    if (!mk_str_has_prefix(s, "http://") && !mk_str_has_prefix(s, "https://"))
        return false;
    /* As BuildKit's ParseGitRef: https://host/org/repo.git[#ref[:subdir]] is a repository. */
    size_t len;
    const char *path = url_path(s, &len);
    while (len > 1 && path[len - 1] == '/')
        len--;
    return len >= 4 && strncmp(path + len - 4, ".git", 4) == 0;
}

bool builder_is_http_url(const char *s)
{
    return (mk_str_has_prefix(s, "http://") || mk_str_has_prefix(s, "https://")) &&
           !builder_is_git_url(s);
}

char *builder_url_filename(const char *url)
{
    /* Go's path.Base of the decoded URL path; "." and "/" give "__unnamed__". */
    size_t len;
    const char *p = url_path(url, &len);
    struct mk_buf path = MK_BUF_INIT;
    mk_buf_adds(&path, "");
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%' && i + 2 < len && isxdigit((unsigned char)p[i + 1]) &&
            isxdigit((unsigned char)p[i + 2])) {
            char hex[3] = {p[i + 1], p[i + 2], '\0'};
            mk_buf_addc(&path, (char)strtol(hex, NULL, 16));
            i += 2;
        } else {
            mk_buf_addc(&path, p[i]);
        }
    }
    char *s = path.data;
    size_t n = strlen(s);
    bool has_nul = n != path.len;
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    const char *slash = strrchr(s, '/');
    const char *base = slash ? slash + 1 : s;
    char *ret = NULL;
    /* A decoded NUL cut the name short: never a usable file name either. */
    if (*base && strcmp(base, ".") != 0 && strcmp(base, "..") != 0 && !has_nul)
        ret = mk_xstrdup(base);
    mk_buf_release(&path);
    return ret ? ret : mk_xstrdup("__unnamed__");
}

int builder_url_fetch(const char *url, const struct registry_opts *opts, int dirfd,
                      const char *relpath, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = mk_open_parent_in_root(dirfd, relpath, true, &name, err);
    if (pfd < 0)
        return -1;
    _cleanup_close_ int fd =
        openat(pfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "downloading \"%s\": creating \"%s\"", url, relpath);
    struct registry_fetch_result res;
    if (registry_fetch_url(url, opts, ADD_URL_MAX, fd, &res, err) < 0)
        return -1;
    /* 0600 whatever the umask; the mtime the server gives, else the download's. */
    if (fchmod(fd, 0600) < 0)
        return mk_error_errno(err, "downloading \"%s\"", url);
    if (res.mtime >= 0) {
        struct timespec ts[2] = {{res.mtime, 0}, {res.mtime, 0}};
        if (futimens(fd, ts) < 0)
            return mk_error_errno(err, "downloading \"%s\": setting the mtime", url);
    }
    memcpy(ret_digest, res.digest, MK_DIGEST_SIZE);
    return 0;
}

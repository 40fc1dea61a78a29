/* builder/addgit.c - ADD <git URL>: "https://host/repo.git#ref:subdir", "git@host:repo.git",
 * "git://...", checked out with the git program as build contexts are (builder/source.c).
 *
 * As BuildKit: the content of the ref (or of its subdir) is copied, without .git unless
 * --keep-git-dir=true; the step's cache key is the commit the ref resolved to, so a moved
 * branch misses the cache and an unchanged one hits it. */
#include <stdlib.h>
#include <string.h>

#include "builder/internal.h"

bool builder_git_commit_valid(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return !s[n] && (n == 40 || n == 64);
}

int builder_add_git(const char *url, bool keep_git_dir, const char *root, const char *name,
                    char **ret_rel, char **ret_commit, struct mk_error **err)
{
    _cleanup_free_ char *dest = mk_xasprintf("%s/%s", root, name);
    _cleanup_free_ char *dir = NULL, *commit = NULL;
    if (builder_git_checkout(url, "git repository", root, dest, keep_git_dir, &dir, &commit, err) <
        0)
        return -1;
    /* dir is a resolved path: compare it with root resolved the same way. */
    _cleanup_free_ char *real_root = realpath(root, NULL);
    size_t n = real_root ? strlen(real_root) : 0;
    if (!real_root || strncmp(dir, real_root, n) != 0 || dir[n] != '/')
        return mk_error_set(err, MK_ERR_INVALID, 0, "ADD \"%s\": the checkout left \"%s\"", url,
                            root);
    *ret_rel = mk_xstrdup(dir + n + 1);
    *ret_commit = MK_TAKE_PTR(commit);
    return 0;
}

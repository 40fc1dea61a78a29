/* builder/user.c - USER resolution against an image's /etc/passwd and /etc/group.
 *
 * Both files are read through the root fd with mk_open_in_root, so a symlinked
 * /etc/passwd in an image can never make us read a host file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>

#include "builder/internal.h"
#include "common/fsutil.h"

/* Real-world passwd/group files are a few KiB; anything past this is not a user database. */
#define USERDB_MAX (4u << 20)
#define GROUPS_MAX 256

/* Reads an image file into a string; a missing file is an empty database, not an error. */
static int read_db(int rootfd, const char *path, char **ret, struct mk_error **err)
{
    struct mk_error *e = NULL;
    _cleanup_close_ int fd = mk_open_in_root(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, &e);
    if (fd < 0) {
        int saved = e->sys_errno;
        mk_error_free(e);
        if (saved == ENOENT || saved == ENOTDIR) {
            *ret = mk_xstrdup("");
            return 0;
        }
        return mk_error_set(err, MK_ERR_IO, saved, "opening \"%s\" in the image", path);
    }
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_init(&b, USERDB_MAX);
    char chunk[8192];
    for (;;) {
        ssize_t n = mk_read_some(fd, chunk, sizeof(chunk), err);
        if (n < 0 || (n > 0 && mk_buf_append(&b, chunk, (size_t)n, err) < 0)) {
            mk_buf_release(&b);
            return mk_error_wrap(err, "reading \"%s\" in the image", path);
        }
        if (n == 0)
            break;
    }
    *ret = mk_buf_detach(&b);
    return 0;
}

/* Id fields are decimal below 2^32-1 (which is the kernel's "no id"). */
static int parse_id(const char *s, uint32_t *ret)
{
    uint64_t v;
    if (mk_parse_u64(s, &v) < 0 || v >= UINT32_MAX)
        return -1;
    *ret = (uint32_t)v;
    return 0;
}

/* Splits one line into at most max ':'-separated fields in place; returns the count. */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

/* Calls fn for every well-formed line (at least min_fields fields) until it returns non-zero. */
typedef int (*db_line_fn)(char **fields, size_t n, void *arg);
static int db_each(char *db, size_t min_fields, db_line_fn fn, void *arg)
{
    char *save = NULL;
    for (char *line = strtok_r(db, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (*line == '#')
            continue;
        char *fields[7];
        size_t n = split_fields(line, fields, MK_ARRAY_SIZE(fields));
        if (n < min_fields)
            continue;
        int r = fn(fields, n, arg);
        if (r)
            return r;
    }
    return 0;
}

struct passwd_query {
    const char *want; /* name or decimal uid */
    bool numeric;
    uint32_t want_id;
    char *name; /* found: */
    char *home;
    uint32_t uid, gid;
};

static int passwd_match(char **f, size_t n, void *arg)
{
    struct passwd_query *q = arg;
    uint32_t uid, gid;
    if (parse_id(f[2], &uid) < 0 || parse_id(f[3], &gid) < 0)
        return 0;
    if (q->numeric ? uid != q->want_id : strcmp(f[0], q->want) != 0)
        return 0;
    q->name = mk_xstrdup(f[0]);
    q->home = n >= 6 && *f[5] ? mk_xstrdup(f[5]) : NULL;
    q->uid = uid;
    q->gid = gid;
    return 1;
}

struct group_query {
    const char *want; /* group name (for the explicit group), or NULL */
    uint32_t gid;     /* found gid */
    bool found;
    const char *member; /* user name for supplementary lookup, or NULL */
    gid_t *groups;
    size_t n_groups;
};

static int group_match(char **f, size_t n, void *arg)
{
    struct group_query *q = arg;
    uint32_t gid;
    if (parse_id(f[2], &gid) < 0)
        return 0;
    if (q->want) {
        if (strcmp(f[0], q->want) != 0)
            return 0;
        q->gid = gid;
        q->found = true;
        return 1;
    }
    if (n < 4 || !q->member || q->n_groups >= GROUPS_MAX)
        return 0;
    char *save = NULL;
    for (char *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        if (strcmp(m, q->member) == 0) {
            q->groups = mk_xreallocarray(q->groups, q->n_groups + 1, sizeof(*q->groups));
            q->groups[q->n_groups++] = gid;
            break;
        }
    }
    return 0;
}

int builder_resolve_user_groups(int rootfd, const char *user, uid_t *ret_uid, gid_t *ret_gid,
                                gid_t **ret_groups, size_t *ret_n_groups, char **ret_home,
                                struct mk_error **err)
{
    /* No USER is uid 0, which needs no passwd entry (scratch images have none). */
    if (!user || !*user)
        user = "0";
    _cleanup_free_ char *spec = mk_xstrdup(user);
    char *group = strchr(spec, ':');
    if (group)
        *group++ = '\0';
    if (!*spec || (group && !*group))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid user \"%s\"", user);

    _cleanup_free_ char *passwd = NULL;
    if (read_db(rootfd, "/etc/passwd", &passwd, err) < 0)
        return -1;
    struct passwd_query pq = {.want = spec};
    pq.numeric = parse_id(spec, &pq.want_id) == 0;
    db_each(passwd, 4, passwd_match, &pq);
    _cleanup_free_ char *pw_name = pq.name;
    _cleanup_free_ char *pw_home = pq.home;
    uint32_t uid, gid;
    if (pw_name) {
        uid = pq.uid;
        gid = pq.gid;
    } else if (pq.numeric) {
        uid = pq.want_id;
        gid = 0;
    } else {
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0,
                            "unable to find user \"%s\": no matching entry in passwd file", spec);
    }

    /* strtok_r in group_match cuts the member lists: each query needs a fresh copy. */
    _cleanup_free_ char *group_db = NULL;
    if (read_db(rootfd, "/etc/group", &group_db, err) < 0)
        return -1;
    if (group) {
        uint32_t g;
        if (parse_id(group, &g) == 0) {
            gid = g;
        } else {
            _cleanup_free_ char *copy = mk_xstrdup(group_db);
            struct group_query gq = {.want = group};
            db_each(copy, 3, group_match, &gq);
            if (!gq.found)
                return mk_error_set(err, MK_ERR_NOT_FOUND, 0,
                                    "unable to find group \"%s\": no matching entry in group file",
                                    group);
            gid = gq.gid;
        }
    }
    struct group_query sq = {.member = pw_name};
    if (ret_groups && pw_name)
        db_each(group_db, 3, group_match, &sq);
    *ret_uid = uid;
    *ret_gid = gid;
    if (ret_home)
        *ret_home = pw_home ? MK_TAKE_PTR(pw_home) : mk_xstrdup("/");
    if (ret_groups) {
        *ret_groups = sq.groups;
        *ret_n_groups = sq.n_groups;
    } else {
        free(sq.groups);
    }
    return 0;
}

int builder_resolve_user(int rootfd, const char *user, uid_t *ret_uid, gid_t *ret_gid,
                         struct mk_error **err)
{
    return builder_resolve_user_groups(rootfd, user, ret_uid, ret_gid, NULL, NULL, NULL, err);
}

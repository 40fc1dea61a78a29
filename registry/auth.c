/* registry/auth.c - credentials: auth.json (podman) and config.json (docker), base64. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "registry/internal.h"

#define AUTH_FILE_MAX (1u << 20)
#define _cleanup_json_ _cleanup_(json_decrefp)

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *reg_base64(const void *data, size_t n)
{
    return mk_base64(data, n);
}

char *reg_base64_decode(const char *s, size_t *ret_len)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return NULL;
    char *out = mk_xmalloc(n / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (size_t k = 0; k < 4; k++) {
            char ch = s[i + k];
            const char *pos = ch ? strchr(b64, ch) : NULL;
            if (ch == '=' && i + 4 == n && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!pos || pad) {
                free(out);
                return NULL;
            }
            v = (v << 6) | (uint32_t)(pos - b64);
        }
        out[o++] = (char)(v >> 16);
        if (pad < 2)
            out[o++] = (char)(v >> 8);
        if (pad < 1)
            out[o++] = (char)v;
    }
    out[o] = '\0';
    if (ret_len)
        *ret_len = o;
    return out;
}

char *registry_auth_file(const char *authfile)
{
    if (authfile && *authfile)
        return mk_xstrdup(authfile);
    const char *env = getenv("REGISTRY_AUTH_FILE");
    if (env && *env)
        return mk_xstrdup(env);
    const char *run = getenv("XDG_RUNTIME_DIR");
    if (run && *run)
        return mk_xasprintf("%s/containers/auth.json", run);
    const char *home = getenv("HOME");
    return mk_xasprintf("%s/.config/containers/auth.json", home && *home ? home : "/");
}

/* A missing file is an empty object. */
static int load_json(const char *path, json_t **ret, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct mk_error *e = NULL;
    if (mk_read_file_at(AT_FDCWD, path, AUTH_FILE_MAX, &data, &len, &e) < 0) {
        if (e->code == MK_ERR_NOT_FOUND || e->sys_errno == ENOENT) {
            mk_error_free(e);
            *ret = json_object();
            return 0;
        }
        if (err && !*err)
            *err = e;
        else
            mk_error_free(e);
        return mk_error_wrap(err, "reading \"%s\"", path);
    }
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        return mk_error_set(err, MK_ERR_PARSE, 0, "\"%s\": not a JSON object", path);
    }
    *ret = j;
    return 0;
}

/* Auth file keys may carry a scheme and a path ("https://index.docker.io/v1/"). */
static bool key_matches(const char *key, const char *host)
{
    const char *k = key;
    if (mk_str_has_prefix(k, "https://"))
        k += 8;
    else if (mk_str_has_prefix(k, "http://"))
        k += 7;
    size_t kn = strcspn(k, "/");
    const char *names[] = {host, NULL, NULL};
    if (strcmp(host, "registry-1.docker.io") == 0) {
        names[1] = "docker.io";
        names[2] = "index.docker.io";
    }
    for (size_t i = 0; i < MK_ARRAY_SIZE(names); i++)
        if (names[i] && strlen(names[i]) == kn && strncmp(k, names[i], kn) == 0)
            return true;
    return false;
}

static int creds_from_entry(json_t *entry, const char *path, char **ret, struct mk_error **err)
{
    const char *auth = json_string_value(json_object_get(entry, "auth"));
    if (!auth || !*auth)
        return 0;
    size_t n = 0;
    char *dec = reg_base64_decode(auth, &n);
    if (!dec || strlen(dec) != n || !strchr(dec, ':')) {
        free(dec);
        return mk_error_set(err, MK_ERR_PARSE, 0, "\"%s\": bad \"auth\" entry", path);
    }
    *ret = dec;
    return 1;
}

/* Runs `docker-credential-NAME get` with the host on stdin. */
static int creds_from_helper(const char *helper, const char *host, char **ret,
                             struct mk_error **err)
{
    for (const char *p = helper; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
            return mk_error_set(err, MK_ERR_INVALID, 0, "bad credential helper name \"%s\"",
                                helper);
    _cleanup_free_ char *prog = mk_xasprintf("docker-credential-%s", helper);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return mk_error_errno(err, "pipe");
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return mk_error_errno(err, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return mk_error_errno(err, "fork");
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execlp(prog, prog, "get", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    mk_write_all(in[1], host, strlen(host), NULL);
    close(in[1]);
    struct mk_buf b;
    mk_buf_init(&b, REG_SMALL_MAX);
    char chunk[4096];
    ssize_t n;
    while ((n = mk_read_some(out[0], chunk, sizeof(chunk), NULL)) > 0)
        if (mk_buf_append(&b, chunk, (size_t)n, NULL) < 0)
            break;
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        mk_buf_release(&b);
        /* Helpers exit non-zero for "no credentials for this host". */
        return 0;
    }
    json_error_t jerr;
    _cleanup_json_ json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
    explicit_bzero(b.data ? b.data : chunk, b.data ? b.len : 0);
    mk_buf_release(&b);
    const char *user = json_string_value(json_object_get(j, "Username"));
    const char *secret = json_string_value(json_object_get(j, "Secret"));
    if (!user || !secret)
        return mk_error_set(err, MK_ERR_PARSE, 0, "%s: bad answer", prog);
    *ret = mk_xasprintf("%s:%s", user, secret);
    return 1;
}

static int lookup_in(const char *path, const char *host, char **ret, struct mk_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    if (load_json(path, &j, err) < 0)
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(j, "credHelpers"), key, v)
    {
        if (key_matches(key, host) && json_is_string(v))
            return creds_from_helper(json_string_value(v), host, ret, err);
    }
    json_object_foreach(json_object_get(j, "auths"), key, v)
    {
        if (key_matches(key, host)) {
            int r = creds_from_entry(v, path, ret, err);
            if (r != 0)
                return r;
        }
    }
    const char *store = json_string_value(json_object_get(j, "credsStore"));
    if (store && *store)
        return creds_from_helper(store, host, ret, err);
    return 0;
}

/* The caller's uid as podman sees it: rootless mkimg runs as 0 in its own user namespace, whose
 * /proc/self/uid_map says which uid outside that 0 is. */
static unsigned outer_uid(void)
{
    unsigned uid = (unsigned)getuid();
    _cleanup_fclose_ FILE *f = fopen("/proc/self/uid_map", "re");
    unsigned inside, outside, count;
    if (f && fscanf(f, "%u %u %u", &inside, &outside, &count) == 3 && uid >= inside &&
        uid - inside < count)
        return outside + (uid - inside);
    return uid;
}

int registry_auth_lookup(const char *authfile, const char *host, char **ret, struct mk_error **err)
{
    struct mk_strv files = MK_STRV_INIT;
    mk_strv_push_take(&files, registry_auth_file(authfile));
    if (!(authfile && *authfile)) {
        /* containers/image's order: the runtime dir's auth.json (podman login writes
         * /run/containers/UID/auth.json when XDG_RUNTIME_DIR is unset, e.g. under sudo), the
         * config dir's, then docker's config.json ($DOCKER_CONFIG replaces ~/.docker). */
        const char *run = getenv("XDG_RUNTIME_DIR");
        if (run && *run)
            mk_strv_pushf(&files, "%s/containers/auth.json", run);
        else
            mk_strv_pushf(&files, "/run/containers/%u/auth.json", outer_uid());
        const char *home = getenv("HOME");
        if (home && *home)
            mk_strv_pushf(&files, "%s/.config/containers/auth.json", home);
        const char *dcfg = getenv("DOCKER_CONFIG");
        if (dcfg && *dcfg)
            mk_strv_pushf(&files, "%s/config.json", dcfg);
        else if (home && *home)
            mk_strv_pushf(&files, "%s/.docker/config.json", home);
    }
    int r = 0;
    for (size_t i = 0; r == 0 && i < files.n; i++)
        r = lookup_in(files.v[i], host, ret, err);
    mk_strv_release(&files);
    return r;
}

int registry_auth_store(const char *authfile, const char *host, const char *creds,
                        struct mk_error **err)
{
    _cleanup_free_ char *path = registry_auth_file(authfile);
    _cleanup_json_ json_t *j = NULL;
    if (load_json(path, &j, err) < 0)
        return -1;
    json_t *auths = json_object_get(j, "auths");
    if (!json_is_object(auths)) {
        auths = json_object();
        json_object_set_new(j, "auths", auths);
    }
    if (creds) {
        _cleanup_free_ char *b = reg_base64(creds, strlen(creds));
        json_object_set_new(auths, host, json_pack("{s:s}", "auth", b));
        explicit_bzero(b, strlen(b));
    } else {
        bool found = false;
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(auths, tmp, key, v)
        {
            if (key_matches(key, host)) {
                json_object_del(auths, key);
                found = true;
            }
        }
        if (!found)
            return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "not logged in to %s", host);
    }
    _cleanup_free_ char *data = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!data)
        MK_BUG("json_dumps failed");
    _cleanup_free_ char *dir = mk_xstrdup(path);
    if (mk_mkdir_p(dirname(dir), 0700, err) < 0)
        return -1;
    int r = mk_write_file_atomic(AT_FDCWD, path, data, strlen(data), 0600, err);
    explicit_bzero(data, strlen(data));
    return r;
}

int registry_login_check(const char *host, const char *creds, const struct registry_opts *opts,
                         struct mk_error **err)
{
    struct mk_ref ref = {.domain = (char *)host, .path = (char *)""};
    struct reg_client *c = NULL;
    if (reg_client_new(&ref, opts, &c, err) < 0)
        return -1;
    c->creds = creds ? mk_xstrdup(creds) : NULL;
    struct reg_req req = {.method = "GET", .url = "/v2/", .fd = -1};
    struct reg_resp resp = {0};
    int r = reg_request(c, &req, &resp, err);
    if (r == 0 && resp.status != 200)
        r = reg_status_error(&resp, host, err);
    reg_resp_release(&resp);
    reg_client_free(c);
    return r;
}

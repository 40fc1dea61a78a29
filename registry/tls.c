/* registry/tls.c - where a registry's TLS trust and client certificate come from, as podman,
 * skopeo and docker look for them.
 *
 * A directory of certificates: --cert-dir, else /etc/containers/certs.d/HOST[:PORT]/, else
 * /etc/docker/certs.d/HOST[:PORT]/. In it, every *.crt is a CA trusted for this registry in
 * addition to the system's, and a *.cert with the *.key of the same name is the client
 * certificate. SSL_CERT_FILE and SSL_CERT_DIR replace the system's CA file and directory, as
 * OpenSSL has them do (libcurl otherwise passes its built-in paths, which hide them). */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "registry/internal.h"

#define CA_PEM_MAX (4u << 20) /* every CA file of one directory, together */

static const char *const certs_d_bases[] = {"/etc/containers/certs.d", "/etc/docker/certs.d"};

static int add_ca_file(struct reg_tls *t, const char *path, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(AT_FDCWD, path, CA_PEM_MAX, &data, &len, err) < 0)
        return mk_error_wrap(err, "reading the CA file \"%s\"", path);
    if (t->ca_len + len + 1 > CA_PEM_MAX)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\": CA files over %u bytes", path,
                            CA_PEM_MAX);
    t->ca_pem = mk_xrealloc(t->ca_pem, t->ca_len + len + 2);
    memcpy(t->ca_pem + t->ca_len, data, len);
    t->ca_len += len;
    t->ca_pem[t->ca_len++] = '\n';
    t->ca_pem[t->ca_len] = '\0';
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads dir's *.crt, *.cert and *.key (in name order, so the result does not depend on the
 * directory's order). */
static int load_dir(struct reg_tls *t, const char *dir, struct mk_error **err)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return mk_error_errno(err, "opening the certificate directory \"%s\"", dir);
    _cleanup_(mk_strv_release) struct mk_strv names = MK_STRV_INIT;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            mk_strv_push(&names, e->d_name);
    if (names.n)
        qsort(names.v, names.n, sizeof(char *), cmp_names);
    for (size_t i = 0; i < names.n; i++) {
        const char *n = names.v[i];
        _cleanup_free_ char *path = mk_xasprintf("%s/%s", dir, n);
        if (mk_str_has_suffix(n, ".crt")) {
            if (add_ca_file(t, path, err) < 0)
                return -1;
        } else if (mk_str_has_suffix(n, ".cert") && !t->cert) {
            _cleanup_free_ char *key = mk_xasprintf("%s/%.*s.key", dir, (int)(strlen(n) - 5), n);
            if (access(key, R_OK) < 0)
                return mk_error_set(err, MK_ERR_NOT_FOUND, errno,
                                    "client certificate \"%s\" has no key \"%s\"", path, key);
            t->cert = MK_TAKE_PTR(path);
            t->key = MK_TAKE_PTR(key);
        }
    }
    t->dir = mk_xstrdup(dir);
    return 0;
}

int reg_tls_load(const char *host, const char *cert_dir, struct reg_tls *ret, struct mk_error **err)
{
    struct reg_tls t = {0};
    const char *env_file = getenv("SSL_CERT_FILE"), *env_dir = getenv("SSL_CERT_DIR");
    if (env_file && *env_file)
        t.ca_file = mk_xstrdup(env_file);
    if (env_dir && *env_dir)
        t.ca_path = mk_xstrdup(env_dir);
    int r = 0;
    if (cert_dir) {
        r = load_dir(&t, cert_dir, err);
    } else if (host && *host && !strchr(host, '/') && strcmp(host, ".") && strcmp(host, "..")) {
        for (size_t i = 0; r == 0 && !t.dir && i < MK_ARRAY_SIZE(certs_d_bases); i++) {
            _cleanup_free_ char *dir = mk_xasprintf("%s/%s", certs_d_bases[i], host);
            struct stat st;
            if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
                r = load_dir(&t, dir, err);
        }
    }
    /* A blob replaces the CA file: SSL_CERT_FILE's CAs join the directory's. */
    if (r == 0 && t.ca_pem && t.ca_file)
        r = add_ca_file(&t, t.ca_file, err);
    if (r < 0) {
        reg_tls_release(&t);
        return -1;
    }
    *ret = t;
    return 0;
}

void reg_tls_copy(struct reg_tls *dst, const struct reg_tls *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->ca_pem) {
        dst->ca_pem = mk_xmalloc(src->ca_len + 1);
        memcpy(dst->ca_pem, src->ca_pem, src->ca_len + 1);
        dst->ca_len = src->ca_len;
    }
    dst->ca_file = src->ca_file ? mk_xstrdup(src->ca_file) : NULL;
    dst->ca_path = src->ca_path ? mk_xstrdup(src->ca_path) : NULL;
    dst->cert = src->cert ? mk_xstrdup(src->cert) : NULL;
    dst->key = src->key ? mk_xstrdup(src->key) : NULL;
    dst->dir = src->dir ? mk_xstrdup(src->dir) : NULL;
}

void reg_tls_release(struct reg_tls *t)
{
    free(t->ca_pem);
    free(t->ca_file);
    free(t->ca_path);
    free(t->cert);
    free(t->key);
    free(t->dir);
    memset(t, 0, sizeof(*t));
}

/* The extra CAs go in as a blob, so the system's CA directory still counts. */
void reg_tls_apply(const struct reg_tls *t, void *handle)
{
    CURL *curl = handle;
    if (t->ca_path)
        curl_easy_setopt(curl, CURLOPT_CAPATH, t->ca_path);
    if (t->ca_pem) {
        struct curl_blob blob = {.data = t->ca_pem, .len = t->ca_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
    } else if (t->ca_file) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, t->ca_file);
    }
    if (t->cert) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, t->cert);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, t->key);
    }
}

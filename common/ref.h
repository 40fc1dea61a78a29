/* common/ref.h - image references: [HOST[:PORT]/]PATH[:TAG][@DIGEST].
 *
 * The one parser of image names, shared by the store (local names in index.json) and the
 * registry client (where to pull from and push to). The grammar is distribution/reference's:
 *   HOST    DNS labels ([A-Za-z0-9], inner "-") joined by ".", or "[" IPv6 hex and ":" "]";
 *           the first component is a host when it has a "." or a ":", starts with "[" or is
 *           "localhost" (and more components follow), else the path starts there
 *   PORT    1 to 5 digits
 *   PATH    components of [a-z0-9]+ joined by ".", "_", "__" or runs of "-", split by "/"
 *   TAG     [A-Za-z0-9_][A-Za-z0-9_.-]*, at most MK_REF_TAG_MAX characters
 *   DIGEST  sha256:<64 lowercase hex> (common/digest.h)
 * and HOST/PATH fully qualified ("docker.io/library/busybox") has at most MK_REF_NAME_MAX
 * characters. "NAME:TAG@DIGEST" keeps both: the digest is what is fetched.
 *
 * Normalization is docker's: no host means docker.io ("index.docker.io" is docker.io too), a
 * one-component path on docker.io gets "library/", neither tag nor digest means tag
 * "latest". The local name of an image (what the store tags by) is the reference as
 * written plus ":latest" when it has neither tag nor digest: "busybox" and
 * "docker.io/library/busybox" are two local names, as they always were in this store.
 *
 * Errors are MK_ERR_INVALID, "invalid reference \"S\": WHY".
 */
#ifndef MK_COMMON_REF_H
#define MK_COMMON_REF_H

#include "common/error.h"

#define MK_REF_NAME_MAX 255 /* HOST/PATH, qualified */
#define MK_REF_TAG_MAX 128

struct mk_ref {
    char *domain; /* "docker.io", "127.0.0.1:5000", "[::1]:5000" */
    char *path;   /* "library/busybox" */
    char *tag;    /* "latest" when neither tag nor digest was written; NULL for a bare digest */
    char *digest; /* NULL or "sha256:..." */
};

/* Parses and normalizes s. *ret is freed with mk_ref_free. */
int mk_ref_parse(const char *s, struct mk_ref **ret, struct mk_error **err);
void mk_ref_free(struct mk_ref *ref);

/* "docker.io/library/busybox:latest", "HOST/PATH:TAG@DIGEST": every default written out, as
 * BuildKit records a base image. Caller frees. */
char *mk_ref_qualified(const struct mk_ref *ref);

/* The familiar form, as docker prints a name and BuildKit compares named contexts: docker.io
 * and its library/ left out ("alpine:latest", "user/app:1", "quay.io/a/b:t"). Caller frees. */
char *mk_ref_familiar(const struct mk_ref *ref);

/* The local name of s ("hello" -> "hello:latest"; a reference with a tag or digest stays as
 * written), or NULL and err when s is not a valid reference. Caller frees. */
char *mk_ref_local_name(const char *s, struct mk_error **err);

/* The registry to talk to for a domain: docker.io's API is at registry-1.docker.io. */
const char *mk_ref_registry_host(const char *domain);

#endif

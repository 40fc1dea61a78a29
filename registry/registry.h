/* registry/registry.h - the OCI distribution (registry API v2) client.
 *
 * For now: image references, [host[:port]/]repo[:tag][@digest] with Docker's defaults.
 * Pull and push come with the registry client (libcurl lives only in this module).
 */
#ifndef MK_REGISTRY_H
#define MK_REGISTRY_H

#include "common/error.h"

struct mk_ref {
    char *domain; /* "docker.io", "127.0.0.1:5000" */
    char *path;   /* "library/busybox" */
    char *tag;    /* NULL when only a digest was given */
    char *digest; /* NULL or "sha256:..." */
};

/* Parses and normalizes a reference the way docker does (docker.io, library/, latest).
 * MK_ERR_INVALID with a message naming the problem for malformed input. */
int registry_ref_parse(const char *s, struct mk_ref **ret, struct mk_error **err);
void registry_ref_free(struct mk_ref *ref);

#endif

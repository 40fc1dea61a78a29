/* cli/lazy.c - lazy images (docs/remote-cache.md) for the commands that read an image. */
#include "cli/cli.h"

const char *cli_lazy_name(struct mk_store *store, const char *name, char buf[MK_DIGEST_SIZE])
{
    if (mk_digest_valid(name) || layerstore_lazy_ref_get(store, name, buf) < 0)
        return name;
    return buf;
}

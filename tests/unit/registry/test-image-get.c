/* Base images for builds: the pull policy decides between the store and the registry. No
 * network here: "never" and a present image must not touch one. */
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/registry.h"
#include "tap.h"

int main(void)
{
    const char *dir = tap_tmpdir();
    tap_is_int(registry_pull_policy_parse("missing"), REGISTRY_PULL_MISSING, "missing");
    tap_is_int(registry_pull_policy_parse("always"), REGISTRY_PULL_ALWAYS, "always");
    tap_is_int(registry_pull_policy_parse("true"), REGISTRY_PULL_ALWAYS, "true = always");
    tap_is_int(registry_pull_policy_parse("never"), REGISTRY_PULL_NEVER, "never");
    tap_is_int(registry_pull_policy_parse("false"), REGISTRY_PULL_NEVER, "false = never");
    tap_is_int(registry_pull_policy_parse("sometimes"), -1, "unknown policy");
    tap_is_int(registry_pull_policy_parse(NULL), -1, "no policy");

    char *root = mk_xasprintf("%s/store", dir);
    struct mk_store *store = NULL;
    if (!tap_ok(layerstore_open(root, &store, NULL) == 0, "open a store"))
        return tap_done();
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    /* an address nothing listens on: any attempt to pull fails fast */
    const char *name = "127.0.0.1:9/nothing/here:1";
    int r = registry_image_get(store, name, REGISTRY_PULL_NEVER, NULL, &img, &err);
    tap_ok(r < 0 && img == NULL && err && err->code == MK_ERR_NOT_FOUND, "never: missing fails");
    if (err) {
        char *msg = mk_error_format(err);
        tap_is_str(msg,
                   "127.0.0.1:9/nothing/here:1: image not in the store, and pulling is off "
                   "(--pull=never)",
                   "never: the message says why");
        free(msg);
    }
    mk_error_free(err);
    err = NULL;

    /* a local image under that name is used as it is, under missing and never */
    char *rootfs = mk_xasprintf("%s/rootfs", dir);
    char *cmd = mk_xasprintf("mkdir -p %s/etc && echo hi > %s/etc/hello", rootfs, rootfs);
    FILE *p = popen(cmd, "r");
    if (p)
        pclose(p);
    struct mk_image *local = NULL;
    if (tap_ok(layerstore_import(store, rootfs, name, &local, NULL) == 0, "import a local image")) {
        for (int pol = REGISTRY_PULL_MISSING; pol <= REGISTRY_PULL_NEVER; pol += 2) {
            img = NULL;
            r = registry_image_get(store, name, (enum registry_pull_policy)pol, NULL, &img, NULL);
            tap_ok(r == 0 && img && strcmp(img->config_digest, local->config_digest) == 0,
                   "policy %d uses the local image", pol);
            layerstore_image_free(img);
        }
        struct registry_opts o = {.retries = 0};
        img = NULL;
        r = registry_image_get(store, name, REGISTRY_PULL_ALWAYS, &o, &img, &err);
        tap_ok(r < 0 && img == NULL && err, "always asks the registry (unreachable here)");
        mk_error_free(err);
    }
    layerstore_image_free(local);
    layerstore_free(store);
    free(cmd);
    free(rootfs);
    free(root);
    return tap_done();
}

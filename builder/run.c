/* builder/run.c - `mkimg run`: an image's command in a throwaway container, the same
 * sandbox RUN steps use. Whatever the command writes is discarded with the upperdir. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/internal.h"

int builder_run_image(struct mk_store *store, const struct mk_image *img, char *const *args,
                      enum mk_network network, int *ret_status, struct mk_error **err)
{
    const struct mk_image_config *c = &img->config;
    struct mk_strv argv = MK_STRV_INIT, lowers = MK_STRV_INIT, env = MK_STRV_INIT;
    int ret = -1;
    mk_strv_copy(&argv, &c->entrypoint);
    if (args && args[0]) {
        for (size_t i = 0; args[i]; i++)
            mk_strv_push(&argv, args[i]);
    } else {
        mk_strv_copy(&argv, &c->cmd);
    }
    if (argv.n == 0) {
        mk_error_set(err, MK_ERR_USAGE, 0,
                     "the image has no command (no Entrypoint or Cmd): "
                     "give one after the image name");
        goto out;
    }
    mk_strv_copy(&env, &c->env);
    if (!mk_strv_env_get(&env, "PATH"))
        mk_strv_push(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    if (builder_image_lowerdirs(store, img, &lowers, err) < 0)
        goto out;
    struct mk_workspace ws;
    if (builder_workspace_new(store, "run-", &ws, err) < 0)
        goto out;
    struct mk_sandbox_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.lowerdirs = &lowers;
    spec.upperdir = ws.upper;
    spec.workdir = ws.work;
    spec.argv = argv.v;
    spec.env = &env;
    spec.cwd = c->working_dir && *c->working_dir ? c->working_dir : "/";
    spec.user = c->user && *c->user ? c->user : NULL;
    spec.network = network;
    spec.stdout_fd = 1;
    spec.stderr_fd = 2;
    ret = builder_sandbox_run(&spec, ret_status, err);
    builder_workspace_release(store, &ws);
out:
    mk_strv_release(&argv);
    mk_strv_release(&lowers);
    mk_strv_release(&env);
    return ret;
}

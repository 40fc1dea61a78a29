/* cli/platform.c - the leading `--platform OS/ARCH[/VARIANT]` option of import and inspect. */
#include <string.h>

#include "cli/cli.h"

int cli_platform_arg(int *argc, char ***argv, const char *usage, struct mk_platform *ret,
                     bool *ret_set)
{
    *ret_set = false;
    if (*argc < 2 || !mk_str_has_prefix((*argv)[1], "--platform"))
        return 0;
    const char *a = (*argv)[1] + strlen("--platform");
    const char *v = NULL;
    int used = 1;
    if (*a == '=')
        v = a + 1;
    else if (!*a && *argc >= 3)
        v = (*argv)[2], used = 2;
    if (!v)
        return cli_usage("%s", usage);
    struct mk_error *err = NULL;
    if (mk_platform_parse(v, ret, &err) < 0)
        return cli_fail(err);
    *argc -= used;
    *argv += used;
    *ret_set = true;
    return 0;
}

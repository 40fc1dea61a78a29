/* cli/platform.c - the `--platform OS/ARCH[/VARIANT]` value of import and inspect. */
#include <string.h>

#include "cli/cli.h"

const char cli_platform_words[] =
    "linux/amd64 linux/arm64 linux/arm/v7 linux/arm/v6 linux/386 linux/ppc64le linux/s390x "
    "linux/riscv64";

int cli_platform_value(const char *v, struct mk_platform *ret)
{
    struct mk_error *err = NULL;
    if (mk_platform_parse(v, ret, &err) < 0)
        return cli_fail(err);
    return 0;
}

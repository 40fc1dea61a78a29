/* The platform of an image config, normalized (parsing itself: tests/unit/common). */
#include "layerstore/layerstore.h"
#include "tap.h"

int main(void)
{
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.architecture = (char *)"aarch64";
    cfg.variant = (char *)"v8";
    struct mk_platform p;
    layerstore_config_platform(&cfg, &p);
    char s[MK_PLATFORM_MAX];
    mk_platform_format(&p, s);
    tap_ok(strcmp(s, "linux/arm64") == 0, "a config's platform is normalized (got %s)", s);
    return tap_done();
}

/* libFuzzer target: arbitrary bytes as an image config through layerstore_config_parse.
 * Checks the error contract and that what parses serializes to JSON that parses again to
 * the same serialization (a loaded image's config round-trips through mkimg unchanged).
 * Also compiled into tests/unit/layerstore/test-config-fuzz-corpus.c, which replays the
 * corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layerstore/layerstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    struct mk_error *err = NULL;
    int r = layerstore_config_parse((const char *)data, size, &cfg, &err);
    if ((r < 0) != (err != NULL))
        abort();
    mk_error_free(err);
    if (r < 0)
        return 0;
    char *once = layerstore_config_serialize(&cfg);
    struct mk_image_config again, copy;
    memset(&again, 0, sizeof(again));
    memset(&copy, 0, sizeof(copy));
    if (!once || layerstore_config_parse(once, strlen(once), &again, NULL) < 0)
        abort();
    char *twice = layerstore_config_serialize(&again);
    if (!twice || strcmp(once, twice) != 0)
        abort();
    layerstore_config_copy(&copy, &cfg);
    char *copied = layerstore_config_serialize(&copy);
    if (!copied || strcmp(once, copied) != 0)
        abort();
    free(once);
    free(twice);
    free(copied);
    layerstore_config_release(&cfg);
    layerstore_config_release(&again);
    layerstore_config_release(&copy);
    return 0;
}

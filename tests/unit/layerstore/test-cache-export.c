/* The remote cache's config blob (layerstore/cache-export.c): step records round-trip in
 * key order, the same records give the same bytes, and a config that is not ours (another
 * version, a record without a key, a layer that is not a plain tar named by its diff ID) is
 * refused. */
#include "layerstore/layerstore.h"
#include "tap.h"

static void record(struct mk_step_record *r, const char *key, const char *layer)
{
    memset(r, 0, sizeof(*r));
    mk_sha256_buffer(key, strlen(key), r->key);
    r->history.created_by = (char *)key;
    if (!layer) {
        r->empty = true;
        return;
    }
    mk_sha256_buffer(layer, strlen(layer), r->layer.digest);
    memcpy(r->layer.diff_id, r->layer.digest, MK_DIGEST_SIZE);
    r->layer.media_type = (char *)MK_MEDIA_OCI_LAYER;
    r->layer.size = 42;
    mk_chain_id("", r->layer.diff_id, r->chain_id);
}

static bool refused(const char *json, const char *why)
{
    struct mk_step_record *recs = NULL;
    size_t n = 0;
    struct mk_error *err = NULL;
    int r = layerstore_cache_config_parse(json, strlen(json), &recs, &n, &err);
    bool ok = r < 0 && err && err->code == MK_ERR_PARSE;
    if (!ok)
        tap_diag("%s: accepted", why);
    mk_error_free(err);
    layerstore_step_records_free(recs, n);
    return ok;
}

int main(void)
{
    struct mk_step_record in[3];
    record(&in[0], "RUN b", "layer b");
    record(&in[1], "WORKDIR /a", NULL);
    record(&in[2], "COPY a", "layer a");
    struct mk_error *err = NULL;
    char *json = layerstore_cache_config_json(in, 3, &err);
    tap_ok(json != NULL, "three records make a config");
    struct mk_step_record swapped[3] = {in[2], in[0], in[1]};
    char *again = layerstore_cache_config_json(swapped, 3, &err);
    tap_is_str(again, json, "in another order: the same bytes");
    struct mk_step_record *out = NULL;
    size_t n = 0;
    tap_ok(layerstore_cache_config_parse(json, strlen(json), &out, &n, &err) == 0 && n == 3,
           "the config parses back");
    int found = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < 3; k++)
            if (strcmp(out[i].key, in[k].key) == 0 && out[i].empty == in[k].empty &&
                strcmp(out[i].history.created_by, in[k].history.created_by) == 0 &&
                (in[k].empty || (strcmp(out[i].layer.diff_id, in[k].layer.diff_id) == 0 &&
                                 strcmp(out[i].chain_id, in[k].chain_id) == 0)))
                found++;
    tap_is_int(found, 3, "every record as it was");
    tap_ok(n == 3 && strcmp(out[0].key, out[1].key) < 0 && strcmp(out[1].key, out[2].key) < 0,
           "sorted by key");
    layerstore_step_records_free(out, n);
    free(json);
    free(again);

    tap_ok(refused("{\"version\":2,\"records\":[]}", "version 2"), "another version is refused");
    tap_ok(refused("[]", "an array"), "a document that is not an object is refused");
    tap_ok(refused("{\"version\":1,\"records\":[{\"history\":{}}]}", "no key"),
           "a record without a key is refused");
    static const char gz[] =
        "{\"version\":1,\"records\":[{\"key\":\"sha256:"
        "0000000000000000000000000000000000000000000000000000000000000000\","
        "\"chainID\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\","
        "\"history\":{},\"layer\":{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
        "\"digest\":\"sha256:2222222222222222222222222222222222222222222222222222222222222222\","
        "\"diffID\":\"sha256:3333333333333333333333333333333333333333333333333333333333333333\","
        "\"size\":1}}]}";
    tap_ok(refused(gz, "gzip"), "a layer that is not a plain tar is refused");
    return tap_done();
}

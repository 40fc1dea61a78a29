/* Image config JSON: parse -> serialize is stable, null == absent, unknown fields ignored,
 * type errors refused; chain ids against the conformance table. */
#include "layerstore/layerstore.h"
#include "tap.h"

static const char full[] =
    "{\"created\":\"2024-01-02T03:04:05Z\",\"author\":\"me <me@example.com>\","
    "\"architecture\":\"arm64\",\"variant\":\"v8\",\"os\":\"linux\","
    "\"config\":{\"User\":\"app:app\",\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}},"
    "\"Env\":[\"PATH=/usr/bin:/bin\",\"A=b=c\"],\"Entrypoint\":[\"/init\"],"
    "\"Cmd\":[\"sh\",\"-c\",\"echo hi\"],\"Volumes\":{\"/data\":{}},\"WorkingDir\":\"/app\","
    "\"Labels\":{\"a\":\"1\",\"b\":\"x=y\"},\"StopSignal\":\"SIGRTMIN+3\","
    "\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",\"true\"],\"Interval\":30000000000,"
    "\"Timeout\":5000000000,\"StartPeriod\":1000000000,\"StartInterval\":2000000000,"
    "\"Retries\":3},\"ArgsEscaped\":true,\"OnBuild\":[\"RUN echo child\"],"
    "\"Shell\":[\"/bin/bash\",\"-c\"]},"
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":["
    "\"sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1\","
    "\"sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef\"]},"
    "\"history\":[{\"created\":\"2024-01-02T03:04:05Z\",\"created_by\":\"ADD x /\","
    "\"author\":\"me\",\"comment\":\"c\"},{\"created_by\":\"ENV A=b\",\"empty_layer\":true},"
    "{\"created_by\":\"RUN true\"}]}";

static void check_full(const struct mk_image_config *c, const char *what)
{
    tap_ok(c->architecture && strcmp(c->architecture, "arm64") == 0 && c->variant &&
               strcmp(c->variant, "v8") == 0 && strcmp(c->os, "linux") == 0 &&
               strcmp(c->author, "me <me@example.com>") == 0 &&
               strcmp(c->created, "2024-01-02T03:04:05Z") == 0,
           "%s: top-level fields", what);
    tap_ok(strcmp(c->user, "app:app") == 0 && strcmp(c->working_dir, "/app") == 0 &&
               strcmp(c->stop_signal, "SIGRTMIN+3") == 0,
           "%s: User, WorkingDir, StopSignal", what);
    tap_ok(c->env.n == 2 && strcmp(c->env.v[1], "A=b=c") == 0, "%s: Env", what);
    tap_ok(c->has_entrypoint && c->entrypoint.n == 1 && c->has_cmd && c->cmd.n == 3 &&
               strcmp(c->cmd.v[2], "echo hi") == 0,
           "%s: Entrypoint and Cmd", what);
    tap_ok(c->labels.n == 2 && strcmp(c->labels.v[1], "b=x=y") == 0, "%s: Labels", what);
    tap_ok(c->exposed_ports.n == 2 && strcmp(c->exposed_ports.v[1], "53/udp") == 0 &&
               c->volumes.n == 1 && strcmp(c->volumes.v[0], "/data") == 0,
           "%s: ExposedPorts and Volumes", what);
    tap_ok(c->healthcheck.set && c->healthcheck.test.n == 2 &&
               c->healthcheck.interval == 30000000000LL && c->healthcheck.timeout == 5000000000LL &&
               c->healthcheck.start_period == 1000000000LL &&
               c->healthcheck.start_interval == 2000000000LL && c->healthcheck.retries == 3,
           "%s: Healthcheck", what);
    tap_ok(c->args_escaped && c->onbuild.n == 1 && c->shell.n == 2,
           "%s: ArgsEscaped, OnBuild, "
           "Shell",
           what);
    tap_ok(c->diff_ids.n == 2, "%s: diff_ids", what);
    tap_ok(c->n_history == 3 && c->history[1].empty_layer && !c->history[0].empty_layer &&
               strcmp(c->history[0].comment, "c") == 0 && strcmp(c->history[0].author, "me") == 0 &&
               c->history[2].created == NULL,
           "%s: history", what);
}

static int parse(const char *json, struct mk_image_config *c)
{
    struct mk_error *err = NULL;
    memset(c, 0, sizeof(*c));
    int r = layerstore_config_parse(json, strlen(json), c, &err);
    if (r < 0) {
        tap_diag("parse error: %s", err->msg);
        mk_error_free(err);
    }
    return r;
}

int main(void)
{
    struct mk_image_config c, c2, c3;
    tap_ok(parse(full, &c) == 0, "parse a full config");
    check_full(&c, "parsed");
    char *s1 = layerstore_config_serialize(&c);
    tap_ok(parse(s1, &c2) == 0, "parse the serialized config");
    check_full(&c2, "round trip");
    char *s2 = layerstore_config_serialize(&c2);
    tap_is_str(s2, s1, "serialize(parse(serialize(x))) == serialize(x)");
    tap_ok(!strstr(s1, "\": ") && !strstr(s1, ", ") && !strchr(s1, '\n'), "compact JSON");
    layerstore_config_copy(&c3, &c2);
    char *s3 = layerstore_config_serialize(&c3);
    tap_is_str(s3, s1, "a copy serializes the same");
    layerstore_config_release(&c3);
    layerstore_config_add_history(&c3, NULL, "RUN x", NULL, true);
    tap_ok(c3.n_history == 1 && c3.history[0].empty_layer, "add_history");
    layerstore_config_release(&c3);
    free(s1);
    free(s2);
    free(s3);
    layerstore_config_release(&c);
    layerstore_config_release(&c2);

    /* null and absent, empty lists, unknown fields */
    tap_ok(parse("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":null,"
                 "\"Entrypoint\":[],\"Env\":null,\"Labels\":null,\"Memory\":5,"
                 "\"Whatever\":{\"x\":[1]}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":null},"
                 "\"history\":null,\"unknown\":true,\"variant\":null}",
                 &c) == 0,
           "nulls and unknown fields parse");
    tap_ok(!c.has_cmd && c.has_entrypoint && c.entrypoint.n == 0 && c.env.n == 0 &&
               c.variant == NULL && c.n_history == 0,
           "null is absent; [] is an empty list");
    s1 = layerstore_config_serialize(&c);
    tap_ok(strstr(s1, "\"Entrypoint\":[]") && !strstr(s1, "Cmd") && !strstr(s1, "history"),
           "empty Entrypoint kept, absent Cmd omitted: %s", s1);
    free(s1);
    layerstore_config_release(&c);

    static const char *const bad[] = {
        "[]",
        "{\"os\":5}",
        "{\"config\":{\"Env\":\"PATH=/bin\"}}",
        "{\"config\":{\"Cmd\":[1]}}",
        "{\"config\":{\"Labels\":{\"a\":1}}}",
        "{\"rootfs\":{\"type\":\"tarballs\",\"diff_ids\":[]}}",
        "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"md5:abc\"]}}",
        "{\"history\":[5]}",
        "{\"os\":\"linux\"",
    };
    for (size_t i = 0; i < MK_ARRAY_SIZE(bad); i++) {
        struct mk_error *err = NULL;
        memset(&c, 0, sizeof(c));
        int r = layerstore_config_parse(bad[i], strlen(bad[i]), &c, &err);
        tap_ok(r < 0 && err && err->msg[0], "refused: %s", bad[i]);
        mk_error_free(err);
    }

    /* The conformance ChainID example. */
    char chain[MK_DIGEST_SIZE];
    struct mk_image img;
    memset(&img, 0, sizeof(img));
    struct mk_layer_desc l[2];
    memset(l, 0, sizeof(l));
    memcpy(l[0].diff_id, "sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1",
           MK_DIGEST_SIZE);
    memcpy(l[1].diff_id, "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
           MK_DIGEST_SIZE);
    img.layers = l;
    img.n_layers = 2;
    layerstore_image_chain_id(&img, 0, chain);
    tap_is_str(chain, "", "chain id of no layers");
    layerstore_image_chain_id(&img, 1, chain);
    tap_is_str(chain, l[0].diff_id, "chain id of one layer is its diff_id");
    layerstore_image_chain_id(&img, 2, chain);
    tap_is_str(chain, "sha256:c3191d32a37d7159b2e30830937d2e30268ad6c375a773a8994911a3aba9b93f",
               "chain id of two layers (conformance digests.tsv)");
    return tap_done();
}

/* tests/unit/layerstore/store-fixture.h - a test's store: an empty one in a fresh temp dir
 * (the test's working directory from then on). Include after tap.h. */
#ifndef MK_TESTS_STORE_FIXTURE_H
#define MK_TESTS_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "layerstore/layerstore.h"

/* The store at ./store, opened; exits 1 (after saying why) when it cannot be. */
static inline struct mk_store *fixture_store(void)
{
    tap_tmpdir();
    struct mk_store *st = NULL;
    struct mk_error *err = NULL;
    if (layerstore_open("store", &st, &err) < 0) {
        fprintf(stderr, "opening a store: %s\n", err->msg);
        exit(1);
    }
    return st;
}

#endif

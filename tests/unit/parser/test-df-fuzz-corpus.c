/* Replays the Dockerfile fuzz corpus (tests/fuzz/corpus/dockerfile) through the fuzz target's
 * own entry point; under the sanitizer build this is the regression check for everything
 * the fuzzer ever found. */
#include "../../fuzz/fuzz-dockerfile.c"
#include "corpus.h"

int main(void)
{
    return corpus_replay("dockerfile");
}

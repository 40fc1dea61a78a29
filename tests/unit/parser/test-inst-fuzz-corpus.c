/* Replays the typed-instruction fuzz corpus (tests/fuzz/corpus/instructions) through the fuzz
 * target's own entry point. */
#include <stdio.h>

#include "../../fuzz/fuzz-instructions.c"
#include "corpus.h"

int main(void)
{
    return corpus_replay("instructions");
}

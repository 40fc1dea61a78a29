/* Replays the image reference fuzz corpus (tests/fuzz/corpus/reference). */
#include "../../fuzz/fuzz-reference.c"
#include "parser/corpus.h"

int main(void)
{
    return corpus_replay("reference");
}

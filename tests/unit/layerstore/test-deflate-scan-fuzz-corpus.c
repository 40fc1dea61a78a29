/* Replays the deflate scanner fuzz corpus (tests/fuzz/corpus/deflate-scan). */
#include "../../fuzz/fuzz-deflate-scan.c"
#include "parser/corpus.h"

int main(void)
{
    return corpus_replay("deflate-scan");
}

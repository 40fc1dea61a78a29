/* Replays the image config fuzz corpus (tests/fuzz/corpus/image-config). */
#include "../../fuzz/fuzz-image-config.c"
#include "parser/corpus.h"

int main(void)
{
    return corpus_replay("image-config");
}

/* Replays the .dockerignore fuzz corpus (tests/fuzz/corpus/ignore). */
#include "../../fuzz/fuzz-ignore.c"
#include "corpus.h"

int main(void)
{
    return corpus_replay("ignore");
}

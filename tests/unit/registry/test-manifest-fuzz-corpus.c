/* Replays the manifest fuzz corpus (tests/fuzz/corpus/manifest). */
#include "../../fuzz/fuzz-manifest.c"
#include "parser/corpus.h"

int main(void)
{
    return corpus_replay("manifest");
}

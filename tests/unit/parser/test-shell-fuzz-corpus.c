/* Replays the word expansion fuzz corpus (tests/fuzz/corpus/shell). */
#include "../../fuzz/fuzz-shell.c"
#include "corpus.h"

int main(void)
{
    return corpus_replay("shell");
}

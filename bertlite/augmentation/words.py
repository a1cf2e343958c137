"""Word-level view of WordPiece tokens: which pieces form a word, and which words may be replaced.

TinyBERT replaces whole words, never a piece inside a word, and leaves stop words and punctuation alone: swapping
"not" or "." changes the meaning more than it adds variety, and the teacher's soft targets can only make up for
so much. Special tokens ([CLS], [SEP], [UNK], ...) are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTINUATION = "##"

# English stop words (the NLTK list, with contractions split the way BERT's basic tokenizer splits them). They are
# kept as they are in every variant, and never offered as replacements.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself
it its itself they them their theirs themselves what which who whom this that these those am is are was were be
been being have has had having do does did doing a an the and but if or because as until while of at by for with
about against between into through during before after above below to from up down in out on off over under again
further then once here there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn hasn haven
isn ma mightn mustn needn shan shouldn wasn weren won wouldn
""".split())


@dataclass(frozen=True)
class Word:
    """One word of a tokenized text: pieces[start:end] (a first piece followed by its '##' continuations)."""

    start: int
    end: int
    replaceable: bool

    @property
    def num_pieces(self) -> int:
        return self.end - self.start


def is_word_token(token: str) -> bool:
    """A vocabulary entry that can stand as a replacement word: alphabetic, a word start, not a stop word."""
    return len(token) >= 2 and token.isalpha() and token.lower() not in STOP_WORDS


def split_words(tokens: list[str], special_tokens: set[str]) -> list[Word]:
    """Group WordPiece tokens into words and mark those that may be replaced (alphabetic, not a stop word, not
    special). A stray continuation piece at the start (after truncation) is its own unreplaceable word."""
    words: list[Word] = []
    i = 0
    while i < len(tokens):
        j = i + 1
        while j < len(tokens) and tokens[j].startswith(CONTINUATION):
            j += 1
        first = tokens[i]
        whole = first + "".join(t[len(CONTINUATION):] for t in tokens[i + 1:j])
        replaceable = (first not in special_tokens and not first.startswith(CONTINUATION) and whole.isalpha()
                       and whole.lower() not in STOP_WORDS)
        words.append(Word(i, j, replaceable))
        i = j
    return words

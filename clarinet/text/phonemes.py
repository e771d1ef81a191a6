"""Optional ARPAbet phonemes: :class:`Phonemizer` reads a CMUdict-format file given by the user (nothing
is downloaded) and falls back to characters for words it lacks; :func:`phoneme_vocabulary` holds both."""
from __future__ import annotations

import functools
import os
import re
from typing import List, Tuple, Union

from .normalization import normalize
from .vocabulary import DEFAULT_CHARACTERS, Vocabulary, _warn_unknown

__all__ = ["ARPABET", "ARPABET_CONSONANTS", "ARPABET_VOWELS", "PHONEME_PREFIX", "Phonemizer", "phoneme_vocabulary"]


# ============================================================================== phonemes
#: The 39 ARPAbet phonemes of CMUdict (vowels carry stress 0/1/2 in the dictionary).
ARPABET_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                  "UH", "UW")
ARPABET_CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P",
                      "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH")
ARPABET = ARPABET_VOWELS + ARPABET_CONSONANTS
#: Prefix that keeps phoneme symbols apart from characters in a mixed vocabulary.
PHONEME_PREFIX = "@"


def _arpabet_symbols(stress: bool) -> List[str]:
    out = []
    for p in ARPABET:
        if stress and p in ARPABET_VOWELS:
            out.extend(f"{PHONEME_PREFIX}{p}{s}" for s in "012")
        else:
            out.append(PHONEME_PREFIX + p)
    return out


@functools.lru_cache(maxsize=2)
def _phoneme_vocabulary(stress: bool) -> Vocabulary:
    return Vocabulary(list(DEFAULT_CHARACTERS) + _arpabet_symbols(stress))


def phoneme_vocabulary(*, stress: bool = True) -> Vocabulary:
    """The default characters followed by the ARPAbet phonemes written ``"@AH0"`` (``"@AH"``
    without stress): the vocabulary of :class:`Phonemizer` output, characters included for
    words the dictionary lacks."""
    return _phoneme_vocabulary(bool(stress))


_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")


class Phonemizer:
    """Words to ARPAbet phonemes from a pronouncing dictionary in CMUdict format.

    Args:
        dict_path: a text file of lines ``WORD  PH1 PH2 ...`` (CMUdict: ``;;;`` comments,
            alternative pronunciations ``WORD(1)``, which are ignored: the first one is used).
            Nothing is downloaded; without a dictionary, use characters.
        stress: keep the vowels' stress digits (``"@AH0"``) or drop them (``"@AH"``).

    ``phonemizer(text)`` returns a list of symbols of :meth:`vocabulary`: the text is
    normalised (:func:`normalize`), each word found in the dictionary becomes its phonemes,
    any other word stays as its characters, and spaces and punctuation stay as characters.
    :meth:`encode` turns text into ids of :meth:`vocabulary`, dropping (and reporting, like
    :meth:`Vocabulary.encode`) characters that vocabulary lacks.
    """

    def __init__(self, dict_path: Union[str, "os.PathLike[str]"], *, stress: bool = True):
        path = os.fspath(dict_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"dict_path: pronouncing dictionary not found: {path}")
        self.stress = bool(stress)
        allowed = set(ARPABET)
        entries: Dict[str, Tuple[str, ...]] = {}
        with open(path, encoding="latin-1") as f:  # CMUdict is ASCII; latin-1 never fails
            for lineno, line in enumerate(f, start=1):
                line = line.strip()
                if not line or line.startswith(";;;"):
                    continue
                fields = line.split()
                word = fields[0].lower()
                if re.search(r"\(\d+\)$", word):
                    continue
                phones = []
                for p in fields[1:]:
                    base = p.rstrip("012")
                    if base not in allowed or (p != base and (base not in ARPABET_VOWELS or len(p) != len(base) + 1)):
                        raise ValueError(f"{path}, line {lineno}: unknown ARPAbet symbol {p!r}")
                    phones.append(PHONEME_PREFIX + (p if self.stress else base))
                if not phones:
                    raise ValueError(f"{path}, line {lineno}: word {fields[0]!r} has no phonemes")
                entries.setdefault(word, tuple(phones))
        if not entries:
            raise ValueError(f"dict_path: no entries in {path}")
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._entries

    def vocabulary(self) -> Vocabulary:
        """:func:`phoneme_vocabulary` with this phonemizer's ``stress``."""
        return phoneme_vocabulary(stress=self.stress)

    def __call__(self, text: str) -> List[str]:
        text = normalize(text)
        out: List[str] = []
        pos = 0
        for m in _WORD_RE.finditer(text):
            out.extend(text[pos:m.start()])
            phones = self._entries.get(m.group(0))
            out.extend(phones if phones is not None else m.group(0))
            pos = m.end()
        out.extend(text[pos:])
        return out

    def encode_with_report(self, text: str, *, add_eos: bool = True) -> Tuple[List[int], List[str]]:
        """``(ids, unknown)`` of ``text`` in :meth:`vocabulary`; no warning."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        vocab = self.vocabulary()
        ids: List[int] = []
        unknown: Dict[str, None] = {}
        for t in self(text):
            if t in vocab:
                ids.append(vocab.id(t))
            else:
                unknown.setdefault(t, None)
        if add_eos:
            ids.append(vocab.eos_id)
        return ids, list(unknown)

    def encode(self, text: str, *, add_eos: bool = True) -> List[int]:
        """Ids of ``text`` in :meth:`vocabulary`; dropped characters are reported in one
        :class:`UnknownCharacterWarning`."""
        ids, unknown = self.encode_with_report(text, add_eos=add_eos)
        _warn_unknown(unknown, stacklevel=3)
        return ids

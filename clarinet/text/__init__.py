"""Text frontend for the text-to-wave model: English normalisation and symbol vocabularies.

- :func:`normalize`: deterministic English text normalisation (Unicode folding, numbers,
  currency, abbreviations, symbols, lowercase, whitespace).
- :class:`Vocabulary`: symbol <-> id mapping with ``<pad>`` (id 0) and ``<eos>`` (id 1).
  Characters it does not know are dropped, deterministically, and reported
  (:class:`UnknownCharacterWarning`, or :meth:`Vocabulary.encode_with_report`).
- :func:`default_vocabulary`: lowercase letters, space and ``'.,!?-;:"()``.
- :func:`text_to_ids`: checked one-call conversion of a string to a ``LongTensor`` of ids.
- :class:`Phonemizer`: optional ARPAbet phonemes from a CMUdict-format file given by the user,
  with character fallback for words the dictionary does not have. Nothing is downloaded.

Pure Python and torch; no other dependency. The rooms: :mod:`.normalization`, :mod:`.vocabulary`,
:mod:`.phonemes`; everything is importable from ``clarinet.text``.
"""
from .normalization import normalize, number_to_words, ordinal_to_words
from .phonemes import ARPABET, ARPABET_CONSONANTS, ARPABET_VOWELS, PHONEME_PREFIX, Phonemizer, phoneme_vocabulary
from .vocabulary import (DEFAULT_CHARACTERS, DEFAULT_PUNCTUATION, EOS, PAD, UnknownCharacterWarning, Vocabulary,
                         default_vocabulary, text_to_ids)

__all__ = [
    "normalize",
    "number_to_words",
    "ordinal_to_words",
    "Vocabulary",
    "UnknownCharacterWarning",
    "default_vocabulary",
    "text_to_ids",
    "DEFAULT_CHARACTERS",
    "DEFAULT_PUNCTUATION",
    "PAD",
    "EOS",
    "ARPABET",
    "ARPABET_VOWELS",
    "ARPABET_CONSONANTS",
    "PHONEME_PREFIX",
    "Phonemizer",
    "phoneme_vocabulary",
]

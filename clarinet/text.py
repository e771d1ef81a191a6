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

Pure Python and torch; no other dependency.
"""
from __future__ import annotations

import functools
import os
import re
import unicodedata
import warnings
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

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

PAD = "<pad>"
EOS = "<eos>"
#: Punctuation kept by :func:`default_vocabulary`: sentence punctuation (``. , ! ? ; :``), the
#: apostrophe of contractions and possessives, the hyphen (also written by :func:`normalize` in
#: numbers like "twenty-one"), double quotes and parentheses (they carry prosody).
DEFAULT_PUNCTUATION = "'.,!?-;:\"()"
#: All non-special symbols of :func:`default_vocabulary`, in id order (ids 2, 3, ...).
DEFAULT_CHARACTERS = "abcdefghijklmnopqrstuvwxyz " + DEFAULT_PUNCTUATION


# ============================================================================== numbers
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion"]
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
# Integers at or above this are read digit by digit ("one two three ...").
_MAX_CARDINAL = 10 ** (3 * len(_SCALES))


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("-" + _ONES[ones] if ones else "")


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append(_ONES[hundreds] + " hundred")
    if rest or not hundreds:
        parts.append(_below_hundred(rest))
    return " ".join(parts)


def _digits(s: str) -> str:
    return " ".join(_ONES[int(c)] for c in s)


def number_to_words(n: int) -> str:
    """Cardinal English words of an integer, American style (no "and").

    >>> number_to_words(0), number_to_words(21), number_to_words(-1005)
    ('zero', 'twenty-one', 'minus one thousand five')
    >>> number_to_words(1234567)
    'one million two hundred thirty-four thousand five hundred sixty-seven'

    Integers with 19 or more digits are read digit by digit.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= _MAX_CARDINAL:
        return _digits(str(n))
    if n == 0:
        return "zero"
    parts = []
    scale = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            parts.append(_below_thousand(chunk) + (" " + _SCALES[scale] if scale else ""))
        scale += 1
    return " ".join(reversed(parts))


def ordinal_to_words(n: int) -> str:
    """Ordinal English words of a non-negative integer: 1 -> "first", 22 -> "twenty-second",
    100 -> "one hundredth"."""
    words = number_to_words(n)
    # Change the last word (after a space or hyphen).
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return head + last


def _year_to_words(n: int) -> str:
    """1100..1999 and 2010..2099 in pairs: 1984 -> nineteen eighty-four, 1900 -> nineteen
    hundred, 1905 -> nineteen oh five."""
    high, low = divmod(n, 100)
    if low == 0:
        return _below_hundred(high) + " hundred"
    if low < 10:
        return _below_hundred(high) + " oh " + _ONES[low]
    return _below_hundred(high) + " " + _below_hundred(low)


def _is_year(n: int) -> bool:
    return 1100 <= n <= 1999 or 2010 <= n <= 2099


def _decimal_to_words(whole: str, frac: str) -> str:
    head = number_to_words(int(whole)) if whole else ""
    return (head + " " if head else "") + "point " + _digits(frac)


# ============================================================================== normalisation
# Characters NFKD leaves alone (or folds to something unhelpful) mapped to ASCII first.
_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
    "\u0060": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-",
    "\u2026": "...", "\u2044": "/", "\u00a0": " ",
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "ae", "\u0153": "oe", "\u0152": "oe",
    "\u00f8": "o", "\u00d8": "o", "\u0142": "l", "\u0141": "l", "\u00f0": "d", "\u00d0": "d",
    "\u00fe": "th", "\u00de": "th", "\u0131": "i",
}
_FOLD_RE = re.compile("|".join(re.escape(k) for k in sorted(_FOLD, key=len, reverse=True)))


def _fold_unicode(text: str) -> str:
    text = _FOLD_RE.sub(lambda m: _FOLD[m.group(0)], text)
    text = unicodedata.normalize("NFKD", text)
    # Drop combining marks (accents); anything else non-ASCII is kept, so that a vocabulary can
    # report it as unknown instead of it vanishing silently here.
    return "".join(c for c in text if not unicodedata.combining(c))


# Abbreviations that need their period. Matched case-insensitively as whole words; the period
# is consumed (and put back when it ends the text, where it also ends the sentence).
_ABBREVIATIONS = {
    "mrs": "misess", "mr": "mister", "ms": "miss", "dr": "doctor", "jr": "junior",
    "sr": "senior", "co": "company", "corp": "corporation", "inc": "incorporated",
    "ltd": "limited", "bros": "brothers", "capt": "captain", "col": "colonel", "gen": "general",
    "gov": "governor", "lt": "lieutenant", "maj": "major", "sgt": "sergeant", "hon": "honorable",
    "rev": "reverend", "prof": "professor", "ft": "fort", "mt": "mount", "ave": "avenue",
    "vs": "versus", "etc": "et cetera", "approx": "approximately", "dept": "department",
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "aug": "august",
    "sept": "september", "sep": "september", "oct": "october", "nov": "november",
    "dec": "december",
}
_ABBREV_RE = re.compile(
    r"\b(" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.", re.IGNORECASE)
# Titles are also expanded without a period when a capitalised name follows ("Mr Smith").
_TITLE_RE = re.compile(r"\b(Mrs|Mr|Ms|Dr|MRS|MR|MS|DR)(?=\s+[A-Z])")
_LATIN_RE = re.compile(r"\b(e\.\s?g|i\.\s?e)\.?(?=[\s,;:!?)]|$)", re.IGNORECASE)
_LATIN = {"e": "for example", "i": "that is"}
# "St." before a capitalised word is "saint" (St. Louis), otherwise "street" (Baker St.).
_ST_RE = re.compile(r"\bSt\.(\s+)(?=[A-Z])|\bst\.", re.IGNORECASE)
_NUMBER_ABBREV_RE = re.compile(r"\b(no|nos)\.\s*(?=\d)|#\s*(?=\d)", re.IGNORECASE)

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"),
             "\u00a3": ("pound", "pounds", "penny", "pence"),
             "\u20ac": ("euro", "euros", "cent", "cents")}
_SCALE_WORDS = r"(?:thousand|million|billion|trillion)"
_CURRENCY_RE = re.compile(
    r"([$\u00a3\u20ac])\s?(\d[\d,]*)(?:\.(\d+))?(?:\s+(" + _SCALE_WORDS + r")\b)?", re.IGNORECASE)
_PERCENT_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?|\.\d+)\s?%")
_COMMA_NUMBER_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_TIME_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_DECIMAL_RE = re.compile(r"(\d*)\.(\d+)")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_NEGATIVE_RE = re.compile(r"(?:(?<=\s)|^)-(?=\d)")
_INTEGER_RE = re.compile(r"\d+")
_SYMBOLS = {"&": " and ", "+": " plus ", "@": " at ", "=": " equals ",
            "[": "(", "]": ")", "{": "(", "}": ")"}
_SYMBOL_RE = re.compile("|".join(re.escape(k) for k in _SYMBOLS))
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,!?;:)])")
_WHITESPACE_RE = re.compile(r"\s+")


def _strip_commas(s: str) -> str:
    return s.replace(",", "")


def _expand_currency(m: "re.Match[str]") -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole_s, frac, scale = _strip_commas(m.group(2)), m.group(3), m.group(4)
    if scale:  # "$5 million", "$1.5 billion": the amount, then the unit
        amount = _decimal_to_words(whole_s, frac) if frac else number_to_words(int(whole_s))
        return f" {amount} {scale.lower()} {many} "
    if frac is not None and len(frac) > 2:  # "$3.125": read as a decimal amount
        return f" {_decimal_to_words(whole_s, frac)} {many} "
    whole = int(whole_s)
    cents = int((frac or "0").ljust(2, "0"))
    parts = []
    if whole or not cents:
        parts.append(f"{number_to_words(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " " + ", ".join(parts) + " "


def _expand_percent(m: "re.Match[str]") -> str:
    return " " + _strip_commas(m.group(1)) + " percent "  # the number is read by a later pass


def _expand_time(m: "re.Match[str]") -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    if minutes == 0:
        return number_to_words(hours) + " o'clock"
    if minutes < 10:
        return number_to_words(hours) + " oh " + _ONES[minutes]
    return number_to_words(hours) + " " + _below_hundred(minutes)


def _expand_integer(m: "re.Match[str]") -> str:
    s = m.group(0)
    n = int(s)
    if len(s) == 4 and _is_year(n):
        return _year_to_words(n)
    if len(s) > 1 and s[0] == "0":  # "007", zip codes: digit by digit
        return _digits(s)
    return number_to_words(n)


def _expand_abbreviation(m: "re.Match[str]") -> str:
    word = _ABBREVIATIONS[m.group(1).lower()]
    at_end = m.end() == len(m.string) or not m.string[m.end():].strip()
    return word + ("." if at_end else "")


def _expand_st(m: "re.Match[str]") -> str:
    if m.group(1) is not None:
        return "saint" + m.group(1)
    at_end = not m.string[m.end():].strip()
    return "street" + ("." if at_end else "")


def _expand_latin(m: "re.Match[str]") -> str:
    return _LATIN[m.group(1)[0].lower()]


def normalize(text: str) -> str:
    """Normalise English text for a character vocabulary. Deterministic; never raises on content.

    Steps, in order:

    1. Unicode folding: curly quotes to ``'`` and ``"``, dashes (en, em, minus) to ``-``,
       ellipsis to ``...``, non-breaking space to space, ligatures and a few letters (ß, æ, ø, ł)
       to ASCII, then NFKD with combining marks (accents) removed: "café" -> "cafe". Characters
       with no ASCII form (e.g. "中", emoji) are *kept*, so that :meth:`Vocabulary.encode`
       drops and reports them instead of them disappearing here.
    2. Symbols: ``&`` -> "and", ``+`` -> "plus", ``@`` -> "at", ``=`` -> "equals", square and
       curly brackets -> parentheses.
    3. Abbreviations (case-insensitive, with their period): "Mr." -> "mister", "Mrs." ->
       "misess", "Dr." -> "doctor", "Jr." -> "junior", "Co." -> "company", "etc." -> "et cetera",
       "vs." -> "versus", military/civil titles, month names ("Jan." ...), "e.g." -> "for
       example", "i.e." -> "that is"; "No. 5"/"#5" -> "number five"; "St." -> "saint" before a
       capitalised word, else "street". Titles Mr/Mrs/Ms/Dr also without a period before a
       capitalised name. An abbreviation's period that ends the text is kept as the sentence's.
    4. Numbers: currency ``$ £ €`` ("$3.20" -> "three dollars, twenty cents", "$1" -> "one
       dollar", "$0.05" -> "five cents", "$5 million" -> "five million dollars"); percentages
       ("12.5%" -> "twelve point five percent"); thousands commas ("1,000" -> "one thousand");
       times ("3:30" -> "three thirty", "3:00" -> "three o'clock"); decimals ("3.5" -> "three
       point five", digits after the point read one by one); ordinals ("1st" -> "first",
       "22nd" -> "twenty-second"); a leading minus ("-5" -> "minus five"); years: a four-digit
       integer from 1100 to 1999 or 2010 to 2099 written without a comma is read in pairs
       ("1984" -> "nineteen eighty-four", "1900" -> "nineteen hundred", "1905" -> "nineteen oh
       five"); other integers are cardinals in American style without "and" ("2005" -> "two
       thousand five", "1,984" -> "one thousand nine hundred eighty-four"); integers with a
       leading zero ("007") and those of 19 or more digits are read digit by digit.
    5. Lowercase; whitespace runs (tabs, newlines) collapsed to one space; spaces before
       ``. , ! ? ; : )`` removed; leading and trailing spaces stripped.

    Punctuation is kept as written (``.,!?;:'"()-`` and any other): which of it a model sees is
    the vocabulary's business, and a symbol the vocabulary lacks is dropped and reported there.

    >>> normalize("Dr. Smith paid $3.20 on the 1st of May, 1984 -- 50% more!")
    'doctor smith paid three dollars, twenty cents on the first of may, nineteen eighty-four -- fifty percent more!'
    >>> normalize("“Café” & co.")
    '"cafe" and company.'

    Raises:
        TypeError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = _fold_unicode(text)
    text = _SYMBOL_RE.sub(lambda m: _SYMBOLS[m.group(0)], text)
    # abbreviations (before lowercasing: "St. Louis" needs the capital)
    text = _LATIN_RE.sub(_expand_latin, text)
    text = _NUMBER_ABBREV_RE.sub("number ", text)
    text = _ST_RE.sub(_expand_st, text)
    text = _ABBREV_RE.sub(_expand_abbreviation, text)
    text = _TITLE_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    # numbers, most specific first
    text = _CURRENCY_RE.sub(_expand_currency, text)
    text = _PERCENT_RE.sub(_expand_percent, text)
    text = _COMMA_NUMBER_RE.sub(lambda m: number_to_words(int(_strip_commas(m.group(0)))), text)
    text = _TIME_RE.sub(_expand_time, text)
    text = _DECIMAL_RE.sub(lambda m: _decimal_to_words(m.group(1), m.group(2)), text)
    text = _ORDINAL_RE.sub(lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _NEGATIVE_RE.sub("minus ", text)
    text = _INTEGER_RE.sub(_expand_integer, text)
    text = text.lower()
    text = _WHITESPACE_RE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    return text.strip()


# ============================================================================== vocabulary
class UnknownCharacterWarning(UserWarning):
    """Text had characters the vocabulary does not know; they were dropped."""


_CONFIG_KIND = "clarinet.text.Vocabulary"
_CONFIG_VERSION = 1


class Vocabulary:
    """Symbols and their ids: ``<pad>`` is id 0, ``<eos>`` id 1, ``symbols[k]`` is id ``k + 2``.

    Args:
        symbols: the non-special symbols, in id order: unique non-empty strings, neither
            ``"<pad>"`` nor ``"<eos>"``. Single characters are what :meth:`encode` matches in
            text; longer symbols (phonemes such as ``"@AH0"``) are reached through
            :meth:`encode_tokens`.

    Attributes:
        symbols: all symbols as a tuple indexed by id (``symbols[0] == "<pad>"``,
            ``symbols[1] == "<eos>"``).
        pad_id, eos_id: 0 and 1.

    Unknown characters: :meth:`encode` drops every character of the (normalised) text that is
    not a symbol, keeps the rest in order, and warns once per call with an
    :class:`UnknownCharacterWarning` naming the dropped characters;
    :meth:`encode_with_report` returns them instead. With ``normalize=True``, spaces left
    doubled or at the ends by a dropped character are collapsed/stripped too.
    """

    pad_id = 0
    eos_id = 1

    def __init__(self, symbols: Iterable[str]):
        if isinstance(symbols, str):
            symbols = list(symbols)  # a string is a sequence of one-character symbols
        try:
            symbols = list(symbols)
        except TypeError:
            raise TypeError(f"symbols must be a sequence of str, got {type(symbols).__name__}") from None
        seen = set()
        for i, s in enumerate(symbols):
            if not isinstance(s, str):
                raise TypeError(f"symbols[{i}] must be a str, got {type(s).__name__}")
            if not s:
                raise ValueError(f"symbols[{i}] is empty")
            if s in (PAD, EOS):
                raise ValueError(f"symbols[{i}] is the reserved symbol {s!r} (ids 0 and 1 are "
                                 f"always {PAD!r} and {EOS!r}; do not list them)")
            if s in seen:
                raise ValueError(f"symbols[{i}] {s!r} appears more than once")
            seen.add(s)
        self._symbols: Tuple[str, ...] = (PAD, EOS) + tuple(symbols)
        self._ids: Dict[str, int] = {s: i for i, s in enumerate(self._symbols)}
        self._char_ids: Dict[str, int] = {s: i for i, s in enumerate(self._symbols)
                                          if i >= 2 and len(s) == 1}

    # ------------------------------------------------------------------ basics
    @property
    def symbols(self) -> Tuple[str, ...]:
        return self._symbols

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other._symbols == self._symbols

    def __hash__(self) -> int:
        return hash(self._symbols)

    def __repr__(self) -> str:
        chars = "".join(s for s in self._symbols[2:] if len(s) == 1)
        longer = sum(len(s) > 1 for s in self._symbols[2:])
        return (f"Vocabulary({len(self)} symbols: {chars!r}"
                + (f" + {longer} longer symbols" if longer else "") + ")")

    def id(self, symbol: str) -> int:
        """The id of ``symbol`` (``KeyError`` naming it when absent)."""
        try:
            return self._ids[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not in the vocabulary") from None

    # ------------------------------------------------------------------ encoding
    def encode_with_report(self, text: str, *, normalize: bool = True,
                           add_eos: bool = True) -> Tuple[List[int], List[str]]:
        """``(ids, unknown)``: the ids of ``text`` (normalised first when ``normalize``) and the
        distinct characters that were dropped, in order of first appearance. No warning."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if normalize:
            text = _normalize(text)
        ids: List[int] = []
        unknown: Dict[str, None] = {}
        space = self._char_ids.get(" ")
        for c in text:
            i = self._char_ids.get(c)
            if i is None:
                unknown.setdefault(c, None)
                continue
            # after normalisation, a dropped character must not leave "  " or a leading space
            if normalize and i == space and unknown and (not ids or ids[-1] == space):
                continue
            ids.append(i)
        if normalize and unknown and ids and ids[-1] == space:
            ids.pop()
        if add_eos:
            ids.append(self.eos_id)
        return ids, list(unknown)

    def encode(self, text: str, *, normalize: bool = True, add_eos: bool = True) -> List[int]:
        """The ids of ``text``: normalised (:func:`normalize`) when ``normalize``, characters
        that are not symbols dropped, ``<eos>`` appended when ``add_eos``. Dropped characters
        are reported in one :class:`UnknownCharacterWarning` per call."""
        ids, unknown = self.encode_with_report(text, normalize=normalize, add_eos=add_eos)
        _warn_unknown(unknown, stacklevel=3)
        return ids

    def encode_tokens(self, tokens: Sequence[str], *, add_eos: bool = True) -> List[int]:
        """Ids of a sequence of symbols (e.g. :class:`Phonemizer` output); an unknown symbol is
        a ``KeyError`` (token sequences come from code, not users)."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of symbols, not a str (use encode)")
        ids = [self.id(t) for t in tokens]
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode_tokens(self, ids: Union[Sequence[int], torch.Tensor]) -> List[str]:
        """The symbols of ``ids`` up to the first ``<eos>``, without ``<pad>``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids must be one-dimensional, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        out = []
        n = len(self._symbols)
        for k, i in enumerate(ids):
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"ids[{k}] must be an int, got {type(i).__name__}")
            if not 0 <= i < n:
                raise ValueError(f"ids[{k}] = {i} is outside the vocabulary (0..{n - 1})")
            if i == self.eos_id:
                break
            if i != self.pad_id:
                out.append(self._symbols[i])
        return out

    def decode(self, ids: Union[Sequence[int], torch.Tensor]) -> str:
        """The text of ``ids``: symbols joined, stopping at the first ``<eos>``, skipping
        ``<pad>``. ``decode(encode(normalize(t)))`` is ``normalize(t)`` when nothing was
        dropped."""
        return "".join(self.decode_tokens(ids))

    # ------------------------------------------------------------------ checkpoints
    def config(self) -> Dict[str, object]:
        """A plain JSON-able description: ``{"kind", "version", "symbols"}`` where
        ``symbols`` is the full id-ordered list (``"<pad>"``, ``"<eos>"``, ...)."""
        return {"kind": _CONFIG_KIND, "version": _CONFIG_VERSION, "symbols": list(self._symbols)}

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> "Vocabulary":
        """The vocabulary of :meth:`config`'s output. Raises ``TypeError``/``ValueError``
        naming what is wrong for anything else."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        expected = {"kind", "version", "symbols"}
        if set(config) != expected:
            missing = sorted(expected - set(config))
            extra = sorted(set(config) - expected, key=str)
            raise ValueError(f"config: expected keys {sorted(expected)}"
                             + (f"; missing {missing}" if missing else "")
                             + (f"; unexpected {extra}" if extra else ""))
        if config["kind"] != _CONFIG_KIND:
            raise ValueError(f"config['kind'] must be {_CONFIG_KIND!r}, got {config['kind']!r}")
        if config["version"] != _CONFIG_VERSION:
            raise ValueError(f"config['version'] {config['version']!r} is not supported "
                             f"(this version reads {_CONFIG_VERSION})")
        symbols = config["symbols"]
        if not isinstance(symbols, (list, tuple)):
            raise TypeError(f"config['symbols'] must be a list, got {type(symbols).__name__}")
        if list(symbols[:2]) != [PAD, EOS]:
            raise ValueError(f"config['symbols'] must start with {PAD!r}, {EOS!r}; got "
                             f"{list(symbols[:2])!r}")
        try:
            return cls(symbols[2:])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"config['symbols']: {exc}") from None


def _describe_chars(chars: Sequence[str]) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" if len(c) == 1 else repr(c) for c in chars)


def _warn_unknown(unknown: Sequence[str], stacklevel: int) -> None:
    if unknown:
        warnings.warn(UnknownCharacterWarning(
            f"dropped {len(unknown)} character(s) not in the vocabulary: "
            f"{_describe_chars(unknown)}"), stacklevel=stacklevel)


# ``encode_with_report``'s keyword ``normalize`` shadows the function inside the method.
_normalize = normalize


@functools.lru_cache(maxsize=1)
def _default_vocabulary() -> Vocabulary:
    return Vocabulary(DEFAULT_CHARACTERS)


def default_vocabulary() -> Vocabulary:
    """The character vocabulary: ``<pad>``, ``<eos>``, ``a``-``z``, space and
    ``'.,!?-;:"()`` (:data:`DEFAULT_PUNCTUATION`), 40 symbols in all, ids in that order.

    Digits are absent on purpose: :func:`normalize` spells numbers out.
    """
    return _default_vocabulary()


def text_to_ids(text: str, vocab: Optional[Vocabulary] = None, *, max_length: Optional[int] = None,
                normalize: bool = True) -> torch.Tensor:
    """``LongTensor (N,)``: ``vocab.encode(text)`` (normalised, unknown characters dropped with
    an :class:`UnknownCharacterWarning`) ending with ``<eos>``.

    Args:
        text: the text.
        vocab: default :func:`default_vocabulary`.
        max_length: when given, the largest ``N`` allowed (``<eos>`` included).
        normalize: apply :func:`normalize` first.

    Raises:
        TypeError: ``text`` is not a ``str``; ``vocab`` is not a :class:`Vocabulary`;
            ``max_length`` is not an int.
        ValueError: ``text`` is empty once normalised and stripped of unknown characters;
            ``N > max_length``; ``max_length < 1``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if vocab is None:
        vocab = default_vocabulary()
    elif not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary or None, got {type(vocab).__name__}")
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an int or None, got {type(max_length).__name__}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
    ids, unknown = vocab.encode_with_report(text, normalize=normalize, add_eos=True)
    _warn_unknown(unknown, stacklevel=3)
    if len(ids) <= 1 or all(vocab.symbols[i] == " " for i in ids[:-1]):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"text is empty after normalisation and dropping unknown characters "
                         f"(input {shown!r})")
    if max_length is not None and len(ids) > max_length:
        raise ValueError(f"text encodes to {len(ids)} ids (with <eos>), more than "
                         f"max_length={max_length}")
    return torch.tensor(ids, dtype=torch.long)


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

"""English text normalisation for a character vocabulary (:func:`normalize`): Unicode folding,
numbers (:func:`number_to_words`, :func:`ordinal_to_words`, years, decimals, times), currency,
percentages, abbreviations, symbols, lowercase, whitespace. Deterministic; pure Python."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize", "number_to_words", "ordinal_to_words"]


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

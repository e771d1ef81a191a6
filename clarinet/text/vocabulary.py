"""Symbol vocabularies: :class:`Vocabulary` (symbol <-> id, ``<pad>`` = 0, ``<eos>`` = 1; unknown
characters dropped and reported), :func:`default_vocabulary` (the character set) and
:func:`text_to_ids` (a checked string -> ``LongTensor`` of ids)."""
from __future__ import annotations

import functools
import warnings
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from .normalization import normalize

__all__ = ["DEFAULT_CHARACTERS", "DEFAULT_PUNCTUATION", "EOS", "PAD", "UnknownCharacterWarning", "Vocabulary",
           "default_vocabulary", "text_to_ids"]

PAD = "<pad>"
EOS = "<eos>"
#: Punctuation kept by :func:`default_vocabulary`: sentence punctuation (``. , ! ? ; :``), the
#: apostrophe of contractions and possessives, the hyphen (also written by :func:`normalize` in
#: numbers like "twenty-one"), double quotes and parentheses (they carry prosody).
DEFAULT_PUNCTUATION = "'.,!?-;:\"()"
#: All non-special symbols of :func:`default_vocabulary`, in id order (ids 2, 3, ...).
DEFAULT_CHARACTERS = "abcdefghijklmnopqrstuvwxyz " + DEFAULT_PUNCTUATION


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

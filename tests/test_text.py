"""clarinet.text: English normalisation, vocabularies, text_to_ids, phonemes."""
import json
import warnings

import pytest
import torch

from clarinet.text import (DEFAULT_CHARACTERS, EOS, PAD, Phonemizer, UnknownCharacterWarning,
                           Vocabulary, default_vocabulary, normalize, number_to_words,
                           ordinal_to_words, phoneme_vocabulary, text_to_ids)


# ------------------------------------------------------------------------------ normalisation
@pytest.mark.parametrize("text, expected", [
    # integers and thousands
    ("0", "zero"),
    ("7", "seven"),
    ("13", "thirteen"),
    ("42", "forty-two"),
    ("100", "one hundred"),
    ("101", "one hundred one"),
    ("1,000 people", "one thousand people"),
    ("1,234,567", "one million two hundred thirty-four thousand five hundred sixty-seven"),
    ("1,984", "one thousand nine hundred eighty-four"),
    ("-5 degrees", "minus five degrees"),
    ("007", "zero zero seven"),
    # decimals
    ("3.5", "three point five"),
    ("0.25", "zero point two five"),
    (".5", "point five"),
    ("I was 3. Then 4.", "i was three. then four."),
    # ordinals
    ("1st", "first"),
    ("2nd 3rd 4th", "second third fourth"),
    ("22nd", "twenty-second"),
    ("11th 12th 13th", "eleventh twelfth thirteenth"),
    ("100th", "one hundredth"),
    ("the 21st.", "the twenty-first."),
    # years
    ("1984", "nineteen eighty-four"),
    ("1900", "nineteen hundred"),
    ("1905", "nineteen oh five"),
    ("2000", "two thousand"),
    ("2007", "two thousand seven"),
    ("2019", "twenty nineteen"),
    # currency and percentages
    ("$3.20", "three dollars, twenty cents"),
    ("$1", "one dollar"),
    ("$0.05", "five cents"),
    ("$1.01", "one dollar, one cent"),
    ("$2,500", "two thousand five hundred dollars"),
    ("$5 million", "five million dollars"),
    ("\u00a35.50", "five pounds, fifty pence"),
    ("50%", "fifty percent"),
    ("12.5 %", "twelve point five percent"),
    # times
    ("3:30", "three thirty"),
    ("3:05", "three oh five"),
    ("4:00", "four o'clock"),
    # abbreviations
    ("Mr. Smith and Mrs. Jones", "mister smith and misess jones"),
    ("Dr. Who", "doctor who"),
    ("Mr Smith", "mister smith"),
    ("John Jr.", "john junior."),
    ("Acme Co. ltd.", "acme company limited."),
    ("St. Louis is on Main St.", "saint louis is on main street."),
    ("No. 5 and #7", "number five and number seven"),
    ("no. the answer is no.", "no. the answer is no."),
    ("e.g. this, i.e. that", "for example this, that is that"),
    ("apples, pears, etc. are fruit", "apples, pears, et cetera are fruit"),
    ("cats vs. dogs", "cats versus dogs"),
    # symbols and punctuation
    ("salt & pepper", "salt and pepper"),
    ("2 + 2 = 4", "two plus two equals four"),
    ("[aside]", "(aside)"),
    ('He said: "Wait; no!" (really?)', 'he said: "wait; no!" (really?)'),
    ("Hello , world !", "hello, world!"),
    ("  lots\n\tof   space  ", "lots of space"),
    # unicode folding
    ("Caf\u00e9 na\u00efve fa\u00e7ade jalape\u00f1o", "cafe naive facade jalapeno"),
    ("\u201cquoted\u201d \u2018single\u2019 it\u2019s", "\"quoted\" 'single' it's"),
    ("a \u2014 b \u2013 c", "a - b - c"),
    ("wait\u2026", "wait..."),
    ("Stra\u00dfe", "strasse"),
    ("\uff21\uff22\uff23", "abc"),  # full-width letters (NFKD)
])
def test_normalize_examples(text, expected):
    assert normalize(text) == expected


def test_normalize_keeps_characters_without_ascii_form():
    # They are the vocabulary's to drop and report, not normalize's to hide.
    assert normalize("ok \u4e2d \U0001F600") == "ok \u4e2d \U0001F600"


def test_normalize_is_deterministic_and_idempotent_on_its_output():
    text = "On Jan. 3rd, 1999, Dr. O'Neil paid $1,250.75 (about 12% of \u00a310,000)."
    out = normalize(text)
    assert out == normalize(text)
    assert normalize(out) == out
    assert set(out) <= set(DEFAULT_CHARACTERS)


def test_normalize_rejects_non_str():
    with pytest.raises(TypeError, match="text"):
        normalize(b"bytes")
    with pytest.raises(TypeError, match="text"):
        normalize(None)


def test_number_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(1_000_001) == "one million one"
    assert number_to_words(-21) == "minus twenty-one"
    assert number_to_words(10 ** 15) == "one quadrillion"
    assert number_to_words(10 ** 18) == "one" + " zero" * 18  # 19+ digits: digit by digit
    assert ordinal_to_words(1) == "first"
    assert ordinal_to_words(30) == "thirtieth"
    assert ordinal_to_words(1000) == "one thousandth"
    with pytest.raises(TypeError, match="n"):
        number_to_words(1.5)


# ------------------------------------------------------------------------------ vocabulary
def test_default_vocabulary_layout():
    v = default_vocabulary()
    assert v.pad_id == 0 and v.eos_id == 1
    assert v.symbols[:2] == (PAD, EOS)
    assert "".join(v.symbols[2:]) == "abcdefghijklmnopqrstuvwxyz '.,!?-;:\"()"
    assert len(v) == 40
    assert not any(c.isdigit() for c in v.symbols)


def test_round_trip():
    v = default_vocabulary()
    text = 'Hello, World! "Quoted" (parens) - semi; colon: it\'s?'
    ids = v.encode(text)
    assert ids[-1] == v.eos_id and v.pad_id not in ids
    assert v.decode(ids) == normalize(text)
    assert v.decode(torch.tensor(ids)) == normalize(text)
    # decode stops at eos and skips pads
    assert v.decode(ids[:3] + [v.pad_id, v.pad_id] + ids[3:]) == normalize(text)
    assert v.decode(v.encode("ab") + v.encode("cd")) == "ab"
    assert v.encode("ab", add_eos=False) == [v.id("a"), v.id("b")]
    # without normalize there is no lowercasing: capitals are unknown
    assert v.encode_with_report("AB", normalize=False, add_eos=False) == ([], ["A", "B"])


def test_decode_rejects_bad_ids():
    v = default_vocabulary()
    with pytest.raises(ValueError, match="ids"):
        v.decode([2, len(v)])
    with pytest.raises(ValueError, match="ids"):
        v.decode([-1])
    with pytest.raises(TypeError, match="ids"):
        v.decode([2.0])


def test_unknown_characters_dropped_warned_and_reported():
    v = default_vocabulary()
    text = "a/b \u4e2d c\U0001F600/"
    with pytest.warns(UnknownCharacterWarning, match=r"'/'.*'\u4e2d'") as record:
        ids = v.encode(text)
    assert len(record) == 1  # one warning per call, naming all of them
    assert v.decode(ids) == "ab c"  # dropped, and no double space left behind
    ids2, unknown = v.encode_with_report(text)
    assert ids2 == ids
    assert unknown == ["/", "\u4e2d", "\U0001F600"]  # distinct, in order of appearance
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert v.encode_with_report("plain")[1] == []
        v.encode("plain")  # nothing unknown: no warning


def test_custom_vocabulary_validation():
    v = Vocabulary("abc ")
    assert v.symbols == (PAD, EOS, "a", "b", "c", " ")
    assert v.encode_with_report("abd")[1] == ["d"]
    with pytest.raises(ValueError, match="more than once"):
        Vocabulary("aba")
    with pytest.raises(ValueError, match="reserved"):
        Vocabulary(["a", PAD])
    with pytest.raises(ValueError, match="empty"):
        Vocabulary(["a", ""])
    with pytest.raises(TypeError, match=r"symbols\[1\]"):
        Vocabulary(["a", 3])
    with pytest.raises(TypeError, match="symbols"):
        Vocabulary(5)


def test_config_round_trip():
    for v in (default_vocabulary(), Vocabulary(["x", "y", "@AH0"])):
        cfg = json.loads(json.dumps(v.config()))
        w = Vocabulary.from_config(cfg)
        assert w == v and w.symbols == v.symbols
        assert w.encode("xy") == v.encode("xy")


@pytest.mark.parametrize("mutate, exc, match", [
    (lambda c: "not a dict", TypeError, "config"),
    (lambda c: {k: c[k] for k in c if k != "symbols"}, ValueError, "missing"),
    (lambda c: {**c, "extra": 1}, ValueError, "unexpected"),
    (lambda c: {**c, "kind": "other"}, ValueError, "kind"),
    (lambda c: {**c, "version": 99}, ValueError, "version"),
    (lambda c: {**c, "symbols": "abc"}, TypeError, "symbols"),
    (lambda c: {**c, "symbols": ["a", "b"]}, ValueError, "<pad>"),
    (lambda c: {**c, "symbols": [PAD, EOS, "a", "a"]}, ValueError, "more than once"),
    (lambda c: {**c, "symbols": [PAD, EOS, "a", 1]}, TypeError, "symbols"),
])
def test_bad_config(mutate, exc, match):
    with pytest.raises(exc, match=match):
        Vocabulary.from_config(mutate(default_vocabulary().config()))


# ------------------------------------------------------------------------------ text_to_ids
def test_text_to_ids():
    v = default_vocabulary()
    ids = text_to_ids("Hi 2!")
    assert ids.dtype == torch.long and ids.dim() == 1
    assert ids.tolist() == v.encode("Hi 2!")
    assert v.decode(ids) == "hi two!"
    assert ids[-1].item() == v.eos_id
    assert text_to_ids("ab", Vocabulary("ab")).tolist() == [2, 3, 1]
    assert text_to_ids("abc", max_length=4).numel() == 4  # eos counts


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u4e2d\u6587", "/ /"])
def test_text_to_ids_empty(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownCharacterWarning)
        with pytest.raises(ValueError, match="text.*empty"):
            text_to_ids(text)


def test_text_to_ids_too_long():
    with pytest.raises(ValueError, match="max_length"):
        text_to_ids("abcd", max_length=4)
    with pytest.raises(ValueError, match="max_length"):
        text_to_ids("a", max_length=0)
    with pytest.raises(TypeError, match="max_length"):
        text_to_ids("a", max_length=2.5)


@pytest.mark.parametrize("bad", [None, 3, b"abc", ["a", "b"]])
def test_text_to_ids_wrong_type(bad):
    with pytest.raises(TypeError, match="text"):
        text_to_ids(bad)


def test_text_to_ids_wrong_vocab_type():
    with pytest.raises(TypeError, match="vocab"):
        text_to_ids("a", vocab="abc")


def test_text_to_ids_warns_unknown():
    with pytest.warns(UnknownCharacterWarning, match="/"):
        ids = text_to_ids("a/b")
    assert default_vocabulary().decode(ids) == "ab"


# ------------------------------------------------------------------------------ phonemes
CMU = """;;; a tiny CMUdict-format file
HELLO  HH AH0 L OW1
HELLO(1)  HH EH0 L OW1
WORLD  W ER1 L D
IT'S  IH1 T S
"""


def test_phonemizer(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text(CMU)
    ph = Phonemizer(path)
    assert len(ph) == 3 and "hello" in ph
    tokens = ph("Hello, world & it's xyz!")
    assert tokens == ["@HH", "@AH0", "@L", "@OW1", ",", " ", "@W", "@ER1", "@L", "@D", " ",
                      "a", "n", "d", " ", "@IH1", "@T", "@S", " ", "x", "y", "z", "!"]
    v = ph.vocabulary()
    assert v == phoneme_vocabulary()
    ids = v.encode_tokens(tokens)
    assert v.decode_tokens(ids) == tokens
    assert ph.encode("Hello, world & it's xyz!") == ids
    with pytest.warns(UnknownCharacterWarning, match="/"):
        assert ph.encode("hello/world") == v.encode_tokens(ph("hello world")[:4] + ph("world"))
    assert Phonemizer(path, stress=False)("world") == ["@W", "@ER", "@L", "@D"]


def test_phonemizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dict_path"):
        Phonemizer(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("WORD  XX1 Y\n")
    with pytest.raises(ValueError, match="line 1"):
        Phonemizer(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text(";;; nothing\n")
    with pytest.raises(ValueError, match="no entries"):
        Phonemizer(empty)

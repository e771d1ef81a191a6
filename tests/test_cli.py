"""The command line's own surface: --version and help texts that agree with the code's defaults."""
import pytest

from clarinet import __version__
from clarinet.cli import build_parser, main
from clarinet.training import StudentConfig, TeacherConfig, Text2WaveConfig


def help_of(*argv):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as e:
        main([*argv, "--help"] if argv else ["--help"])
    assert e.value.code == 0
    return " ".join(buf.getvalue().split())  # argparse wraps lines


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and f"clarinet {__version__}" in capsys.readouterr().out


@pytest.mark.parametrize("command, cls", [("train-teacher", TeacherConfig), ("train-student", StudentConfig),
                                          ("train-text2wave", Text2WaveConfig)])
def test_training_help_shows_the_commands_own_defaults(command, cls):
    text = help_of(command)
    d = cls()
    assert f"peak learning rate (default {cls.BASE_LR:g} x sqrt(min(1, batch size / {cls.BASE_BATCH}))" in text
    assert f"(default {d.batch_size})" in text and f"linear warm-up steps (default min({cls.MAX_WARMUP}, steps / 10))" in text
    assert f"(default {d.segment_samples})" in text and f"(default {d.clip:g})" in text


def test_every_flag_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"clarinet {name} {action.option_strings[0]} has no help"

"""--threads: the default takes the CPUs that are not busy; every command honours the option."""
import pytest
import torch

from clarinet import _threads, cli


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_auto_takes_the_free_cpus(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(8)
    monkeypatch.setattr(_threads, "available_cpus", lambda: 8)
    for load, expected in ((0.0, 8), (2.6, 5), (7.7, 1), (30.0, 1)):
        monkeypatch.setattr(_threads, "busy_cpus", lambda load=load: load)
        assert _threads.resolve_threads("auto") == expected
    torch.set_num_threads(2)  # never more than torch's own default
    monkeypatch.setattr(_threads, "busy_cpus", lambda: 0.0)
    assert _threads.resolve_threads(None) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # chosen by the user (or torchrun): left alone
    monkeypatch.setattr(_threads, "busy_cpus", lambda: 7.7)
    assert _threads.resolve_threads("auto") == 2
    assert _threads.resolve_threads(3) == 3 and _threads.resolve_threads("4") == 4
    for bad in (0, -1, "x", 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            _threads.resolve_threads(bad)


@pytest.mark.parametrize("argv", [["vocode", "in.wav", "--checkpoint", "c.pt", "-o", "o.wav"],
                                  ["synthesize", "--checkpoint", "c.pt", "--text", "a", "-o", "o.wav"],
                                  ["train-teacher", "data", "--out", "o"], ["train-student", "data", "--out", "o"],
                                  ["train-text2wave", "data", "--out", "o"], ["bench"]])
def test_every_command_honours_threads(argv, monkeypatch, restore_threads):
    seen = []
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(func=lambda args: seen.append(torch.get_num_threads()) or 0)
    torch.set_num_threads(2)
    assert cli.main([*argv, "--threads", "1"]) == 0
    assert seen == [1] and torch.get_num_threads() == 2
    with pytest.raises(SystemExit):
        cli.main([*argv, "--threads", "0"])

"""Bad input to the command line: one line naming the value and what was expected, exit status 2,
no traceback, and nothing written."""

import pytest
import torch

from rep_theory.cli import main
from rep_theory.device import parse_device, resolve_device


def _run(argv, capsys) -> tuple[int, str]:
    """``(exit status, stderr)`` of ``rep-theory argv``, whether argparse or the command refused it."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:                                   # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def test_devices_are_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'tpu': expected auto, cpu, cuda or cuda:K"):
        parse_device("tpu")
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        resolve_device("cuda:0")
    assert parse_device("cuda:1") == torch.device("cuda", 1)          # a name, wherever it runs


@pytest.mark.parametrize("argv, message", [
    (["eval", "RUN", "--device", "cuda"], "argument --device: device 'cuda': CUDA is not available"),
    (["demo", "--device", "cuda", "--out", "OUT"], "CUDA is not available"),
    (["train", "RUN", "--device", "tpu"], "'tpu': expected auto, cpu, cuda or cuda:K"),
    (["batch", "B", "--device", "tpu"], "'tpu': expected auto, cpu, cuda or cuda:K"),
    (["batch", "B", "--only", "("], "'(': not a valid regular expression"),
    (["tables", "B", "--only", "("], "not a valid regular expression"),
    (["batch", "B", "--jobs", "0"], "argument --jobs: 0: expected an integer >= 1"),
    (["batch", "B", "--retries", "-1"], "argument --retries: -1: expected an integer >= 0"),
    (["eval", "RUN", "--key-threshold", "nan"], "argument --key-threshold: nan: expected a finite number"),
    (["train", "RUN", "--resume-every", "-5"], "argument --resume-every: -5: expected a finite number >= 0"),
    (["universality", "B", "--resamples", "0"], "argument --resamples: 0: expected an integer >= 1"),
    (["verify", "RUN", "--rank", "-4"], "argument --rank: rank: expected values >= 0, got '-4'"),
    (["verify", "RUN", "--n-cores", "0"], "n_cores: expected values >= 1"),
])
def test_bad_option_values_are_usage_errors(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _run([str(tmp_path / a) if a in ("RUN", "B", "OUT") else a for a in argv], capsys)
    assert code == 2 and message in err, err
    assert not any(tmp_path.iterdir())                               # nothing written


def test_bad_paths_and_contents_are_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    code, err = _run(["new", afile / "sub", "--group", "S3", "--model", "MLP", "--seed", "1"], capsys)
    assert code == 2 and f"{afile / 'sub'}: Not a directory (a folder on that path is a file)" in err
    code, err = _run(["batch", afile], capsys)
    assert code == 2 and "is a file; expected a batch directory" in err
    (tmp_path / "empty").mkdir()
    code, err = _run(["batch", tmp_path / "empty", "--status"], capsys)
    assert code == 2 and "holds no run directories" in err
    code, err = _run(["create", tmp_path / "b", "--grid", "smoke", "--only", "zzz"], capsys)
    assert code == 2 and "matches --only 'zzz'" in err and not (tmp_path / "b").exists()


def test_routes_are_checked_before_anything_is_written(tmp_path, capsys):
    code, err = _run(["new", tmp_path / "r", "--group", "S3", "--model", "MLP", "--seed", "1",
                      "--route-irrep", "bogus", "--route-units", "4"], capsys)
    assert code == 2 and "route.irrep='bogus': not an irrep of S3" in err and not (tmp_path / "r").exists()
    code, err = _run(["new", tmp_path / "r", "--group", "S3", "--model", "MLP", "--seed", "1",
                      "--route-subgroup", "C3", "--route-index", "99", "--route-units", "4"], capsys)
    assert code == 2 and "route.index=99" in err and not (tmp_path / "r").exists()
    code, err = _run(["routing", tmp_path / "o", "--group", "S3", "--irrep", "bogus", "--seeds", "1"], capsys)
    assert code == 2 and "not an irrep of S3" in err and not (tmp_path / "o").exists()


def test_wrong_kinds_of_run_are_named(tmp_path, capsys):
    run = tmp_path / "r1"
    assert _run(["new", run, "--group", "S3", "--model", "MLP", "--seed", "1", "--epochs", "2",
                 "--embed-dim", "4", "--hidden-dim", "4"], capsys)[0] == 0
    assert _run(["train", run, "--no-progress"], capsys)[0] == 0
    code, err = _run(["import-paper", run, tmp_path / "out"], capsys)   # a package run, not the paper's
    assert code == 2 and "is not a checkpoint of the paper's code" in err and "rep-theory checked file" in err
    assert not (tmp_path / "out").exists()
    code, err = _run(["batch", run, "--status"], capsys)
    assert code == 2 and "is a run directory, not a batch directory" in err
    transformer = tmp_path / "t1"
    assert _run(["new", transformer, "--group", "S3", "--model", "T", "--seed", "1", "--epochs", "2"], capsys)[0] == 0
    assert _run(["train", transformer, "--no-progress"], capsys)[0] == 0
    code, err = _run(["verify", transformer, "--method", "brute"], capsys)
    assert code == 2 and "the verifiers handle OneLayerMLP" in err and not (transformer / "verify").exists()


def test_long_commands_take_no_progress(tmp_path, capsys, monkeypatch):
    """``batch``, ``demo`` and ``cache build/verify`` take ``--no-progress`` like the others (a log
    file then holds no progress-bar redraws)."""
    from rep_theory.cli import build_parser

    for argv in (["batch", "B", "--no-progress"], ["demo", "--no-progress"], ["cache", "build", "--no-progress"],
                 ["cache", "verify", "--no-progress"]):
        assert build_parser().parse_args(argv).no_progress
    monkeypatch.setenv("REP_THEORY_CACHE", str(tmp_path / "cache"))
    code, err = _run(["cache", "build", "C5", "--no-progress"], capsys)
    assert code == 0 and "it/s" not in err and "%|" not in err

"""Every command line answers ``--version`` with setup.cfg's version; ``-v`` shows INFO lines, ``-q`` hides warnings.

The console scripts are read from setup.cfg's entry points and the scripts from ``tools/*.py`` (those that use
argparse), so a new command line cannot be missed. They run in-process through ``main(argv)``; one runs as a
subprocess, the way a user starts it.
"""

import configparser
import importlib
import logging
import os
import re
import subprocess
import sys
import warnings

import pytest
import yaml

from talkinghead.cli_conventions import configure_logging, package_version
from talkinghead.data.cli import main as data_main
from tests.helpers import ROOT, load_tool

SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")
VERSION = SETUP["metadata"]["version"]
ENTRY_POINTS = dict(
    (part.strip() for part in line.split("="))
    for line in SETUP["options.entry_points"]["console_scripts"].strip().splitlines()
)
TOOLS = sorted(path.stem for path in (ROOT / "tools").glob("*.py") if "argparse" in path.read_text())
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) [\w.]+: .+")


def test_lists_are_complete():
    assert package_version() == VERSION
    assert sorted(ENTRY_POINTS) == [
        "talkinghead",
        "talkinghead-data",
        "talkinghead-demo",
        "talkinghead-evaluate",
        "talkinghead-generate",
    ]
    assert TOOLS == [
        "articulation_check",
        "demo_inputs",
        "export_checkpoint",
        "export_weights",
        "mouth_predictability",
        "ncc_preview",
    ]


@pytest.mark.parametrize("script", sorted(ENTRY_POINTS))
def test_console_script_version(script, capsys):
    module, function = ENTRY_POINTS[script].split(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.split() == [script, VERSION]


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_version(tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_tool(tool).main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.split()[1:] == [VERSION]


def test_version_from_a_shell():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "tools/export_checkpoint.py", "--version"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"export_checkpoint.py {VERSION}\n", "")


def test_levels(capsys):
    """Lines that reach stderr at each verbosity: talkinghead's own, another library's, a Python warning."""
    counts = {}
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for verbosity in (-1, 0, 1, 2):
            configure_logging(verbosity)
            for name in ("talkinghead.data.shards", "otherlib"):
                for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
                    logging.getLogger(name).log(level, "%s at %s", name, logging.getLevelName(level))
            warnings.warn("a Python warning", UserWarning, stacklevel=1)
            lines = [line for line in capsys.readouterr().err.splitlines() if line and not line.startswith(" ")]
            assert all(LOG_LINE.fullmatch(line) for line in lines), lines  # a warning's source line is indented
            counts[verbosity] = [line.split(" ", 3)[1:3] for line in lines]
    assert {v: len(lines) for v, lines in counts.items()} == {-1: 2, 0: 5, 1: 6, 2: 8}
    assert counts[-1] == [["ERROR", "talkinghead.data.shards:"], ["ERROR", "otherlib:"]]
    assert ["WARNING", "py.warnings:"] in counts[0] and ["INFO", "talkinghead.data.shards:"] in counts[1]
    assert ["DEBUG", "otherlib:"] not in counts[2]


def test_verbose_and_quiet(tmp_path, capsys):
    """``synth`` of one clip logs an INFO line per shard written and warns that two splits are empty."""
    args = ["synth", "--out", str(tmp_path), "--clips", "1", "--seconds", "0.4", "--workers", "1"]
    err = {}
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # each run warns as a fresh process would
        for flags in (["-v"], [], ["-q"]):  # the second and third runs find the shard written
            assert data_main([*args, *flags]) == 0
            out, err[" ".join(flags)] = capsys.readouterr()
            assert out == f"wrote 1 clips in 1 shards to {tmp_path} (train 1, val 0, test 0)\n"
    assert "INFO talkinghead.data.shards: wrote shard-000000.tar (1 clips)" in err["-v"]
    assert [err[flags].count("UserWarning") for flags in ("-v", "", "-q")] == [2, 2, 0]
    assert err["-q"] == ""  # no progress bar either
    assert "INFO" not in err[""] and "clip/s" in err[""]


def test_training_cli_flags(capsys):
    """``talkinghead`` takes -v/-q out before LightningCLI parses; -q turns the progress bar off (last, so that it
    wins over the config; ``talkinghead -q fit --config … --print_config`` shows ``enable_progress_bar: false``)."""
    from talkinghead.lightning.cli import main, split_verbosity

    assert split_verbosity(["fit", "-v", "--config", "c.yaml", "--verbose"]) == (2, ["fit", "--config", "c.yaml"])
    assert split_verbosity(["-vv", "validate"]) == (2, ["validate"])
    assert split_verbosity(["-q", "fit", "--config", "c.yaml"]) == (
        -1,
        ["fit", "--config", "c.yaml", "--trainer.enable_progress_bar=false"],
    )
    assert split_verbosity(["--quiet", "--help"]) == (-1, ["--help"])
    # A dotted override inside a dictionary argument is parsed as YAML, not kept as a string ('false' is truthy):
    # the README's ablations (Fig. 7, Table 3) and a width.
    mapper_overrides = {"use_initial_pose": "false", "d_model": "32"}
    for stem, overrides, expected in (
        ("facial_motion_tiny", {"use_vertex_offsets": "false"}, {"use_vertex_offsets": False, "d_model": 64}),
        ("pose_mapper_tiny", mapper_overrides, {"use_initial_pose": False, "d_model": 32}),
    ):
        dotted = [item for key, value in overrides.items() for item in (f"--model.init_args.network.{key}", value)]
        with pytest.raises(SystemExit, match="0"):
            main(["fit", "--config", str(ROOT / f"lightning_configs/{stem}.yaml"), *dotted, "--print_config"])
        network = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["network"]
        assert {key: network.get(key) for key in expected} == expected
    # Every module builds its own optimizers (AdamW and warm-up; stage 2 steps two by hand): LightningCLI's
    # --optimizer would replace them and --lr_scheduler would be ignored, so both are refused.
    for option, value in (("--optimizer", "SGD"), ("--lr_scheduler", "StepLR")):
        with pytest.raises(SystemExit, match="2"):
            main(["fit", "--config", str(ROOT / "lightning_configs/pose_vqvae_tiny.yaml"), option, value])
        assert f"error: unrecognized arguments: {option} {value}" in capsys.readouterr().err
    assert main(["fit", "-q", "-v"]) == 2
    assert capsys.readouterr().err == "talkinghead: error: -q/--quiet and -v/--verbose exclude each other\n"


def test_lightnings_litlogger_advertisement_is_not_logged_and_its_other_lines_are(caplog):
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from talkinghead.lightning.quiet import LITLOGGER_TIP

    with caplog.at_level(logging.INFO):
        rank_zero_info(f"{LITLOGGER_TIP} and experiment tracking, try installing [litlogger](...) to enable LitLogger")
        rank_zero_info("GPU available: False, used: False")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False, used: False"]


def test_verbosity_flags_on_both_sides_of_a_subcommand(tmp_path, capsys):
    """``-v`` before and after a subcommand add up; ``-q`` on one side with ``-v`` on the other is the error the
    pair gets on one side. (``inspect`` of a missing folder fails after the logging is set up.)"""
    missing = str(tmp_path / "missing")
    for argv, level in (
        (["-v", "inspect", missing, "-v"], logging.DEBUG),
        (["-vv", "inspect", missing, "-v"], logging.DEBUG),
        (["inspect", missing, "-v"], logging.INFO),
        (["-q", "inspect", missing, "-q"], logging.ERROR),
    ):
        assert data_main(argv) == 2
        assert logging.getLogger("talkinghead").level == level, argv
    capsys.readouterr()
    q_then_v = "argument -v/--verbose: not allowed with argument -q/--quiet"
    for argv, error in (
        (["-q", "inspect", missing, "-v"], f"talkinghead-data: error: {q_then_v}"),
        (["-vv", "inspect", missing, "--quiet"], "talkinghead-data: error: argument -q/--quiet: not allowed with "
         "argument -v/--verbose"),
        (["inspect", missing, "-q", "-v"], f"talkinghead-data inspect: error: {q_then_v}"),  # one side
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            data_main(argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == error
    configure_logging(0)


def test_device_problem(monkeypatch):
    """The one ``--device`` check of talkinghead-generate, -demo and -evaluate: only ``cuda`` without CUDA."""
    import torch

    from talkinghead.cli_conventions import device_problem

    for available, expected in ((False, "--device cuda: CUDA is not available on this machine"), (True, None)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        assert (device_problem("cuda"), device_problem("cpu")) == (expected, None)

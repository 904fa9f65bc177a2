"""The command line as scripts and people use it: help, versions, profiles, exit codes, JSON on standard output."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from ttl_utils.cli import build_parser, main
from ttl_utils.errors import DatasetError


def _modules_after(argv: list[str]) -> tuple[int, list[str]]:
    """Run the command line in a fresh Python; return its exit status and the heavy modules it imported."""
    code = ("import sys\nfrom ttl_utils.cli import main\nstatus = main(sys.argv[1:])\n"
            "heavy = [m for m in ('torch', 'pandas', 'captum', 'onnxruntime', 'matplotlib') if m in sys.modules]\n"
            "print(status, *heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    status, *heavy = done.stderr.strip().splitlines()[-1].split()
    return int(status), heavy


def test_help_and_usage_mistakes_load_no_model_library():
    assert _modules_after(["--help"]) == (0, [])
    assert _modules_after(["evaluate", "--help"]) == (0, [])
    assert _modules_after(["evaluate", "--layers", "layer9"]) == (2, [])  # a mistake in the flags: found at once


def test_every_command_shows_examples_and_every_flag_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"download", "check", "demo", "evaluate", "compare", "find", "pretrain", "finetune", "env", "cache"}
    for name, command in commands.items():
        assert f"examples:\n  python -m ttl_utils {name}" in command.format_help(), name
        silent = [a.dest for a in command._actions if a.help is None]
        assert silent == [], f"{name}: flags without help: {silent}"


def test_version_profile_and_exit_codes(capsys, tmp_path):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ttl_utils 0.1.0")
    assert main(["env", "--profile", "nope"]) == 2
    assert "argument --profile: invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["check", "--data", str(tmp_path / "missing")]) == 1  # the data is wrong: status 1
    assert capsys.readouterr().err.startswith(f"error: The dataset folder {tmp_path / 'missing'} does not exist.")
    assert main(["demo", "--figure", str(tmp_path)]) == 2  # a flag that cannot work: status 2
    assert f"--figure {tmp_path}: that is a folder" in capsys.readouterr().err
    with pytest.raises(DatasetError):  # --debug: the traceback, not one line
        main(["check", "--debug", "--data", str(tmp_path / "missing")])


def test_env_says_what_is_in_force_and_json_dash_prints_only_the_json(capsys, isolated_project):
    assert main(["env", "--profile", "smoke"]) == 0
    printed = capsys.readouterr().out
    assert "profile   smoke: 64 px" in printed and "the demo data (200 pairs at 64 px)" in printed
    assert f"cache     {isolated_project.resolve() / 'artifacts'}" in printed and "torch " in printed
    assert main(["--profile", "cpu", "env", "--json", "-"]) == 0  # the profile given before the command counts too
    out = capsys.readouterr()
    settings = json.loads(out.out)
    assert settings["profile"]["name"] == "cpu" and settings["versions"]["ttl_utils"] == "0.1.0"
    assert "profile   cpu" in out.err  # the lines people read went to standard error


@pytest.mark.slow
def test_evaluate_json_dash_can_be_piped_into_a_script(isolated_project):
    done = subprocess.run([sys.executable, "-m", "ttl_utils", "evaluate", "--profile", "smoke", "--workers", "0",
                           "--json", "-"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_queries"] == 40 and "R@1" in done.stderr and "Wrote" not in done.stdout

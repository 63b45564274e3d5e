"""The ``hjsmooth`` command line: listing, running a demo, writing the PNG and the summary, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hjsmooth import cli
from hjsmooth.demos import DEMOS


def test_listing_names_every_demo_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    for name, text in DEMOS.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert text.split()[0] in line


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: hjsmooth" in capsys.readouterr().out


def test_unknown_demo_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "no_such_demo"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'no_such_demo'" in err and "fig4_1" in err


def test_bad_seed_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "fig4_1", "--seed", "abc"])
    assert exc.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_arguments_reach_the_demo_and_summary_is_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI passes out/quick/seed through and prints the summary file the demo wrote."""
    calls = []

    def fake_run(out: Path, quick: bool = False, seed: int = 0) -> dict:
        calls.append((out, quick, seed))
        from hjsmooth.demos._report import new_figure, save

        fig, ax = new_figure()
        ax.plot([0, 1], [seed, quick])
        save(fig, out, "fake demo", {"seed": seed, "quick": quick, "nested": {"value": 0.5}})
        return {"seed": seed}

    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=fake_run))
    out = tmp_path / "sub" / "picture.png"
    assert cli.main(["demo", "fig4_1", "--out", str(out), "--quick", "--seed", "7"]) == 0
    assert calls == [(out, True, 7)]
    printed = capsys.readouterr().out
    assert printed.splitlines() == ["fake demo", "seed: 7", "quick: True", "nested.value: 0.5"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".txt").read_text() == printed


def test_default_output_is_named_after_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.chdir(tmp_path)

    def fake_run(out: Path, quick: bool = False, seed: int = 0) -> dict:
        seen.append(out)
        out.with_suffix(".txt").write_text("x: 1\n")
        return {}

    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=fake_run))
    assert cli.main(["demo", "widening"]) == 0
    assert seen == [Path("widening.png")]


def test_python_dash_m_runs_the_main_job(tmp_path: Path) -> None:
    """``python -m hjsmooth demo fig4_1 --quick --out ...``: the README's main job, end to end."""
    out = tmp_path / "fig4_1.png"
    proc = subprocess.run([sys.executable, "-m", "hjsmooth", "demo", "fig4_1", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                             "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = out.with_suffix(".txt").read_text()
    assert summary == proc.stdout
    values = dict(line.split(": ", 1) for line in summary.splitlines()[1:])
    assert abs(float(values["mass.sgd"]) - 1) < 1e-6


def test_missing_optional_package_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    def needs_package(out: Path, quick: bool = False, seed: int = 0) -> dict:
        raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")

    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=needs_package))
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "train", "--out", str(tmp_path / "t.png")])
    assert exc.value.code == 1
    assert "'sklearn'" in capsys.readouterr().err

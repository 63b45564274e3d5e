"""The ``hjsmooth`` command line: listing, running a demo, writing the PNG and the summary, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hjsmooth import cli
from hjsmooth.demos import DEMOS, REQUIRES, TORCH_CPU
from hjsmooth.demos._report import COARSE_RUN


def test_listing_names_every_demo_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    for name, text in DEMOS.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert text.split()[0] in line


def test_listing_says_which_demos_need_torch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    entries: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        if not line.startswith("    "):
            entries[line.split()[0]] = ""
        entries[next(reversed(entries))] += " " + line.strip()
    assert set(entries) == set(DEMOS)
    needs_torch = {name for name, packages in REQUIRES.items() if "torch" in packages}
    assert needs_torch >= {"train", "hessian", "landscape", "sgd_noise"}
    for name, entry in entries.items():
        assert ("[needs torch" in entry) == (name in needs_torch), entry
    assert "scikit-learn" in entries["hessian"] and "sklearn" not in entries["hessian"]


def test_missing_torch_stops_before_the_demo_with_the_cpu_wheel_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    ran = []
    def find_spec(name: str, *args: object) -> object:
        return None if name == "torch" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=lambda *a, **k: ran.append(a)))
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "hessian", "--quick", "--out", str(tmp_path / "h.png")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "torch" in err and TORCH_CPU in err and "https://download.pytorch.org/whl/cpu" in err
    assert len(err.strip().splitlines()) == 1
    assert ran == [] and list(tmp_path.iterdir()) == []


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
        save(fig, out, "fake demo", {"seed": seed, "quick": quick, "nested": {"value": 0.5}}, quick=quick)
        return {"seed": seed}

    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=fake_run))
    out = tmp_path / "sub" / "picture.png"
    assert cli.main(["demo", "fig4_1", "--out", str(out), "--quick", "--seed", "7"]) == 0
    assert calls == [(out, True, 7)]
    printed = capsys.readouterr().out
    assert printed.splitlines() == [COARSE_RUN, "fake demo", "seed: 7", "quick: True", "nested.value: 0.5"]
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
    assert summary.splitlines()[0] == COARSE_RUN
    values = dict(line.split(": ", 1) for line in summary.splitlines()[2:])
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


# ----------------------------------------------------------------------------- user errors, as a user meets them


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "hjsmooth", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, "MPLBACKEND": "Agg"})


def _assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2, exactly one line on standard error naming the problem, no traceback, nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed", "-1"], ["--seed", "-1"]),
        (["--seed", "abc"], ["--seed", "abc"]),
        (["--out", "x.xyz"], ["--out", ".png", "x.xyz"]),
        (["--out", ""], ["--out", "''"]),
        (["--out", "existing_dir"], ["--out", "existing_dir", "directory"]),
        (["--out", "existing_dir/"], ["--out", "existing_dir/"]),
        (["--out", "a_file.png/inside.png"], ["--out", "a_file.png", "not a directory"]),
        (["--out", "clash.png"], ["--out", "clash.txt", "directory"]),
        (["--data-dir", "missing"], ["--data-dir", "missing"]),
        (["--bogus"], ["--bogus"]),
    ],
    ids=["negative-seed", "text-seed", "bad-suffix", "empty-out", "out-is-a-directory", "out-ends-in-slash",
         "parent-is-a-file", "summary-is-a-directory", "missing-data-dir", "unknown-option"],
)
def test_user_errors_are_one_line_and_exit_2_before_any_work(tmp_path: Path, args: list[str],
                                                             words: list[str]) -> None:
    """Run as a subprocess, as a user would: each mistake is reported at once (the demo never runs, so
    nothing is written), in one line, with exit status 2, and leaves no file behind."""
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "a_file.png").write_bytes(b"")
    (tmp_path / "clash.txt").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    demo = "train" if "--data-dir" in args else "fig4_1"
    proc = _run_cli("demo", demo, "--quick", *args, cwd=tmp_path)
    _assert_user_error(proc, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray ./.png, no partial output


def test_unknown_demo_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _assert_user_error(_run_cli("demo", "no_such_demo", cwd=tmp_path), "'no_such_demo'", "fig4_1")


@pytest.mark.skipif(sys.platform == "win32" or __import__("os").geteuid() == 0,
                    reason="needs a directory this user cannot write (root can write anywhere)")
def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        _assert_user_error(_run_cli("demo", "fig4_1", "--quick", "--out", str(locked / "x.png"), cwd=tmp_path),
                           "--out", "not writable")
    finally:
        locked.chmod(0o700)


def test_exactly_the_reported_files_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The paths in 'wrote ...' are the files that exist afterwards, and no others appear."""
    def fake_run(out: Path, quick: bool = False, seed: int = 0) -> dict:
        from hjsmooth.demos._report import new_figure, save

        fig, ax = new_figure()
        ax.plot([0, 1], [0, 1])
        save(fig, out, "fake", {"seed": seed}, quick=quick)
        return {"seed": seed}

    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=fake_run))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "fig4_1", "--out", "deep/er/picture.PNG"]) == 0
    reported = capsys.readouterr().err.strip()
    assert reported == "wrote deep/er/picture.PNG and deep/er/picture.txt"
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["deep/er/picture.PNG", "deep/er/picture.txt"]


def test_an_output_path_the_system_refuses_fails_before_computing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--out`` is created before the demo runs: a path that passes the permission check but cannot be
    created (``/proc/x.png`` as root; here the permission check is bypassed and the parent is a file)
    stops the command at once."""
    ran = []
    monkeypatch.setattr("hjsmooth.demos.get", lambda name: SimpleNamespace(run=lambda *a, **k: ran.append(a)))
    monkeypatch.setattr("hjsmooth.validation.check_output_path", lambda path, *a, **k: Path(path))
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")                         # a file where the probe must create a folder
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "fig4_1", "--out", str(blocked / "deeper" / "x.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "x.png" in err and "cannot be written" in err
    assert ran == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_proc_output_is_refused_before_computing(tmp_path: Path) -> None:
    """The fuzz case, as a user runs it: one line naming --out, exit 2, nothing computed (as root the
    permission check passes and only creating the file shows the problem)."""
    _assert_user_error(_run_cli("demo", "fig4_1", "--out", "/proc/x.png", cwd=tmp_path), "--out", "/proc/x.png")
    assert list(tmp_path.iterdir()) == []


def test_probe_output_file_leaves_nothing_behind(tmp_path: Path) -> None:
    from hjsmooth.validation import probe_output_file

    probe_output_file(tmp_path / "a" / "b" / "x.png")
    assert list(tmp_path.iterdir()) == []            # the folders it made are gone again
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"old picture")
    probe_output_file(existing)
    assert existing.read_bytes() == b"old picture"   # opened for appending, never truncated
    if Path("/proc/self").exists():
        with pytest.raises(ValueError, match=r"`out` '/proc/x.png' cannot be written"):
            probe_output_file(Path("/proc/x.png"))


def test_demos_run_checks_out_and_seed_before_computing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hjsmooth import demos

    ran = []
    monkeypatch.setattr("hjsmooth.demos.importlib.import_module",
                        lambda name: SimpleNamespace(run=lambda *a, **k: ran.append(a)))
    with pytest.raises(ValueError, match="`seed`"):
        demos.run("fig4_1", tmp_path / "a.png", seed=-1)
    with pytest.raises(ValueError, match="`out`.*directory"):
        demos.run("fig4_1", tmp_path)
    with pytest.raises(ValueError, match=r"`out` must end in \.png"):
        demos.run("fig4_1", tmp_path / "a.jpg")
    assert ran == []

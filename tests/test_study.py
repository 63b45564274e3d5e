"""The training study (``hjsmooth demo train``): its pipeline in quick mode, and the pieces it is made of.

The quick study runs the full pipeline (search on validation data, final runs on fresh seeds with test
error and width, both budget accountings, the JSON record) on the digits task in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn", reason="the study's digits task needs scikit-learn")

from hjsmooth.demos import train  # noqa: E402
from hjsmooth.demos.study import jobs, search, stats  # noqa: E402
from hjsmooth.demos.study.methods import METHODS, NAMES  # noqa: E402
from hjsmooth.demos.study.tasks import TASKS, Split, load_split  # noqa: E402

ISSUE_NAMES = ("SGD", "Adam", "Entropy-SGD", "HJ", "HEAT", "Elastic-SGD", "Parle")
RUN_FIELDS = ("test_error", "val_error", "hessian_top", "hessian_trace", "hyperparameters", "gradient_evaluations",
              "wall_clock_s")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("study") / "train.png"
    numbers = train.run(out, quick=True, seed=0)
    record = json.loads(out.with_suffix(".json").read_text())
    return numbers, record, out


# ----------------------------------------------------------------------------- the record
def test_quick_study_writes_the_figure_the_tables_and_the_json_record(quick) -> None:
    _, record, out = quick
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".txt").read_text().splitlines()[1].startswith("train")  # under the coarse-run mark
    assert set(record) >= {"tasks", "parallel", "search", "comparison", "width_vs_error", "settings", "wall_time_s"}
    assert list(record["tasks"]) == ["digits-mlp"]


def test_every_method_has_every_field_for_every_seed(quick) -> None:
    _, record, _ = quick
    seeds = record["settings"]["seeds"]
    assert len(seeds) >= 2
    per_method = record["tasks"]["digits-mlp"]
    assert set(per_method) == set(NAMES)
    assert set(ISSUE_NAMES) <= set(per_method)
    assert any("EMA" in name or "SWA" in name for name in per_method)     # the weight-averaged SGD
    for name, entry in per_method.items():
        for field in RUN_FIELDS:
            assert field in entry, (name, field)
        for field in ("test_error", "val_error", "hessian_top", "hessian_trace", "wall_clock_s"):
            values = entry[field]
            assert len(values) == len(seeds), (name, field)
            assert all(v is not None and math.isfinite(v) for v in values), (name, field)
        assert all(0.0 <= e <= 100.0 for e in entry["test_error"] + entry["val_error"])
        assert all(w > 0.0 for w in entry["wall_clock_s"])
        assert entry["hyperparameters"] == record["search"]["digits-mlp"][name]["configurations"][
            record["search"]["digits-mlp"][name]["chosen"]]["hyperparameters"]


def test_width_is_measured_at_the_final_weights(quick) -> None:
    """The top eigenvalue is at most the trace plus its noise when the Hessian is near PSD, and both are > 0."""
    _, record, _ = quick
    for name, entry in record["tasks"]["digits-mlp"].items():
        for top, trace in zip(entry["hessian_top"], entry["hessian_trace"]):
            assert top > 0.0 and trace > 0.0, name


def test_every_method_gets_the_same_budget_and_the_same_number_of_configurations(quick) -> None:
    _, record, _ = quick
    budget = record["settings"]["budgets"]["digits-mlp"]["gradient_evaluations"]
    for name, entry in record["tasks"]["digits-mlp"].items():
        assert entry["gradient_evaluations"] == budget, name
        hp = entry["hyperparameters"]
        assert entry["outer_steps"] * METHODS[name].cost(hp) == budget, name
    counts = {len(rec["configurations"]) for rec in record["search"]["digits-mlp"].values()}
    assert counts == {record["settings"]["configurations_per_method"]}
    for name, entry in record["parallel"]["digits-mlp"].items():      # replicas in parallel: n x the budget
        assert entry["gradient_evaluations"] == budget * entry["replicas"], name


def test_the_documented_setting_is_the_first_configuration_of_every_search(quick) -> None:
    _, record, _ = quick
    for name, rec in record["search"]["digits-mlp"].items():
        assert rec["configurations"][0]["hyperparameters"] == rec["documented"], name
        assert rec["space"], name


def test_paired_comparison_against_sgd_is_recorded(quick) -> None:
    _, record, _ = quick
    comparison = record["comparison"]["digits-mlp"]
    assert set(comparison) == set(NAMES) - {"SGD"}
    per_method = record["tasks"]["digits-mlp"]
    for name, c in comparison.items():
        diff = np.mean(np.subtract(per_method[name]["test_error"], per_method["SGD"]["test_error"]))
        assert c["difference"] == pytest.approx(diff)
        assert c["verdict"] in ("better", "worse", "same")


# ----------------------------------------------------------------------------- the search reads validation only
class PoisonedSplit(Split):
    """A split whose test arrays fail the test when read."""

    def test_arrays(self) -> Any:
        raise AssertionError("the test data was read")


def test_search_jobs_never_touch_the_test_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    split = load_split("digits")
    poisoned = PoisonedSplit(*split.train_val(), *split.test_arrays())
    monkeypatch.setattr(jobs, "cached_split", lambda dataset, data_dir: poisoned)
    hp = dict(METHODS["SGD"].documented)
    job = jobs.Job("search", "digits-mlp", "digits", "mlp", "SGD", hp, seed=0, budget=20)
    result = jobs.run_job(job)
    assert result["test_error"] is None and 0.0 <= result["val_error"] <= 100.0
    final = jobs.Job("final", "digits-mlp", "digits", "mlp", "SGD", hp, seed=0, budget=20)
    with pytest.raises(AssertionError, match="test data was read"):   # the poison works: a final run reads it
        jobs.run_job(final)


def test_the_search_split_has_no_test_arrays() -> None:
    split = load_split("digits")
    assert split.has_test and not split.without_test().has_test
    assert split.without_test().x_test is None and split.without_test().y_test is None


# ----------------------------------------------------------------------------- the pieces
def test_splits_are_disjoint_fixed_and_standardised_on_training_data() -> None:
    a, b = load_split("digits"), load_split("digits")
    np.testing.assert_array_equal(a.x_val, b.x_val)
    n = len(a.y_train) + len(a.y_val) + len(a.y_test)
    assert n == 1797
    rows = {r.tobytes() for r in np.concatenate([a.x_train, a.x_val, a.x_test])}
    assert len(rows) >= n - 5                                  # digits holds a few duplicate images
    np.testing.assert_allclose(a.x_train.mean(0), 0.0, atol=1e-5)


def test_budgets_are_a_multiple_of_every_documented_cost() -> None:
    for task in TASKS:
        for quick_mode in (True, False):
            budget = train.budget_for(task, 3200, quick_mode)
            for name in NAMES:
                assert budget % METHODS[name].cost(METHODS[name].documented) == 0, (task.name, name)


def test_draw_configurations_starts_with_the_documented_setting_and_stays_in_the_space() -> None:
    rng = np.random.default_rng(0)
    for name in NAMES:
        method = METHODS[name]
        configs = search.draw_configurations(method.documented, method.space, 6, rng)
        assert len(configs) == 6 and configs[0] == dict(method.documented)
        for hp in configs[1:]:
            assert set(hp) == set(method.documented), name
            for key, dim in method.space.items():
                if isinstance(dim, search.LogUniform):
                    assert dim.low <= hp[key] <= dim.high, (name, key)
                else:
                    assert hp[key] in dim.options, (name, key)


def test_best_configuration_is_the_lowest_validation_error() -> None:
    assert search.best_configuration([{}, {}, {}], [3.0, 1.0, 2.0]) == 1
    with pytest.raises(ValueError, match="same nonzero length"):
        search.best_configuration([{}], [1.0, 2.0])


def test_paired_comparison_matches_scipy_paired_t_test() -> None:
    from scipy import stats as sstats

    a = [4.1, 3.9, 4.6, 4.4, 4.0]
    b = [5.0, 5.4, 4.9, 5.6, 5.1]
    p = stats.paired(a, b)
    assert p.p_value == pytest.approx(sstats.ttest_rel(a, b).pvalue)
    ci = sstats.ttest_rel(a, b).confidence_interval(0.95)
    assert (p.low, p.high) == pytest.approx((ci.low, ci.high))
    assert p.verdict() == "better"
    assert stats.paired(b, a).verdict() == "worse"
    assert stats.paired([1.0, 2.0, 3.0], [1.1, 1.9, 3.05]).verdict() == "same"


def test_rank_correlation_is_spearman() -> None:
    rho, _ = stats.rank_correlation([1, 2, 3, 4], [10, 20, 30, 25])
    assert rho == pytest.approx(0.8)


@pytest.mark.parametrize("name", ["SGD", "Entropy-SGD", "Elastic-SGD"])
def test_a_diverging_run_is_marked_and_ranked_at_chance(name: str) -> None:
    """A step size far past stability: the run stops, is marked diverged and counts as 90 % error.

    torch.optim.SGD's loss turns NaN; the hjsmooth optimizers raise NonFiniteError (weights kept).
    Either way the study goes on, so that a search can try such settings.
    """
    from hjsmooth.demos.study.loop import train_run

    method = METHODS[name]
    hp = {**method.documented, "lr": 1e12}
    result = train_run(method, hp, load_split("digits"), "mlp", budget=20 * method.cost(hp), seed=0)
    assert result.diverged
    assert result.final_val_error == 90.0 and result.test_error == 90.0
    assert result.gradient_evaluations <= 20 * method.cost(hp)


# ----------------------------------------------------------------------------- SAM, ASAM, SWA
def _counting_mlp() -> tuple[Any, list[int]]:
    import torch

    calls = [0]
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return model, calls


def _digits_draw(seed: int = 0) -> Any:
    from hjsmooth.demos.study.loop import fresh_run

    return fresh_run(load_split("digits"), "mlp", seed)[1]


@pytest.mark.parametrize("name", ["SAM", "ASAM"])
def test_sam_is_pytorch_optimizers_and_takes_two_gradients_of_one_minibatch_per_step(name: str) -> None:
    import torch.nn.functional as F
    from pytorch_optimizer import SAM

    model, calls = _counting_mlp()
    method = METHODS[name]
    runner = method.build(model, F.cross_entropy, _digits_draw(), method.documented, None, 10)
    assert isinstance(runner.optimizer, SAM)
    assert runner.optimizer.param_groups[0]["adaptive"] is (name == "ASAM")
    assert runner.optimizer.param_groups[0]["nesterov"] and runner.optimizer.param_groups[0]["momentum"] == 0.9
    for _ in range(3):
        runner.step()
    assert calls[0] == 3 * 2 == 3 * method.cost(method.documented)


def test_swa_averages_from_its_start_with_the_swa_learning_rate_and_recomputes_batchnorm() -> None:
    """SGD until ``swa_start``, then SWALR reaches ``swa_lr`` and stays there (the loop's drops no longer apply),
    the weights are averaged once per epoch, and ``update_bn`` recomputes BatchNorm statistics of the average
    before it is evaluated, without touching the training stream."""
    import torch
    import torch.nn.functional as F
    from torch.optim.swa_utils import AveragedModel

    from hjsmooth.demos.study.loop import drive

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 10))
    hp = {**METHODS["SWA"].documented, "swa_start": 0.5}
    split = load_split("digits")
    runner = METHODS["SWA"].build(model, F.cross_entropy, _digits_draw(), hp, torch.Generator().manual_seed(1), 40,
                                  epoch_steps=5)
    assert runner.own_lr_from == 20
    assert runner.eval_model() is model                           # nothing averaged yet
    result = drive(runner, 1, 40, split, checkpoints=4)
    average = runner.eval_model()
    assert isinstance(average, AveragedModel) and result.model is average
    assert int(average.n_averaged) == 4                           # steps 25, 30, 35, 40 of the SWA phase
    assert runner.optimizer.param_groups[0]["lr"] == pytest.approx(hp["swa_lr"])
    bn = average.module[1]
    assert not torch.allclose(bn.running_mean, torch.zeros(16))    # recomputed on the average's own pass


def test_cyclic_swa_learning_rate_falls_to_a_tenth_within_each_cycle() -> None:
    from hjsmooth.demos.study.methods import swa_cycle_lr

    lrs = [swa_cycle_lr(k, 4, 0.1) for k in range(8)]
    assert lrs[3] == pytest.approx(0.01) and lrs[7] == pytest.approx(0.01)
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3] and lrs[4] == pytest.approx(lrs[0])


def test_the_new_methods_are_searched_around_the_papers_settings() -> None:
    assert METHODS["SAM"].documented["rho"] == 0.05 and METHODS["ASAM"].documented["rho"] == 0.5
    assert METHODS["SAM"].space["rho"].low < 0.05 < METHODS["SAM"].space["rho"].high
    assert METHODS["ASAM"].space["rho"].low <= 0.5 and METHODS["ASAM"].space["rho"].high >= 2.0
    assert METHODS["SWA"].documented["swa_start"] == 0.75
    assert {"swa_lr", "swa_start", "swa_schedule"} <= set(METHODS["SWA"].space)


# ----------------------------------------------------------------------------- Table 5.1 on parallel hardware
def test_parallel_hardware_runs_every_variant_on_two_processes_with_sgds_budget_per_process(quick) -> None:
    from hjsmooth.demos.study.hardware import RUNS

    _, record, _ = quick
    hw = record["parallel_hardware"]["digits-mlp"]
    budget = record["settings"]["budgets"]["digits-mlp"]["gradient_evaluations"]
    seeds = record["settings"]["seeds"]
    assert list(hw["runs"]) == list(RUNS) and hw["processes"] == 2
    assert hw["gradient_evaluations_per_process"] == budget
    for name, entry in hw["runs"].items():
        assert entry["gradient_evaluations"] == budget, name                  # per process
        assert entry["processes"] == (1 if name == "SGD" else 2), name
        assert entry["seeds"] == seeds, name
        assert all(w > 0 for w in entry["wall_clock_s"]), name
        for curve in entry["curves"]:
            assert curve["evaluations"][-1] == budget and len(curve["val_error"]) == len(curve["wall_clock_s"])
            assert curve["wall_clock_s"] == sorted(curve["wall_clock_s"])
    assert hw["runs"]["Parle"]["outer_steps"] * hw["runs"]["Parle"]["hyperparameters"]["L"] == budget
    # single-process SGD is the study's SGD run again (same setting, seeds and budget): the same errors
    assert hw["runs"]["SGD"]["test_error"] == record["tasks"]["digits-mlp"]["SGD"]["test_error"]
    assert hw["runs"]["SGD-DDP"]["hyperparameters"] == record["tasks"]["digits-mlp"]["SGD"]["hyperparameters"]
    assert hw["runs"]["Parle"]["hyperparameters"] == record["tasks"]["digits-mlp"]["Parle"]["hyperparameters"]
    for name in ("SGD-DDP", "Elastic-SGD", "Parle"):
        c = hw["comparison"][name]
        diff = np.mean(np.subtract(hw["runs"][name]["test_error"], hw["runs"]["SGD"]["test_error"]))
        assert c["vs_SGD"]["difference"] == pytest.approx(diff)
        assert len(c["wall_clock_ratio"]) == len(c["val_at_sgd_time"]) == len(seeds)
        assert ("vs_SGD-DDP" in c) is (name != "SGD-DDP")


def test_at_time_reads_the_last_checkpoint_reached_in_time() -> None:
    from hjsmooth.demos.study.hardware import at_time

    curve = {"val_error": [90.0, 50.0, 20.0, 10.0], "wall_clock_s": [0.0, 1.0, 2.0, 3.0]}
    assert at_time(curve, 2.5) == 20.0 and at_time(curve, 3.0) == 10.0 and at_time(curve, 0.5) == 90.0


# ----------------------------------------------------------------------------- partial reruns
def test_a_partial_rerun_replaces_its_methods_and_keeps_the_rest(quick, tmp_path: Path) -> None:
    import shutil

    _, record, out = quick
    mine = tmp_path / "train.png"
    shutil.copy(out.with_suffix(".json"), mine.with_suffix(".json"))
    merged = train.study(mine, quick=True, seed=0, methods=["SAM"])
    for name in set(NAMES) - {"SAM"}:
        assert merged["tasks"]["digits-mlp"][name] == record["tasks"]["digits-mlp"][name], name
    assert list(merged["tasks"]["digits-mlp"]) == list(NAMES)              # table order kept
    sam, before = merged["tasks"]["digits-mlp"]["SAM"], record["tasks"]["digits-mlp"]["SAM"]
    assert sam["test_error"] == before["test_error"]                        # deterministic: the same runs again
    assert merged["parallel_hardware"] == record["parallel_hardware"]
    assert len(merged["parts"]) == 2 and merged["parts"][1]["methods"] == ["SAM"]
    assert merged["wall_time_s"] == pytest.approx(sum(p["wall_time_s"] for p in merged["parts"]))
    with pytest.raises(ValueError, match="seeds"):
        train.study(mine, quick=True, seed=7, methods=["SAM"])


def test_unknown_method_or_task_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid values are .*SAM.*parallel-hardware"):
        train.study(tmp_path / "t.png", quick=True, methods=["SAMM"])
    with pytest.raises(ValueError, match="valid values are .*digits-mlp"):
        train.study(tmp_path / "t.png", quick=True, tasks=["digits"])
    with pytest.raises(ValueError, match="budget_scale"):
        train.study(tmp_path / "t.png", quick=True, budget_scale=0.0)


# ----------------------------------------------------------------------------- the results page
def test_the_page_states_what_the_record_says(quick) -> None:
    from hjsmooth.demos.study import page

    _, record, _ = quick
    text = page.render(record)
    assert "\n## What held and what did not\n" in text and "### Table 5.1 on parallel hardware" in text
    for competitor, per_method in record["versus"]["digits-mlp"].items():
        for name, c in per_method.items():
            assert f"| {page.pair_text(c)} {page.verdict_word(c)} {competitor} |" in text, (name, competitor)
    for name, c in record["comparison"]["digits-mlp"].items():
        assert f"digits-mlp ({page.pair_text(c)})" in text, name
    assert f"The study took {page._int(record['wall_time_s'])} s" in text
    for name, c in record["parallel_hardware"]["digits-mlp"]["comparison"].items():
        assert f"{name} took {np.mean(c['wall_clock_ratio']):.2f}x SGD's time" in text, name


def test_the_page_verdicts_follow_the_intervals() -> None:
    from hjsmooth.demos.study import page

    better = {"difference": -2.0, "interval": [-3.0, -1.0], "verdict": "better"}
    same = {"difference": -0.5, "interval": [-1.5, 0.5], "verdict": "same"}
    worse = {"difference": 2.0, "interval": [1.0, 3.0], "verdict": "worse"}
    assert [page.verdict_word(c) for c in (better, same, worse)] == ["beat", "tied with", "lost to"]
    assert page.pair_text(better) == "-2.00 [-3.00, -1.00]"
    assert "width tracked error" in page._width_tracks(better, better)
    assert "did not track" in page._width_tracks(better, same)
    assert "went against" in page._width_tracks(better, worse)


def test_the_figure_leaves_out_runs_stopped_before_the_last_checkpoint(quick) -> None:
    """A seed stopped early (a refused non-finite step) has a shorter curve, in any row: the figure still draws."""
    import copy

    from hjsmooth.demos.study.report import draw

    _, record, _ = quick
    record = copy.deepcopy(record)
    rows = [e for task in record["tasks"].values() for e in task.values()]
    rows += [e for task in record["parallel"].values() for e in task.values()]
    assert rows
    for e in rows:
        cut = e["curves"][-1]
        for key in ("val_error", "wall_clock_s", "evaluations"):
            cut[key] = cut[key][:-1]
    spe = {task: b["steps_per_epoch"] for task, b in record["settings"]["budgets"].items()}
    fig = draw(record, spe)
    assert fig.axes

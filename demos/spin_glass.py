"""Figures 2.1 and 2.2 of the thesis: the complexity of the spherical 3-spin glass, and the minima that
projected gradient descent finds with and without a random field.

Figure 2.1 draws Lemma 2.2: the complexities ``Theta_k(u)`` (critical points of index ``k`` below energy
``N u`` number about ``e^{N Theta_k(u)}``) and ``Theta(u)`` for ``p = 3``, with the ground state ``-E_0`` and the
threshold ``-E_inf`` marked.

Figure 2.2 repeats section 2.4.1: one disorder ``J`` of the ``N = 100``, ``p = 3`` model (2.32), three fields
``h ~ N(0, v^2 I)``

* exponential regime, ``v = 1/N``;
* polynomial regime, ``v = v_c (1 - 1/N)^{1/2}`` (``v_c = sqrt(3)``: just below the critical field);
* trivial regime, ``v = 3``;

and projected gradient descent (step 0.1, stopped at ``|grad| <= 1e-4``) from the same uniform random starts
in each.  The minima found are embedded in 2D by t-SNE (scikit-learn), coloured by ``H~/N``; minima that
coincide (within ``DUPLICATE_RADIUS``) are drawn once, with a marker that grows with how often they were
reached.  The histogram compares the minima's energies per spin with ``-E_0`` and ``-E_inf``; the bars give the
mean cosine distance between minima per regime beside the thesis' numbers (1.16 and 0.02).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from hjsmooth.demos._report import new_figure, progress, save

__all__ = ["run", "PARAMETERS", "SETTINGS", "THESIS", "DUPLICATE_RADIUS", "distinct_minima", "regimes"]

#: The experiment of section 2.4.1.
PARAMETERS: dict[str, Any] = {"n": 100, "p": 3, "coupling": 1.0, "step": 0.1, "tol": 1e-4, "max_steps": 20000}

#: Descents per regime (the thesis ran 20,000).
SETTINGS: dict[str, dict[str, Any]] = {"full": {"runs": 2000}, "quick": {"runs": 40}}

#: The thesis' mean cosine distances between the minima (section 2.4.1).
THESIS: dict[str, float] = {"exponential": 1.16, "trivial": 0.02}

#: Two minima closer than this (Euclidean distance on the sphere of radius 10) are one minimum.
DUPLICATE_RADIUS = 0.05


def regimes(n: int, p: int, coupling: float) -> dict[str, float]:
    """The three fields of section 2.4.1: ``1/N``, ``v_c (1 - 1/N)^{1/2}`` and 3."""
    from hjsmooth.spinglass import critical_field

    return {"exponential": 1.0 / n, "polynomial": critical_field(p, coupling) * math.sqrt(1 - 1 / n), "trivial": 3.0}


def distinct_minima(sigma: np.ndarray, radius: float = DUPLICATE_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Group the rows of ``sigma`` that lie within ``radius`` of each other (connected components of the
    ``radius``-neighbour graph); return the index of one row per group and the size of each group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    count = sigma.shape[0]
    pairs = cKDTree(sigma).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    first = np.unique(labels, return_index=True)[1]
    sizes = np.bincount(labels)[labels[first]]
    return first, sizes


def _embed(points: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """2D coordinates of ``points``: t-SNE when there are at least 5, else a projection on their principal axes."""
    count = points.shape[0]
    if count >= 5:
        from sklearn.manifold import TSNE

        tsne = TSNE(n_components=2, perplexity=min(30.0, (count - 1) / 3), init="pca", random_state=seed)
        return tsne.fit_transform(points), "t-SNE"
    centred = points - points.mean(axis=0)
    if count == 1:
        return np.zeros((1, 2)), "one point"
    basis = np.linalg.svd(centred, full_matrices=False)[2][:2]
    coords = centred @ basis.T
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1]))), "principal axes"


def _regime(model: Any, start: np.ndarray, cfg: dict[str, Any], seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from hjsmooth.spinglass import mean_cosine_distance, projected_gradient_descent

    n = model.n
    t0 = time.perf_counter()
    end = projected_gradient_descent(model, start, step=cfg["step"], tol=cfg["tol"], max_steps=cfg["max_steps"])
    seconds = time.perf_counter() - t0
    ok = end.converged
    sigma = np.asarray(end.sigma)[ok]
    energy = np.asarray(end.energy)[ok] / n  # H~/N
    unperturbed = energy + sigma @ model.h / n  # H/N
    index = np.asarray(model.index(sigma))
    first, sizes = distinct_minima(sigma)
    coords, method = _embed(sigma[first], seed)
    numbers = {
        "field": model.field,
        "B": model.regime_parameter,
        "converged": float(ok.mean()),
        "steps_median": float(np.median(end.steps)),
        "steps_max": int(end.steps.max()),
        "seconds": seconds,
        "distinct_minima": int(first.size),
        "largest_basin_fraction": float(sizes.max() / ok.sum()),
        "mean_cosine_distance": mean_cosine_distance(sigma),
        "index0_fraction": float(np.mean(index == 0)),
        "max_grad_norm": float(np.asarray(end.grad_norm)[ok].max()),
        "energy_per_spin": {
            "mean": float(energy.mean()),
            "std": float(energy.std()),
            "min": float(energy.min()),
            "max": float(energy.max()),
        },
        "unperturbed_energy_per_spin_mean": float(unperturbed.mean()),
    }
    picture = {"coords": coords, "energy": energy[first], "sizes": sizes, "method": method, "energies": energy}
    return numbers, picture


def run(out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and draw Figures 2.1 and 2.2; write ``out`` (PNG) and its summary; return the numbers.

    Parameters
    ----------
    out : Path
        The PNG to write; the summary goes to ``out.with_suffix(".txt")``.
    quick : bool
        40 descents per regime instead of 2000 (seconds instead of minutes).
    seed : int
        Seeds the disorder and the field's direction (shared by the three regimes), and the starts
        (``seed + 1``, shared too) and t-SNE.

    Returns
    -------
    dict
        ``E_0``, ``E_inf`` (per spin), ``theta_at_threshold`` (``Theta_0(-E_inf)``), per regime
        (``exponential``, ``polynomial``, ``trivial``): ``field``, ``B``, ``converged`` (fraction),
        ``steps_median``/``steps_max``, ``seconds``, ``distinct_minima``, ``largest_basin_fraction``,
        ``mean_cosine_distance``, ``index0_fraction``, ``max_grad_norm``, ``energy_per_spin``
        (``H~/N``: mean, std, min, max of the converged runs), ``unperturbed_energy_per_spin_mean``
        (``H/N`` there); ``exponential_between`` (fractions of its minima below ``-E_0`` and below
        ``-E_inf``), ``thesis`` and ``settings``.
    """
    from threadpoolctl import threadpool_limits

    from hjsmooth.spinglass import (
        SphericalSpinGlass,
        complexity,
        ground_state_energy,
        threshold_energy,
        uniform_on_sphere,
    )

    t0 = time.perf_counter()
    cfg = {**PARAMETERS, **SETTINGS["quick" if quick else "full"]}
    n, p = cfg["n"], cfg["p"]
    e0, e_inf = ground_state_energy(p), threshold_energy(p)
    start = uniform_on_sphere(cfg["runs"], n, rng=seed + 1)
    numbers: dict[str, Any] = {"E_0": e0, "E_inf": e_inf, "theta_at_threshold": complexity(-e_inf, p, 0)}
    pictures = {}
    # one BLAS/OpenMP thread: the descents' batches shrink to a few runs, where a second thread only waits
    with threadpool_limits(limits=1):
        for name, field in progress(regimes(n, p, cfg["coupling"]).items(), "spin_glass regimes", total=3):
            model = SphericalSpinGlass(n, p, field=field, coupling=cfg["coupling"], rng=seed)
            numbers[name], pictures[name] = _regime(model, start, cfg, seed)
    energies = pictures["exponential"]["energies"]
    numbers["exponential_between"] = {
        "below_minus_E0": float(np.mean(energies < -e0)),
        "below_minus_Einf": float(np.mean(energies < -e_inf)),
    }
    numbers["thesis"] = dict(THESIS)
    numbers["settings"] = {
        **cfg,
        "seed": seed,
        "duplicate_radius": DUPLICATE_RADIUS,
        "seconds": time.perf_counter() - t0,
    }
    _draw(out, pictures, numbers, p, quick=quick)
    return numbers


def _draw(out: Path, pictures: dict[str, Any], numbers: dict[str, Any], p: int, quick: bool) -> None:
    from hjsmooth.spinglass import complexity

    e0, e_inf = numbers["E_0"], numbers["E_inf"]
    fig, axes = new_figure(2, 3, figsize=(16.0, 9.5), gridspec_kw={"hspace": 0.32, "wspace": 0.28})
    top, bottom = axes

    ax = top[0]
    u = np.linspace(-e0 - 0.012, -1.55, 600)
    colors = ["black", "tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for k, color in enumerate(colors):
        ax.plot(u, complexity(u, p, k), color=color, lw=1.6 if k else 2.2, label=f"$\\Theta_{k}(u)$")
    ax.plot(u, complexity(u, p), color="tab:red", lw=1.6, ls="--", label="$\\Theta(u)$, all critical points")
    ax.axhline(0.0, color="0.6", lw=0.8)
    for value, name in ((-e0, "$-E_0$"), (-e_inf, "$-E_\\infty$")):
        ax.axvline(value, color="0.4", lw=0.9, ls=":")
        ax.annotate(f"{name} = {value:.4f}", (value, -0.0095), rotation=90, fontsize=8, ha="right", va="bottom")
    ax.set_ylim(-0.01, 0.05)
    ax.set_xlabel("energy per spin $u = H/N$")
    ax.set_ylabel("complexity")
    ax.set_title(f"Figure 2.1: complexity of the spherical {p}-spin glass")
    ax.legend(fontsize=8, loc="upper left")

    ax = top[1]
    exp = pictures["exponential"]["energies"]
    ax.hist(exp, bins=40, color="tab:blue", alpha=0.75)
    for value, name, color in ((-e0, "$-E_0$", "black"), (-e_inf, "$-E_\\infty$", "tab:red")):
        ax.axvline(value, color=color, lw=1.5, ls="--", label=f"{name} = {value:.3f}")
    r = numbers["exponential"]
    ax.axvline(
        r["energy_per_spin"]["mean"],
        color="tab:blue",
        lw=1.5,
        label=f"mean of the minima {r['energy_per_spin']['mean']:.3f}",
    )
    ax.set_xlabel("$\\tilde H/N$ at the minima (exponential regime)")
    ax.set_ylabel("minima")
    ax.set_title(f"{exp.size} descents, N = {numbers['settings']['n']}: energies of the minima")
    ax.legend(fontsize=8)

    ax = top[2]
    names = ["exponential", "polynomial", "trivial"]
    ours = [numbers[name]["mean_cosine_distance"] for name in names]
    thesis = [numbers["thesis"].get(name, np.nan) for name in names]
    x = np.arange(3)
    ax.bar(x - 0.18, ours, width=0.36, color="tab:blue", label="hjsmooth")
    ax.bar(x + 0.18, thesis, width=0.36, color="0.6", label="thesis (2.4.1)")
    for xi, value, theirs in zip(x, ours, thesis):
        ax.annotate(f"{value:.3g}", (xi - 0.18, value), ha="center", va="bottom", fontsize=8)
        ax.annotate(
            "n/a" if np.isnan(theirs) else f"{theirs:.3g}",
            (xi + 0.18, 0 if np.isnan(theirs) else theirs),
            ha="center",
            va="bottom",
            fontsize=8,
            color="0.35",
        )
    ax.set_xticks(
        x, [f"{name}\nv = {numbers[name]['field']:.3g}, B = {numbers[name]['B']:.3g}" for name in names], fontsize=8
    )
    ax.set_ylabel("mean cosine distance between minima")
    ax.set_title("how far apart the minima are")
    ax.legend(fontsize=8)

    for ax, name in zip(bottom, names):
        pic, r = pictures[name], numbers[name]
        runs = int(round(r["converged"] * numbers["settings"]["runs"]))
        size = 10 + 50 * np.log1p(pic["sizes"]) / np.log1p(max(pic["sizes"].max(), 1))
        points = ax.scatter(pic["coords"][:, 0], pic["coords"][:, 1], c=pic["energy"], s=size, cmap="viridis", lw=0)
        count = r["distinct_minima"]
        ax.set_title(
            f"Figure 2.2, {name} regime (v = {r['field']:.3g}):\n{count} distinct "
            f"minim{'um' if count == 1 else 'a'} from {runs} converged runs ({pic['method']})",
            fontsize=9,
        )
        if count > 1:
            fig.colorbar(points, ax=ax, shrink=0.85, label="$\\tilde H/N$ at the minimum", format="%.3f")
        else:
            ax.annotate(
                f"every run ends here\n$\\tilde H/N$ = {r['energy_per_spin']['mean']:.4f}",
                (0.5, 0.35),
                xycoords="axes fraction",
                ha="center",
                fontsize=9,
            )
        ax.set_xticks([])
        ax.set_yticks([])
    save(
        fig,
        out,
        "spin_glass: Figures 2.1 and 2.2, complexity and gradient-descent minima of the 3-spin glass",
        numbers,
        quick=quick,
    )

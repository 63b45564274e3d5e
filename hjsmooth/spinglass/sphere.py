r"""Points on the sphere :math:`S^{N-1}(\sqrt N)` of the spin-glass model: drawing, projecting, comparing."""

from __future__ import annotations

from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, from_numpy
from hjsmooth.spinglass._random import generator, standard_normal
from hjsmooth.validation import as_field, check_count

__all__ = ["uniform_on_sphere", "project_to_sphere", "tangent_projection", "mean_cosine_distance"]


def uniform_on_sphere(count: int, n: int, rng: Any = None, *, like: Any = None) -> Any:
    r"""``count`` independent points uniform on :math:`S^{n-1}(\sqrt n)`, shape ``(count, n)``.

    Normalised standard Gaussian vectors, :math:`\sigma = \sqrt n\, g / |g|` (the Gaussian is
    rotation invariant).  ``rng`` follows SPEC 7 (``None``, an int seed, a numpy or torch
    generator); the result is float64 numpy, or ``like``'s backend, device and dtype.
    """
    count = check_count(count, "count")
    n = check_count(n, "n", minimum=2)
    g = standard_normal(generator(rng), (count, n))
    points = np.sqrt(n) * g / np.linalg.norm(g, axis=1, keepdims=True)
    return points if like is None else from_numpy(points, like)


def project_to_sphere(sigma: Any) -> Any:
    r"""The radial projection :math:`\sqrt n\, \sigma / |\sigma|` on :math:`S^{n-1}(\sqrt n)`, over the last axis."""
    sigma = as_field(sigma, "sigma")
    xp = array_namespace(sigma)
    norm = xp.sqrt(xp.sum(sigma * sigma, axis=-1, keepdims=True))
    if bool(xp.any(norm == 0)):
        raise ValueError("`sigma` must not hold a zero vector: it has no projection on the sphere")
    return (float(sigma.shape[-1]) ** 0.5) * sigma / norm


def tangent_projection(sigma: Any, v: Any) -> Any:
    r""":math:`P_\sigma v = v - (\sigma^\top v / |\sigma|^2)\, \sigma`: the part of ``v`` tangent to the sphere.

    The sphere is the one through ``sigma`` (centred at the origin).
    """
    xp = array_namespace(sigma, v)
    return v - xp.sum(sigma * v, axis=-1, keepdims=True) / xp.sum(sigma * sigma, axis=-1, keepdims=True) * sigma


def mean_cosine_distance(sigma: Any) -> float:
    r"""The mean of the cosine distance :math:`1 - \sigma_a^\top\sigma_b / (|\sigma_a| |\sigma_b|)` over all
    pairs ``a < b`` of the rows of ``sigma`` (shape ``(count, n)``, ``count >= 2``).

    0 when every row points the same way, about 1 for independent uniform points, at most 2.
    Computed without forming the pairs: with unit rows ``e_a``,
    :math:`\sum_{a \ne b} e_a^\top e_b = |\sum_a e_a|^2 - \text{count}`.
    """
    sigma = as_field(sigma, "sigma")
    if sigma.ndim != 2 or sigma.shape[0] < 2:
        raise ValueError(f"`sigma` must have shape (count, n) with count >= 2, got shape {tuple(sigma.shape)}")
    xp = array_namespace(sigma)
    e = sigma / xp.sqrt(xp.sum(sigma * sigma, axis=1, keepdims=True))
    total = xp.sum(e, axis=0)
    count = sigma.shape[0]
    off_diagonal = float(xp.sum(total * total)) - count
    return 1.0 - off_diagonal / (count * (count - 1))

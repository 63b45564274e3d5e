"""Argument checks shared by every public function: the one home of every check.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the
argument and the offending value, e.g. ``` `t` must be >= 0, got -1```.  Numbers are
real: complex values (even with a zero imaginary part) and booleans are refused rather
than silently converted.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from hjsmooth.backend import array_namespace, is_cupy_array, is_numpy_array, is_torch_array, to_numpy

if TYPE_CHECKING:  # hjsmooth.grid imports this module; the class is needed for annotations only
    from hjsmooth.grid import Grid

__all__ = [
    "check_real",
    "check_time",
    "check_beta",
    "check_positive",
    "check_nonnegative_real",
    "check_alpha",
    "check_choice",
    "check_count",
    "check_seed",
    "as_field",
    "as_real_array",
    "check_finite",
    "check_nonnegative",
    "check_stencil",
    "check_grid",
    "check_grid_geometry",
    "check_output_path",
    "probe_output_file",
    "renamed_argument",
]

T = TypeVar("T")

#: the smallest ``beta`` whose inverse (the temperature) is a finite float64
_SMALLEST_BETA = 1.0 / sys.float_info.max


def _is_complex(value: Any) -> bool:
    if isinstance(value, complex) or np.iscomplexobj(value):
        return True
    dtype = getattr(value, "dtype", None)
    return bool(getattr(dtype, "is_complex", False))  # torch dtypes


def check_real(value: Any, name: str) -> float:
    """Return ``value`` as a float after checking it is a real number and not NaN (``inf`` passes).

    Booleans and complex numbers (Python, numpy or 0-d arrays) are refused with ``TypeError``.
    """
    if isinstance(value, (bool, np.bool_)) or _is_complex(value):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number, got {value!r}") from None
    if math.isnan(out):
        raise ValueError(f"`{name}` must not be NaN, got {value!r}")
    return out


_as_float = check_real


def renamed_argument(value: Any, old_value: Any, name: str, old_name: str, *, stacklevel: int = 3) -> Any:
    """The value of an argument that was renamed from ``old_name`` to ``name``.

    Passing ``old_name`` still works for now, with a ``DeprecationWarning``; passing both is a
    ``TypeError``, and so is passing neither.
    """
    import warnings

    if old_value is None:
        if value is None:
            raise TypeError(f"missing the argument `{name}`")
        return value
    if value is not None:
        raise TypeError(f"give `{name}` only (`{old_name}` is its deprecated name), not both")
    warnings.warn(
        f"`{old_name}` is deprecated and will be removed; pass `{name}` instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value


def check_time(t: Any, name: str = "t") -> float:
    """Return ``t`` as a float after checking ``0 <= t < inf``."""
    t = _as_float(t, name)
    if not (0.0 <= t < math.inf):
        raise ValueError(f"`{name}` must be >= 0 and finite, got {t!r}")
    return t


def check_beta(beta: Any, name: str = "beta") -> float:
    """Return the inverse temperature as a float after checking ``0 < beta <= inf``.

    A finite ``beta`` must also have a finite inverse (``beta >= 1 / max float64``, about
    ``5.6e-309``): every solver divides by it (the diffusion ``1/(2 beta)``).
    """
    beta = _as_float(beta, name)
    if not beta > 0.0:
        raise ValueError(f"`{name}` must be > 0 (use float('inf') for no noise), got {beta!r}")
    if beta < _SMALLEST_BETA:
        raise ValueError(
            f"`{name}` must be >= {_SMALLEST_BETA:.3g} so that the temperature 1/{name} is finite, got {beta!r}"
        )
    return beta


def check_positive(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking ``value > 0`` (and finite unless ``allow_inf``)."""
    value = _as_float(value, name)
    if not value > 0.0 or (not allow_inf and math.isinf(value)):
        raise ValueError(f"`{name}` must be > 0{'' if allow_inf else ' and finite'}, got {value!r}")
    return value


def check_nonnegative_real(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking ``value >= 0`` (and finite unless ``allow_inf``)."""
    value = _as_float(value, name)
    if value < 0 or (math.isinf(value) and not allow_inf):
        raise ValueError(f"`{name}` must be >= 0{'' if allow_inf else ' and finite'}, got {value!r}")
    return value


def check_alpha(value: Any, name: str = "alpha") -> float:
    """The weight of the old value in a running average ``<y> <- alpha <y> + (1 - alpha) y``: ``0 <= alpha < 1``."""
    value = _as_float(value, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[T]) -> T:
    """Return ``value`` if it is one of ``choices``; the error lists the valid ones."""
    valid = tuple(choices)
    if value not in valid:
        raise ValueError(f"unknown `{name}` {value!r}; valid values are {', '.join(map(repr, valid))}")
    return value


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum``.

    Python and numpy integers are accepted, and floats with an integral value (``20.0``);
    booleans and fractional values are refused with ``TypeError``.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for ``numpy.random.default_rng`` and ``torch.Generator.manual_seed``: an integer in ``[0, 2**63)``."""
    seed = check_count(seed, name, minimum=0)
    if seed >= 2**63:
        raise ValueError(f"`{name}` must be < 2**63, got {seed!r}")
    return seed


def check_finite(x: Any, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or inf."""
    xp = array_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise ValueError(f"`{name}` must be finite everywhere; it holds {n_bad} NaN or inf value(s)")


def check_nonnegative(x: Any, name: str) -> None:
    """Raise ``ValueError`` if ``x`` has a negative entry."""
    xp = array_namespace(x)
    lowest = float(xp.min(x))
    if lowest < 0:
        raise ValueError(f"`{name}` must be non-negative everywhere, got a minimum of {lowest!r}")


def as_field(x: Any, name: str, shape: tuple[int, ...] | None = None) -> Any:
    """Validate a field on a grid and return it as a floating array of its own backend.

    Numpy, torch and CuPy arrays keep their backend and device; lists and scalars
    become numpy arrays.  Integer and boolean arrays are promoted to float64
    (numpy, CuPy) or the default float dtype (torch); float32 and float64 are kept.
    """
    if not (is_numpy_array(x) or is_torch_array(x) or is_cupy_array(x)):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"`{name}` must be an array (numpy, torch or CuPy), got {type(x).__name__}") from None
    xp = array_namespace(x)
    if x.dtype not in (xp.float32, xp.float64):
        if xp.isdtype(x.dtype, "complex floating"):
            raise TypeError(f"`{name}` must be real, got the complex dtype {x.dtype}")
        if xp.isdtype(x.dtype, ("integral", "bool")):
            x = xp.astype(x, xp.float64)
        else:
            raise TypeError(f"`{name}` must have a real floating dtype (float32 or float64), got {x.dtype}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have the grid's shape {tuple(shape)}, got shape {tuple(x.shape)}")
    check_finite(x, name)
    return x


def as_real_array(x: Any, name: str) -> np.ndarray:
    """``x`` (a number, a sequence, a numpy, torch or CuPy array) as a float64 numpy array.

    Complex input is refused with ``TypeError`` (never cast with its imaginary part dropped);
    finiteness is left to the caller.
    """
    if _is_complex(x):
        raise TypeError(f"`{name}` must be real, got a complex value")
    if is_torch_array(x) or is_cupy_array(x):
        x = to_numpy(x)
    try:
        out = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers, got {type(x).__name__}") from None
    return out


def check_grid(grid: Any) -> Grid:
    """Return ``grid`` after checking that it is a :class:`hjsmooth.Grid`.

    ``hjsmooth.grid`` imports this module (for the geometry checks), so this one does not import it
    back: it looks the class up among the loaded modules.  Where ``hjsmooth.grid`` is not loaded, no
    ``Grid`` exists, and the answer is no.
    """
    grid_module = sys.modules.get("hjsmooth.grid")
    if grid_module is None or not isinstance(grid, grid_module.Grid):
        raise TypeError(f"`grid` must be a hjsmooth.Grid, got {type(grid).__name__}")
    return grid


def _real_tuple(value: Any, name: str) -> tuple[float, ...]:
    items = (value,) if np.ndim(value) == 0 else tuple(np.asarray(value, dtype=object).ravel())
    try:
        return tuple(check_real(v, name) for v in items)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number or a sequence of real numbers, got {value!r}") from None


def check_grid_geometry(
    lower: Any, upper: Any, shape: Any
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]:
    """Validate the box and node counts of a :class:`hjsmooth.Grid`; return them as tuples.

    Rules: 1 to 3 axes; ``lower`` and ``upper`` finite with ``lower < upper``; at least 3
    nodes per axis; and a spacing ``h = (upper - lower) / (n - 1)`` that float64 represents
    for the computations done on it: ``h`` finite and positive with ``h^2`` and ``1/h^2``
    finite and nonzero (about ``1.5e-154 <= h <= 1.3e154``; the time steppers divide by
    ``h^2``), nodes that are distinct numbers, and a cell volume ``prod h_k`` that is a
    normal, finite float64 (the quadrature weight of every integral).
    """
    lower_t = _real_tuple(lower, "lower")
    upper_t = _real_tuple(upper, "upper")
    if np.ndim(shape) == 0:
        shape = (shape,)
    try:
        shape_t = tuple(check_count(s, "shape", minimum=-sys.maxsize) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"`shape` must hold integers, got {shape!r}") from None
    if not (len(lower_t) == len(upper_t) == len(shape_t)):
        raise ValueError(
            "`lower`, `upper` and `shape` must have the same length, "
            f"got {len(lower_t)}, {len(upper_t)}, {len(shape_t)}"
        )
    if not 1 <= len(shape_t) <= 3:
        raise ValueError(f"grids have 1, 2 or 3 dimensions, got {len(shape_t)} (shape={shape_t})")
    volume = 1.0
    for k, (lo, hi, n) in enumerate(zip(lower_t, upper_t, shape_t)):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"`lower` and `upper` must be finite, got {lo!r} and {hi!r} on axis {k}")
        if not lo < hi:
            raise ValueError(f"`lower` must be < `upper` on every axis, got {lo!r} >= {hi!r} on axis {k}")
        if n < 3:
            raise ValueError(f"`shape` must have at least 3 nodes per axis, got {n} on axis {k}")
        h = (hi - lo) / (n - 1)
        square = h * h
        if not (
            math.isfinite(h)
            and h > 0
            and math.isfinite(square)
            and square >= sys.float_info.min
            and math.isfinite(1.0 / square)
        ):
            raise ValueError(
                f"the spacing (upper - lower) / (n - 1) = {h!r} on axis {k} is not representable for the "
                f"solvers: h^2 and 1/h^2 must be finite and nonzero in float64 (about 1.5e-154 <= h <= 1.3e154)"
            )
        if not np.all(np.diff(np.linspace(lo, hi, n)) > 0):
            raise ValueError(
                f"the spacing {h!r} on axis {k} is below the resolution of float64 at [{lo!r}, {hi!r}]: "
                f"some nodes coincide; use fewer nodes or a wider box"
            )
        volume *= h
    if not (math.isfinite(volume) and volume >= sys.float_info.min):
        raise ValueError(
            f"the cell volume (product of the spacings) {volume!r} is not a normal float64; "
            f"the spacing is too small or too large for the quadrature"
        )
    return lower_t, upper_t, shape_t


def check_output_path(path: Any, name: str = "out", suffixes: Sequence[str] = (".png",)) -> Path:
    """A file to be written: return it as a ``Path`` after checking, without touching the disk,
    that it can be created.

    The name must end in one of ``suffixes`` (case-insensitive) and have a stem; it must not
    be an existing directory; an existing file must be writable; otherwise the nearest
    existing parent must be a writable directory (missing folders below it are created
    when the file is written).
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path, got {type(path).__name__}")
    text = os.fspath(path)
    out = Path(text)
    if not text or text.endswith(("/", os.sep)) or out.name in ("", ".", ".."):
        raise ValueError(f"`{name}` must name a file, got {text!r}")
    if out.is_dir():
        raise ValueError(f"`{name}` {text!r} is a directory; give a file name ending in {' or '.join(suffixes)}")
    if out.suffix.lower() not in tuple(s.lower() for s in suffixes) or not out.stem:
        raise ValueError(f"`{name}` must end in {' or '.join(suffixes)}, got {text!r}")
    if out.exists():
        if not os.access(out, os.W_OK):
            raise ValueError(f"`{name}` {text!r} exists and is not writable")
        return out
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"`{name}` {text!r} cannot be created: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"`{name}` {text!r} cannot be created: the directory {str(parent)!r} is not writable")
    return out


def probe_output_file(path: Path, name: str = "out") -> None:
    """Check that the file ``path`` can really be written, by creating it, before any work is done.

    :func:`check_output_path` reasons about permissions; some places pass that reasoning and still
    refuse the file (``/proc`` for root, a read-only mount, a full disk).  This opens ``path`` for
    appending, creating the missing folders above it, so an existing file keeps its content; then it
    removes what it created (the file and the folders), so a run that fails later leaves nothing behind.
    An ``OSError`` becomes a ``ValueError`` that names ``name`` and the path.
    """
    path = Path(path)
    created: list[Path] = []
    parent = path.absolute().parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    existed = path.exists()
    try:
        for folder in reversed(created):
            folder.mkdir()
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ValueError(f"`{name}` {str(path)!r} cannot be written: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            if not existed and path.is_file():
                path.unlink()
            for folder in created:
                folder.rmdir()


def check_stencil(scheme: str, accuracy: str) -> None:
    """The hybrid central/upwind scheme is a three-point scheme: it needs ``accuracy="first"``."""
    if scheme == "hybrid" and accuracy != "first":
        raise ValueError(
            f"`scheme` 'hybrid' uses the three-point stencil; `accuracy` must be 'first', got {accuracy!r}"
        )

"""GPU benchmarks of hjsmooth on one CUDA device (torch CUDA and CuPy, float32).

Parts (each row is independent: a failing row prints its error and the rest still run):

(a) one explicit stencil step on ``n x n`` (default 4096 x 4096) timed with CUDA events,
    reported as achieved bandwidth against the device's peak, measured in the same run by
    a device-to-device copy.  Bytes counted are the minimum any implementation must move:
    read ``u`` once and write the result once (``2 n^2 * 4`` bytes), so the fraction is a
    lower bound of how close the kernel is to the memory roofline.  Kernels:

    - ``laplacian5 (eager)``: the plain 5-point Laplacian written with array slices;
    - ``laplacian5 (fused)``: the same as one CuPy raw kernel (the attainable reference);
    - ``hj godunov step``: one forward-Euler step of the viscous HJ Godunov scheme
      (``HamiltonJacobiOperator`` of ``hjsmooth.solvers.hj_operator`` with a forward-Euler ``rk_step``), as
      array code and as the fused kernel that ``solve_hj`` runs on CUDA arrays, the latter
      for strips of 1, 2, 4 and 8 rows per thread; and one stage of the default hybrid
      scheme's SSP-RK(4,2) (three arrays: ``u``, ``u^n`` in, the stage out);
    - ``fp explicit step``: one forward-Euler step of the Scharfetter-Gummel
      Fokker-Planck operator, as array code (``rho + dt * op.apply(rho)``) and as
      the fused kernel that ``solve_fokker_planck`` runs on CUDA arrays.

(b) ``hs.hopf_lax`` on ``n x n`` (target: under 50 ms on an H100);
(c) ``hs.local_entropy`` and ``hs.heat`` on ``n x n``;
(d) the same three calls on ``m x m`` (default 1024 x 1024), numpy (float32) vs GPU: speed-ups.

Times are the best of ``--repeats`` after two warm-up calls; CUDA-event time and host
wall time (synchronised) are both recorded; the wall time is the honest end-to-end
figure for calls that synchronise with the host inside (CFL steps, ``float()`` reads).

Run::

    python benchmarks/bench_gpu.py --out bench_gpu.json            # 4096^2 and 1024^2
    python benchmarks/bench_gpu.py --quick --out /tmp/smoke.json   # 512^2 and 256^2

Without a CUDA device (or without torch/CuPy) the GPU rows are left out and only the
numpy rows of (d) run.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

HALF_WIDTH = 4.0  # window [-4, 4]^2
T_FINAL = 1.0
BETA = 1.0  # moderate: the Cole-Hopf sums stay far above float32 underflow on this window


# ----------------------------------------------------------------------------- backends
def available_backends() -> dict[str, Any]:
    """``{"torch": torch, "cupy": cupy}`` for each library that sees a CUDA device."""
    found: dict[str, Any] = {}
    try:
        import torch

        if torch.cuda.is_available():
            found["torch"] = torch
    except Exception:
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            found["cupy"] = cupy
    except Exception:
        pass
    return found


def synchronize(backend: str, lib: Any) -> None:
    if backend == "torch":
        lib.cuda.synchronize()
    else:
        lib.cuda.runtime.deviceSynchronize()


def event_pair(backend: str, lib: Any) -> tuple[Any, Any]:
    if backend == "torch":
        return lib.cuda.Event(enable_timing=True), lib.cuda.Event(enable_timing=True)
    return lib.cuda.Event(), lib.cuda.Event()


def elapsed_ms(backend: str, lib: Any, start: Any, end: Any) -> float:
    end.synchronize()
    if backend == "torch":
        return float(start.elapsed_time(end))
    return float(lib.cuda.get_elapsed_time(start, end))


def gpu_time(fn: Callable[[], Any], backend: str, lib: Any, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Best CUDA-event time and best synchronised wall time of ``fn()``, in milliseconds."""
    for _ in range(warmup):
        fn()
    synchronize(backend, lib)
    events, walls = [], []
    for _ in range(repeats):
        start, end = event_pair(backend, lib)
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        events.append(elapsed_ms(backend, lib, start, end))
        synchronize(backend, lib)
        walls.append((time.perf_counter() - t0) * 1e3)
    return {"event_ms": min(events), "wall_ms": min(walls), "event_ms_worst": max(events), "repeats": repeats}


def cpu_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1e3)
    return {"wall_ms": min(walls), "wall_ms_worst": max(walls), "repeats": repeats}


_FIELDS: dict[tuple[str, int], tuple[Any, Any]] = {}


def make_field(backend: str, lib: Any, n: int) -> tuple[Any, Any]:
    """The grid and ``f = |x|^2/2 + 0.3 sin(3 x) cos(2 y)`` (float32) on the backend's device.

    Built once per backend and size (no call below writes into ``f``).
    """
    key = (backend, n)
    if key not in _FIELDS:
        _FIELDS[key] = _build_field(backend, lib, n)
    return _FIELDS[key]


def _build_field(backend: str, lib: Any, n: int) -> tuple[Any, Any]:
    import hjsmooth as hs

    grid = hs.Grid(lower=(-HALF_WIDTH, -HALF_WIDTH), upper=(HALF_WIDTH, HALF_WIDTH), shape=(n, n))
    x, y = grid.coords
    f = (0.5 * (x**2 + y**2) + 0.3 * np.sin(3 * x) * np.cos(2 * y)).astype(np.float32)
    if backend == "torch":
        return grid, lib.from_numpy(f).cuda()
    if backend == "cupy":
        return grid, lib.asarray(f)
    return grid, f


# ----------------------------------------------------------------------------- part (a)
def peak_bandwidth(backend: str, lib: Any, nbytes: int, repeats: int) -> dict[str, float]:
    """Device-to-device copy of ``nbytes``: GB/s counting the read and the write."""
    count = nbytes // 4
    if backend == "torch":
        src = lib.ones(count, dtype=lib.float32, device="cuda")
        dst = lib.empty_like(src)
        fn = lambda: dst.copy_(src)  # noqa: E731
    else:
        src = lib.ones(count, dtype=lib.float32)
        dst = lib.empty_like(src)
        fn = lambda: lib.copyto(dst, src)  # noqa: E731
    timing = gpu_time(fn, backend, lib, repeats)
    timing["GB_per_s"] = 2 * count * 4 / (timing["event_ms"] * 1e-3) / 1e9
    timing["bytes"] = 2 * count * 4
    return timing


_FUSED_LAPLACIAN = r"""
extern "C" __global__ void laplacian5(const float* u, float* out, const long long n, const float inv_h2) {
    long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long i = blockIdx.y;
    if (j >= n) return;
    long long p = i * n + j;
    if (i == 0 || i == n - 1 || j == 0 || j == n - 1) { out[p] = 0.0f; return; }
    out[p] = (u[p - n] + u[p + n] + u[p - 1] + u[p + 1] - 4.0f * u[p]) * inv_h2;
}
"""


def stencil_kernels(backend: str, lib: Any, n: int) -> dict[str, Callable[[], Callable[[], Any]]]:
    """Factories (built lazily, inside each row's try) of the one-step calls to time."""
    import hjsmooth.solvers.fokker_planck as fp
    from hjsmooth.solvers.hj_operator import HamiltonJacobiOperator
    from hjsmooth.solvers.runge_kutta import SSP_METHODS, rk_step

    def laplacian_eager():
        grid, u = make_field(backend, lib, n)
        inv_h2 = 1.0 / grid.spacing[0] ** 2
        out = lib.zeros_like(u)

        def run():
            out[1:-1, 1:-1] = (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4.0 * u[1:-1, 1:-1]) * inv_h2
            return out

        return run

    def laplacian_fused():
        import cupy

        grid, u = make_field("cupy", cupy, n)
        kernel = cupy.RawKernel(_FUSED_LAPLACIAN, "laplacian5")
        out = cupy.empty_like(u)
        inv_h2 = np.float32(1.0 / grid.spacing[0] ** 2)
        block = 256
        return lambda: kernel(((n + block - 1) // block, n), (block,), (u, out, cupy.int64(n), inv_h2))

    def hj_step():
        grid, u = make_field(backend, lib, n)
        op = HamiltonJacobiOperator(grid, "godunov", "first", "extrapolate", BETA, 0.9)
        dt = 0.5 * op.cfl / (op.viscous_rate + 2 * HALF_WIDTH / grid.spacing[0])
        return lambda: rk_step(u, dt, op.rhs, SSP_METHODS['euler'])

    def hj_step_fused(rows, scheme="godunov", weights=(0.0, 1.0)):
        """One fused stage ``a u0 + b (u + dt L(u))`` (forward Euler: a = 0, u0 not read)."""
        from hjsmooth.backend import to_cupy
        from hjsmooth.solvers._fused_hj import axis_slopes, fused_stage

        def build():
            import cupy

            grid, u = make_field(backend, lib, n)
            cu = cupy.ascontiguousarray(to_cupy(u))
            out = cupy.empty_like(cu)
            op = HamiltonJacobiOperator(grid, scheme, "first", "extrapolate", BETA, 0.9)
            dt = 0.5 * op.cfl / (op.viscous_rate + 2 * HALF_WIDTH / grid.spacing[0])
            slopes = axis_slopes(cu, grid.spacing)
            return lambda: fused_stage(cu, cu, out, (*weights, dt), grid.spacing, op.nu, "extrapolate", scheme, slopes,
                                       rows=rows)

        return build

    def fp_operator_and_density():
        grid, f = make_field(backend, lib, n)
        op = fp.fokker_planck_operator(grid, like=f, potential=f, beta=BETA)
        return op, lib.exp(-2.0 * BETA * f), 0.5 * op.stable_dt

    def fp_step_eager():
        op, rho, dt = fp_operator_and_density()
        return lambda: rho + dt * op.apply(rho)  # the array code, as off the GPU

    def fp_step():
        op, rho, dt = fp_operator_and_density()
        engine, stepper = fp.explicit_stepper(op, rho)  # the fused kernel on CUDA arrays
        assert engine == "cuda", engine
        state = stepper.start(rho)
        return lambda: stepper.step(state, dt)

    # name -> (factory, full-grid arrays the implementation must move: rho/u in and out, plus rates)
    rate_arrays = 2 * 2  # forward and backward rates per axis, 2D
    kernels = {"laplacian5 (eager slices)": (laplacian_eager, 2)}
    if backend == "cupy":  # the fused reference is a CuPy raw kernel
        kernels["laplacian5 (fused raw kernel)"] = (laplacian_fused, 2)
    kernels["hj godunov step (viscous, first order)"] = (hj_step, 2)
    for rows in (1, 2, 4, 8):
        kernels[f"hj godunov step (fused kernel, rows={rows})"] = (hj_step_fused(rows), 2)
    # the default viscous scheme: hybrid flux, an SSP-RK(4,2) stage that also reads u^n
    kernels["hj hybrid SSP stage (fused kernel, rows=1)"] = (hj_step_fused(1, "hybrid", (0.25, 0.75)), 3)
    kernels["fp explicit step (Scharfetter-Gummel), array code"] = (fp_step_eager, 2 + rate_arrays)
    kernels["fp explicit step (Scharfetter-Gummel), fused kernel"] = (fp_step, 2 + rate_arrays)
    return kernels


# ----------------------------------------------------------------------------- parts (b)-(d)
def solver_calls(backend: str, lib: Any, n: int) -> dict[str, Callable[[], Callable[[], Any]]]:
    import hjsmooth as hs

    def hopf_lax():
        grid, f = make_field(backend, lib, n)
        return lambda: hs.hopf_lax(f, grid, T_FINAL)

    def local_entropy():
        grid, f = make_field(backend, lib, n)
        return lambda: hs.local_entropy(f, grid, T_FINAL, BETA)

    def heat():
        grid, f = make_field(backend, lib, n)
        return lambda: hs.heat(f, grid, T_FINAL, BETA)

    return {"hopf_lax": hopf_lax, "local_entropy": local_entropy, "heat": heat}


# ----------------------------------------------------------------------------- driver
def run_row(rows: list[dict], part: str, name: str, backend: str, body: Callable[[], dict]) -> None:
    row = {"part": part, "name": name, "backend": backend}
    try:
        row.update(body())
        row["status"] = "ok"
    except Exception as exc:
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=4)
    rows.append(row)
    print_row(row)


def factories(rows: list[dict], part: str, make: Callable, backend: str, lib: Any, n: int) -> dict:
    """``make(backend, lib, n)``, or ``{}`` with a failed row when even that fails (e.g. an import)."""
    try:
        return make(backend, lib, n)
    except Exception as exc:
        row = {"part": part, "name": make.__name__, "backend": backend, "status": "failed",
               "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}
        rows.append(row)
        print_row(row)
        return {}


def print_row(row: dict) -> None:
    label = f"({row['part']}) {row['name']} [{row['backend']}]"
    if row["status"] != "ok":
        print(f"{label:<76} {row['status'].upper()}: {row.get('error', '')}", flush=True)
        return
    parts = []
    if "event_ms" in row:
        parts.append(f"event {row['event_ms']:9.3f} ms")
    if "wall_ms" in row:
        parts.append(f"wall {row['wall_ms']:9.3f} ms")
    for key, fmt in (("GB_per_s", "{:8.1f} GB/s"), ("roofline_fraction", "{:6.1%} of peak"),
                     ("traffic_fraction", "({:6.1%} counting its rate arrays)"),
                     ("speedup_vs_numpy", "x{:7.1f} vs numpy"), ("target", "{}")):
        if key in row:
            parts.append(fmt.format(row[key]))
    print(f"{label:<76} " + "  ".join(parts), flush=True)


def device_info(backends: dict[str, Any]) -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__}
    if "torch" in backends:
        torch = backends["torch"]
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, memory_GiB=round(props.total_memory / 2**30, 1), torch=torch.__version__)
    if "cupy" in backends:
        cupy = backends["cupy"]
        info["cupy"] = cupy.__version__
        if "device" not in info:
            info["device"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench_gpu.json", help="where to write the JSON table (default bench_gpu.json)")
    parser.add_argument("--n", type=int, default=4096, help="large grid per axis (default 4096)")
    parser.add_argument("--m", type=int, default=1024, help="grid per axis of the numpy comparison (default 1024)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats after two warm-ups (default 10)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 512^2 and 256^2, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.n, args.m, args.repeats = 512, 256, 3
    n, m, repeats = args.n, args.m, args.repeats
    started = time.perf_counter()
    backends = available_backends()
    result: dict[str, Any] = {"config": {"n": n, "m": m, "repeats": repeats, "dtype": "float32",
                                         "window": [-HALF_WIDTH, HALF_WIDTH], "t": T_FINAL, "beta": BETA},
                              "device": {}, "rows": []}
    rows = result["rows"]
    try:
        result["device"] = device_info(backends)
    except Exception as exc:
        result["device"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"device: {result['device']}; backends: {sorted(backends) or 'none (GPU rows skipped)'}", flush=True)
    print(f"grids: (a)-(c) {n}x{n}, (d) {m}x{m}; float32; best of {repeats}", flush=True)

    # (a) peak bandwidth, then stencil steps as a fraction of it
    peaks: dict[str, float] = {}
    for backend, lib in backends.items():
        def peak_body(backend=backend, lib=lib):
            timing = peak_bandwidth(backend, lib, 1 << 30, repeats)
            peaks[backend] = timing["GB_per_s"]
            return timing

        run_row(rows, "a", "peak: device-to-device copy, 1 GiB", backend, peak_body)
    for backend, lib in backends.items():
        for name, (factory, arrays) in factories(rows, "a", stencil_kernels, backend, lib, n).items():
            def body(factory=factory, backend=backend, lib=lib, arrays=arrays, name=name):
                fn = factory()
                timing = gpu_time(fn, backend, lib, repeats)
                timing["bytes"] = 2 * n * n * 4
                timing["GB_per_s"] = timing["bytes"] / (timing["event_ms"] * 1e-3) / 1e9
                if backend in peaks:
                    timing["roofline_fraction"] = timing["GB_per_s"] / peaks[backend]
                    if arrays != 2:  # also against the traffic of the arrays this implementation reads
                        timing["traffic_fraction"] = timing["roofline_fraction"] * arrays / 2
                    if "fused kernel" in name:
                        timing["target"] = "target >= 50% of peak: " + (
                            "met" if timing["roofline_fraction"] >= 0.5 else "NOT met")
                return timing

            run_row(rows, "a", f"{name}, {n}^2", backend, body)

    # (b) and (c) the exact solvers on n x n
    for backend, lib in backends.items():
        for name, factory in factories(rows, "b", solver_calls, backend, lib, n).items():
            def body(factory=factory, backend=backend, lib=lib, name=name):
                timing = gpu_time(factory(), backend, lib, repeats)
                if name == "hopf_lax":
                    timing["target"] = "target < 50 ms: " + ("met" if timing["wall_ms"] < 50.0 else "NOT met")
                return timing

            run_row(rows, "b" if name == "hopf_lax" else "c", f"{name}, {n}^2", backend, body)

    # (d) numpy vs GPU on m x m
    numpy_ms: dict[str, float] = {}
    for name, factory in factories(rows, "d", solver_calls, "numpy", np, m).items():
        def body(factory=factory, name=name):
            timing = cpu_time(factory(), max(2, repeats // 3))
            numpy_ms[name] = timing["wall_ms"]
            return timing

        run_row(rows, "d", f"{name}, {m}^2", "numpy", body)
    for backend, lib in backends.items():
        for name, factory in factories(rows, "d", solver_calls, backend, lib, m).items():
            def body(factory=factory, backend=backend, lib=lib, name=name):
                timing = gpu_time(factory(), backend, lib, repeats)
                if name in numpy_ms:
                    timing["speedup_vs_numpy"] = numpy_ms[name] / timing["wall_ms"]
                return timing

            run_row(rows, "d", f"{name}, {m}^2", backend, body)

    result["total_s"] = time.perf_counter() - started
    print_table(rows)
    print(f"\ntotal {result['total_s']:.1f} s", flush=True)
    try:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
        print(f"wrote {args.out}")
    except OSError as exc:
        print(f"could not write {args.out}: {exc}")


def print_table(rows: list[dict]) -> None:
    """The whole run again as one table (the lines above were printed as each row finished)."""
    print("\n" + "=" * 122)
    print(f"{'part':<5}{'call':<60}{'backend':<9}{'event ms':>11}{'wall ms':>11}{'GB/s':>9}{'of peak':>9}{'speed-up':>10}")
    print("-" * 122)
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['part']:<5}{row['name']:<60}{row['backend']:<9}  {row['status'].upper()}: {row.get('error', '')[:60]}")
            continue

        def num(key, fmt):
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                return format(value, fmt)
            return "-".rjust(int(fmt.split(".")[0]))

        print(f"{row['part']:<5}{row['name']:<60}{row['backend']:<9}{num('event_ms', '11.3f')}{num('wall_ms', '11.3f')}"
              f"{num('GB_per_s', '9.1f')}{num('roofline_fraction', '9.1%')}{num('speedup_vs_numpy', '10.1f')}")
        if "target" in row:
            print(f"{'':<5}{'':<60}{'':<9}{row['target']}")


if __name__ == "__main__":
    main()

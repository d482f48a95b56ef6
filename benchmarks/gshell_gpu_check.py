"""GPU check: nvdiffrast vs DEODR image parity, gradients and timings (self-checking, < 5 min).

One script for a CUDA machine, run unchanged from the repository root. Exact commands:

    # online machine (or any machine with PyPI), before the GPU session: fetch the wheels
    pip download diffrp-nvdiffrast ninja --no-deps -d .gshell_wheels   # both pure / manylinux
    # GPU machine (may be offline): install from them, run, then delete the folder again
    python benchmarks/gshell_gpu_check.py --wheels .gshell_wheels
    # GPU machine with PyPI: python benchmarks/gshell_gpu_check.py   (pip installs what is missing)

(``.gshell_wheels`` is untracked, so the device runner copies it with the working tree; delete it
after the run, never commit it.) ``deodr`` is a dependency of the ``shapes`` extra and must be
installed already (or be in ``--wheels`` as a wheel for that machine's Python).

1. Installs ``diffrp-nvdiffrast`` (PyPI repackaging of NVlabs' nvdiffrast 0.3.3; it JIT-compiles
   its CUDA plug-in with ``torch.utils.cpp_extension`` on first use, about 1-2 minutes, which needs
   ``ninja`` and a CUDA toolkit whose ``nvcc`` matches the major CUDA version of torch) when
   ``nvdiffrast`` does not import. Checks that tool chain first (``CUDA_HOME``, else
   ``/usr/local/cuda*``) and fails in seconds with the reason when it is missing.
2. Renders an icosphere and, when ``../shared/data/shapes`` (or ``$GENPIPES_SHARED_DATA``) is
   present, the open tshirt with both backends from the same OpenCV cameras; compares mask,
   depth (pixels covered in both) and normals; checks that the mask gradient w.r.t. the vertices
   points the same way on both backends.
3. Times one small G-Shell reconstruction of an open hemisphere on each backend (same views),
   and ``--paper-steps`` (100) steps of the authors' preset at 128^3 on the GPU (seconds per
   step, extrapolated to its 5000 steps; peak GPU memory).

Prints a PASS/FAIL line per check, writes ``benchmarks/results/gshell_gpu_check.md`` and exits
non-zero when a check fails. Tolerances: mean |mask difference| < 0.02 (both antialias a
silhouette band about one pixel wide, differently: DEODR ramps outwards over one pixel, so its
mask is about half a pixel wider), depth mean < 1 % of the camera distance (both are
perspective-correct; they differ on occlusion edges), normal mean < 0.02, gradient cosine > 0.8.
The tensor preparation of the nvdiffrast backend (clip space, int32 triangles, image rows, depth
test) is checked on the CPU by ``tests/shapes/test_gshell_nvdiffrast_fake.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, sys.path[0] is benchmarks/, where a sibling benchmarks/shapes.py would shadow
# the shapes package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import importlib
import importlib.util
import os
import subprocess
import time

import torch

ROOT = Path(__file__).resolve().parents[1]
TOL = {"mask": 0.02, "depth": 0.01, "normal": 0.02, "grad_cos": 0.8}


def ensure(module: str, package: str, install: bool, wheels: str | None = None) -> None:
    """Import ``module``; when missing and ``install``, ``pip install package`` first (from the
    folder ``wheels`` only, when given: an offline machine)."""
    try:
        importlib.import_module(module)
        return
    except ImportError:
        if not install:
            raise SystemExit(f"FAIL: {module} is missing (pip install {package})") from None
    print(f"installing {package} ...", flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q"]
    if wheels:
        cmd += ["--no-index", "--find-links", wheels]
    subprocess.check_call(cmd + [package])
    importlib.invalidate_caches()
    importlib.import_module(module)


def jit_toolchain() -> str:
    """Make sure nvdiffrast 0.3's JIT build can run: ``ninja`` and a CUDA toolkit (sets
    ``CUDA_HOME`` when it is unset and ``/usr/local/cuda*`` has ``nvcc``). Returns a summary."""
    import glob
    import shutil

    if importlib.util.find_spec("_nvdiffrast_c") is not None:  # nvdiffrast 0.4: built at install
        return "nvdiffrast plug-in prebuilt"
    if shutil.which("ninja") is None:
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ["PATH"]
        except ImportError:
            raise SystemExit("FAIL: nvdiffrast's JIT build needs ninja (pip install ninja)"
                             ) from None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if not home:
        found = sorted(glob.glob("/usr/local/cuda*/bin/nvcc"))
        home = str(Path(found[-1]).parents[1]) if found else None
        if home:
            os.environ["CUDA_HOME"] = home
    if not home or not Path(home, "bin", "nvcc").exists():
        raise SystemExit("FAIL: nvdiffrast's JIT build needs a CUDA toolkit (nvcc); set CUDA_HOME")
    out = subprocess.run([str(Path(home, "bin", "nvcc")), "--version"], capture_output=True,
                         text=True).stdout.strip().splitlines()
    return f"CUDA_HOME={home} ({out[-1] if out else '?'}), torch CUDA {torch.version.cuda}"


def scenes():
    import trimesh

    yield "icosphere r=0.4", trimesh.creation.icosphere(4, radius=0.4)
    env = os.environ.get("GENPIPES_SHARED_DATA")
    shared = (Path(env) if env else ROOT.parent / "shared" / "data") / "shapes"
    garment = shared / "snug-garments" / "tshirt.obj"
    if garment.is_file():
        from shapes.mesh_io import load_mesh, normalize_to_unit_cube

        yield "tshirt (open)", normalize_to_unit_cube(load_mesh(garment, allow_flat=True))[0]


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def parity(gpu, cpu, cams, device: str = "cuda", garment: bool = True
           ) -> tuple[list[str], bool]:
    """Table rows and overall pass flag of the image and gradient comparison (``device`` is
    the nvdiffrast renderer's; the CPU tests run this with a fake nvdiffrast on ``"cpu"``)."""
    rows, ok = [], True
    for name, mesh in list(scenes())[: None if garment else 1]:
        v = torch.as_tensor(mesh.vertices, dtype=torch.float32)
        f = torch.as_tensor(mesh.faces, dtype=torch.long)
        diffs = {k: [] for k in ("mask", "depth", "normal")}
        cosines, t_gpu, t_cpu = [], 0.0, 0.0
        for cam in cams:
            vg = v.to(device).clone().requires_grad_(True)
            _sync(device)
            t0 = time.perf_counter()
            a = gpu.render(vg, f.to(device), cam)
            _sync(device)
            t_gpu += time.perf_counter() - t0
            vc = v.double().clone().requires_grad_(True)
            t0 = time.perf_counter()
            b = cpu.render(vc, f, cam)
            t_cpu += time.perf_counter() - t0
            a["mask"].sum().backward()
            b["mask"].sum().backward()
            ga, gb = vg.grad.double().cpu().reshape(-1), vc.grad.reshape(-1)
            cosines.append(float(ga @ gb / (ga.norm() * gb.norm()).clamp_min(1e-12)))
            a = {k: x.detach().cpu().double() for k, x in a.items()}
            b = {k: x.detach().cpu().double() for k, x in b.items()}
            both = (a["mask"] > 0.5) & (b["mask"] > 0.5)
            dist = float(torch.as_tensor(cam.t).norm())
            diffs["mask"].append((a["mask"] - b["mask"]).abs().reshape(-1))
            diffs["depth"].append((a["depth"] - b["depth"])[both].abs() / dist)
            diffs["normal"].append((a["normal"] - b["normal"])[both].abs().reshape(-1))
        s = {k: torch.cat(x) for k, x in diffs.items()}
        cos = min(cosines)
        passed = all(float(s[k].mean()) < TOL[k] for k in s) and cos > TOL["grad_cos"]
        ok &= passed
        cells = " | ".join(f"{float(s[k].max()):.4f} / {float(s[k].mean()):.5f}"
                           for k in ("mask", "depth", "normal"))
        rows.append(f"| {name} | {cells} | {cos:.3f} | {1e3 * t_gpu / len(cams):.1f} | "
                    f"{1e3 * t_cpu / len(cams):.1f} | {'PASS' if passed else 'FAIL'} |")
        print(rows[-1], flush=True)
    return rows, ok


def _hemisphere():
    import trimesh

    s = trimesh.creation.icosphere(4, radius=0.4)
    return trimesh.Trimesh(s.vertices, s.faces[s.triangles_center[:, 1] > 0.0])


def timing(gpu, cpu, resolution: int = 32, iterations: int = 150,
           image_size: int = 80) -> list[str]:
    """Seconds of one small hemisphere reconstruction per backend (same views and config)."""
    from shapes.gshell.evaluate import compare_meshes
    from shapes.gshell.reconstruct import ReconstructConfig, reconstruct
    from shapes.gshell.views import render_views

    hemi = _hemisphere()
    views, cams = render_views(hemi, n_views=12, resolution=image_size, renderer=cpu)
    cfg = ReconstructConfig(resolution=resolution, iterations=iterations, progress=False)
    rows = []
    for r in (gpu, cpu):
        t0 = time.perf_counter()
        mesh = reconstruct(views, cams, cfg, r)
        sec = time.perf_counter() - t0
        m = compare_meshes(mesh, hemi, n_points=10000)
        rows.append(f"| {r.name} | {sec:.1f} | {m['chamfer']:.4f} | {m['f_score']:.3f} | "
                    f"{m['boundary_loops']} ({m['target_boundary_loops']}) |")
        print(rows[-1], flush=True)
    return rows


def paper_timing(gpu, cpu, resolution: int = 128, iterations: int = 100,
                 image_size: int = 256, device: str = "cuda") -> list[str]:
    """GPU seconds per step of the authors' preset (``preset_config("paper")``: 128^3, 2 views
    per step) on the hemisphere, extrapolated to its 5000 steps; errors become a table row."""
    from shapes.gshell.evaluate import compare_meshes
    from shapes.gshell.reconstruct import optimise, preset_config
    from shapes.gshell.views import render_views

    hemi = _hemisphere()
    views, cams = render_views(hemi, n_views=12, resolution=image_size, renderer=cpu)
    cfg = preset_config("paper", resolution=resolution, iterations=iterations, progress=False)
    try:
        if str(device).startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        _sync(device)
        t0 = time.perf_counter()
        rec = optimise(views, cams, cfg, gpu)
        _sync(device)
        sec = time.perf_counter() - t0
        m = compare_meshes(rec.mesh(), hemi, n_points=10000)
        mem = (torch.cuda.max_memory_allocated() / 2**30 if str(device).startswith("cuda")
               else float("nan"))
        row = (f"| paper preset, {resolution}^3, {iterations} steps x 2 views of {image_size} px "
               f"| {sec:.1f} | {sec / iterations:.3f} | {5000 * sec / iterations / 60:.1f} | "
               f"{mem:.1f} | {m['chamfer']:.4f} | {m['boundary_loops']} "
               f"({m['target_boundary_loops']}) |")
    except Exception as exc:  # an out-of-memory here must not hide the parity result
        row = f"| paper preset, {resolution}^3 | failed: {type(exc).__name__}: {exc} |||||"
    print(row, flush=True)
    return [row]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-install", action="store_true", help="do not pip install anything")
    ap.add_argument("--no-timing", action="store_true", help="skip the reconstruction timing")
    ap.add_argument("--paper-steps", type=int, default=100, metavar="N",
                    help="steps of the paper-preset timing at 128^3 (0: skip)")
    ap.add_argument("--wheels", default=None, metavar="DIR",
                    help="install missing packages from the wheels in DIR only (offline)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("FAIL: needs a CUDA GPU (torch.cuda.is_available() is False)")
    t_start = time.perf_counter()
    ensure("deodr", "deodr", not args.no_install, args.wheels)
    ensure("nvdiffrast.torch", "diffrp-nvdiffrast", not args.no_install, args.wheels)
    print(jit_toolchain(), flush=True)
    from common.io import atomic_write_text
    from shapes.gshell.render import DeodrRenderer, NvdiffrastRenderer
    from shapes.gshell.views import orbit_cameras

    torch.set_num_threads(1)
    gpu, cpu = NvdiffrastRenderer("cuda"), DeodrRenderer()
    cams = orbit_cameras(8, 256)
    gpu.render(torch.zeros(3, 3, device="cuda"), torch.tensor([[0, 1, 2]]), cams[0])  # JIT build
    print(f"nvdiffrast ready after {time.perf_counter() - t_start:.0f} s", flush=True)
    rows, ok = parity(gpu, cpu, cams)
    lines = ["# nvdiffrast vs DEODR parity", "",
             f"GPU: {torch.cuda.get_device_name(0)}; 8 views of 256x256 px. Max / mean absolute "
             "difference over all pixels (mask) or pixels covered in both (depth, relative to "
             "the camera distance; normal). `grad cos`: the smallest cosine, over the views, "
             "between the two backends' gradients of the mask sum w.r.t. the vertices. "
             f"Tolerances on the means: {TOL}.", "",
             "| scene | mask max / mean | depth max / mean | normal max / mean | grad cos | "
             "ms/view nvdiffrast | ms/view deodr | check |", "|---" * 8 + "|", *rows]
    if not args.no_timing:
        lines += ["", "One G-Shell reconstruction of an open hemisphere (tet grid 32^3, 150 "
                  "steps x 4 views of 12, 80x80 px; DEODR on 1 CPU thread):", "",
                  "| renderer | s / recon | Chamfer | F@0.02 | loops (target) |",
                  "|---|---|---|---|---|", *timing(gpu, cpu)]
    if args.paper_steps > 0:
        lines += ["", "The authors' preset (`preset_config(\"paper\")`) on the same hemisphere, "
                  "shortened to --paper-steps (the lr schedule keeps its shape):", "",
                  "| run | s | s / step | min for 5000 steps | peak GPU GiB | Chamfer | loops |",
                  "|---|---|---|---|---|---|---|",
                  *paper_timing(gpu, cpu, iterations=args.paper_steps)]
    out = ROOT / "benchmarks" / "results" / "gshell_gpu_check.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    print(f"wrote {out}")
    print("PASS" if ok else "FAIL: a parity check is out of tolerance (see the table)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""The GPU inference path against the CPU path: the same trained models on the same real inputs.

Two steps, because a GPU machine may have torch and numpy but no database (the one lent to this
project cannot install packages)::

    python -m benchmarks.bench_gpu export DIR   # where the catalog is: weights + inputs into DIR
    python -m benchmarks.bench_gpu check DIR    # on the GPU machine: needs torch and numpy only

``export`` builds a catalog of its own (``HEALCAT_HOME``, default ``var/bench/gpu``): the SDSS DR14
sample and the EROS-2 LMC variables ingested, the object classifier, photo-z and light-curve
models trained by the registry (``ingest.registry.train``; the light-curve model for
``BENCH_GPU_LC_EPOCHS`` epochs, default 4: the check compares two devices on the same weights,
not the model's quality), and writes each model's weights file and, in ``inputs.npz``, what each
task prepares from its input query: the SDSS sources' ugriz magnitudes and the EROS-2 stars'
light curves, periods and metadata.

``check`` runs each model through :mod:`ingest.ml` on the CPU (float32, all cores) and on CUDA
(bfloat16 autocast, :func:`ingest.ml.common.mixed_precision`) and prints how far the outputs
differ and each device's throughput: photo-z (PDFs and embeddings) and the object classifier on
``BENCH_GPU_N`` sources (default 1,000,000: the SDSS sources' magnitudes resampled with N(0, 0.03
mag) noise, as ``bench_inference`` makes them), the light-curve model on the EROS-2 stars. Without
CUDA it says so and compares the CPU with itself.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from catalog.settings import from_env
from ingest.ml import classifier, common
from ingest.ml import lightcurve_embed as le
from ingest.ml import photoz

SDSS_MAPPING = "sdss_dr14_skyserver_10k"
EROS_MAPPING = "eros2_lmc_ramp"
MODELS = {"object_class": "object_class.pt", "photoz": "photoz.pt", "lightcurve_embed": "lightcurve.pt"}
#: Agreement of bfloat16 on the GPU with float32 on the CPU: the median photo-z shift, a tenth of the
#: model's NMAD (0.014); the least cosine between a source's two embeddings; labels that stay the same.
PHOTOZ_DZ, MIN_COSINE, SAME_LABEL = 1.4e-3, 0.99, 0.995


# --- export (where the catalog is) ----------------------------------------------------------


def export(out_dir: Path) -> None:
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench" / "gpu"))
    from catalog import db
    from ingest.registry import release_id_of, train, weights_file
    from ingest.load import ingest_release
    from ingest.tasks import ALL_SOURCES, get_task, ugriz

    db.migrate(db.database_url())
    engine = db.engine()
    releases = {"object_class": ingest_release(SDSS_MAPPING, engine).release,
                "lightcurve_embed": ingest_release(EROS_MAPPING, engine).release}
    releases["photoz"] = releases["object_class"]
    epochs = {"lightcurve_embed": from_env("BENCH_GPU_LC_EPOCHS", 1, int, "training epochs") or 4}
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = {}
    for task_name, file_name in MODELS.items():
        model = train(engine, task_name, releases[task_name], epochs=epochs.get(task_name))
        with engine.connect() as conn:
            shutil.copyfile(weights_file(conn, model.model_id), out_dir / file_name)
            if task_name != "photoz":  # photo-z's inputs are the classifier's: every source's ugriz
                with conn.connection.driver_connection.cursor() as cur:
                    params = {"release_id": release_id_of(conn, releases[task_name]), **ALL_SOURCES}
                    cur.execute(get_task(task_name).input_query, params)
                    inputs[task_name] = cur.fetchall()
        print(f"{task_name}: {model.name}/{model.version} -> {out_dir / file_name}")
    _, mags, _ = ugriz.split_rows(inputs["object_class"])
    curves, period_day, meta = get_task("lightcurve_embed").prepare(inputs["lightcurve_embed"]).inputs
    np.savez_compressed(out_dir / "inputs.npz", ugriz_mag=mags,
                        lc_rows=np.concatenate(curves),
                        lc_start=np.concatenate([[0], np.cumsum([len(c) for c in curves])]),
                        lc_period_day=period_day, lc_meta=meta)
    print(f"inputs: {len(mags):,} SDSS sources, {len(curves):,} EROS-2 stars -> {out_dir / 'inputs.npz'} "
          f"({(out_dir / 'inputs.npz').stat().st_size / 2**20:.1f} MiB)")


# --- check (on the GPU machine) -------------------------------------------------------------


def _timed(fn, *args, **kwargs):
    """(result, seconds) of a call made after one warm-up call on the same arguments."""
    fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def _row(name: str, n: int, cpu_s: float, gpu_s: float, agreement: str, ok: bool) -> bool:
    print(f"  {name:<22} {n:>10,}  cpu {n / cpu_s:>12,.0f}/s  gpu {n / gpu_s:>12,.0f}/s  "
          f"x{cpu_s / gpu_s:>6.1f}  {agreement}: {'agrees' if ok else 'DIFFERS'}")
    return ok


def check(in_dir: Path) -> bool:
    """Whether every model's GPU outputs agree with its CPU outputs (thresholds above)."""
    gpu = common.best_device()
    cpu = torch.device("cpu")
    name = torch.cuda.get_device_name(gpu) if gpu.type == "cuda" else "no CUDA GPU: the CPU against itself"
    n = from_env("BENCH_GPU_N", 1, int, "rows") or 1_000_000
    data = np.load(in_dir / "inputs.npz")
    print(f"\ngpu check: {name}; torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} CPU threads")
    print(f"  {'model':<22} {'rows':>10}  {'throughput (end of predict: numpy on the host)':<52}")

    rng = np.random.default_rng(0)
    mags = data["ugriz_mag"][rng.integers(0, len(data["ugriz_mag"]), n)] + rng.normal(0, 0.03, (n, 5))
    x = photoz.features(mags)
    model = photoz.load(str(in_dir / MODELS["photoz"]))
    ref, cpu_s = _timed(photoz.predict, model, x, device=cpu)
    out, gpu_s = _timed(photoz.predict, model, x, device=gpu)
    dz = np.abs(out["z_point"] - ref["z_point"]) / (1 + ref["z_point"])
    cos = np.sum(out["embedding"] * ref["embedding"], axis=1)
    ok = [_row("photo-z (PDF + embed)", n, cpu_s, gpu_s,
               f"|dz|/(1+z) median {np.median(dz):.1e}, 99.9% {np.quantile(dz, 0.999):.1e}; "
               f"embedding cosine min {cos.min():.4f}", np.median(dz) < PHOTOZ_DZ and cos.min() > MIN_COSINE)]

    model = classifier.load(str(in_dir / MODELS["object_class"]))
    ref, cpu_s = _timed(classifier.predict, model, x, device=cpu)
    out, gpu_s = _timed(classifier.predict, model, x, device=gpu)
    same = np.mean(out.argmax(1) == ref.argmax(1))
    ok.append(_row("object class", n, cpu_s, gpu_s, f"same label {same:.5f}; |dp| max {np.abs(out - ref).max():.1e}",
                   same > SAME_LABEL))

    rows, start = data["lc_rows"], data["lc_start"]  # (an npz reads a key's whole array at each access)
    curves = [rows[a:b] for a, b in zip(start[:-1], start[1:])]
    stars = (curves, data["lc_period_day"], data["lc_meta"])
    model = le.load(str(in_dir / MODELS["lightcurve_embed"]))
    ref, cpu_s = _timed(le.embed, model, *stars)
    model = le.load(str(in_dir / MODELS["lightcurve_embed"]), map_location=gpu)
    out, gpu_s = _timed(le.embed, model, *stars)
    cos = np.sum(out * ref, axis=1)
    ok.append(_row("light curve (embed)", len(curves), cpu_s, gpu_s,
                   f"embedding cosine median {np.median(cos):.4f} min {cos.min():.4f}", cos.min() > MIN_COSINE))
    return all(ok)


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "check"):
        sys.exit(__doc__)
    if sys.argv[1] == "export":
        export(Path(sys.argv[2]))
    elif not check(Path(sys.argv[2])):
        sys.exit("gpu check: the GPU's outputs differ from the CPU's beyond the thresholds")


if __name__ == "__main__":
    main()

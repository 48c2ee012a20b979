"""``idn models build``: real models for a live IDN, made here.

For each task (a dataset scikit-learn ships: digits, wine, breast cancer) it
trains several variants that span accuracy, size and speed, exports each to
ONNX with skl2onnx, and measures under onnxruntime on this machine:

- accuracy on the held-out half of the data (the ONNX model's own answers);
- size: the ``.onnx`` file in MB (what a node's budget must hold);
- service time: the median of single-row (batch 1) runs, after a warm-up.

It writes ``DIR/catalog.csv`` in the simulator's catalog form (plus the
columns ``task``, ``variant``, ``file``, ``n_features``), ``DIR/onnx/*.onnx``,
``DIR/data/<task>.npz`` (held-out inputs ``x`` and labels ``y``) and a ready
scenario ``DIR/live-demo.yaml`` whose ``catalog:`` key points at the CSV.

**Decision**: the machine has no GPU, so a model's ``gpu_ms_per_step`` is its
measured cpu time too; the scenario only uses cpu nodes.

Everything is seeded and nothing is downloaded (the datasets ship inside
scikit-learn).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("digits", "wine", "breast_cancer")
CATALOG_COLUMNS = (
    "model", "task", "variant", "file", "size_mb", "top1_accuracy", "cpu_ms_per_step", "gpu_ms_per_step", "n_features",
)  # fmt: skip


@dataclass
class BuiltModel:
    name: str  # catalog name: "<task>-<variant>"
    task: str
    variant: str
    file: str  # relative to the models directory
    size_mb: float
    accuracy: float
    service_ms: float
    n_features: int


def _dataset(task: str):
    from sklearn import datasets

    loader = {"digits": datasets.load_digits, "wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}
    x, y = loader[task](return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def _variants(seed: int, quick: bool) -> dict:
    """Variant name -> estimator factory. quick: smaller and fewer trees, for tests."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    iters = 200 if quick else 600
    out = {
        "logreg": lambda: LogisticRegression(max_iter=2000),
        "mlp-small": lambda: MLPClassifier((8,), max_iter=iters, random_state=seed),
        "mlp-large": lambda: MLPClassifier((64,) if quick else (256, 256), max_iter=iters, random_state=seed),
        "forest": lambda: RandomForestClassifier(20 if quick else 200, random_state=seed, n_jobs=1),
    }
    if not quick:
        out["knn"] = lambda: KNeighborsClassifier(5)
    return out


def _session(path: str | Path):
    """One onnxruntime session, one thread: a node runs several in its own
    thread pool, and the machine's cores are shared."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def predict(session, x: np.ndarray) -> np.ndarray:
    """Labels for the rows of x (float32, 2-D) from a session made by this module."""
    return session.run(["label"], {session.get_inputs()[0].name: x})[0]


def predict_all(session, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) int64, probabilities (N, classes) float32) for the rows of x."""
    # the built models' input is "X" (skl2onnx's name); looking it up costs more than a small model's run
    label, probs = session.run(["label", "probabilities"], {"X": x})
    return label, probs


def task_classes(models_dir: str | Path) -> dict[str, int]:
    """{task: number of classes}, from the held-out labels the build wrote beside the models."""
    return {t: int(np.load(Path(models_dir) / "data" / f"{t}.npz")["y"].max()) + 1 for t in TASKS
            if (Path(models_dir) / "data" / f"{t}.npz").exists()}  # fmt: skip


def _median_ms(session, x: np.ndarray, runs: int) -> float:
    name = session.get_inputs()[0].name
    rows = [x[i % len(x)][None, :] for i in range(runs)]
    for r in rows[:10]:  # warm-up
        session.run(["label"], {name: r})
    times = np.empty(runs)
    for i, r in enumerate(rows):
        t0 = time.perf_counter()
        session.run(["label"], {name: r})
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1000.0)


def build_models(out: str | Path, seed: int = 0, quick: bool = False, runs: int | None = None, progress=None) -> list[BuiltModel]:
    """Train, export and measure every variant of every task; write the
    catalog, the ONNX files, the held-out data and the demo scenario."""
    from threadpoolctl import threadpool_limits

    out = Path(out)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    runs = runs or (60 if quick else 400)
    # one BLAS thread: the cores are shared, and a contended multithreaded BLAS made training 10x slower
    with threadpool_limits(limits=1):
        return _build(out, seed, quick, runs, progress)


def _build(out: Path, seed: int, quick: bool, runs: int, progress) -> list[BuiltModel]:
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import to_onnx

    built = []
    for task in TASKS:
        x, y = _dataset(task)
        # half held out: the accuracy figure must be precise enough to check a live run against
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)
        np.savez(out / "data" / f"{task}.npz", x=x_te, y=y_te)
        for variant, make in _variants(seed, quick).items():
            name = f"{task}-{variant}"
            clf = make()
            pipe = make_pipeline(StandardScaler(), clf).fit(x_tr, y_tr)
            onx = to_onnx(pipe, x_tr[:1], options={type(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
            path = out / "onnx" / f"{name}.onnx"
            path.write_bytes(onx.SerializeToString())
            session = _session(path)
            acc = float(np.mean(predict(session, x_te) == y_te))
            ms = _median_ms(session, x_te, runs)
            built.append(BuiltModel(name, task, variant, f"onnx/{name}.onnx", path.stat().st_size / 1e6, acc, ms, x.shape[1]))
            if progress:
                progress(built[-1])
    write_catalog(out / "catalog.csv", built)
    (out / "live-demo.yaml").write_text(demo_scenario(built))
    return built


def write_catalog(path: Path, built: list[BuiltModel]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CATALOG_COLUMNS)
        for b in built:
            ms = f"{b.service_ms:.6g}"
            w.writerow([b.name, b.task, b.variant, b.file, f"{b.size_mb:.6g}", f"{b.accuracy:.6g}", ms, ms, b.n_features])


def read_catalog_files(models_dir: str | Path) -> dict[str, dict]:
    """{catalog name: {"task", "file" (absolute), "n_features", "service_ms" (measured, batch 1)}} of a built directory."""
    models_dir = Path(models_dir)
    path = models_dir / "catalog.csv"
    if not path.exists():
        raise ValueError(f"{models_dir}: no catalog.csv (run 'idn models build --out {models_dir}' first)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "file" not in rows[0]:
        raise ValueError(f"{path}: no 'file' column: not a directory made by 'idn models build'")
    return {r["model"]: {"task": r["task"], "file": str(models_dir / r["file"]), "n_features": int(r["n_features"]),
                         "service_ms": float(r["cpu_ms_per_step"])} for r in rows}  # fmt: skip


# ---- the demo scenario -----------------------------------------------------------

# Per tier: (workers, the service time per request the tier's hardware is taken
# to need for a task's fastest model, in ms). The real models answer in well under a
# millisecond here; a node's speed factor scales them to these figures, so the
# per-slot capacity counters bind at the demo's load on the access node, the
# edge and the regional node in turn, and every tier serves a share (docs/live.md).
DEMO_TIERS = {"access": (1, 90.0), "edge": (1, 45.0), "regional": (1, 40.0), "cloud": (4, 0.5)}
_LINKS_MS = (("ap-1", "edge-1", 25), ("ap-2", "edge-1", 25), ("edge-1", "regional-1", 10), ("regional-1", "cloud", 25))


def demo_scenario(built: list[BuiltModel], rate: float = 100.0, tiers: dict | None = None, edge_budget_mb: float | None = None) -> str:
    """A 5-node tree (2 access, 1 edge, 1 regional, the cloud repository)
    whose budgets are scaled to these model sizes: an access node holds about
    one small model per task (1.5 x the smallest of each), the edge one
    (1.05 x), the regional node half of all bytes.

    Shaped (on two full builds of this machine, with static-greedy's
    allocation and the scenario's own workload) so that every tier serves a
    share: about 32% at the access nodes, 31% at the edge, 21% at the
    regional node, 16% in the cloud; a faster edge or regional node takes the
    cloud's share, a faster access node the edge's (docs/live.md). ``tiers`` replaces
    :data:`DEMO_TIERS` (tier: (workers, ms for a median model)), ``edge_budget_mb`` the edge's budget."""
    tiers = tiers or DEMO_TIERS
    sizes = np.sort([b.size_mb for b in built])
    # the reference is each task's fastest model (the one the lower tiers hold), not the median of all:
    # the slow models' measured times move with the machine's load and would move the tiers' shares
    ref_ms = float(np.median([min(b.service_ms for b in built if b.task == t) for t in TASKS]))
    smallest = sorted(min(b.size_mb for b in built if b.task == t) for t in TASKS)
    access, edge, regional = 1.5 * sum(smallest), 1.05 * sum(smallest), 0.5 * sizes.sum()
    edge = edge if edge_budget_mb is None else edge_budget_mb

    def speed(tier):
        return f"{ref_ms / tiers[tier][1]:.6g}"

    def node(nid, tier, budget=None, repo=False):
        w = tiers[tier][0]
        extra = ", repository: true" if repo else f", budget_mb: {budget:.6g}"
        return f"  - {{id: {nid}, tier: {tier}, hardware: cpu, speed: {speed(tier)}, workers: {w}{extra}}}\n"

    tasks = "".join(
        f"  - id: {t}\n    models: [{', '.join(b.name for b in built if b.task == t)}]\n" for t in TASKS
    )
    return (
        "# Made by 'idn models build': the models in onnx/, measured on the machine that built them.\n"
        "# Speeds scale the measured service times to emulated hardware: per request for a task's\n"
        "# fastest model, with workers, " + ", ".join(f"{t} {ms:g} ms x {w}" for t, (w, ms) in tiers.items()) + ".\n"
        "# Links: 25 ms one way from an access node to the edge, 10 to the regional node, 25 to the\n"
        "# cloud. At the default load each tier's capacity binds in turn (docs/live.md).\n"
        "name: live-demo\n"
        "slot_seconds: 1.0\n"
        "alpha: 1.0\n"
        "catalog: catalog.csv\n"
        "nodes:\n"
        + node("cloud", "cloud", repo=True)
        + node("regional-1", "regional", regional)
        + node("edge-1", "edge", edge)
        + node("ap-1", "access", access)
        + node("ap-2", "access", access)
        + "links:\n"
        + "".join(f"  - {{a: {a}, b: {b}, latency_ms: {ms}}}\n" for a, b, ms in _LINKS_MS)
        + f"tasks:\n{tasks}"
        "sources: [ap-1, ap-2]\n"
        f"workload: {{kind: stationary, rate: {rate:g}, zipf: 0.8}}\n"
    )


def format_table(built: list[BuiltModel]) -> str:
    lines = [f"{'variant':<26} {'accuracy':>8} {'size MB':>9} {'service ms':>10}"]
    for b in built:
        lines.append(f"{b.name:<26} {b.accuracy:>8.3f} {b.size_mb:>9.4f} {b.service_ms:>10.4f}")
    return "\n".join(lines)

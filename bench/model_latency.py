"""How fast the exported SavedModel loads and scores a batch of 1,000 requests.

    .venv/bin/python bench/model_latency.py [--model DIR] [--repeats N]

Without --model it trains a quick model first (on the shared samples). Baselines in the
same run: the same 1,000 requests scored one call each (what a per-record agent does), and a
numpy zone-pair lookup table (the cheapest possible "model").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _load_seconds(model_dir: Path) -> float:
    """Load in a fresh process (TensorFlow imported first, not counted): a cold load."""
    code = (
        "import time, tensorflow as tf; t = time.perf_counter(); "
        f"m = tf.saved_model.load({str(model_dir)!r}); m.signatures['serving_default']; "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _requests(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = int(np.datetime64("2019-10-07T00:00", "ms").astype(np.int64))
    return {
        "pickup_datetime": base + rng.integers(0, 7 * 86_400_000, n),
        "pickup_zone_id": rng.integers(1, 264, n),
        "dropoff_zone_id": rng.integers(1, 264, n),
        "passenger_count": rng.integers(1, 5, n),
    }


def _timings(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    fn()  # warm-up: graph tracing, allocations
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a SavedModel folder (default: train one)")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    import tensorflow as tf

    model_dir = args.model
    if model_dir is None:
        from trainer.pipeline import train
        from trainer.settings import TrainSettings

        out = Path(tempfile.mkdtemp(prefix="edml-bench-"))
        model_dir = train(TrainSettings(quick=True, out=out)).model_dir

    loads = [_load_seconds(model_dir) for _ in range(3)]
    signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    batch = {k: tf.constant(v, tf.int64) for k, v in _requests(1000).items()}
    singles = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(1000)]
    table = np.random.default_rng(1).random((266, 266)) * 1800
    pu, do = _requests(1000)["pickup_zone_id"], _requests(1000)["dropoff_zone_id"]

    batched = _timings(lambda: signature(**batch), args.repeats)
    per_call = _timings(lambda: [signature(**s) for s in singles], max(3, args.repeats // 50))
    lookup = _timings(lambda: table[pu, do], args.repeats)

    def ms(values: list[float], q: float) -> float:
        return float(np.quantile(values, q) * 1000)

    print(f"model: {model_dir}")
    print(f"cold load (3 fresh processes): median {statistics.median(loads):.3f} s, "
          f"max {max(loads):.3f} s   (target < 2 s)")
    print(f"{'1,000 requests':<34}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>14}{'vs batch':>10}")
    p50 = ms(batched, 0.5)
    for name, values in (("SavedModel, one batch call", batched),
                         ("SavedModel, 1,000 single calls", per_call),
                         ("numpy zone-pair lookup table", lookup)):
        print(f"{name:<34}{ms(values, 0.5):>10.3f}{ms(values, 0.99):>10.3f}"
              f"{1000 / (ms(values, 0.5) / 1000):>14,.0f}{ms(values, 0.5) / p50:>9.2f}x")
    print("target: a batch of 1,000 in < 10 ms")


if __name__ == "__main__":
    main()

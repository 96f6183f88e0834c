"""Generates the shipped training set: SYNTHETIC heights (cm) and weights (kg), not measurements of people.

`python -m training.sample_data --out data/height_weight.csv` rewrites data/height_weight.csv byte for byte
(fixed seed). Heights ~ Normal(170, 9) cm clipped to 140..205; weight = 0.9 * height - 85 + Normal(0, 5) kg,
so a linear fit explains about 70 % of the variance (R² ~ 0.7), like real height/weight data.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

DEFAULT_ROWS = 2000
DEFAULT_SEED = 20240611
SLOPE = 0.9
INTERCEPT = -85.0


def generate_csv(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED, noise_kg: float = 5.0) -> str:
    """The CSV text (header `height,weight`, one decimal); `noise_kg=0` gives an exactly linear set."""
    rng = np.random.default_rng(seed)
    heights = np.round(np.clip(rng.normal(170.0, 9.0, rows), 140.0, 205.0), 1)
    weights = np.round(SLOPE * heights + INTERCEPT + rng.normal(0.0, noise_kg, rows), 1)
    out = io.StringIO()
    out.write("height,weight\n")
    for height, weight in zip(heights, weights, strict=True):
        out.write(f"{height:.1f},{weight:.1f}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sample_data", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/height_weight.csv"))
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(generate_csv(args.rows, args.seed), encoding="utf-8", newline="")
    print(f"wrote {args.rows} synthetic rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

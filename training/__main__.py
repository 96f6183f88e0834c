"""Command line of training: `python -m training --data CSV_OR_BLOB_URL --out DIR` or `--verify DIR`.

Exit codes: 0 model written (or verified), 1 quality gate failed (nothing written), 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from shared.errors import AppError
from training.train import (
    DEFAULT_MAX_R2,
    DEFAULT_MIN_R2,
    DEFAULT_SEED,
    QualityGateError,
    train,
    verify_model_dir,
)

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the height -> weight model (model.onnx + card.json), or verify a model directory.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--data", help="training CSV: a local path or a blob URL (columns height, weight)")
    action.add_argument(
        "--verify", type=Path, metavar="DIR", help="run the quality gate on an existing model directory"
    )
    parser.add_argument("--out", type=Path, help="model directory to write (replaced only if the gate passes)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the train/test split (%(default)s)")
    parser.add_argument("--min-r2", type=float, default=DEFAULT_MIN_R2, help="lowest accepted R² (%(default)s)")
    parser.add_argument("--max-r2", type=float, default=DEFAULT_MAX_R2, help="highest accepted R² (%(default)s)")
    parser.add_argument("--version", dest="model_version", help="model version (default: hash of the ONNX bytes)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is not None and args.out is None:
        parser.error("--out DIR is required with --data")
    if not args.min_r2 <= args.max_r2:
        parser.error(f"--min-r2 {args.min_r2} must not exceed --max-r2 {args.max_r2}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.verify is not None:
            card = verify_model_dir(args.verify, args.min_r2, args.max_r2)
            print(f"model {card.name}/{card.version} in {args.verify} passes the quality gate")
            return 0
        card = train(
            args.data,
            args.out,
            seed=args.seed,
            min_r2=args.min_r2,
            max_r2=args.max_r2,
            version=args.model_version,
        )
    except QualityGateError as err:
        print(f"error: {err}; no model written" if args.verify is None else f"error: {err}", file=sys.stderr)
        return EXIT_GATE_FAILED
    except AppError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    metrics = card.metrics
    print(
        f"wrote model {card.name}/{card.version} to {args.out}: "
        f"R² {metrics['r2']:.4f}, RMSE {metrics['rmse']:.4f} on {metrics['rows_test']} held-out rows "
        f"({metrics['rows_train']} for training)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

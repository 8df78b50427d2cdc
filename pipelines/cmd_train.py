"""``octoscan train --out WEIGHTS [--generate N] [--epochs E] [--seed S] [--threads T]``.

Trains the planar CNN on phantom studies generated on the fly
(:func:`octoscan.models.cnn_train.train`) and writes the weights with their SHA-256 beside
them. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="train the planar CNN on generated phantom studies")
    p.add_argument("--out", required=True, help="weights file to write (.pt)")
    p.add_argument(
        "--generate", type=_positive, default=300, help="phantom studies (300, as shipped)"
    )
    p.add_argument("--epochs", type=_positive, default=36, help="training epochs (36, as shipped)")
    p.add_argument("--seed", type=int, default=0, help="training seed (0)")
    p.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from octoscan.models.cnn_train import train

    report = train(
        args.out,
        generate=args.generate,
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    print(json.dumps(asdict(report), indent=2))
    return 0

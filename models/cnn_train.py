"""Training of the planar CNN on phantom studies generated on the fly (CPU, deterministic).

``train(out_path, generate=N, epochs=E, seed=S)``: N randomised phantom studies
(:mod:`octoscan.models.cnn_data`; the last ``max(1, N // 10)`` held out for validation when
N >= 10), E epochs of Adam over random crops of :data:`CROP_ROWS` rows (full width) in
batches of :data:`BATCH_SIZE`, weighted cross-entropy (lesion weighted up: it covers well
under 1 % of the pixels). Deterministic for a seed on CPU: the numpy generators, the torch
seed and ``torch.use_deterministic_algorithms(True)``, one torch thread by default.

The weights are written with ``torch.save`` as ``{"state_dict", "meta"}`` (tensors and plain
values only, loadable with ``weights_only=True``), atomically, with the file's SHA-256 in a
``.sha256`` file beside it (``<hex>  <name>``). This is the only place models writes a file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.cnn_data import Sample, generate_samples
from octoscan.models.cnn_model import (
    CHANNELS,
    CLASSES,
    IGNORE_INDEX,
    MODEL_SPACING_MM,
    PAD_MULTIPLE,
    build_unet,
    count_parameters,
    import_torch,
)
from octoscan.models.config import load_config

CROP_ROWS = 128
BATCH_SIZE = 8
LEARNING_RATE = 2e-3
CLASS_WEIGHTS: tuple[float, ...] = (0.5, 1.0, 2.0, 2.0, 2.0, 1.0, 10.0)
WEIGHTS_FORMAT = "octoscan-planar-cnn/1"


@dataclass(frozen=True)
class TrainReport:
    """What a training run did: sizes, time (s), losses per epoch, validation Dice per class
    (None for a class absent from the validation set or without a validation set)."""

    out_path: str
    sha256: str
    n_train: int
    n_validation: int
    epochs: int
    seed: int
    n_parameters: int
    generate_seconds: float
    train_seconds: float
    losses: tuple[float, ...]
    validation_dice: dict[str, float | None]


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # weights are package data: world-readable like the sources
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _batch(
    samples: Sequence[Sample], rng: np.random.Generator, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random CROP_ROWS-row crops, zero-padded to ``width`` columns: (N,1,H,W), (N,H,W)."""
    xs = np.zeros((len(samples), 1, CROP_ROWS, width), dtype=np.float32)
    ys = np.zeros((len(samples), CROP_ROWS, width), dtype=np.int64)
    for k, s in enumerate(samples):
        rows, cols = s.image.shape
        r0 = int(rng.integers(0, max(1, rows - CROP_ROWS + 1)))
        h = min(CROP_ROWS, rows - r0)
        xs[k, 0, :h, :cols] = s.image[r0 : r0 + h]
        ys[k, :h, :cols] = s.labels[r0 : r0 + h]
    return xs, ys


def dice_scores(pred: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Dice per class of predicted vs true class maps (ignored pixels left out)."""
    keep = labels != IGNORE_INDEX
    out: dict[str, float | None] = {}
    for c, name in enumerate(CLASSES):
        t = (labels == c) & keep
        p = (pred == c) & keep
        denom = int(t.sum()) + int(p.sum())
        out[name] = None if not t.any() else round(2.0 * int((t & p).sum()) / denom, 4)
    return out


def predict_classes(model: object, image: np.ndarray) -> np.ndarray:
    """Class map of a normalised 4.8 mm image with a torch model (eval mode, no grad)."""
    torch = import_torch()
    rows, cols = image.shape
    pr, pc = (-rows) % PAD_MULTIPLE, (-cols) % PAD_MULTIPLE
    x = np.pad(image, ((0, pr), (0, pc)))[None, None]
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x)))  # type: ignore[operator]
    return logits[0, :, :rows, :cols].argmax(0).numpy().astype(np.uint8)


def train(
    out_path: str | Path,
    *,
    generate: int,
    epochs: int,
    seed: int,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> TrainReport:
    """Train the planar CNN on ``generate`` phantom studies for ``epochs`` epochs.

    Writes ``out_path`` (state dict) and ``<out_path stem>.sha256`` beside it. Raises
    :class:`InvalidInputError` for counts out of range and
    :class:`~octoscan.imaging.errors.ModelUnavailableError` without torch.
    """
    if not 1 <= generate <= 100_000:
        raise InvalidInputError(
            f"--generate {generate} outside 1-100000 studies", code="invalid_option"
        )
    if not 1 <= epochs <= 10_000:
        raise InvalidInputError(f"--epochs {epochs} outside 1-10000", code="invalid_option")
    torch = import_torch()
    say = log or (lambda _msg: None)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)

    t0 = time.perf_counter()
    alignment = load_config("default").planar.alignment
    samples = generate_samples(generate, seed=seed, alignment=alignment)
    n_val = max(1, generate // 10) if generate >= 10 else 0
    train_set, val_set = samples[: generate - n_val], samples[generate - n_val :]
    gen_s = time.perf_counter() - t0
    say(f"generated {generate} phantom studies in {gen_s:.1f} s ({n_val} held out)")

    width = max(s.image.shape[1] for s in samples)
    width += (-width) % PAD_MULTIPLE
    model = build_unet()
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    steps_per_epoch = max(1, -(-len(train_set) // BATCH_SIZE))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(CLASS_WEIGHTS, dtype=torch.float32), ignore_index=IGNORE_INDEX
    )
    rng = np.random.default_rng([seed, 2024])
    losses: list[float] = []
    t1 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_set))
        total = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * BATCH_SIZE : (b + 1) * BATCH_SIZE]
            xs, ys = _batch([train_set[i] for i in idx], rng, width)
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(xs)), torch.from_numpy(ys))
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.item())
        losses.append(round(total / steps_per_epoch, 5))
        say(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - t1:.0f} s)")
    train_s = time.perf_counter() - t1

    model.eval()
    dice: dict[str, float | None] = {name: None for name in CLASSES}
    if val_set:
        preds = np.concatenate([predict_classes(model, s.image).ravel() for s in val_set])
        truth = np.concatenate([s.labels.ravel() for s in val_set])
        dice = dice_scores(preds, truth)
    meta = {
        "format": WEIGHTS_FORMAT,
        "classes": list(CLASSES),
        "channels": list(CHANNELS),
        "spacing_mm": MODEL_SPACING_MM,
        "seed": seed,
        "generate": generate,
        "epochs": epochs,
    }
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()  # saved in memory: the archive name must not depend on a temp name
    torch.save({"state_dict": state, "meta": meta}, buffer)
    _atomic_write_bytes(out, buffer.getvalue())
    digest = sha256_of(out)
    _atomic_write_bytes(out.with_suffix(".sha256"), f"{digest}  {out.name}\n".encode())
    say(f"wrote {out} (sha256 {digest[:12]}...), validation Dice {dice}")
    return TrainReport(
        out_path=str(out),
        sha256=digest,
        n_train=len(train_set),
        n_validation=len(val_set),
        epochs=epochs,
        seed=seed,
        n_parameters=count_parameters(model),
        generate_seconds=round(gen_s, 2),
        train_seconds=round(train_s, 2),
        losses=tuple(losses),
        validation_dice=dice,
    )

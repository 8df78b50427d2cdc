"""The batch pipeline: every study under a folder, scored in parallel, resumable, crash-safe.

:func:`run_batch` discovers the studies under INPUT, runs one task per study on an executor
(:mod:`octoscan.pipelines.executors`) and writes, in the output folder DIR:

* ``DIR/<study key>/result.json`` (scored) or ``error.json`` (failed), then ``manifest.json``
  (:mod:`octoscan.pipelines.resume`); the study key is a hash of the StudyInstanceUID, so no
  DICOM value reaches a path;
* ``DIR/results.csv``, ``DIR/lesions.csv``, ``DIR/failed.json`` and ``DIR/batch.json``
  (:mod:`octoscan.pipelines.outputs`), rows sorted by study key.

Who writes what: a worker hashes its study's input files, scores the study and returns the
study's files as bytes (:class:`StudyReport`); the parent process alone writes into DIR, each
file atomically, so workers need no access to DIR (on Dask, only the inputs must be shared).

Resume: with ``resume=True`` a study whose folder holds a complete manifest for this run's
config, options and octoscan version has its input files hashed by the parent (threads;
hashing is I/O-bound and releases the GIL); when the digest matches the manifest the outputs
are kept and nothing is scored ("unchanged"), otherwise the study goes to the executor with
the digest. No worker pool is started when nothing needs work. Failed studies are reused the
same way, except failures a re-run may cure (code ``internal``, ``worker_crashed``,
``unreadable_input``): they get no manifest and are always redone. Temp files of a killed
run are removed first. The output folder is locked (``fcntl.flock``) during the run, so two
batches never write into one folder at once; the lock dies with its process.

Nothing time-dependent is written into result files: a batch killed with SIGKILL at any
moment and re-run gives byte-identical files to an uninterrupted run. The batch tables are
written at the end of each run and list the studies found under INPUT in that run; a killed
run leaves the tables of the previous complete run (or none), and the folders of studies no
longer under INPUT are left in place, unlisted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError, OctoscanError
from octoscan.imaging.types import SeriesEntry, SkippedFile
from octoscan.models.config import ScoringConfig, config_hash
from octoscan.pipelines.atomic import TEMP_PREFIX, dumps_json, write_json_atomic
from octoscan.pipelines.dicom_results import (
    DICOM_DIR_NAME,
    VolumeFindings,
    render_dicom_results,
    write_dicom_files,
)
from octoscan.pipelines.executors import (
    LocalProcessExecutor,
    SerialExecutor,
    StudyExecutor,
    WorkerCrashedError,
    default_workers,
)
from octoscan.pipelines.identity import STUDY_KEY_LENGTH, load_pseudonym_key, study_key
from octoscan.pipelines.outputs import (
    BATCH_JSON,
    ERROR_NAME,
    FAILED_JSON,
    LESIONS_COLUMNS,
    LESIONS_CSV,
    RESULT_NAME,
    RESULTS_COLUMNS,
    RESULTS_CSV,
    STUDY_OUTPUT_NAMES,
    error_record,
    failed_record,
    lesion_rows,
    render_study_files,
    results_row,
    write_csv_atomic,
)
from octoscan.pipelines.progress import Progress
from octoscan.pipelines.report import (
    OVERLAY_PREFIX,
    OVERLAY_SUFFIX,
    build_report,
    render_overlay_pngs,
)
from octoscan.pipelines.resume import (
    MANIFEST_NAME,
    InputDigest,
    RunFingerprint,
    StudyManifest,
    commit_study_files,
    complete_manifest,
    digest_inputs,
    run_fingerprint,
)
from octoscan.pipelines.study import (
    StudyOptions,
    StudyOutcome,
    octoscan_version,
    process_study,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "INTERNAL",
    "LOCK_NAME",
    "STUDY_KEY_COLLISION",
    "UNREADABLE_INPUT",
    "WORKER_CRASHED",
    "BatchSetupError",
    "BatchSummary",
    "StudyRecord",
    "StudyReport",
    "StudyTask",
    "check_batch_paths",
    "run_batch",
    "run_study_task",
]

_LOG = logging.getLogger(__name__)

LOCK_NAME = ".octoscan-lock"
INTERNAL = "internal"
WORKER_CRASHED = "worker_crashed"
UNREADABLE_INPUT = "unreadable_input"
STUDY_KEY_COLLISION = "study_key_collision"
_NOT_REUSED_CODES = frozenset({INTERNAL, WORKER_CRASHED, UNREADABLE_INPUT})
# Per-study outputs a study folder may hold (stale ones are removed on commit).
_KNOWN_OUTPUTS: tuple[str, ...] = (*STUDY_OUTPUT_NAMES, f"{OVERLAY_PREFIX}*{OVERLAY_SUFFIX}")
_STUDY_DIR = re.compile(f"[0-9a-f]{{{STUDY_KEY_LENGTH}}}")


class BatchSetupError(InvalidInputError):
    """A batch that cannot start (bad INPUT or DIR, DIR in use): a usage error, exit 2."""

    default_code = "invalid_option"


# --------------------------------------------------------------------------- paths and lock


def check_batch_paths(input_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Check INPUT and DIR of a batch; returns them as given (not resolved).

    Raises :class:`BatchSetupError`: code ``not_found`` when INPUT is not a folder,
    ``invalid_option`` when DIR is INPUT or inside it (outputs would be re-read as inputs and
    INPUT would be modified) or exists as a file.
    """
    input_path = Path(input_dir)
    out_path = Path(out_dir)
    if not input_path.is_dir():
        raise BatchSetupError(
            "INPUT is not a folder; expected a folder of DICOM studies",
            code="not_found",
            path=input_path,
        )
    if out_path.exists() and not out_path.is_dir():
        raise BatchSetupError(
            "--out exists and is not a folder; expected a new or existing output folder",
            path=out_path,
        )
    input_real = input_path.resolve()
    out_real = out_path.resolve()
    if out_real == input_real or input_real in out_real.parents:
        raise BatchSetupError(
            f"--out {out_path} is inside INPUT {input_path}: octoscan never writes into its "
            "input folder; choose an output folder outside it",
            path=out_path,
        )
    return input_path, out_path


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` for the duration of a batch."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchSetupError(
                "another octoscan batch is writing to this output folder; wait for it to "
                "finish or choose another --out",
                code="output_locked",
                path=out_dir,
            ) from None
        yield
    finally:
        os.close(fd)


def _remove_stale_temp_files(out_dir: Path) -> int:
    """Delete temp files of a killed run: in ``out_dir``, its study folders and their
    ``dicom/`` folders only.

    Not recursive beyond that, so nothing else under DIR (for example an INPUT folder
    placed inside DIR) is touched. Returns the number removed.
    """
    studies = [p for p in out_dir.iterdir() if _STUDY_DIR.fullmatch(p.name)]
    folders = [out_dir, *studies, *(p / DICOM_DIR_NAME for p in studies)]
    removed = 0
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in folder.glob(f"{TEMP_PREFIX}*"):
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class StudyTask:
    """One study to process (picklable: sent to a worker process or Dask worker).

    ``inputs``: the digest of the input files when the parent already computed it (it does
    so for studies with outputs of an earlier run, to see whether they changed); None lets
    the worker hash them.
    """

    study_key: str
    study_instance_uid: str
    series: tuple[SeriesEntry, ...]
    input_root: str
    config: ScoringConfig
    options: StudyOptions
    inputs: InputDigest | None = None

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for s in self.series for f in s.files)


@dataclass(frozen=True)
class StudyReport:
    """What a worker returns for one study.

    ``status``: "ok" or "failed". ``files`` maps output names to bytes; ``inputs`` is None
    when the inputs could not be hashed. ``seconds`` is the worker's wall time and
    ``cpu_seconds`` its CPU time for the study (hashing, scoring and rendering the output
    files included).
    """

    study_key: str
    status: str
    seconds: float
    inputs: InputDigest | None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_reason: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    dicom_files: dict[str, bytes] | None = None
    cpu_seconds: float = 0.0


def run_study_task(task: StudyTask) -> StudyReport:
    """Hash the inputs (unless given), then score the study. Never raises for bad input."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    inputs = task.inputs
    if inputs is None:
        try:
            inputs = digest_inputs(task.files, task.input_root)
        except OSError as exc:
            reason = f"cannot read an input file of the study: {exc}"
            record = error_record(task.study_key, UNREADABLE_INPUT, reason)
            return StudyReport(
                study_key=task.study_key,
                status="failed",
                seconds=time.perf_counter() - t0,
                inputs=None,
                error_code=UNREADABLE_INPUT,
                error_reason=reason,
                files={ERROR_NAME: dumps_json(record).encode("utf-8")},
                cpu_seconds=time.process_time() - cpu0,
            )
    outcome = process_study(task.series, task.config, task.options)
    dicom_files = _dicom_files(outcome, task)  # first: it may add a warning to the result
    files = _study_files(outcome, show_phi=task.options.show_phi)
    return StudyReport(
        study_key=task.study_key,
        status=outcome.status,
        seconds=time.perf_counter() - t0,
        inputs=inputs,
        result=outcome.result,
        error_code=outcome.error_code,
        error_reason=outcome.error_reason,
        dicom_files=dicom_files,
        files=files,
        cpu_seconds=time.process_time() - cpu0,
    )


def _volume_findings(outcome: StudyOutcome) -> tuple[VolumeFindings, ...]:
    """The tomographic findings of an outcome for its DICOM results (none without SPECT/PET)."""
    tomo, volume = outcome.tomo, outcome.tomo_volume
    if tomo is None or volume is None:
        return ()
    decision = outcome.decision if outcome.decision is not None else tomo.decision
    return (
        VolumeFindings(
            volume,
            tomo.lesions,
            tomo.references,
            decision,
            tomo.config_name,
            tomo.warnings,
            ct=outcome.ct_volume,
        ),
    )


def _dicom_files(outcome: StudyOutcome, task: StudyTask) -> dict[str, bytes] | None:
    """The study's DICOM results (SR, SEG, SC) as bytes; None when not asked for.

    A failure here does not fail the study: it is logged and added to the result's
    warnings (which is why this runs before result.json is rendered).
    """
    if not task.options.dicom_out or outcome.status != "ok" or outcome.result is None:
        return None
    try:
        return render_dicom_results(
            outcome,
            config_hash=config_hash(task.config),
            pseudonymise=task.options.pseudonymise,
            pseudonym_key=task.options.pseudonym_key,
            volumes=_volume_findings(outcome),
        )
    except (OctoscanError, ValueError) as exc:
        code = getattr(exc, "code", "dicom_results_failed")
        _LOG.warning("study %s: DICOM results not written [%s]: %s", task.study_key, code, exc)
        outcome.result["warnings"].append(f"DICOM results not written [{code}]: {exc}")
        return {}


def _study_files(outcome: StudyOutcome, *, show_phi: bool) -> dict[str, bytes]:
    """result.json / error.json plus, for a scored study, its overlay PNGs."""
    files = render_study_files(outcome)
    if outcome.status == "ok":
        files.update(render_overlay_pngs(outcome, show_phi=show_phi))
    return files


# --------------------------------------------------------------------------- parent side


@dataclass(frozen=True)
class StudyRecord:
    """One study of a finished batch, as the CSV files give it.

    ``status`` is "ok" or "failed"; ``reused`` tells that the outputs of an earlier run were
    kept (no scoring this run). ``seconds`` and ``cpu_seconds``: wall and CPU time spent on
    the study in this run (for a reused study: hashing its inputs; CPU time 0).
    ``results_row`` and ``lesion_rows`` are the CSV rows (text).
    """

    study_key: str
    status: str
    reused: bool
    seconds: float
    decision: str | None
    error_code: str | None
    error_reason: str | None
    results_row: dict[str, str]
    lesion_rows: tuple[dict[str, str], ...] = ()
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class BatchSummary:
    """Counts and records of one batch run.

    ``n_scored``: studies processed this run (ok or failed); ``n_unchanged``: studies whose
    complete outputs were reused. ``seconds`` is the run's wall time.
    """

    input_dir: str
    out_dir: str
    executor: str
    records: tuple[StudyRecord, ...]
    skipped_files: tuple[SkippedFile, ...]
    n_non_dicom: int
    n_temp_removed: int
    seconds: float

    @property
    def n_studies(self) -> int:
        return len(self.records)

    @property
    def n_ok(self) -> int:
        return sum(1 for r in self.records if r.status == "ok")

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.records if r.status == "failed")

    @property
    def n_unchanged(self) -> int:
        return sum(1 for r in self.records if r.reused)

    @property
    def n_scored(self) -> int:
        return self.n_studies - self.n_unchanged

    @property
    def n_skipped_files(self) -> int:
        return len(self.skipped_files)

    @property
    def studies_per_minute(self) -> float:
        """Studies finished (scored or reused) per minute of wall time."""
        return self.n_studies / self.seconds * 60.0 if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every study is ok, 1 when any failed (skipped files do not count)."""
        return 1 if self.n_failed else 0

    def decisions(self) -> dict[str, int]:
        return dict(sorted(Counter(r.decision for r in self.records if r.decision).items()))

    def format(self) -> str:
        """A short human-readable summary (no patient identifiers)."""
        lines = [
            f"octoscan run: {self.n_studies} studies: {self.n_ok} ok, {self.n_failed} failed "
            f"({self.n_scored} processed, {self.n_unchanged} unchanged from an earlier run)",
            "  decisions: "
            + (", ".join(f"{k} {v}" for k, v in self.decisions().items()) or "none"),
            f"  skipped files: {self.n_skipped_files} (see {FAILED_JSON}); non-DICOM files "
            f"ignored: {self.n_non_dicom}",
            f"  {self.seconds:.1f} s, {self.studies_per_minute:.1f} studies/min "
            f"({self.executor}) -> {self.out_dir}",
        ]
        for r in self.records:
            if r.status == "failed":
                lines.append(f"  FAILED {r.study_key} [{r.error_code}] {r.error_reason}")
        return "\n".join(lines)


def _record_from_result(
    key: str, result: dict[str, Any], *, reused: bool, seconds: float
) -> StudyRecord:
    return StudyRecord(
        study_key=key,
        status="ok",
        reused=reused,
        seconds=seconds,
        decision=result.get("decision", {}).get("status"),
        error_code=None,
        error_reason=None,
        results_row=results_row(study_key=key, status="ok", result=result),
        lesion_rows=tuple(lesion_rows(key, result)),
    )


def _failed_record(
    key: str, code: str, reason: str, *, reused: bool, seconds: float
) -> StudyRecord:
    return StudyRecord(
        study_key=key,
        status="failed",
        reused=reused,
        seconds=seconds,
        decision=None,
        error_code=code,
        error_reason=reason,
        results_row=results_row(
            study_key=key, status="failed", result=None, error_code=code, error_reason=reason
        ),
    )


def _reused_record(study_dir: Path, key: str, status: str, seconds: float) -> StudyRecord:
    """The record of a study whose outputs of an earlier run are kept."""
    if status == "ok":
        result = json.loads((study_dir / RESULT_NAME).read_text(encoding="utf-8"))
        return _record_from_result(key, result, reused=True, seconds=seconds)
    error = json.loads((study_dir / ERROR_NAME).read_text(encoding="utf-8"))
    return _failed_record(
        key, str(error["error_code"]), str(error["error_reason"]), reused=True, seconds=seconds
    )


def _commit(
    out_dir: Path, task: StudyTask, outcome: StudyReport | BaseException, run: RunFingerprint
) -> StudyRecord:
    """Write one study's files (parent side) and return its record."""
    key = task.study_key
    study_dir = out_dir / key
    if isinstance(outcome, BaseException):
        code = WORKER_CRASHED if isinstance(outcome, WorkerCrashedError) else INTERNAL
        reason = f"{type(outcome).__name__}: {outcome}"
        _LOG.error("study %s: the worker failed [%s]: %s", key, code, reason)
        files = {ERROR_NAME: dumps_json(error_record(key, code, reason)).encode("utf-8")}
        commit_study_files(
            study_dir,
            files,
            known_outputs=_KNOWN_OUTPUTS,
            study_key=key,
            status="failed",
            inputs=None,
            run=run,
        )
        return _failed_record(key, code, reason, reused=False, seconds=0.0)
    status = "ok" if outcome.status == "ok" and outcome.result is not None else "failed"
    code = outcome.error_code or (None if status == "ok" else INTERNAL)
    (study_dir / MANIFEST_NAME).unlink(missing_ok=True)  # incomplete until committed
    if outcome.dicom_files is not None or status != "ok":
        write_dicom_files(study_dir, outcome.dicom_files or {})
    keep_manifest = status == "ok" or code not in _NOT_REUSED_CODES
    commit_study_files(
        study_dir,
        outcome.files,
        known_outputs=_KNOWN_OUTPUTS,
        study_key=key,
        status=status,
        inputs=outcome.inputs if keep_manifest else None,
        run=run,
    )
    if status == "ok" and outcome.result is not None:
        record = _record_from_result(key, outcome.result, reused=False, seconds=outcome.seconds)
    else:
        record = _failed_record(
            key,
            code or INTERNAL,
            outcome.error_reason or "",
            reused=False,
            seconds=outcome.seconds,
        )
    return dataclasses.replace(record, cpu_seconds=outcome.cpu_seconds)


def _plan(
    studies: dict[str, list[SeriesEntry]],
) -> tuple[list[tuple[str, str, tuple[SeriesEntry, ...]]], list[StudyRecord]]:
    """(key, uid, series) per study sorted by key; studies whose keys collide fail."""
    by_key: dict[str, list[str]] = {}
    for uid in studies:
        by_key.setdefault(study_key(uid), []).append(uid)
    planned = []
    collided = []
    for key in sorted(by_key):
        uids = by_key[key]
        if len(uids) == 1:
            planned.append((key, uids[0], tuple(studies[uids[0]])))
            continue
        reason = (
            f"{len(uids)} studies share the study key {key} (a hash of the "
            "StudyInstanceUID): none of them is written; score them in separate batches"
        )
        _LOG.error("study key collision: %s", reason)
        collided.append(_failed_record(key, STUDY_KEY_COLLISION, reason, reused=False, seconds=0.0))
    return planned, collided


def _log_study(record: StudyRecord) -> None:
    what = f"ok {record.decision}" if record.status == "ok" else f"failed [{record.error_code}]"
    if record.reused:
        what += " (unchanged)"
    _LOG.info("study %s %s %.2f s", record.study_key, what, record.seconds)
    if record.status == "failed":
        _LOG.debug("study %s failure reason: %s", record.study_key, record.error_reason)
    else:
        _LOG.debug(
            "study %s: %s lesion(s), %s warning(s)",
            record.study_key,
            record.results_row.get("n_lesions"),
            record.results_row.get("n_warnings"),
        )


def _report(record: StudyRecord, bar: Progress | None) -> None:
    """Log one finished study and count it on the progress display."""
    if bar is not None and _LOG.isEnabledFor(logging.INFO):
        bar.clear()
    _log_study(record)
    if bar is not None:
        bar.update("unchanged" if record.reused else record.status)


def _digest_or_none(task: StudyTask) -> tuple[InputDigest | None, float]:
    """(digest of the task's inputs or None when unreadable, seconds taken)."""
    t0 = time.perf_counter()
    try:
        digest = digest_inputs(task.files, task.input_root)
    except OSError:
        digest = None  # the worker tries again and records the failure
    return digest, time.perf_counter() - t0


def _sort_out_unchanged(
    out_dir: Path,
    input_dir: Path,
    planned: Sequence[tuple[str, str, tuple[SeriesEntry, ...]]],
    config: ScoringConfig,
    options: StudyOptions,
    run: RunFingerprint,
    *,
    resume: bool,
    threads: int,
) -> Iterator[tuple[StudyTask, StudyRecord | None]]:
    """Each study as a task, with its record when complete outputs are reused (else None)."""
    fresh: list[StudyTask] = []
    candidates: list[tuple[StudyTask, StudyManifest]] = []
    for key, uid, series in planned:
        task = StudyTask(
            study_key=key,
            study_instance_uid=uid,
            series=series,
            input_root=str(input_dir),
            config=config,
            options=options,
        )
        manifest = complete_manifest(out_dir / key, key, run) if resume else None
        if manifest is None:
            fresh.append(task)
        else:
            candidates.append((task, manifest))
    if candidates:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(candidates)))) as pool:
            digests = pool.map(lambda pair: _digest_or_none(pair[0]), candidates)
            for (task, manifest), (digest, seconds) in zip(candidates, digests, strict=True):
                if digest is not None and digest == manifest.inputs:
                    try:
                        record = _reused_record(
                            out_dir / task.study_key, task.study_key, manifest.status, seconds
                        )
                    except (OSError, ValueError, KeyError) as exc:
                        _LOG.warning(
                            "study %s: earlier outputs unreadable (%s); redone", task.study_key, exc
                        )
                    else:
                        yield task, record
                        continue
                yield dataclasses.replace(task, inputs=digest), None
    for task in fresh:
        yield task, None


def _write_batch_files(
    out_dir: Path,
    input_dir: Path,
    records: Sequence[StudyRecord],
    skipped: Sequence[SkippedFile],
    n_non_dicom: int,
    config: ScoringConfig,
    options: StudyOptions,
) -> None:
    ordered = sorted(records, key=lambda r: r.study_key)
    write_csv_atomic(out_dir / RESULTS_CSV, RESULTS_COLUMNS, (r.results_row for r in ordered))
    write_csv_atomic(
        out_dir / LESIONS_CSV, LESIONS_COLUMNS, (row for r in ordered for row in r.lesion_rows)
    )
    failed = [
        {
            "study_key": r.study_key,
            "error_code": r.error_code or INTERNAL,
            "error_reason": r.error_reason or "",
        }
        for r in ordered
        if r.status == "failed"
    ]
    write_json_atomic(
        out_dir / FAILED_JSON,
        failed_record(failed, skipped, input_root=input_dir, n_non_dicom=n_non_dicom),
    )
    decisions = Counter(r.decision for r in ordered if r.decision)
    write_json_atomic(
        out_dir / BATCH_JSON,
        {
            "octoscan_version": octoscan_version(),
            "config_name": config.name,
            "config_hash": config_hash(config),
            "options": {"assume_sstr": options.assume_sstr, "show_phi": options.show_phi},
            "n_studies": len(ordered),
            "n_ok": sum(1 for r in ordered if r.status == "ok"),
            "n_failed": len(failed),
            "decisions": dict(sorted(decisions.items())),
            "n_skipped_files": len(skipped),
            "n_non_dicom_files": n_non_dicom,
            "study_keys": [r.study_key for r in ordered],
        },
    )


def run_batch(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    config: ScoringConfig,
    options: StudyOptions | None = None,
    workers: int | None = None,
    resume: bool = True,
    executor: StudyExecutor | None = None,
    progress: Progress | bool = False,
) -> BatchSummary:
    """Score every study under ``input_dir`` into ``out_dir``; see the module docstring.

    ``options`` None: default options with the pseudonym key of ``out_dir``
    (:func:`octoscan.pipelines.identity.load_pseudonym_key`). ``executor`` None: serial for
    ``workers == 1``, else a local process pool of ``workers`` processes (default: the number
    of CPUs, at most one per study); a given executor is used as is and not closed.
    ``progress``: True draws a :class:`Progress` on stderr, or pass one. Raises
    :class:`BatchSetupError` (nothing written) for a bad INPUT/DIR or a DIR in use; every
    per-study problem is recorded, never raised.
    """
    t0 = time.perf_counter()
    input_path, out_path = check_batch_paths(input_dir, out_dir)
    if workers is not None and workers < 1:
        raise BatchSetupError(f"workers {workers}: expected 1 or more worker processes")
    out_path.mkdir(parents=True, exist_ok=True)
    with _locked(out_path):
        if options is None:
            options = StudyOptions(pseudonym_key=load_pseudonym_key(out_path))
        n_removed = _remove_stale_temp_files(out_path)
        if n_removed:
            _LOG.info("removed %d temp file(s) left by an interrupted run", n_removed)
        index = discover(input_path)
        planned, records = _plan(index.studies())
        run = run_fingerprint(config, options)
        bar = Progress(len(planned)) if progress is True else (progress or None)
        n_threads = default_workers() if workers is None else workers
        tasks = []
        for task, reused in _sort_out_unchanged(
            out_path,
            input_path,
            planned,
            config,
            options,
            run,
            resume=resume,
            threads=n_threads,
        ):
            if reused is None:
                tasks.append(task)
                continue
            records.append(reused)
            _report(reused, bar)
        _LOG.info(
            "%d stud%s found under INPUT (%d unchanged, %d to process; %d file(s) skipped, "
            "%d non-DICOM)",
            len(planned),
            "y" if len(planned) == 1 else "ies",
            len(planned) - len(tasks),
            len(tasks),
            len(index.skipped),
            index.n_non_dicom,
        )
        description = "nothing to process"
        if tasks:
            own_executor = executor is None
            if executor is None:
                n = min(n_threads, len(tasks))
                executor = SerialExecutor() if n == 1 else LocalProcessExecutor(n)
            try:
                for task, outcome in executor.map_unordered(run_study_task, tasks):
                    record = _commit(out_path, task, outcome, run)
                    records.append(record)
                    _report(record, bar)
                description = executor.describe()
            finally:
                if own_executor:
                    executor.close()
        if bar is not None:
            bar.close()
        _write_batch_files(
            out_path, input_path, records, index.skipped, index.n_non_dicom, config, options
        )
        build_report(out_path, show_phi=options.show_phi)
    summary = BatchSummary(
        input_dir=str(input_path),
        out_dir=str(out_path),
        executor=description,
        records=tuple(sorted(records, key=lambda r: r.study_key)),
        skipped_files=index.skipped,
        n_non_dicom=index.n_non_dicom,
        n_temp_removed=n_removed,
        seconds=time.perf_counter() - t0,
    )
    _LOG.info(
        "batch done: %d ok, %d failed, %d unchanged, %d file(s) skipped, %.1f s, %.1f studies/min",
        summary.n_ok,
        summary.n_failed,
        summary.n_unchanged,
        summary.n_skipped_files,
        summary.seconds,
        summary.studies_per_minute,
    )
    return summary

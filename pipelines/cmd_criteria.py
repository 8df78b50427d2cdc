"""``octoscan criteria check FILE``: validate a clinical file and show each row's verdicts.

Every problem is reported with its row and field (on stderr); every valid row is judged
against the rule set's clinical criteria (``--config``, default ``default``) and printed with
one line per criterion. Rows are named by their place in the file and, for rows keyed by
study, by the study key (a hash): no PatientID or UID is printed. Exit 0 when every row is
valid, 1 when any row or the header has a problem (or the file cannot be read), 2 for a
configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from octoscan.models.clinical import ClinicalRecord
from octoscan.models.config import ClinicalConfig, available_configs, load_config
from octoscan.models.criteria import describe_limit, evaluate_criteria, summarize_criteria
from octoscan.pipelines.clinical_io import check_clinical_file
from octoscan.pipelines.identity import study_key

_NAME_WIDTH = 22


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("criteria", help="validate a clinical file against a rule set")
    csub = p.add_subparsers(dest="criteria_command", metavar="ACTION", required=True)
    check = csub.add_parser(
        "check",
        help="validate a clinical file (CSV or JSON) and print each row's criteria verdicts",
        description=(
            "Validate FILE (one row per patient or study, keyed by study_instance_uid or "
            "patient_id) and print the verdict of every clinical criterion of the rule set for "
            "each valid row. Problems are named with row and field. Exit 0 when every row is "
            "valid, 1 otherwise, 2 for a configuration error."
        ),
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument(
        "--config",
        default="default",
        help=f"rule set name ({', '.join(available_configs())}) or TOML file",
    )
    check.set_defaults(func=run_check)


def format_criteria(clinical: ClinicalConfig) -> list[str]:
    """The criteria of a rule set, one line each with unit and limits, then the source."""
    lines = []
    for name, criterion in clinical.items():
        if not criterion.enabled:
            lines.append(f"{name:<{_NAME_WIDTH}} (not part of this rule set)")
            continue
        lines.append(f"{name:<{_NAME_WIDTH}} {describe_limit(criterion)} [{criterion.unit}]")
        lines.append(f"{'':<{_NAME_WIDTH}} source: {criterion.source}")
    return lines


def _row_name(record: ClinicalRecord) -> str:
    if record.study_instance_uid is not None:
        return f"{record.row} (study {study_key(record.study_instance_uid)})"
    return f"{record.row} (patient row)"


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    check = check_clinical_file(args.file)
    n_bad_rows = len({p.row for p in check.problems if p.row != "header"})
    print(
        f"clinical file {args.file}: {check.n_rows} row(s), {len(check.records)} valid, "
        f"{n_bad_rows} with problems (sha256 {check.sha256[:16]})"
    )
    print(f"rule set {config.name} ({config.source})")
    for record in check.records:
        results = evaluate_criteria(record, config.clinical)
        counts = Counter(r.verdict for r in results)
        print(
            f"{_row_name(record)}: clinical {summarize_criteria(results)} "
            f"(pass {counts['pass']}, review {counts['review']}, fail {counts['fail']}, "
            f"not assessed {counts['not_assessed']})"
        )
        for r in results:
            print(f"  {r.name:<{_NAME_WIDTH}} {r.verdict:<13} {r.reason}")
    for problem in check.problems:
        print(f"octoscan criteria: {args.file}: {problem}", file=sys.stderr)
    if check.problems:
        print(
            f"octoscan criteria: {len(check.problems)} problem(s); the file is not valid",
            file=sys.stderr,
        )
        return 1
    return 0

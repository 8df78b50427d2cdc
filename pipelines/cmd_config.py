"""``octoscan config show [FILE]``: print the resolved, validated configuration.

The JSON body is followed by the rule set's clinical criteria in words (``#`` lines).
"""

from __future__ import annotations

import argparse

from octoscan.models.config import available_configs, config_hash, config_to_dict, load_config
from octoscan.pipelines.atomic import dumps_json
from octoscan.pipelines.cmd_criteria import format_criteria


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("config", help="show and validate a rule set")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="print the resolved configuration (validates it)")
    show.add_argument(
        "file",
        nargs="?",
        default="default",
        help=f"rule set name ({', '.join(available_configs())}) or TOML file",
    )
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    body = config_to_dict(cfg)
    print(f"# rule set {cfg.name} from {cfg.source}  (hash {config_hash(cfg)})")
    print(dumps_json(body), end="")
    print(f"# clinical criteria of rule set {cfg.name} (a missing value is not assessed):")
    for line in format_criteria(cfg.clinical):
        print(f"#   {line}")
    return 0

"""Plain-text tables printed by the CLI (no patient identifiers)."""

from __future__ import annotations

from typing import Any


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _ci(ci: list[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "-"
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def format_result(result: dict[str, Any]) -> str:
    """A per-lesion table, the references and the decision of one result.json."""
    lines = [
        f"study {result['study_key']}  tracer {result['tracer']['name']}  "
        f"{_fmt(result['hours_post_injection'], '.1f')} h p.i.  "
        f"views {'+'.join(result['provenance'].get('views_used', []))}"
    ]
    for organ, ref in sorted(result["references"].items()):
        usable = "" if ref.get("usable", True) else "  (NOT USABLE)"
        lines.append(f"  reference {organ:<7} mean {_fmt(ref['mean'], '.1f')}{usable}")
    header = (
        f"  {'id':>3}  {'grade':>5}  {'border':>6}  {'ratio/liver':>11}  {'95% CI':>14}  "
        f"{'ratio/spleen':>12}  {'95% CI':>14}  {'diam mm':>7}  region"
    )
    lines.append(header)
    for les in result["lesions"]:
        lines.append(
            f"  {les['id']:>3}  {les['grade']:>5}  {'yes' if les['borderline'] else 'no':>6}  "
            f"{_fmt(les['ratio_liver']):>11}  {_ci(les['ratio_liver_ci']):>14}  "
            f"{_fmt(les['ratio_spleen']):>12}  {_ci(les['ratio_spleen_ci']):>14}  "
            f"{_fmt(les['diameter_mm'], '.0f'):>7}  {les['region']}"
        )
    if not result["lesions"]:
        lines.append("  (no lesion found)")
    dec = result["decision"]
    lines.append(f"decision: {dec['status'].upper()}  (rule set {dec['rule_set']})")
    lines.extend(f"  - {r}" for r in dec["reasons"])
    if result["warnings"]:
        lines.append("warnings:")
        lines.extend(f"  - {w}" for w in result["warnings"])
    return "\n".join(lines)

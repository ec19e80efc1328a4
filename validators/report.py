"""The chain's report: counts per validator and rule, examples, the most doubtful accepted records."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from core.records import Record
from core.task_spec import Task

EXAMPLES = 3


def _rule(verdict: Any) -> str:
    return str(verdict.details.get("rule") or verdict.reason.split(":")[0] or "failed")


def _clip(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def build_report(task: Task, records: list[Record], order: list[str], *, checked: dict[str, int],
                 skipped: dict[str, str], references: list[Record]) -> dict[str, Any]:
    accepted = [r for r in records if r.passed]
    per: dict[str, dict[str, Any]] = {}
    examples: dict[tuple[str, str], list[dict]] = defaultdict(list)
    first_failure: Counter[str] = Counter()
    for name in order:
        per[name] = {"checked": checked.get(name, 0), "passed": 0, "failed": 0, "rules": {}}
        if name in skipped:
            per[name]["skipped"] = skipped[name]
    for rec in records:
        failed = [v for v in rec.verdicts if not v.passed]
        if failed:
            first_failure[failed[0].name] += 1
        for v in rec.verdicts:
            if v.name not in per:
                continue
            stats = per[v.name]
            stats["passed" if v.passed else "failed"] += 1
            if v.details.get("abstained"):  # passed without judging (e.g. a model no better than chance)
                stats["abstained"] = stats.get("abstained", 0) + 1
                stats.setdefault("abstained_because", v.reason)
            if not v.passed:
                rule = _rule(v)
                stats["rules"][rule] = stats["rules"].get(rule, 0) + 1
                if len(examples[(v.name, rule)]) < EXAMPLES:
                    examples[(v.name, rule)].append({"id": rec.id, "text": _clip(rec.text), "reason": v.reason})
    for name, stats in per.items():
        stats["examples"] = {rule: examples[(name, rule)] for rule in stats["rules"]}
    doubtful = sorted(accepted, key=lambda r: -r.meta.get("doubt", 0.0))[:5]
    return {
        "task": task.name,
        "records": len(records),
        "accepted": len(accepted),
        "rejected": len(records) - len(accepted),
        "references": {"total": len(references)},
        "validators": per,
        "rejected_first_by": dict(first_failure.most_common()),
        "most_doubtful": [{"id": r.id, "doubt": r.meta.get("doubt"), "text": _clip(r.text)} for r in doubtful],
    }


def render_markdown(report: dict[str, Any]) -> str:
    """A short human summary of `build_report`'s output."""
    lines = [f"# Validation report: {report['task']}", "",
             f"{report['records']} records: **{report['accepted']} accepted**, {report['rejected']} rejected "
             f"({report['references']['total']} reference records).", "",
             "| validator | checked | passed | failed | rules |", "|---|---:|---:|---:|---|"]
    for name, s in report["validators"].items():
        rules = ", ".join(f"{k} {v}" for k, v in sorted(s["rules"].items(), key=lambda kv: -kv[1]))
        if "skipped" in s:
            rules = f"skipped: {s['skipped']}"
        if s.get("abstained"):
            rules = f"abstained on {s['abstained']}: {s['abstained_because']}"
        lines.append(f"| {name} | {s['checked']} | {s['passed']} | {s['failed']} | {rules} |")
    lines.append("")
    for name, s in report["validators"].items():
        if s.get("usage"):  # a model-based check: what it cost
            u = s["usage"]
            cost = f", {u['cost_usd']:.6f} USD" if u.get("cost_usd") is not None else ""
            lines += [f"{name}: {u['records']} records on {u['model']}, {u['parsed']} parsed, {u['unparsed']} not; "
                      f"tokens {u['tokens']['prompt']} in / {u['tokens']['completion']} out{cost}", ""]
    for name, s in report["validators"].items():
        for rule, exs in s.get("examples", {}).items():
            lines.append(f"**{name} / {rule}**")
            lines.extend(f"- `{e['id']}` {e['reason']}: “{e['text']}”" for e in exs)
            lines.append("")
    if report["most_doubtful"]:
        lines.append("**Most doubtful accepted** (reviewed first)")
        lines.extend(f"- `{r['id']}` doubt {r['doubt']:.2f}: “{r['text']}”" for r in report["most_doubtful"])
    return "\n".join(lines).rstrip() + "\n"

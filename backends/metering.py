"""Tokens, calls, failures, seconds and dollars per stage of a run: one table for every model a run asks.

    stage = new_stage()                                   # a row: generation, self_consistency, judge, ...
    judge = MeteredBackend(backend, stage)                # every generate/score call is counted into the row
    table = merge_tables(previous_table, {"judge": stage})   # resumed runs add up
    usage = with_totals(table)                            # {"stages", "total", "prices"}: manifest.json's "usage"
    print(format_usage(usage))

A row: `model`, `backend`, `calls` (requests sent to an API, retries included; rows for a local model;
texts for an encoder), `failures` (rows that came back with an error), `prompt_tokens`,
`completion_tokens`, `texts` (embedded), `seconds`, `cost_usd` and `cost_sources` (how each call's cost
is known: `server` when the API reported it in `usage.cost`, `price_table`, `price_override`, `local`
for a model on this machine, `unpriced` for an API model missing from backends/pricing.py whose server
reported no cost). A row with unpriced calls has `cost_usd` None and a `cost_note` naming the model:
never a pretended $0. Token counts come from the backend's own counters where it keeps them (the
OpenAI-compatible backend: the server's `usage`), else from each completion.
"""

from __future__ import annotations

import time
from typing import Any

from backends import score_failure
from backends.pricing import PRICES_AS_OF

COUNTS = ("calls", "failures", "prompt_tokens", "completion_tokens", "texts")
_API_COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")


def new_stage(model: str | None = None, backend: str | None = None) -> dict[str, Any]:
    """An empty row of the usage table."""
    return {"model": model, "backend": backend, **dict.fromkeys(COUNTS, 0), "seconds": 0.0, "cost_usd": 0.0,
            "cost_sources": {}}


def _is_api(backend: Any) -> bool:
    return all(hasattr(backend, name) for name in (*_API_COUNTERS, "cost_sources"))


def snapshot(backend: Any) -> dict[str, Any]:
    """The backend's own counters now (what `record` subtracts afterwards)."""
    if _is_api(backend):
        return {**{name: getattr(backend, name) for name in _API_COUNTERS},
                "cost_sources": dict(backend.cost_sources)}
    return {"score_tokens": int(getattr(backend, "score_tokens", 0) or 0)}


def record(stage: dict[str, Any], backend: Any, before: dict[str, Any], *, rows: int, failures: int,
           seconds: float, tokens: tuple[int, int] | None = None, cost: float | None = None) -> None:
    """Add one call's usage to `stage`: the backend's counters since `before`, else `tokens` (prompt,
    completion) as the completions reported them, and `cost` where an API's spend is kept elsewhere
    (the run's ledger, for a Ray pool of API clients); without either, a local model's $0."""
    stage["model"] = stage["model"] or getattr(backend, "model_id", None)
    stage["backend"] = stage["backend"] or getattr(backend, "name", None)
    stage["failures"] += failures
    stage["seconds"] = round(stage["seconds"] + seconds, 3)
    sources = stage["cost_sources"]
    if _is_api(backend):
        after = snapshot(backend)
        stage["calls"] += after["requests"] - before["requests"]
        stage["prompt_tokens"] += after["prompt_tokens"] - before["prompt_tokens"]
        stage["completion_tokens"] += after["completion_tokens"] - before["completion_tokens"]
        for source, n in after["cost_sources"].items():
            if n - before["cost_sources"].get(source, 0):
                sources[source] = sources.get(source, 0) + n - before["cost_sources"].get(source, 0)
        spent = float(after["cost_usd"]) - float(before["cost_usd"])
        if stage["cost_usd"] is not None:
            stage["cost_usd"] = round(stage["cost_usd"] + spent, 8)
        _mark_unpriced(stage)
        return
    stage["calls"] += rows
    prompt, completion = tokens if tokens is not None else (
        int(getattr(backend, "score_tokens", 0) or 0) - before.get("score_tokens", 0), 0)
    stage["prompt_tokens"] += prompt
    stage["completion_tokens"] += completion
    if cost is None:
        sources["local"] = sources.get("local", 0) + rows
        return
    sources["ledger"] = sources.get("ledger", 0) + rows
    if stage["cost_usd"] is not None:
        stage["cost_usd"] = round(stage["cost_usd"] + cost, 8)


def record_texts(stage: dict[str, Any], model: str, texts: int, seconds: float) -> None:
    """An encoder's embedding call: texts counted, no tokens billed (it runs here)."""
    stage["model"] = stage["model"] or model
    stage["backend"] = stage["backend"] or "sentence-transformers"
    stage["calls"] += 1
    stage["texts"] += texts
    stage["seconds"] = round(stage["seconds"] + seconds, 3)
    stage["cost_sources"]["local"] = stage["cost_sources"].get("local", 0) + texts


def _mark_unpriced(stage: dict[str, Any]) -> None:
    if stage["cost_sources"].get("unpriced"):
        stage["cost_usd"] = None
        stage["cost_note"] = (f"model '{stage['model']}' is not in backends/pricing.py (prices as of {PRICES_AS_OF}) "
                              "and the server reported no cost: unknown, not $0 (--price-per-1k IN,OUT prices it)")


class MeteredBackend:
    """A backend whose `generate` and `score` calls are counted into one usage row; anything else is the
    backend's own."""

    def __init__(self, backend: Any, stage: dict[str, Any]):
        self._backend = backend
        self.stage = stage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    @property
    def unwrapped(self) -> Any:
        return self._backend

    def generate(self, prompts: list[Any], schema: Any, sampling: Any, seeds: list[int] | None = None) -> list[Any]:
        before, start = snapshot(self._backend), time.perf_counter()
        out = self._backend.generate(prompts, schema, sampling, seeds=seeds)
        record(self.stage, self._backend, before, rows=len(prompts), seconds=time.perf_counter() - start,
               failures=sum(1 for c in out if c.error), tokens=(sum(c.prompt_tokens for c in out),
                                                                sum(c.completion_tokens for c in out)))
        return out

    def score(self, prompts: list[Any], choices: list[str], **frame: str) -> list[list[float]]:
        before, start = snapshot(self._backend), time.perf_counter()
        out = self._backend.score(prompts, choices, **frame)
        record(self.stage, self._backend, before, rows=len(prompts), seconds=time.perf_counter() - start,
               failures=sum(1 for row in out if score_failure(row) is not None))
        return out


def unwrap(backend: Any) -> Any:
    """The backend under any `MeteredBackend`."""
    while isinstance(backend, MeteredBackend):
        backend = backend.unwrapped
    return backend


def merge_rows(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two rows of one stage added up (a resumed run's sessions); unknown cost stays unknown."""
    out = {**new_stage(a.get("model") or b.get("model"), a.get("backend") or b.get("backend"))}
    for name in COUNTS:
        out[name] = int(a.get(name, 0) or 0) + int(b.get(name, 0) or 0)
    out["seconds"] = round(float(a.get("seconds", 0) or 0) + float(b.get("seconds", 0) or 0), 3)
    costs = [a.get("cost_usd", 0.0), b.get("cost_usd", 0.0)]
    out["cost_usd"] = None if None in costs else round(sum(costs), 8)
    for row in (a, b):
        for source, n in (row.get("cost_sources") or {}).items():
            out["cost_sources"][source] = out["cost_sources"].get(source, 0) + n
    note = b.get("cost_note") or a.get("cost_note")
    if note:
        out["cost_note"] = note
    details = {**(a.get("details") or {}), **(b.get("details") or {})}
    if details:
        out["details"] = details
    return out


def merge_tables(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stage tables added up, stage by stage; a stage that changed model gets its own row."""
    out = {name: dict(row) for name, row in a.items()}
    for name, row in b.items():
        key = name
        if key in out and out[key].get("model") and row.get("model") and out[key]["model"] != row["model"]:
            key = f"{name} [{row['model']}]"
        out[key] = merge_rows(out[key], row) if key in out else merge_rows(new_stage(), row)
    return out


def with_totals(stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's `usage`: the stage rows, their sum, and the price table's date."""
    total = new_stage("all", None)
    for row in stages.values():
        total = merge_rows(total, row)
    total.pop("details", None)
    total["model"], total["backend"] = "all", None
    return {"stages": stages, "total": total,
            "prices": {"table": "backends/pricing.py", "as_of": PRICES_AS_OF,
                       "note": "an API's own reported cost (usage.cost) is used where it gives one"}}


def _cost(row: dict[str, Any]) -> str:
    if row.get("cost_usd") is None:
        return "unknown"
    sources = row.get("cost_sources") or {}
    if set(sources) <= {"local"}:
        return "$0 (local)"
    return f"${row['cost_usd']:.6f}"


def format_usage(usage: dict[str, Any]) -> str:
    """The table generate.py prints at the end: one line per stage, then the total."""
    lines = [f"{'stage':<22} {'model':<22} {'calls':>7} {'failed':>6} {'tokens in':>10} {'tokens out':>10} "
             f"{'texts':>7} {'seconds':>8}  cost"]
    rows = [*usage["stages"].items(), ("total", usage["total"])]
    for name, row in rows:
        model = str(row.get("model") or "-")[:22]
        lines.append(f"{name:<22} {model:<22} {row['calls']:>7} {row['failures']:>6} {row['prompt_tokens']:>10} "
                     f"{row['completion_tokens']:>10} {row['texts']:>7} {row['seconds']:>8.1f}  {_cost(row)}")
    for name, row in rows:
        if row.get("cost_note"):
            lines.append(f"  {name}: {row['cost_note']}")
    lines.append(f"  prices: {usage['prices']['table']} as of {usage['prices']['as_of']}, or what the server reported")
    return "\n".join(lines)

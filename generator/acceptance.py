"""Generation to N accepted samples (`generate.py --accepted N`): rounds of generate → validate until N pass.

    outcome = generate_accepted(run, chain, base_weights=None)    # run: generator.runner.Run; chain: validators.chain.Chain
    outcome.line      # "accepted 10 of 10: 31 candidates in 3 rounds, 11 passed the validators (acceptance 35%)"

Each round is planned from the rounds before it (`generator.rounds`): its size from the acceptance rate so
far, each prompt aimed at a label still short of its quota on the *accepted* samples, templates and
attribute values drawn with weights from their acceptance so far (seeded, recorded in the manifest). The
round's candidates are appended to `samples.jsonl` as any run's, then validated against the references
and every sample accepted in an earlier round (`Chain.run(..., earlier=...)`), and the verdicts appended
to `validated.jsonl` before the round is marked done in the manifest. A killed run re-plans the same round
(recorded before it starts), regenerates only its missing indices and validates it again: same samples,
same verdicts, no duplicate. `accepted.jsonl` holds the first N that passed within the label quotas;
`rejected.jsonl` the rest with their reasons (those over a full quota with a `quota` verdict).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from core.errors import fail
from core.io import JsonlAppender, read_records, write_json_atomic, write_jsonl_atomic
from core.records import Record, Verdict
from generator.prompts import Planner
from generator.rounds import Tally, acceptance_weights, deliver, label_quotas, next_round
from generator.runner import Run
from validators.chain import Chain

VALIDATED = "validated.jsonl"
DEFAULT_MULTIPLE = 5  # --max-candidates defaults to 5 x N: a model that accepts under 20% returns partial
EXHAUSTED = ("return_partial", "fail")


@dataclass
class Outcome:
    accepted: list[Record]
    target: int
    candidates: int
    passed: int
    rounds: int
    exhausted: bool
    max_candidates: int

    @property
    def rate(self) -> float:
        return self.passed / self.candidates if self.candidates else 0.0

    @property
    def line(self) -> str:
        """The one line a data engineer reads: how many of N, what it took, the acceptance rate."""
        took = (f"{self.candidates} candidates in {self.rounds} round{'s' if self.rounds != 1 else ''}, "
                f"{self.passed} passed the validators (acceptance {self.rate:.0%})")
        if not self.exhausted:
            return f"accepted {len(self.accepted)} of {self.target}: {took}"
        return (f"accepted {len(self.accepted)} of {self.target}: --max-candidates {self.max_candidates} spent; "
                f"{took}; re-run with a larger --max-candidates to continue")


def _quota_verdict(rec: Record, quotas: dict[str, int], label_name: str) -> Record:
    out = rec.model_copy(deep=True)
    label = rec.labels.get(label_name)
    out.verdicts.append(Verdict(name="quota", passed=False,
                                reason=f"passed, but label '{label}' already has its {quotas.get(label, 0)} accepted "
                                       f"samples (the quota of --accepted)",
                                details={"rule": "over_quota", "label": label, "quota": quotas.get(label, 0)}))
    out.meta["doubt"] = 1.0
    return out


class Rounds:
    """The rounds of one run: what is validated so far (read back on resume), and the next round."""

    def __init__(self, run: Run, chain: Chain, base_weights: dict[str, Any] | None):
        cfg = run.cfg
        if cfg.accepted is None or cfg.accepted <= 0:
            fail(f"--accepted must be a positive number of samples (got {cfg.accepted})")
        if cfg.on_exhausted not in EXHAUSTED:
            fail(f"--on-exhausted must be one of: {', '.join(EXHAUSTED)} (got '{cfg.on_exhausted}')")
        self.run, self.chain, self.base_weights = run, chain, base_weights
        self.n = cfg.accepted
        self.budget = cfg.max_candidates or DEFAULT_MULTIPLE * self.n
        if self.budget < self.n:
            fail(f"--max-candidates {self.budget} is fewer than --accepted {self.n}")
        self.label_name = run.task.label_name
        self.quotas = label_quotas(self.n, run.task.label_names)
        state = run.manifest.get("acceptance") or {}
        self.rounds: list[dict[str, Any]] = list(state.get("rounds", []))
        done = {r["round"] for r in self.rounds if r.get("status") == "done"}
        path = cfg.out / VALIDATED
        rows = read_records(path, allow_empty=True) if path.is_file() and path.stat().st_size else []
        self.validated = [r for r in rows if r.meta.get("round") in done]
        if len(self.validated) != len(rows):  # a round killed while its verdicts were written: validated again
            write_jsonl_atomic(path, self.validated)
        self.appender = JsonlAppender(path)
        self.checked: Counter = Counter(state.get("checked", {}))
        self.skipped: dict[str, str] = dict(state.get("skipped", {}))

    @property
    def passed(self) -> list[Record]:
        return [r for r in self.validated if r.passed]

    def _candidates(self, start: int, end: int) -> list[Record]:
        return [r for r in self.run.records if start <= r.provenance.get("index", -1) < end]

    def tally(self) -> Tally:
        done = [r for r in self.rounds if r.get("status") == "done"]
        rows = [rec for r in done for rec in self._candidates(r["start"], r["end"])]
        return Tally.of(rows, {r.id for r in self.passed}, self.label_name)

    def plan(self) -> dict[str, Any] | None:
        """The round to run now: one planned before a kill, else a new one; None when done or spent."""
        if self.rounds and self.rounds[-1].get("status") != "done":
            return self.rounds[-1]
        delivered, _ = deliver(self.passed, self.quotas, self.label_name)
        end = self.rounds[-1]["end"] if self.rounds else 0
        if len(delivered) >= self.n or end >= self.budget:
            return None
        tally = self.tally()
        number = len(self.rounds) + 1
        size, labels, prompts = next_round(
            tally, self.quotas, Counter(r.labels.get(self.label_name) for r in delivered), budget=self.budget - end,
            first=self.n, seed=self.run.cfg.plan.seed, round_=number, per_prompt=self.run.cfg.plan.samples_per_prompt)
        if size == 0:
            return None
        weights = acceptance_weights(tally, self.base_weights, source=self._weights_source())
        first_prompt = end // self.run.cfg.plan.samples_per_prompt
        planned = {"round": number, "status": "planned", "start": end, "end": end + size,
                   "labels": {label: n for label, n in prompts.items()},
                   "targets": {str(first_prompt + k): label for k, label in labels.items()}, "weights": weights}
        self.rounds.append(planned)
        return planned

    def _weights_source(self) -> str:
        base = (self.base_weights or {}).get("source")
        return "acceptance in this run" + (f" + review decisions in {base}" if base else "")

    def execute(self, planned: dict[str, Any], progress: bool) -> None:
        """Generate the round's missing candidates, validate them all, record the verdicts, mark it done."""
        run, start = self.run, time.perf_counter()
        self.save("running")  # the plan is on disk before its first sample
        cfg = dataclasses.replace(run.cfg.plan, weights=planned["weights"])
        planner = Planner(run.task, run.cfg.lang, run.planner.all_seeds, cfg)
        labels = {int(k): v for k, v in planned["targets"].items()}
        reason = run.generate(list(range(planned["start"], planned["end"])), planner, labels)
        if reason:  # the spend cap: the round stays planned; a resume with a higher cap goes on
            self.save("stopped", reason)
            fail(f"generate: {reason}; {len(self.accepted())} of {self.n} accepted so far in {run.cfg.out}: "
                 "re-run with a higher --max-cost-usd to continue")
        candidates = self._candidates(planned["start"], planned["end"])
        parsed = [r for r in candidates if not r.provenance.get("error")]
        try:
            accepted, rejected, report = self.chain.run(parsed, earlier=self.passed, progress=progress)
        finally:
            run.stages.update(self.chain.usage)  # what the validators spent, even when interrupted
        checked = Counter({name: v["checked"] for name, v in report["validators"].items()})
        self.checked.update(checked)
        self.skipped.update({name: v["skipped"] for name, v in report["validators"].items() if "skipped" in v})
        by_index = sorted(accepted + rejected, key=lambda r: r.provenance.get("index", 0))
        for rec in by_index:
            rec.meta["round"] = planned["round"]
        self.appender.write_batch(by_index)
        self.validated.extend(by_index)
        planned.update(status="done", candidates=len(candidates), parsed=len(parsed), passed=len(accepted),
                       rate=round(len(accepted) / len(candidates), 4) if candidates else None,
                       passed_by_label=dict(Counter(r.labels.get(self.label_name) for r in accepted)),
                       seconds=round(time.perf_counter() - start, 2))
        self.write_files()
        self.save("running")

    def accepted(self) -> list[Record]:
        return deliver(self.passed, self.quotas, self.label_name)[0]

    def write_files(self) -> None:
        """accepted.jsonl (the first N within the quotas), rejected.jsonl (the rest, with reasons), validation.json."""
        out = self.run.cfg.out
        delivered, surplus = deliver(self.passed, self.quotas, self.label_name)
        rejected = [r for r in self.validated if not r.passed] + [_quota_verdict(r, self.quotas, self.label_name)
                                                                   for r in surplus]
        rejected.sort(key=lambda r: r.provenance.get("index", 0))
        write_jsonl_atomic(out / "accepted.jsonl", delivered)
        write_jsonl_atomic(out / "rejected.jsonl", rejected)
        report = self.chain.report(delivered + rejected, checked=dict(self.checked), skipped=self.skipped)
        report["usage"] = self.run.usage()["stages"]
        report["acceptance"] = self.summary()
        write_json_atomic(out / "validation.json", report)

    def summary(self) -> dict[str, Any]:
        """The manifest's `acceptance`: target, quotas, every round, per template / attribute / label."""
        delivered, surplus = deliver(self.passed, self.quotas, self.label_name)
        tally = self.tally()
        done_labels = Counter(r.labels.get(self.label_name) for r in delivered)
        return {
            "target": self.n, "max_candidates": self.budget, "on_exhausted": self.run.cfg.on_exhausted,
            "quotas": self.quotas, "candidates": tally.candidates, "passed": tally.passed,
            "accepted": len(delivered), "surplus": len(surplus),
            "rate": round(tally.passed / tally.candidates, 4) if tally.candidates else None,
            "by_label": {label: {"quota": q, "accepted": done_labels.get(label, 0),
                                 "targeted": tally.targeted.get(label, 0), "passed": tally.passed_label.get(label, 0)}
                         for label, q in self.quotas.items()},
            **tally.table(), "checked": dict(self.checked), "skipped": self.skipped, "rounds": self.rounds,
        }

    def save(self, status: str, reason: str = "") -> None:
        self.run.manifest["acceptance"] = self.summary()
        self.run.save(status, reason)

    def close(self) -> None:
        self.appender.close()


def generate_accepted(run: Run, chain: Chain, *, base_weights: dict[str, Any] | None = None,
                      progress: bool = True) -> Outcome:
    """Rounds until `run.cfg.accepted` samples pass `chain` within the label quotas, or the candidates are
    spent (`max_candidates`). Ctrl-C keeps every finished batch and round: the manifest says `interrupted`,
    with the counts and the usage so far."""
    rounds = Rounds(run, chain, base_weights)
    try:
        while (planned := rounds.plan()) is not None:
            rounds.execute(planned, progress)
    except KeyboardInterrupt:
        rounds.write_files()
        rounds.save("interrupted", "interrupted (Ctrl-C)")
        raise
    finally:
        rounds.close()
    accepted = rounds.accepted()
    summary = rounds.summary()
    exhausted = len(accepted) < rounds.n
    rounds.write_files()
    run.manifest["n"] = summary["candidates"]
    rounds.save("exhausted" if exhausted else "complete",
                "--max-candidates spent" if exhausted else "")
    return Outcome(accepted, rounds.n, summary["candidates"], summary["passed"],
                   sum(1 for r in rounds.rounds if r.get("status") == "done"), exhausted, rounds.budget)

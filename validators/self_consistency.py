"""`self_consistency`: ask the model to label each sample again, k times, and compare with its claimed label.

    validators:                       # in a task YAML (or --set self_consistency.k=5)
      - name: self_consistency
        k: 3
        min_agreement: 0.67           # also: temperature, method (score | generate), variant

Fails when the majority label is not the claimed one, or when agreement (share of the k votes for the
claimed label, at two decimals) is under `min_agreement`; a record the backend could not score fails
with rule `unscored`.

First it checks its own competence: the model votes on up to `competence_n` labelled seeds (references
that are not eval items) of the records' language, and the check's own rule is applied to each seed
claimed with its true label and with every wrong one. The separation (share of true labels kept minus
share of wrong labels kept: 0 for a coin, 1 for a perfect check) must reach `min_separation`, else its
votes are no evidence and it abstains: every record passes with `abstained` and the measurement in its
details, instead of rejecting samples by the model's bias (SmolLM2-135M calls almost every financial
text positive: as a filter it kept 34% of correctly labelled real sentences and 29% of mislabelled
ones, docs/validation.md). How the votes are drawn: docs/validation.md#design-validatorsself_consistencypy
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, create_model

from backends import Sampling, score_failure
from core.errors import fail
from core.records import Record, Verdict
from validators.base import BaseValidator

UNPARSED = "(unparsed)"


def softmax(logprobs: list[float], temperature: float) -> np.ndarray:
    z = np.asarray(logprobs, dtype=np.float64) / max(temperature, 1e-6)
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def record_rng(seed: int, record_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the record, not on batch order or size."""
    digest = int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def record_seed(seed: int, record_id: str, round_: int) -> int:
    """A sampling seed for one record's round: independent of batch order and size."""
    digest = hashlib.sha256(f"{seed}:{record_id}:{round_}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class SelfConsistencyValidator(BaseValidator):
    name = "self_consistency"
    defaults: ClassVar[dict[str, Any]] = {"k": 5, "min_agreement": 0.6, "temperature": 1.0, "method": "score", "max_new_tokens": 24,
                "variant": 0, "competence_n": 60, "min_separation": 0.2}
    expensive = True
    needs_backend = True

    @cached_property
    def label_schema(self) -> type[BaseModel]:
        """JSON with the label only: what constrained decoding may produce in `generate` mode."""
        labels: Any = Literal[tuple(self.task.label_names)]
        return create_model("LabelOnly", __config__=ConfigDict(extra="forbid"), **{self.task.label_name: (labels, ...)})

    def _prompts(self, records: list[Record]) -> list[list[dict[str, str]]]:
        return [self.task.classify_messages(r.text, r.lang, int(self.options["variant"])) for r in records]

    def votes(self, records: list[Record]) -> list[tuple[list[str], list[float] | None] | str]:
        """The k drawn labels per record and the label probabilities where `score` gave them, or the
        reason the record could not be scored."""

        if not records:
            return []
        k, temperature = int(self.options["k"]), float(self.options["temperature"])
        backend, labels = self.context.backend, self.task.label_names
        if self.options["method"] == "score":
            rows = backend.score(self._prompts(records), labels)
            out: list[tuple[list[str], list[float] | None] | str] = []
            for rec, logprobs in zip(records, rows, strict=True):
                failure = score_failure(logprobs)
                if failure is not None:
                    out.append(failure)
                    continue
                probs = softmax(logprobs, temperature)
                draws = record_rng(self.context.seed, rec.id).choice(len(labels), size=k, p=probs)
                out.append(([labels[d] for d in draws], [round(float(p), 4) for p in probs]))
            return out
        if self.options["method"] != "generate":
            fail(f"{self.task.path}: validators[self_consistency].method: '{self.options['method']}' "
                 "is not one of: score, generate")

        prompts = self._prompts(records)
        drawn: list[list[str]] = [[] for _ in records]
        for round_ in range(k):
            sampling = Sampling(temperature=temperature, max_new_tokens=int(self.options["max_new_tokens"]),
                                seed=self.context.seed + round_, strategy="self_consistency")
            seeds = [record_seed(self.context.seed, rec.id, round_) for rec in records]
            for i, completion in enumerate(backend.generate(prompts, self.label_schema, sampling, seeds=seeds)):
                drawn[i].append(self._parse(completion))
        return [(d, None) for d in drawn]

    def _parse(self, completion: Any) -> str:
        parsed = completion.parsed or {}
        label = parsed.get(self.task.label_name) if isinstance(parsed, dict) else None
        if label is None:
            label = self.task.normalise_label(completion.text.strip().strip('"'))
        return label if label in self.task.labels else UNPARSED

    def keeps(self, draws: list[str], claimed: str) -> bool:
        """Whether votes `draws` keep a record claimed `claimed` (the rule `check` applies)."""
        counts = Counter(draws)
        return bool(draws) and counts[claimed] == max(counts.values()) and \
            round(counts[claimed] / len(draws), 2) >= float(self.options["min_agreement"])

    def competence(self, lang: str) -> dict[str, Any] | None:
        """How well this check separates true labels from wrong ones on labelled seeds of `lang` (its rule
        applied to each seed claimed with its true label and with each wrong one); None without
        `competence_n` or labelled seeds."""
        n = int(self.options["competence_n"])
        pool = [r for r in self.context.train_refs if r.lang == lang and self.claimed_label(r) in self.task.labels]
        if n <= 0 or len(pool) < len(self.task.labels):
            return None
        by_label: dict[str, list[Record]] = {}
        for rec in sorted(pool, key=lambda r: r.id):
            by_label.setdefault(self.claimed_label(rec), []).append(rec)
        rng = record_rng(self.context.seed, f"competence:{lang}")
        for group in by_label.values():
            rng.shuffle(group)
        sample = [r for i in range(n) for g in by_label.values() if i < len(g) for r in [g[i]]][:n]
        kept_true, kept_wrong = [], []
        for rec, drawn in zip(sample, self.votes(sample), strict=True):
            draws = [] if isinstance(drawn, str) else drawn[0]
            true = self.claimed_label(rec)
            kept_true.append(self.keeps(draws, true))
            kept_wrong.append(float(np.mean([self.keeps(draws, wrong) for wrong in self.task.labels if wrong != true])))
        true_rate, wrong_rate = float(np.mean(kept_true)), float(np.mean(kept_wrong))
        return {"seeds": len(sample), "keeps_true": round(true_rate, 4), "keeps_wrong": round(wrong_rate, 4),
                "separation": round(true_rate - wrong_rate, 4),
                "competent": true_rate - wrong_rate >= float(self.options["min_separation"])}

    def check(self, records: list[Record]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(records)
        by_lang: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            by_lang.setdefault(rec.lang, []).append(i)
        voting: list[int] = []
        memo = self.__dict__.setdefault("_competence", {})  # one measurement per language and chain (rounds)
        for lang, indices in by_lang.items():
            if lang not in memo:
                memo[lang] = self.competence(lang)
            measured = memo[lang]
            if measured is None or measured["competent"]:
                voting += indices
                continue
            reason = (f"self-consistency abstained: on {measured['seeds']} labelled seeds its votes kept "
                      f"{measured['keeps_true']:.0%} of true labels and {measured['keeps_wrong']:.0%} of wrong ones "
                      f"(separation {measured['separation']:.2f} < {self.options['min_separation']}): no evidence")
            for i in indices:
                verdicts[i] = self.verdict(True, None, reason, abstained=True, competence=measured,
                                           claimed=self.claimed_label(records[i]))
        voting.sort()
        for i, verdict in zip(voting, self._votes_verdicts([records[i] for i in voting]), strict=True):
            verdicts[i] = verdict
        return [v for v in verdicts if v is not None]

    def _votes_verdicts(self, records: list[Record]) -> list[Verdict]:
        verdicts = []
        order = {name: i for i, name in enumerate(self.task.label_names)}
        for rec, drawn in zip(records, self.votes(records), strict=True):
            if isinstance(drawn, str):
                verdicts.append(self.verdict(False, None, f"self-consistency: not scored ({drawn})", rule="unscored",
                                             claimed=self.claimed_label(rec), method=self.options["method"]))
                continue
            draws, probs = drawn
            counts = Counter(draws)
            claimed = self.claimed_label(rec)
            prob_of = dict(zip(self.task.label_names, probs, strict=True)) if probs else {}
            # Ties go to the label the model finds more likely, then to the task's label order.
            majority = max(counts, key=lambda lab: (counts[lab], prob_of.get(lab, 0.0), -order.get(lab, 99)))
            k = len(draws)
            agreement = counts.get(claimed, 0) / k if k else 0.0
            details: dict[str, Any] = {"votes": dict(counts.most_common()), "majority": majority,
                                       "agreement": round(agreement, 4), "k": k, "claimed": claimed,
                                       "method": self.options["method"]}
            if probs:
                details["probs"] = prob_of
            if majority != claimed:
                reason = f"self-consistency: model says '{majority}' ({counts[majority]}/{k}), claimed '{claimed}'"
                verdicts.append(self.verdict(False, agreement, reason, rule="majority_disagrees", **details))
            elif round(agreement, 2) < float(self.options["min_agreement"]):  # 0.67 reads as 2 of 3
                reason = f"self-consistency: only {counts[claimed]}/{k} votes for '{claimed}'"
                verdicts.append(self.verdict(False, agreement, reason, rule="low_agreement", **details))
            else:
                verdicts.append(self.verdict(True, agreement, **details))
        return verdicts

    def doubt(self, verdict: Verdict) -> float:
        if verdict.details.get("abstained"):
            return 0.0  # no evidence either way: the other validators decide the doubt
        return 1.0 if not verdict.passed else 1.0 - float(verdict.details.get("agreement", 1.0))

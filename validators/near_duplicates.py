"""`near_duplicates`: MinHash LSH within the batch, against the seed/train set and against the eval set.

- against eval references: **contamination**, always a rejection (a synthetic sample near an eval
  item must never reach training);
- against train / seed references: a copy of a seed is not synthesis;
- within the batch: the first record of a near-duplicate cluster is kept, later ones are rejected;
- against samples of this run accepted in earlier rounds (`Context.earlier`, `generate.py --accepted`).

Exact copies (same normalised text) are caught even when too short to shingle. The LSH index lives
in memory, or in Redis when `redis_url` is set (option or `--redis-url`); with Ray workers in the
context as well (`generate.py --ray --redis-url`), the shingling, signing and candidate lookups run
on the workers through one shared index (validators/shared_index.py), with the same verdicts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.errors import UserError
from core.optional import require
from core.records import Record, Verdict, normalise_text
from core.urls import redact_url
from validators.base import BaseValidator, clip01
from validators.minhash import SHINGLING, NearDuplicateIndex, Shingler
from validators.shared_index import shared_similarities

_KINDS = {"e": "eval", "t": "train", "a": "earlier", "b": "batch"}
_RULES = {"e": "contamination", "t": "seed_copy", "a": "earlier_duplicate", "b": "batch_duplicate"}


class NearDuplicateValidator(BaseValidator):
    name = "near_duplicates"
    defaults: ClassVar[dict[str, Any]] = {"threshold": 0.7, "num_perm": 128, "seed": 1, "shingling": {}, "redis_url": None}

    def _shingler(self) -> Shingler:
        rules = {k: dict(v) for k, v in SHINGLING.items()}
        for lang, rule in (self.options["shingling"] or {}).items():
            rules[lang] = {**rules.get(lang, rules["*"]), **rule}
        return Shingler(rules)

    def check(self, records: list[Record]) -> list[Verdict]:
        threshold = float(self.options["threshold"])
        groups = {"e": self.context.eval_refs, "t": self.context.train_refs, "a": self.context.earlier, "b": records}
        keys = [f"{kind}:{i}" for kind, recs in groups.items() for i in range(len(recs))]
        everything = [r for recs in groups.values() for r in recs]
        row = {k: i for i, k in enumerate(keys)}
        found = self._candidates(keys, everything, [f"b:{i}" for i in range(len(records))], threshold)

        exact: dict[str, str] = {}
        for key, rec in zip(keys, everything, strict=True):
            exact.setdefault(normalise_text(rec.text), key)

        verdicts = []
        for i, rec in enumerate(records):
            me = f"b:{i}"
            sims: dict[str, float] = {}
            first = exact[normalise_text(rec.text)]
            if first != me:
                sims[first] = 1.0
            for key in sorted(found[i], key=row.__getitem__):  # by row, as the in-process index gives them
                sims.setdefault(key, found[i][key])
            verdicts.append(self._verdict(me, sims, threshold, groups, exact_key=first))
        return verdicts

    def _candidates(self, keys: list[str], everything: list[Record], query: list[str],
                    threshold: float) -> list[dict[str, float]]:
        """Each `query` key's LSH candidates (key -> estimated Jaccard): in this process, or split over the
        context's Ray workers through one Redis index (validators/shared_index.py) when both are given."""
        redis_url = self.options["redis_url"] or self.context.redis_url
        settings = {"threshold": threshold, "shingler": self._shingler(), "num_perm": int(self.options["num_perm"]),
                    "seed": int(self.options["seed"])}
        if redis_url and self.context.workers is not None:
            rows = [(k, r.text, r.lang) for k, r in zip(keys, everything, strict=True)]
            return shared_similarities(self.context.workers, redis_url, rows, query, **settings)
        try:
            index = NearDuplicateIndex([r.text for r in everything], langs=[r.lang for r in everything],
                                       verify="estimate", redis_url=redis_url, **settings)
            row = {k: i for i, k in enumerate(keys)}
            return [{keys[j]: s for j, s in index.similarities(row[k]).items()} for k in query]
        except _redis_errors(redis_url) as exc:  # one line and no verdict, never a traceback or "no duplicates"
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"near_duplicates: the index in Redis ({redact_url(redis_url)}) failed: {why}; "
                            f"no verdict was given") from None

    def _verdict(self, me: str, sims: dict[str, float], threshold: float, groups: dict[str, list[Record]],
                 exact_key: str) -> Verdict:
        my_index = int(me[2:])

        def ref(key: str) -> Record:
            return groups[key[0]][int(key[2:])]

        def describe(key: str) -> dict[str, Any]:
            return {"id": ref(key).id, "kind": _KINDS[key[0]], "jaccard": round(sims[key], 3)}

        # Later batch records never make this one a duplicate: the first of a cluster is kept.
        relevant = {k: s for k, s in sims.items() if not (k[0] == "b" and int(k[2:]) > my_index)}
        hits = sorted((k for k, s in relevant.items() if s >= threshold), key=lambda k: -relevant[k])
        best = max(relevant.values(), default=0.0)
        details: dict[str, Any] = {"threshold": threshold, "max_jaccard": round(best, 3),
                                   "matches": [describe(k) for k in hits[:5]]}
        later = [k for k, s in sims.items() if k[0] == "b" and int(k[2:]) > my_index and s >= threshold]
        if later:
            details["kept_over"] = [ref(k).id for k in later[:5]]
        for kind in ("e", "t", "a", "b"):
            found = [k for k in hits if k[0] == kind]
            if not found:
                continue
            key = found[0]
            other = ref(key)
            exact = key == exact_key
            sim = f"jaccard≈{relevant[key]:.2f}"
            if kind == "e":
                reason = f"contamination: {'copy of' if exact else 'near'} eval item {other.id} ({sim})"
            elif kind == "t":
                reason = f"{'exact copy' if exact else 'near copy'} of seed/train item {other.id} ({sim})"
            elif kind == "a":
                reason = f"{'exact' if exact else 'near'} duplicate of {other.id}, accepted in an earlier round ({sim})"
            else:
                reason = f"{'exact' if exact else 'near'} duplicate of {other.id} in this batch ({sim})"
            rule = _RULES[kind]
            return self.verdict(False, relevant[key], reason, rule=rule, kind=_KINDS[kind], exact=exact, **details)
        return self.verdict(True, best, **details)

    def doubt(self, verdict: Verdict) -> float:
        if not verdict.passed:
            return 1.0
        # Nothing below half the threshold is suspicious; just under the threshold is nearly a rejection.
        threshold = float(self.options["threshold"])
        return clip01(((verdict.score or 0.0) - 0.5 * threshold) / (0.5 * threshold))


def _redis_errors(redis_url: str | None) -> tuple[type[BaseException], ...]:
    """The Redis client's errors when the index lives in Redis (nothing to catch in memory)."""
    return (require("redis").RedisError,) if redis_url else ()

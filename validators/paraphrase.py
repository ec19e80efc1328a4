"""`paraphrase_duplicates`: the same sentence in other words, which character MinHash does not see.

    validators:                       # in a task YAML (or --set paraphrase_duplicates.threshold=0.9)
      - name: paraphrase_duplicates
        threshold: 0.9                # cosine of MiniLM sentence embeddings, measured per task
        languages: [en]               # where the encoder is trusted; other languages pass, saying so

Each sample is embedded (the bundled all-MiniLM-L6-v2, `backends.embeddings`) and compared by cosine
with every eval item (**contamination**), every seed / train item, every sample this run accepted in
an earlier round (`Context.earlier`) and every earlier sample of the batch; at or above `threshold`
it is rejected, naming the nearest one. The references are embedded once per chain, accepted samples
once when they are validated; the search is exact, in blocks (`validators.cosine`). The threshold
and why: docs/validation.md#paraphrase-duplicates
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from backends.embeddings import BUNDLED
from core.records import Record, Verdict
from validators.base import EncoderValidator, clip01
from validators.cosine import CosineIndex, best_earlier

_KINDS = {"e": "eval", "t": "train", "a": "earlier", "b": "batch"}
_RULES = {"e": "contamination", "t": "seed_paraphrase", "a": "earlier_paraphrase", "b": "batch_paraphrase"}


class ParaphraseDuplicateValidator(EncoderValidator):
    name = "paraphrase_duplicates"
    defaults: ClassVar[dict[str, Any]] = {"threshold": 0.9, "languages": ["en"], "model": BUNDLED, "device": "cpu",
                                          "batch_size": 64}
    expensive = True  # embeds only what the cheap checks passed

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._refs: dict[str, dict[str, tuple[list[Record], CosineIndex]]] = {}  # lang -> kind -> (records, index)
        self._pending: dict[str, np.ndarray] = {}  # vectors of the last batch, by record id (earlier next round)

    def _indexes(self, lang: str) -> dict[str, tuple[list[Record], CosineIndex]]:
        """Eval, train and earlier-accepted indexes of `lang`; references embedded once, accepted samples added
        as they appear in `Context.earlier` (their vectors kept from the round that validated them)."""
        if lang not in self._refs:
            self._refs[lang] = {}
            for kind, refs in (("e", self.context.eval_refs), ("t", self.context.train_refs)):
                mine = [r for r in refs if r.lang == lang]
                index = CosineIndex()
                if mine:
                    index.add(self.embed([r.text for r in mine]))
                self._refs[lang][kind] = (mine, index)
            self._refs[lang]["a"] = ([], CosineIndex())
        held, index = self._refs[lang]["a"]
        current = [r for r in self.context.earlier if r.lang == lang]
        if [r.id for r in current[: len(held)]] != [r.id for r in held]:  # not an extension: start again
            held, index = [], CosineIndex()
            self._refs[lang]["a"] = (held, index)
        new = current[len(held):]
        if new:
            missing = [r for r in new if r.id not in self._pending]
            fresh = dict(zip([r.id for r in missing], self.embed([r.text for r in missing]), strict=True)) \
                if missing else {}
            index.add(np.stack([self._pending[r.id] if r.id in self._pending else fresh[r.id] for r in new]))
            held.extend(new)
        return self._refs[lang]

    def check(self, records: list[Record]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(records)
        by_lang: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            by_lang.setdefault(rec.lang, []).append(i)
        languages = set(self.options["languages"] or [])
        pending: dict[str, np.ndarray] = {}
        for lang, rows in by_lang.items():
            if lang not in languages:
                for i in rows:
                    verdicts[i] = self.verdict(True, None, f"no paraphrase check in '{lang}': the encoder is trusted "
                                               f"in {', '.join(sorted(languages)) or 'no language'} only",
                                               skipped=True)
                continue
            indexes = self._indexes(lang)
            vectors = self.embed([records[i].text for i in rows])
            pending.update(zip([records[i].id for i in rows], vectors, strict=True))
            found = {kind: (refs, *index.best(vectors)) for kind, (refs, index) in indexes.items()}
            sims, where = best_earlier(vectors)
            found["b"] = ([records[i] for i in rows], sims, where)
            for position, i in enumerate(rows):
                verdicts[i] = self._verdict({kind: (refs, float(s[position]), int(w[position]))
                                             for kind, (refs, s, w) in found.items()})
        self._pending = pending
        return [v for v in verdicts if v is not None]

    def _verdict(self, nearest: dict[str, tuple[list[Record], float, int]]) -> Verdict:
        threshold = float(self.options["threshold"])
        found = {kind: (refs[row], sim) for kind, (refs, sim, row) in nearest.items() if row >= 0}
        best = max((sim for _, sim in found.values()), default=0.0)
        details: dict[str, Any] = {"threshold": threshold, "max_cosine": round(best, 4),
                                   "nearest": {_KINDS[k]: {"id": rec.id, "cosine": round(sim, 4)}
                                               for k, (rec, sim) in found.items()}}
        for kind in ("e", "t", "a", "b"):
            if kind not in found or found[kind][1] < threshold:
                continue
            other, sim = found[kind]
            what = {"e": f"contamination: paraphrase of eval item {other.id}",
                    "t": f"paraphrase of seed/train item {other.id}",
                    "a": f"paraphrase of {other.id}, accepted in an earlier round",
                    "b": f"paraphrase of {other.id} earlier in this batch"}[kind]
            return self.verdict(False, sim, f"{what} (cosine {sim:.3f})", rule=_RULES[kind], kind=_KINDS[kind],
                                match={"id": other.id, "text": other.text[:200]}, **details)
        return self.verdict(True, best, **details)

    def doubt(self, verdict: Verdict) -> float:
        if not verdict.passed:
            return 1.0
        # Nothing 0.2 below the threshold is suspicious; just under it, half a rejection.
        threshold = float(self.options["threshold"])
        return 0.5 * clip01(((verdict.score or 0.0) - (threshold - 0.2)) / 0.2)

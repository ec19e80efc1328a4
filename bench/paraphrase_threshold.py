"""The measurement behind `paraphrase_duplicates`' threshold: what each cosine threshold rejects, real and generated.

    python -m bench.paraphrase_threshold --datasets ../shared/datasets --samples runs/smol/samples.jsonl \
        --seeds runs/fin/data/train.jsonl --eval runs/fin/data/eval.jsonl --out /tmp/threshold.json

Two sides, MiniLM (the bundled all-MiniLM-L6-v2) cosines throughout:

- **distinct real sentences** (what must not be rejected): English financial sentences of Financial PhraseBank
  and Twitter Financial News, exact and MinHash near copies removed (word bigrams, Jaccard 0.7, as
  `near_duplicates`), split into 500 "samples" and a pool of 3,000 "seeds" (the demo's size); for each
  threshold, the share of the 500 whose nearest pool sentence is at or above it (they would be rejected), and
  the same over the pairs that name the same company (a capitalised name or cashtag both share, rare in the
  pool). Vietnamese (UIT-VSFC) likewise, to see whether the English encoder can be trusted there.
- **real-model samples** (what should be caught): each generated sample's nearest seed, eval item or earlier
  sample by cosine, with the MinHash Jaccard of that pair: pairs at a high cosine that MinHash passes are
  the paraphrases only this check sees (listed, to be read).

Not a benchmark (`python -m bench` does not run it): it needs the real datasets and a generated run.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from backends.embeddings import embed
from core.io import read_records, write_json_atomic
from core.records import Record, normalise_text
from core.tasks import load_task
from data.sources import load_shared_layout
from validators.cosine import CosineIndex, best_earlier
from validators.minhash import Shingler, band_clusters, jaccard, signatures

THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)
NEAR = 0.7  # near_duplicates' MinHash threshold
_NAME = re.compile(r"\$[A-Za-z]{1,6}\b|(?<!^)(?<![.!?] )\b[A-Z][a-zA-Z&]{2,}(?: [A-Z][a-zA-Z&]{2,})*")
_COMMON = {"The", "EUR", "USD", "Finland", "Finnish", "Helsinki", "Inc", "Oyj", "Group", "Company", "January",
           "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
           "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Sweden", "Swedish", "Russia",
           "China", "Europe", "European", "US", "UK", "CEO", "Corporation", "Ltd", "Plc", "Bank"}


def distinct(records: list[Record], lang: str, seed: int = 0) -> list[Record]:
    """`records` without exact or MinHash near copies (the first of each cluster kept), shuffled."""
    seen, unique = set(), []
    for rec in records:
        key = normalise_text(rec.text)
        if key and key not in seen:
            seen.add(key)
            unique.append(rec)
    shingler = Shingler()
    sigs = signatures([shingler(r.text, lang) for r in unique])
    drop = {i for group in band_clusters(sigs, NEAR) for i in sorted(group)[1:]}
    kept = [r for i, r in enumerate(unique) if i not in drop]
    random.Random(seed).shuffle(kept)
    return kept


def names(text: str) -> set[str]:
    return {m for m in _NAME.findall(text) if m not in _COMMON}


def curve(best: np.ndarray) -> dict[str, float]:
    return {f"{t:.2f}": round(float(np.mean(best >= t)), 4) if len(best) else None for t in THRESHOLDS}


def real_side(datasets: Path, lang: str, n_samples: int = 500, n_pool: int = 3000) -> dict[str, Any]:
    """Distinct real sentences: the share a threshold would reject, overall and for same-company pairs."""
    task = load_task("fin_sentiment")
    records = [r for src in load_shared_layout(datasets, task) if src.lang == lang for r in src.records]
    kept = distinct(records, lang)
    samples, pool = kept[:n_samples], kept[n_samples:n_samples + n_pool]
    vs, vp = embed([r.text for r in samples]), embed([r.text for r in pool])
    index = CosineIndex()
    index.add(vp)
    best, _ = index.best(vs)
    out: dict[str, Any] = {"lang": lang, "distinct_sentences": len(kept), "samples": len(samples), "pool": len(pool),
                           "rejected_share": curve(best), "max_cosine_quantiles": _quantiles(best)}
    if lang == "en":
        pool_names = [names(r.text) for r in pool]
        frequency: dict[str, int] = {}
        for found in pool_names:
            for name in found:
                frequency[name] = frequency.get(name, 0) + 1
        rare = {n for n, c in frequency.items() if c <= 0.005 * len(pool)}  # a company, not a word every line has
        sims = vs @ vp.T
        pair_cos, rows = [], []
        for i, rec in enumerate(samples):
            mine = names(rec.text) & rare
            partners = [j for j, found in enumerate(pool_names) if mine & found]
            if partners:
                pair_cos.extend(float(sims[i, j]) for j in partners)
                j = max(partners, key=lambda j: sims[i, j])
                rows.append((float(sims[i, j]), rec.text, pool[j].text, sorted(mine & pool_names[j])))
        pair_cos_arr = np.asarray(pair_cos)
        out["same_company"] = {"pairs": len(pair_cos), "samples_with_one": len(rows),
                               "pairs_at_or_above": curve(pair_cos_arr),
                               "samples_rejected_by_such_a_pair": curve(np.asarray([r[0] for r in rows])),
                               "closest": [{"cosine": round(c, 4), "a": a, "b": b, "names": n}
                                           for c, a, b, n in sorted(rows, reverse=True)[:12]]}
    return out


def generated_side(samples_path: Path, seeds_path: Path, eval_path: Path, lang: str = "en") -> dict[str, Any]:
    """Each generated sample's nearest seed / eval item / earlier sample by cosine, with that pair's Jaccard."""
    samples = [r for r in read_records(samples_path) if r.text and r.lang == lang]
    refs = {"seed": [r for r in read_records(seeds_path) if r.lang == lang],
            "eval": [r for r in read_records(eval_path) if r.lang == lang]}
    vs = embed([r.text for r in samples])
    shingler = Shingler()
    found = []
    nearest: list[tuple[float, str, Record]] = [(-1.0, "", samples[0])] * len(samples)
    for kind, recs in refs.items():
        index = CosineIndex()
        index.add(embed([r.text for r in recs]))
        sims, rows = index.best(vs)
        nearest = [max(old, (float(s), kind, recs[j]), key=lambda x: x[0]) if j >= 0 else old
                   for old, s, j in zip(nearest, sims, rows, strict=True)]
    sims, rows = best_earlier(vs)
    nearest = [max(old, (float(s), "earlier sample", samples[j]), key=lambda x: x[0]) if j >= 0 else old
               for old, s, j in zip(nearest, sims, rows, strict=True)]
    for rec, (cos, kind, other) in zip(samples, nearest, strict=True):
        jac = jaccard(shingler(rec.text, lang), shingler(other.text, lang))
        found.append({"cosine": round(cos, 4), "jaccard": round(jac, 3), "kind": kind, "sample": rec.text,
                      "nearest": other.text, "minhash_rejects": jac >= NEAR or normalise_text(rec.text) == normalise_text(other.text)})
    best = np.asarray([f["cosine"] for f in found])
    missed = {f"{t:.2f}": sum(1 for f in found if f["cosine"] >= t and not f["minhash_rejects"]) for t in THRESHOLDS}
    return {"samples": len(found), "rejected_share": curve(best), "minhash_rejects": sum(f["minhash_rejects"] for f in found),
            "above_threshold_minhash_passes": missed, "max_cosine_quantiles": _quantiles(best),
            "pairs": sorted(found, key=lambda f: -f["cosine"])}


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (50, 90, 95, 99)} if len(values) else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.paraphrase_threshold", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--samples", type=Path, help="a generated run's samples.jsonl (real model)")
    parser.add_argument("--seeds", type=Path, help="its seeds (train.jsonl)")
    parser.add_argument("--eval", type=Path, help="its eval split")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"thresholds": list(THRESHOLDS),
                              "real": {lang: real_side(args.datasets, lang) for lang in ("en", "vi")}}
    if args.samples:
        result["generated"] = generated_side(args.samples, args.seeds, args.eval)
    write_json_atomic(args.out, result)
    for lang, r in result["real"].items():
        print(f"real {lang}: {r['samples']} distinct sentences vs a pool of {r['pool']}: rejected share {r['rejected_share']}")
        if "same_company" in r:
            s = r["same_company"]
            print(f"  same company: {s['pairs']} pairs, at or above: {s['pairs_at_or_above']}; "
                  f"{s['samples_with_one']} sentences with one, rejected: {s['samples_rejected_by_such_a_pair']}")
    if "generated" in result:
        g = result["generated"]
        print(f"generated: {g['samples']} samples, rejected share {g['rejected_share']}; "
              f"MinHash rejects {g['minhash_rejects']}; above t and MinHash passes: {g['above_threshold_minhash_passes']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

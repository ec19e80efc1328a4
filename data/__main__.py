"""`python -m data eda|prepare ...`: see `python -m data --help`."""

from __future__ import annotations

import argparse
import json

from backends.models import DEFAULT_MODEL
from core.errors import run_cli
from data.clean import CleanConfig
from data.prepare import prepare, run_eda  # heavy imports only after --help
from data.sources import PHRASEBANK_LEVELS, TableSpec


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="fin_sentiment", help="task name in tasks/ or a path to a task YAML")
    p.add_argument("--source-dir", "--source", dest="sources", action="append", metavar="PATH",
                   help="a folder in the ../shared/datasets layout, a folder of <lang>.jsonl sample files "
                        "(data/samples), or your own .jsonl/.csv/.parquet file; repeatable "
                        "(default: ../shared/datasets when present)")
    p.add_argument("--hub", action="store_true",
                   help="load FinGPT/fingpt-sentiment-train and uitnlp/vietnamese_students_feedback from the Hub")
    p.add_argument("--out", required=True, help="output folder (gets eda/ and, for prepare, data/)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="tokenizer for token lengths: an offline model or a Hub id / local path")
    p.add_argument("--text-col", default="text", help="text column of your own file")
    p.add_argument("--label-col", default="label", help="label column of your own file")
    p.add_argument("--lang", help="language of your own file (e.g. en)")
    p.add_argument("--lang-col", help="column holding each row's language, instead of --lang")
    p.add_argument("--topic-col", help="optional topic column (stratified like UIT-VSFC's topic)")
    p.add_argument("--encoding", default="utf-8", help="encoding of your own CSV file")
    p.add_argument("--skip-unmapped", action="store_true",
                   help="drop (and count) rows whose label maps to no task label instead of stopping")
    g = p.add_argument_group("cleaning")
    g.add_argument("--urls", choices=["remove", "mask", "keep"], default="remove")
    g.add_argument("--cashtags", choices=["keep", "mask", "strip"], default="keep")
    g.add_argument("--min-chars", type=int, help="drop shorter texts (default: the task's input.min_chars)")
    g.add_argument("--max-chars", type=int, help="drop longer texts (default: the task's input.max_chars)")
    g.add_argument("--near-dup-threshold", type=float, default=CleanConfig.near_threshold,
                   help="Jaccard of character 5-grams for near duplicates (default %(default)s)")
    for flag, what in (("--no-fix-unicode", "ftfy repair and NFC"), ("--keep-lossy-mojibake", "dropping lossy mojibake"),
                       ("--no-language-filter", "the language filter"), ("--keep-conflicts", "dropping conflicting labels"),
                       ("--no-dedup", "exact and near-duplicate removal"),
                       ("--no-vi-restore", "Vietnamese punctuation/emoticon/name restoration")):
        g.add_argument(flag, action="store_true", help=f"switch off {what}")


def _clean_cfg(a: argparse.Namespace) -> CleanConfig:
    return CleanConfig(
        fix_unicode=not a.no_fix_unicode, drop_lossy_mojibake=not a.keep_lossy_mojibake, urls=a.urls,
        cashtags=a.cashtags, vi_restore=not a.no_vi_restore, min_chars=a.min_chars, max_chars=a.max_chars,
        language_filter=not a.no_language_filter, drop_conflicts=not a.keep_conflicts,
        dedup_exact=not a.no_dedup, dedup_near=not a.no_dedup, near_threshold=a.near_dup_threshold,
    )


def _table(a: argparse.Namespace) -> TableSpec:
    return TableSpec(lang=a.lang, text_col=a.text_col, label_col=a.label_col, lang_col=a.lang_col,
                     topic_col=a.topic_col, encoding=a.encoding)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data", description=__doc__.split(":")[0] + ": "
                                     "exploratory analysis, cleaning and train/eval selection of real data.")
    sub = parser.add_subparsers(dest="command", required=True)
    eda = sub.add_parser("eda", help="write DIR/eda/report.md with plots: counts, labels, lengths, "
                                     "duplicates, conflicts, mojibake, language, n-grams, topics, overlap")
    _add_common(eda)
    prep = sub.add_parser("prepare", help="clean and select DIR/data/train.jsonl and eval.jsonl, plus the EDA report")
    _add_common(prep)
    prep.add_argument("--train-per-lang", type=int, default=3000)
    prep.add_argument("--eval-per-lang", type=int, default=250)
    prep.add_argument("--strategy", choices=["balanced", "natural"], default="balanced",
                      help="label mix of both splits (default balanced: see docs/data.md)")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--phrasebank-level", choices=PHRASEBANK_LEVELS, default="50Agree",
                      help="Financial PhraseBank agreement file to read")
    prep.add_argument("--no-eda", action="store_true", help="skip the EDA report")
    a = parser.parse_args(argv)

    if a.command == "eda":
        result = run_eda(task=a.task, sources=a.sources, hub=a.hub, table=_table(a), out=a.out, model=a.model,
                         clean_cfg=_clean_cfg(a), skip_unmapped=a.skip_unmapped)
        print(f"report: {result['report']}")
        return 0
    summary = prepare(task=a.task, sources=a.sources, hub=a.hub, table=_table(a), out=a.out,
                      train_per_lang=a.train_per_lang, eval_per_lang=a.eval_per_lang, strategy=a.strategy,
                      seed=a.seed, clean_cfg=_clean_cfg(a), model=a.model, skip_unmapped=a.skip_unmapped,
                      phrasebank_level=a.phrasebank_level, eda=not a.no_eda)
    print(json.dumps({k: summary[k] for k in ("train", "eval", "cleaning", "files", "seconds")}, indent=1))
    print(json.dumps(summary["selection"]["languages"], indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Loaders: every source becomes a list of `Record`s with the task's labels and its provenance.

    sources = discover(["../shared/datasets"], task)          # the original release formats
    sources = discover(["data/samples"], task)                # our sample files (<lang>.jsonl)
    sources = discover(["my.csv"], task, TableSpec(lang="en", text_col="headline"))
    sources = load_hub(task)                                   # datasets.load_dataset(...) from the Hub

Raw labels go through `task.normalise_label(raw, source=<dataset name>)`; a label that maps to
nothing is collected in `Source.unmapped` (never guessed) and `check_unmapped` turns it into an
error naming file and line unless the caller allows skipping. Each record keeps
`provenance = {dataset, row, raw_label, file, line}`; UIT-VSFC's topic goes to `meta["topic"]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError, fail
from core.inputs import check_columns, read_table, read_text_lines
from core.records import Record
from core.task_spec import Task

FINGPT_HUB_ID = "FinGPT/fingpt-sentiment-train"
UIT_HUB_ID = "uitnlp/vietnamese_students_feedback"
UIT_TOPICS = {"0": "lecturer", "1": "training_program", "2": "facility", "3": "others"}
PHRASEBANK_LEVELS = ("50Agree", "66Agree", "75Agree", "AllAgree")


@dataclass
class Source:
    """One dataset (or split of one) in one language, loaded into records.

    Attributes:
        pool: "train" or "eval": which selection pool the rows may feed. A dataset's own held-out
            split (UIT-VSFC dev, the Hub's validation split) is an eval pool.
        unmapped: (file:line, raw label) of every row whose label maps to no task label.
    """

    name: str
    lang: str
    pool: str
    path: str
    records: list[Record] = field(default_factory=list)
    unmapped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Unique name in reports: dataset, language and (for held-out splits) the pool."""
        return f"{self.name}:{self.lang}" + (f":{self.pool}" if self.pool != "train" else "")


@dataclass
class TableSpec:
    """Column mapping for a user's own JSONL / CSV / Parquet file."""

    lang: str | None = None
    text_col: str = "text"
    label_col: str = "label"
    lang_col: str | None = None
    topic_col: str | None = None
    name: str | None = None
    pool: str = "train"
    encoding: str = "utf-8"


def _add(src: Source, task: Task, *, text: Any, raw: Any, row: int, where: str, line: int,
         lang: str | None = None, meta: dict | None = None) -> None:
    """Append one row to `src` (or to its unmapped list when the label maps to nothing)."""
    label = task.normalise_label(raw, source=src.name)
    if label is None:
        src.unmapped.append((where, str(raw)))
        return
    if text is None or not str(text).strip():
        fail(f"{where}: empty text")
    src.records.append(Record.new(
        task=task.name, lang=lang or src.lang, text=str(text), labels={task.label_name: label},
        source="real", provenance={"dataset": src.name, "row": row, "raw_label": str(raw),
                                   "file": src.path, "line": line, "pool": src.pool},
        meta=meta or {},
    ))


# ---- the original release formats (../shared/datasets) --------------------------------------------
def load_phrasebank(path: Path, task: Task) -> Source:
    """Financial PhraseBank: `sentence@label` per line, latin-1 encoded."""
    src = Source("financial_phrasebank", "en", "train", str(path))
    for i, line in enumerate(read_text_lines(path, "latin-1")):
        if not line.strip():
            continue
        if "@" not in line:
            fail(f"{path}:{i + 1}: expected 'sentence@label', found no '@'")
        text, raw = line.rsplit("@", 1)
        _add(src, task, text=text, raw=raw.strip(), row=i, where=f"{path}:{i + 1}", line=i + 1)
    return src


def phrasebank_agreement(folder: Path) -> dict[str, str]:
    """Sentence -> strictest annotator-agreement file it appears in (AllAgree, 75Agree, ...)."""
    agreement: dict[str, str] = {}
    for level in PHRASEBANK_LEVELS:  # least strict first: stricter files overwrite
        path = folder / f"Sentences_{level}.txt"
        if path.is_file():
            for line in read_text_lines(path, "latin-1"):
                if "@" in line:
                    agreement[line.rsplit("@", 1)[0]] = level
    return agreement


def load_twitter_csv(path: Path, task: Task, name: str = "twitter_financial_news_sentiment") -> Source:
    """Twitter Financial News sentiment: CSV `text,label` with numeric codes (0 bearish, 1 bullish, 2 neutral)."""
    src = Source(name, "en", "train", str(path))
    for i, (lineno, row) in enumerate(read_table(path, ["text", "label"])):
        _add(src, task, text=row["text"], raw=row["label"], row=i, where=f"{path}:{lineno}", line=lineno)
    return src


def load_uit_vsfc(folder: Path, task: Task, pool: str) -> Source:
    """UIT-VSFC release format: parallel `sents.txt`, `sentiments.txt`, `topics.txt`."""
    src = Source("uit_vsfc", "vi", pool, str(folder))
    files = {name: folder / f"{name}.txt" for name in ("sents", "sentiments", "topics")}
    columns = {name: read_text_lines(path) for name, path in files.items()}
    n = len(columns["sents"])
    for name, lines in columns.items():
        if len(lines) != n:
            fail(f"{files[name]}:{min(n, len(lines)) + 1}: has {len(lines)} lines but sents.txt has {n}; "
                 "the three files must be parallel")
    for i, (text, raw, topic) in enumerate(zip(columns["sents"], columns["sentiments"], columns["topics"],
                                               strict=True)):
        if topic.strip() not in UIT_TOPICS:
            fail(f"{files['topics']}:{i + 1}: unknown topic code '{topic.strip()}' "
                 f"(known: {', '.join(f'{k}={v}' for k, v in UIT_TOPICS.items())})")
        _add(src, task, text=text, raw=raw.strip(), row=i, where=f"{files['sentiments']}:{i + 1}",
             line=i + 1, meta={"topic": UIT_TOPICS[topic.strip()]})
    return src


def load_shared_layout(folder: Path, task: Task, phrasebank_level: str = "50Agree") -> list[Source]:
    """The layout of `../shared/datasets`: Financial PhraseBank, Twitter CSV, UIT-VSFC train/dev."""
    sources: list[Source] = []
    fpb = folder / "financial_phrasebank"
    if fpb.is_dir():
        src = load_phrasebank(fpb / f"Sentences_{phrasebank_level}.txt", task)
        agreement = phrasebank_agreement(fpb)
        for rec in src.records:
            rec.meta["agreement"] = agreement.get(rec.text, phrasebank_level)
        sources.append(src)
    tw = folder / "twitter_financial_news_sentiment" / "sent_train.csv"
    if tw.is_file():
        sources.append(load_twitter_csv(tw, task))
    for split, pool in (("train", "train"), ("dev", "eval")):
        if (folder / "uit_vsfc" / split).is_dir():
            sources.append(load_uit_vsfc(folder / "uit_vsfc" / split, task, pool))
    return sources


# ---- our sample files and a user's own tables -----------------------------------------------------
def load_samples(folder: Path, task: Task) -> list[Source]:
    """`<folder>/<lang>.jsonl` (or `<folder>/<task>/<lang>.jsonl`) with `text` and `label` per row."""
    base = folder / task.name if (folder / task.name).is_dir() else folder
    sources = []
    for lang in task.languages:
        path = base / f"{lang}.jsonl"
        if not path.is_file():
            continue
        src = Source("samples", lang, "train", str(path))
        for i, (lineno, obj) in enumerate(read_table(path, ["text", "label"])):
            rec_meta = {"source_id": obj["id"]} if "id" in obj else {}
            _add(src, task, text=obj["text"], raw=obj["label"], row=i, where=f"{path}:{lineno}", line=lineno,
                 meta=rec_meta)
        sources.append(src)
    if not sources:
        fail(f"{folder}: no {'/'.join(f'{lang}.jsonl' for lang in task.languages)} sample files")
    return sources


def load_table(path: Path, task: Task, spec: TableSpec) -> list[Source]:
    """A user's JSONL / CSV / Parquet file (read by `core.inputs.read_table`); one Source per language found."""
    if spec.lang is None and spec.lang_col is None:
        fail(f"{path}: say which language it is in (--lang en) or which column holds it (--lang-col)")
    name = spec.name or path.stem
    cols = [c for c in (spec.text_col, spec.label_col, spec.lang_col, spec.topic_col) if c is not None]
    by_lang: dict[str, Source] = {}
    for i, (lineno, row) in enumerate(read_table(path, cols, spec.encoding)):
        lang = str(row[spec.lang_col]) if spec.lang_col else spec.lang
        src = by_lang.setdefault(lang, Source(name, lang, spec.pool, str(path)))
        meta = {"topic": str(row[spec.topic_col])} if spec.topic_col else {}
        _add(src, task, text=row[spec.text_col], raw=row[spec.label_col], row=i, where=f"{path}:{lineno}",
             line=lineno, lang=lang, meta=meta)
    return list(by_lang.values())


# ---- the Hugging Face Hub (what users run) --------------------------------------------------------
def load_hub(task: Task, en_id: str = FINGPT_HUB_ID, vi_id: str = UIT_HUB_ID) -> list[Source]:
    """The mission's two Hub datasets through `datasets.load_dataset`.

    FinGPT's `output` holds graded labels ("mildly positive", ...): they map through the task's
    synonyms. UIT-VSFC's validation split becomes the Vietnamese eval pool; its test split is left
    untouched for a final, never-selected-from evaluation.
    """
    import datasets

    def fetch(repo: str, split: str) -> Any:
        try:
            return datasets.load_dataset(repo, split=split)
        except Exception as exc:  # offline, unknown repo, auth: all one message for the user
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot load '{repo}' (split {split}) from the Hugging Face Hub: {first}; "
                            "check the network or use --source-dir with local copies") from None

    sources = []
    fin = fetch(en_id, "train")
    check_columns(Path(en_id), fin.column_names, ["input", "output"])
    src = Source("fingpt_sentiment", "en", "train", en_id)
    for i, row in enumerate(fin):
        _add(src, task, text=row["input"], raw=row["output"], row=i, where=f"{en_id}:row {i}", line=i + 1,
             meta={"instruction": row.get("instruction", "")})
    sources.append(src)
    for split, pool in (("train", "train"), ("validation", "eval")):
        ds = fetch(vi_id, split)
        check_columns(Path(vi_id), ds.column_names, ["sentence", "sentiment", "topic"])
        src = Source("uit_vsfc", "vi", pool, f"{vi_id}[{split}]")
        for i, row in enumerate(ds):
            topic = UIT_TOPICS.get(str(row["topic"]), str(row["topic"]))
            _add(src, task, text=row["sentence"], raw=row["sentiment"], row=i, where=f"{vi_id}[{split}]:row {i}",
                 line=i + 1, meta={"topic": topic})
        sources.append(src)
    return sources


# ---- dispatch ---------------------------------------------------------------------------------------
def discover(inputs: list[str], task: Task, table: TableSpec | None = None,
             phrasebank_level: str = "50Agree") -> list[Source]:
    """Turn CLI inputs (folders, files, `hub`) into loaded sources."""
    sources: list[Source] = []
    for item in inputs:
        path = Path(item)
        if item == "hub":
            sources += load_hub(task)
        elif path.is_dir():
            if any((path / d).exists() for d in ("financial_phrasebank", "twitter_financial_news_sentiment",
                                                 "uit_vsfc")):
                sources += load_shared_layout(path, task, phrasebank_level)
            else:
                sources += load_samples(path, task)
        elif path.is_file():
            sources += load_table(path, task, table or TableSpec())
        else:
            fail(f"{item}: no such file or folder (a source is a folder, a .jsonl/.csv/.parquet file or 'hub')")
    if not sources:
        fail(f"no data found in {', '.join(inputs)}")
    return sources


def check_unmapped(sources: list[Source], task: Task, allow: bool) -> dict[str, dict[str, int]]:
    """Counts of unmapped raw labels per source; an error naming the first one unless `allow`."""
    counts: dict[str, dict[str, int]] = {}
    for src in sources:
        for _where, raw in src.unmapped:
            counts.setdefault(src.key, {}).setdefault(raw, 0)
            counts[src.key][raw] += 1
    if counts and not allow:
        src = next(s for s in sources if s.unmapped)
        where, raw = src.unmapped[0]
        total = sum(sum(c.values()) for c in counts.values())
        fail(f"{where}: label '{raw}' maps to no {task.name} label ({', '.join(task.label_names)}); "
             f"{total} row(s) like this; add it as a synonym in {task.path.name} or pass --skip-unmapped")
    return counts

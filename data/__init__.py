"""`python -m data eda|prepare --task fin_sentiment ...`: sources, EDA, cleaning and selection.

    python -m data eda --task fin_sentiment --source data/samples --out runs/eda
    python -m data prepare --task fin_sentiment --source-dir ../shared/datasets --out runs/fin

Modules: `sources` (loaders for the Hub datasets, the original file formats and a user's own
JSONL/CSV/Parquet), `textstats` (URLs, cashtags, emoji, mojibake, language ID), `dedup` (exact and
MinHash near-duplicate detection), `clean` (configurable cleaning, every step counted), `select`
(stratified, leakage-free train/eval selection), `eda` (report and plots), `prepare` (the whole
stage, also callable from Python as `data.prepare.prepare(...)`).
"""

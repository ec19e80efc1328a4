"""`python -m validators` through its real entry point: the three output files, references, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.errors import UserError
from core.io import read_records, write_jsonl_atomic
from tests.validators.helpers import make
from validators.cli import main


def _synthetic_batch(tmp_path):
    records = [
        make("Nordvik Shipping's net sales rose 9.2% year on year, beating forecasts.", "positive", rid="s1"),
        make("Nordvik Shipping's net sales rose 9.2% year on year, beating forecasts.", "positive", rid="s2"),
        make("Management expects net sales in 2025 to remain at the 2024 level.", "neutral", rid="s3"),
        make("Positive quarter: the insurer's profit doubled.", "positive", rid="s4"),
        make("Vietnam's rice exports fell sharply in August.", "negative", lang="vi", rid="s5"),
        make("Lợi nhuận của ngân hàng giảm mạnh trong quý đầu năm.", "negative", lang="vi", rid="s6"),
        make("Copper miners rallied after the central bank surprised markets with a rate cut.", "positive", rid="s7"),
    ]
    path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(path, records)
    evals = [make("Management expects net sales in 2024 to remain at the 2023 level.", "neutral", rid="ev1", split="eval")]
    write_jsonl_atomic(tmp_path / "eval.jsonl", evals)
    return path


def test_cli_writes_accepted_rejected_and_report(tmp_path):
    samples = _synthetic_batch(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "validators", "--task", "fin_sentiment", "--in", str(samples), "--out", str(out),
         "--reference", str(tmp_path / "eval.jsonl"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "notice: skipping self_consistency" in proc.stderr
    accepted, rejected = read_records(out / "accepted.jsonl"), read_records(out / "rejected.jsonl")
    reasons = {r.id: next(v.reason for v in r.verdicts if not v.passed) for r in rejected}
    assert set(reasons) == {"s2", "s3", "s4", "s5"}
    assert reasons["s2"].startswith("exact duplicate of s1")
    assert reasons["s3"].startswith("contamination: near eval item ev1")
    assert reasons["s4"].startswith("label word leak")
    assert reasons["s5"].startswith("language: expected 'vi'")
    assert [r.id for r in accepted] == ["s1", "s6", "s7"]
    cheap = ["schema", "quality", "near_duplicates", "language"]
    for rec in accepted + rejected:  # every record keeps every verdict the chain gave it
        # paraphrase_duplicates and neighbour_agreement (encoders, no model) judge only what passed the cheap checks
        encoders = ["paraphrase_duplicates", "neighbour_agreement"]
        assert [v.name for v in rec.verdicts] == cheap + (encoders if rec in accepted else [])
        assert 0.0 <= rec.meta["doubt"] <= 1.0
    report = json.loads((out / "report.json").read_text())
    assert report["accepted"] == 3 and report["rejected"] == 4 and report["references"]["eval"] == 1
    assert report["validators"]["near_duplicates"]["rules"] == {"batch_duplicate": 1, "contamination": 1}
    assert report["validators"]["quality"]["examples"]["label_leak"][0]["id"] == "s4"
    assert "| near_duplicates | 7 | 5 | 2 |" in (out / "report.md").read_text()


def test_cli_reads_plain_sample_rows_and_overrides_options(tmp_path, samples_dir):
    out = tmp_path / "out"
    assert main(["--task", "fin_sentiment", "--in", str(samples_dir / "fin_sentiment" / "en.jsonl"), "--out", str(out),
                 "--only", "near_duplicates", "--set", "near_duplicates.threshold=0.95", "--quiet"]) == 0
    rejected = {r.id for r in read_records(out / "rejected.jsonl")}
    assert rejected == {"en_021", "en_031"}  # at 0.95 only the exact copies; en_027 (≈0.8) now passes


def test_cli_user_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Shares rose 5% today.", "label": "up", "lang": "en"}\n')
    proc = subprocess.run([sys.executable, "-m", "validators", "--task", "fin_sentiment", "--in", str(bad),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}:1: field 'label': unknown label 'up' (labels: positive, negative, neutral)"
    good = tmp_path / "en.jsonl"
    good.write_text('{"text": "Shares rose 5% today.", "label": "bullish"}\n')
    with pytest.raises(UserError, match=r"--set nonsense: expected VALIDATOR\.OPTION=VALUE"):
        main(["--task", "fin_sentiment", "--in", str(good), "--out", str(tmp_path / "o"), "--set", "nonsense"])
    with pytest.raises(UserError, match="unknown validator 'dedup'"):
        main(["--task", "fin_sentiment", "--in", str(good), "--out", str(tmp_path / "o"), "--only", "dedup"])


@pytest.mark.slow
def test_neighbour_agreement_with_the_bundled_sentence_transformer(fin, sample_records):
    from validators.chain import run_chain

    seeds = [r.model_copy(update={"split": "train"}) for r in sample_records if r.lang == "en"]
    batch = [make("Quarterly operating profit jumped 40% and the company raised its dividend.", "positive"),
             make("Quarterly operating profit jumped 40% and the company raised its dividend.", "negative", lang="en",
                  rid="flipped")]
    accepted, rejected, _ = run_chain(fin, batch, seeds, only=["neighbour_agreement"], enable=["neighbour_agreement"],
                                      progress=False)
    verdict = (accepted + rejected)[0].verdict("neighbour_agreement")
    assert len(verdict.details["neighbours"]) == 5 and verdict.details["neighbours"][0]["cosine"] > 0.3
    flipped = next(r for r in accepted + rejected if r.id == "flipped").verdict("neighbour_agreement")
    assert flipped.details["votes"] == verdict.details["votes"]  # same text, same neighbours
    assert verdict.details["agreement"] > flipped.details["agreement"]


def test_an_unreachable_redis_is_one_line_without_the_password_and_no_verdicts(tmp_path):
    """One process, its LSH index in a Redis that is not there: exit 2, one line, no output files."""
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    samples, out = _synthetic_batch(tmp_path), tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "validators", "--task", "fin_sentiment", "--in", str(samples), "--out", str(out),
         "--redis-url", f"redis://:hunter2@127.0.0.1:{port}/0", "--quiet", "--skip", "self_consistency"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "near_duplicates" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "hunter2" not in proc.stderr + proc.stdout
    assert not (out / "accepted.jsonl").exists()

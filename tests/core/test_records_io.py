from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from core.errors import UserError
from core.io import JsonlAppender, read_jsonl, read_records, write_jsonl_atomic, write_text_atomic
from core.records import Record, Verdict, record_id


def test_record_id_is_stable_and_normalised():
    a = record_id("fin_sentiment", "en", "Profit rose 5%")
    assert a == record_id("fin_sentiment", "en", "  profit   ROSE 5% ")
    assert a != record_id("fin_sentiment", "vi", "Profit rose 5%")
    assert a != record_id("support_intent", "en", "Profit rose 5%")
    # Pinned: ids must never change between versions, or resumed runs and review queues break.
    assert a == "59b768ea98f7289b"


def test_record_round_trips_through_jsonl(tmp_path):
    rec = Record.new(task="fin_sentiment", lang="en", text="Profit rose", labels={"label": "positive"},
                     verdicts=[Verdict(name="language", passed=True, score=0.99)])
    write_jsonl_atomic(tmp_path / "r.jsonl", [rec])
    (back,) = read_records(tmp_path / "r.jsonl")
    assert back == rec
    assert back.verdict("language").score == 0.99 and back.passed


def test_jsonl_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n\n{"id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:3: not valid JSON"):
        read_jsonl(path)
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:2: missing field 'text'"):
        read_jsonl(path, required=["id", "text"])
    path.write_text('{"id": "a", "task": "t", "lang": "en", "text": "x", "source": "robot"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl:1: field 'source'"):
        read_records(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(UserError, match="empty file"):
        read_jsonl(path)
    path.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(UserError, match="not UTF-8"):
        read_jsonl(path)
    with pytest.raises(UserError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_atomic_write_leaves_old_file_intact_when_interrupted(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")

    def rows():
        yield {"ok": 1}
        raise RuntimeError("interrupted while producing rows")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(target, rows())
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"], "no temp file left behind"

    # A process killed (SIGKILL) in the middle of writing the temp file: the target is untouched.
    script = textwrap.dedent(f"""
        import os, core.io
        real_replace = os.replace
        def die(*a): os.kill(os.getpid(), 9)
        os.replace = die
        core.io.write_text_atomic({str(target)!r}, "new\\n" * 1000)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd())
    assert proc.returncode == -9
    assert target.read_text(encoding="utf-8") == "old\n"
    write_text_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"


def test_appender_repairs_a_partial_last_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    with JsonlAppender(path) as out:
        out.write_batch([{"i": 0}, {"i": 1}])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"i": 2, "te')  # what a SIGKILL mid-write leaves
    with JsonlAppender(path) as out:
        out.write_batch([{"i": 2}])
    assert [json.loads(line)["i"] for line in path.read_text().splitlines()] == [0, 1, 2]

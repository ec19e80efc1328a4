"""The data-value report: its measures on hand-made and planted sets, its files, its CLI and errors.

The planted tests run the real encoder (bundled MiniLM, English) and the real char TF-IDF
(Vietnamese) on the fin_sentiment samples; no fake stands in for either.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from core.io import write_jsonl_atomic
from core.records import Record
from evaluator.data_value import data_value
from evaluator.data_value_metrics import gap_recovered, llm_gap_recovered
from evaluator.fidelity import distinct_n, knn_precision_recall, label_balance, mauve_score, vendi

NOVEL_EN = [
    "Acme Robotics widened its quarterly loss as warehouse orders dried up across Europe.",
    "The central bank of Chile surprised markets with a half-point rate cut on Tuesday.",
    "Copper futures slid for a third session on weaker Chinese factory data.",
    "Brightwater Utilities reaffirmed its dividend and kept its annual guidance unchanged.",
    "Shares of Nordlake Shipping jumped after it won a ten-year charter contract.",
    "A court in Delaware blocked the planned merger of two regional pharmacy chains.",
    "Quarterly revenue at Pinecrest Software beat estimates on strong cloud subscriptions.",
    "The airline cancelled its share buyback, citing higher jet fuel costs.",
    "Investors shrugged off the retailer's management reshuffle announced late on Friday.",
    "Lumen Foods recalled two snack brands, and its stock fell nine percent.",
]
NOVEL_VI = [
    "Giá dầu thế giới giảm mạnh khiến cổ phiếu dầu khí đồng loạt lao dốc.",
    "Công ty chứng khoán này báo lãi kỷ lục trong nửa đầu năm nay.",
    "Nhà đầu tư nước ngoài bán ròng hơn một nghìn tỷ đồng trên sàn HOSE.",
    "Doanh nghiệp thép dự kiến chia cổ tức bằng tiền mặt vào tháng tới.",
    "Lạm phát tháng này đứng yên so với tháng trước theo số liệu mới.",
    "Ngân hàng điều chỉnh giảm lãi suất cho vay mua nhà thêm nửa điểm.",
    "Cổ phiếu công nghệ phục hồi sau ba phiên giảm liên tiếp.",
    "Xuất khẩu cà phê tăng trưởng mạnh nhờ giá bán cao kỷ lục.",
    "Tập đoàn bất động sản chậm trả lãi trái phiếu kỳ này.",
    "Chỉ số VN30 đi ngang trong phiên sáng với thanh khoản thấp.",
]


def _near_copy(text: str) -> str:
    """One small edit: the kind of copy a generator makes when it parrots a seed."""
    return text.rstrip(" .") + " today."


def _planted(split, lang: str) -> tuple[list[Record], list[Record], list[Record]]:
    """(real, eval, synthetic): half of the synthetic samples are near-copies of the seeds their prompt showed."""
    train, held = split
    real = [r for r in train if r.lang == lang]
    seeds = real[:10]
    rng = random.Random(0)
    synth = []
    novel = NOVEL_EN if lang == "en" else NOVEL_VI
    for i, text in enumerate([_near_copy(s.text) for s in seeds] + novel):
        shown = [seeds[i].text] + [s.text for s in rng.sample(seeds, 2)] if i < 10 else \
            [s.text for s in rng.sample(seeds, 3)]
        synth.append(Record.new(task="fin_sentiment", lang=lang, text=text, source="synthetic",
                                labels={"label": ["positive", "negative", "neutral"][i % 3]},
                                provenance={"seed_texts": shown}))
    return real, [r for r in held if r.lang == lang], synth


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_planted_near_copies_of_seeds_are_counted(split, lang, tmp_path):
    real, held, synth = _planted(split, lang)
    result = data_value("fin_sentiment", real, held, synth, tmp_path, n_bootstrap=50)
    fid = result["by_lang"][lang]["fidelity"]
    assert fid["features"]["kind"] == ("minilm" if lang == "en" else "tfidf")
    assert fid["nearest_seed"]["near_copies"] == 10 and fid["nearest_seed"]["near_copy_share"] == 0.5
    assert fid["nearest_seed"]["seeds"].startswith("the seeds each sample's prompt showed")
    assert fid["nearest_real"]["near_copies"] == 10  # the seeds are real records too
    assert "near-copies of seeds: 50% (10/20)" in result["verdict"]

    saved = json.loads((tmp_path / "data_value.json").read_text())
    assert saved["by_lang"][lang]["fidelity"]["nearest_seed"]["near_copies"] == 10
    report = (tmp_path / "report.md").read_text()
    assert "near-copies of seeds: 50%" in report and "| synthetic → nearest seed | 20 |" in report
    for png in (f"similarity_{lang}.png", f"projection_{lang}.png", "utility.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report
    util = saved["by_lang"][lang]["utility"]
    assert set(util["train"]) == {"real", "synthetic", "real_synthetic"}
    assert util["train"]["real_synthetic"]["n_train"] == len(real) + 20
    assert {"real_synthetic_vs_real", "synthetic_vs_real"} == set(util["comparisons"])


def test_knn_precision_recall_by_hand():
    """1-D points, k = 1: real radii 1, 1, 1, 1, 7; synthetic radii 19.5, 19.5, 80."""
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    synth = np.array([[0.5], [20.0], [100.0]])
    precision, recall = knn_precision_recall(real, synth, k=1)
    assert precision == pytest.approx(1 / 3)  # only 0.5 lies in a real ball
    assert recall == 1.0  # every real point lies in the ball of 0.5 (radius 19.5)
    with pytest.raises(ValueError, match="more than k=3"):
        knn_precision_recall(real, synth, k=3)


def test_same_distribution_scores_near_the_maximum_and_a_shifted_one_does_not():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    shifted = rng.normal(size=(400, 16)) + 3.0
    p, r = knn_precision_recall(a, b, k=3)
    assert p > 0.7 and r > 0.7  # k = 3 on 400 points: about 0.75-0.85 for one distribution
    assert mauve_score(a, b, seed=0)["score"] > 0.9
    p, r = knn_precision_recall(a, shifted, k=3)
    assert p < 0.1 and r < 0.1
    assert mauve_score(a, shifted, seed=0)["score"] < 0.1
    assert mauve_score(a, b, seed=0) == mauve_score(a, b, seed=0)  # seeded: the same number twice


def test_vendi_distinct_n_and_label_balance():
    assert vendi(np.ones((5, 3))) == pytest.approx(1.0)
    assert vendi(np.eye(4)) == pytest.approx(4.0)
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)  # ab, ba, ab | ab
    assert distinct_n(["a"], 2) == 0.0
    bal = label_balance(["positive", "positive"], ["positive", "negative"], ["positive", "negative", "neutral"])
    assert bal["total_variation"] == pytest.approx(0.5)
    assert bal["synthetic"] == {"positive": 2, "negative": 0, "neutral": 0}


def test_gap_recovered():
    assert gap_recovered(0.5, 0.3, 0.7) == pytest.approx(0.5)
    assert gap_recovered(0.8, 0.3, 0.7) == pytest.approx(1.25)  # better than the reference
    assert gap_recovered(0.5, 0.4, 0.4) is None  # the reference did not beat the base: no gap


def _eval_folder(folder, rows):
    folder.mkdir()
    write_jsonl_atomic(folder / "predictions.jsonl", rows)
    return folder


def test_llm_gap_recovered_from_two_evaluator_folders(tmp_path):
    """10 items: base right on 2, tuned-on-real (reference) on 6, tuned-on-real+synthetic on 4 -> 50%."""
    gold = ["positive"] * 10
    def row(i, **models):
        return {"id": str(i), "lang": "en" if i < 5 else "vi", "gold": gold[i],
                **{m: {"label": "positive" if right else "negative"} for m, right in models.items()}}
    tuned = _eval_folder(tmp_path / "eval", [row(i, base=i < 2, tuned=i < 4) for i in range(10)])
    ref = _eval_folder(tmp_path / "ref", [row(i, tuned=i < 6) for i in range(10)])
    out = llm_gap_recovered(tuned, ref, seed=0, n_bootstrap=50)
    assert out["accuracy"] == {"base": 0.2, "data": 0.4, "reference": 0.6}
    assert out["gap_recovered"] == pytest.approx(0.5)
    assert out["data_vs_reference"]["only_a"] == 2 and out["data_vs_reference"]["only_b"] == 0
    assert set(out["by_lang"]) == {"en", "vi"}
    other = _eval_folder(tmp_path / "other", [row(i, tuned=True) for i in reversed(range(10))])
    with pytest.raises(Exception, match="not the same eval items"):
        llm_gap_recovered(tuned, other, seed=0, n_bootstrap=50)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "evaluator", "data-value", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_the_report(split, tmp_path):
    real, held, synth = _planted(split, "vi")
    files = {}
    for name, rows in (("real", real), ("eval", held), ("synthetic", synth)):
        files[name] = tmp_path / f"{name}.jsonl"
        write_jsonl_atomic(files[name], rows)
    result = _run("--task", "fin_sentiment", "--real", str(files["real"]), "--eval", str(files["eval"]),
                  "--synthetic", str(files["synthetic"]), "--out", str(tmp_path / "out"), "--bootstrap", "50")
    assert result.returncode == 0, result.stderr
    assert "near-copies of seeds: 50%" in result.stdout
    data = json.loads((tmp_path / "out" / "data_value.json").read_text())
    assert data["version"] == 1 and set(data["by_lang"]) == {"vi"}
    assert "not computed: pass `--llm-eval`" in (tmp_path / "out" / "report.md").read_text().lower()



def test_an_empty_synthetic_file_is_reported_and_a_bad_line_is_named(split, tmp_path):
    from core.errors import UserError

    real, held, synth = _planted(split, "vi")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = data_value("fin_sentiment", real, held, empty, tmp_path / "none", n_bootstrap=50)
    assert result["verdict"] == "No synthetic samples in any language: nothing to judge."
    assert result["by_lang"]["vi"]["fidelity"] is None and result["by_lang"]["vi"]["utility"]["train"]["synthetic"] is None
    assert (tmp_path / "none" / "report.md").is_file()

    bad = [r.model_dump(mode="json") for r in synth]
    bad[2]["labels"]["label"] = "sideways"
    path = tmp_path / "synthetic.jsonl"
    write_jsonl_atomic(path, bad)
    with pytest.raises(UserError) as err:
        data_value("fin_sentiment", real, held, path, None)
    assert str(err.value).startswith(f"{path}:3: field 'labels.label': unknown label 'sideways'")

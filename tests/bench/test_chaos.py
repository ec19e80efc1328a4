"""`make chaos`'s runner (bench/chaos.py) on planted chaos tests: one row per test with its fault and check,
failures and skips reported as such, and the budget enforced on a test that hangs."""

from __future__ import annotations

import time

from bench.chaos import format_table, run

PLANTED = '''
import time
import pytest

@pytest.mark.chaos
def test_holds():
    """fault: a planted fault; checked: that it holds."""

@pytest.mark.chaos
def test_breaks():
    """Breaks on purpose. More text."""
    assert 1 == 2, "planted failure"

@pytest.mark.chaos
def test_cannot_run():
    pytest.skip("no such server here")

def test_not_chaos():
    pass

@pytest.mark.chaos
def test_zz_hangs():
    time.sleep(120)
'''


BUDGET_S = 8  # the child pytest starts in 1-2 s; the planted hang then meets the budget


def test_rows_name_the_fault_the_check_and_the_result_and_the_budget_holds(tmp_path):
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED)
    start = time.perf_counter()
    rows, finished = run(BUDGET_S, [str(planted), "-p", "no:timeout"])
    assert time.perf_counter() - start < BUDGET_S + 40  # the budget, then at most the interrupt's grace
    assert not finished
    by_test = {row["test"].rsplit("::", 1)[1]: row for row in rows}
    assert set(by_test) == {"test_holds", "test_breaks", "test_cannot_run", "test_zz_hangs"}  # chaos only
    assert (by_test["test_holds"]["fault"], by_test["test_holds"]["checked"]) == ("a planted fault", "that it holds.")
    assert by_test["test_holds"]["result"] == "pass"
    assert by_test["test_breaks"]["fault"] == "breaks" and by_test["test_breaks"]["checked"] == "Breaks on purpose"
    assert by_test["test_breaks"]["result"].startswith("FAIL: AssertionError: planted failure")
    assert by_test["test_cannot_run"]["result"] == "skipped: no such server here"
    assert by_test["test_zz_hangs"]["result"] == f"TIMEOUT (budget {BUDGET_S} s)"
    table = format_table(rows)
    assert table.splitlines()[0].split("|")[1:4] == [f" {'fault':<60} ", f" {'what was checked':<60} ",
                                                      f" {'result':<24} "]
    assert "a planted fault" in table and f"TIMEOUT (budget {BUDGET_S} s)" in table

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import UserError
from core.tasks import available_tasks, load_task


@pytest.mark.parametrize("name", available_tasks())
def test_every_task_yaml_loads_and_renders(name):
    task = load_task(name)
    assert task.label_names, "a task has labels"
    for lang in task.languages:
        messages = task.classify_messages("Some input text", lang=lang)
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "Some input text" in messages[1]["content"]
    attrs = {k: task.attribute_values(k, task.languages[0])[0] for k in task.attributes}
    seeds = [{"text": "seed text", "label": task.label_names[0]}]
    for template_id in task.generation_templates:
        prompt = task.render_generation(template_id, lang=task.languages[0], label=task.label_names[0],
                                        seeds=seeds, attributes=attrs)
        assert task.label_names[0] in prompt


def test_builtin_tasks_meet_their_spec():
    fin = load_task("fin_sentiment")
    assert fin.label_names == ["positive", "negative", "neutral"]
    assert fin.languages == ("en", "vi")
    support = load_task("support_intent")
    assert len(support.label_names) >= 12
    assert all("." in intent for intent in support.label_names)
    assert "reply" in support.outputs


def test_output_schema_rejects_unknown_label_and_overlong_text():
    support = load_task("support_intent")
    schema = support.output_schema()
    schema(intent="billing.seat_question", reply="Go to Admin Console → Billing → Seats.")
    with pytest.raises(ValidationError):
        schema(intent="billing.free_money", reply="ok")
    with pytest.raises(ValidationError):
        schema(intent="billing.seat_question", reply="x" * (support.outputs["reply"].max_chars + 1))
    fin_sample = load_task("fin_sentiment").generation_schema()
    with pytest.raises(ValidationError):
        fin_sample(text="y" * 10_000, label="positive")
    json_schema = fin_sample.model_json_schema()
    assert json_schema["properties"]["label"]["enum"] == ["positive", "negative", "neutral"]
    assert json_schema["properties"]["text"]["maxLength"] == 320


@pytest.mark.parametrize(
    ("raw", "source", "expected"),
    [("bullish", None, "positive"), ("Mildly Positive", None, "positive"), ("strong_negative", None, "negative"),
     ("Neutral", None, "neutral"), ("tich cuc", None, "positive"), ("Tiêu cực", None, "negative"),
     ("0", "twitter_financial_news_sentiment", "negative"), ("0", "uit_vsfc", "negative"),
     ("1", "uit_vsfc", "neutral"), ("2.0", "uit_vsfc", "positive"), ("somewhat happy", None, None),
     ("1", None, None)],
)
def test_label_synonyms_and_codes(raw, source, expected):
    assert load_task("fin_sentiment").normalise_label(raw, source) == expected


def test_with_labels_keeps_synonyms_of_known_labels():
    task = load_task("support_intent").with_labels(["billing.refund_request", "custom.new_intent"])
    assert task.label_names == ["billing.refund_request", "custom.new_intent"]
    assert task.normalise_label("money back") == "billing.refund_request"
    assert task.normalise_label("custom new intent") == "custom.new_intent"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
name: t
languages: [en]
input: {name: text}
label: {name: label, values: {a: {}, b: {}}}
prompts:
  system: sys
  instructions: ["say {{ labels | join(',') }}"]
  user: "{{ instruction }} {{ input }}"
  generation: [{id: g, template: "write {{ label }}"}]
"""


def test_a_third_task_is_one_yaml_file(tmp_path):
    task = load_task(_write(tmp_path, MINIMAL))
    assert task.label_names == ["a", "b"]
    assert task.answer({"label": "a"}) == "a"


@pytest.mark.parametrize(
    ("mutation", "message"),
    [(("label: {name: label, values: {a: {}, b: {}}}", "label: {name: label, values: {}}"), "label.values: the label set is empty"),
     (("languages: [en]", "languages: [en]\ncolour: blue"), "colour: unknown key"),
     (("user: \"{{ instruction }} {{ input }}\"", "user: \"\""), "prompts.user: missing or empty template"),
     (("  user: \"{{ instruction }} {{ input }}\"\n", ""), "prompts.user: missing required key"),
     (("write {{ label }}", "write {{ label "), "template syntax error"),
     (("languages: [en]", "languages: [en"), "malformed YAML")],
)
def test_bad_task_files_name_file_and_key(tmp_path, mutation, message):
    path = _write(tmp_path, MINIMAL.replace(*mutation))
    with pytest.raises(UserError) as err:
        load_task(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unknown_task_name_lists_the_available_ones():
    with pytest.raises(UserError, match=r"unknown task 'nope'.*fin_sentiment"):
        load_task("nope")


BY_LANG = MINIMAL.replace("languages: [en]", "languages: [en, vi]").replace(
    "  generation:", """  by_lang:
    vi:
      system: "hệ thống {{ language }}"
      instructions: ["một {{ labels | join('/') }}", "hai"]
  generation:""")


def test_prompts_can_be_overridden_per_language(tmp_path):
    task = load_task(_write(tmp_path, BY_LANG))
    en = task.classify_messages("x", "en")
    assert [m["content"] for m in en] == ["sys", "say a,b x"]
    vi = task.classify_messages("x", "vi")
    assert [m["content"] for m in vi] == ["hệ thống Vietnamese", "một a/b x"]  # user template: the default
    assert task.classify_messages("x", "vi", variant=3)[1]["content"] == "hai x"  # its own paraphrase count
    assert len(task.classify_prompts("vi").instructions) == 2 and len(task.classify_prompts("en").instructions) == 1
    assert task.classify_messages("x", "de")[0]["content"] == "sys"  # a language without overrides


@pytest.mark.parametrize(("mutation", "message"), [
    (("    vi:\n", "    fr:\n"), "prompts.by_lang.fr: unknown key (allowed: en, vi)"),
    (("      system:", "      colour: blue\n      system:"), "prompts.by_lang.vi.colour: unknown key"),
    (("instructions: [\"một {{ labels | join('/') }}\", \"hai\"]", "instructions: []"),
     "prompts.by_lang.vi.instructions: expected a non-empty list"),
    (("hệ thống {{ language }}", "{{ oops"), "prompts.by_lang.vi.system: template syntax error"),
])
def test_bad_language_overrides_name_file_and_key(tmp_path, mutation, message):
    path = _write(tmp_path, BY_LANG.replace(*mutation))
    with pytest.raises(UserError) as err:
        load_task(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_vietnamese_sentiment_is_asked_about_student_feedback_not_investors():
    task = load_task("fin_sentiment")
    system, user = (m["content"] for m in task.classify_messages("Thầy dạy rất nhiệt tình.", "vi"))
    assert "student" in system and "investor" not in system + user and "financial" not in system + user
    assert user.startswith("Classify the sentiment of this Vietnamese feedback")
    assert user.endswith("Text: Thầy dạy rất nhiệt tình.")
    for variant in range(len(task.classify_prompts("vi").instructions)):
        text = task.classify_messages("x", "vi", variant)[1]["content"]
        assert all(label in text for label in task.label_names)  # the answer words stay the task's labels
    assert "investors" in task.classify_messages("Shares rose", "en")[0]["content"]


SOURCES = """    uit_vsfc:
      system: "phản hồi của sinh viên"
    tweets:
      instructions: ["tweet {{ labels | join('|') }}"]
"""
BY_SOURCE = BY_LANG.replace("  generation:", "  by_source:\n" + SOURCES + "  generation:")


def test_prompts_can_be_overridden_per_source_over_the_language(tmp_path):
    task = load_task(_write(tmp_path, BY_SOURCE))
    # the source's key wins; the keys it leaves out come from the language, then from the task
    assert [m["content"] for m in task.classify_messages("x", "vi", source="uit_vsfc")] == [
        "phản hồi của sinh viên", "một a/b x"]
    assert [m["content"] for m in task.classify_messages("x", "en", source="uit_vsfc")] == [
        "phản hồi của sinh viên", "say a,b x"]
    assert [m["content"] for m in task.classify_messages("x", "en", source="tweets")] == ["sys", "tweet a|b x"]
    # every other source, and no source, is prompted as before
    for source in (None, "financial_phrasebank"):
        assert [m["content"] for m in task.classify_messages("x", "vi", source=source)] == [
            "hệ thống Vietnamese", "một a/b x"]
        assert [m["content"] for m in task.classify_messages("x", "en", source=source)] == ["sys", "say a,b x"]


def test_records_are_prompted_with_their_sources_prompts_in_training_and_evaluation(tmp_path):
    from core.records import Record
    from evaluator.prompts import base_prompts, tuned_prompts
    from trainer.formatting import to_messages

    task = load_task(_write(tmp_path, BY_SOURCE))

    def record(text: str, dataset: str) -> Record:
        return Record.new(task="t", lang="vi", text=text, labels={"label": "a"}, provenance={"dataset": dataset})

    uit, other = record("thầy dạy hay", "uit_vsfc"), record("lãi tăng", "samples")
    assert to_messages(uit, task)[0]["content"] == "phản hồi của sinh viên"
    assert to_messages(other, task)[0]["content"] == "hệ thống Vietnamese"
    assert [p[0]["content"] for p in tuned_prompts(task, [uit, other])] == [
        "phản hồi của sinh viên", "hệ thống Vietnamese"]
    shots = base_prompts(task, [uit, other], shots=1, pool=[record("sân trường đẹp", "samples")])
    assert [p[0]["content"] for p in shots] == ["phản hồi của sinh viên", "hệ thống Vietnamese"]


@pytest.mark.parametrize(("mutation", "message"), [
    (("    tweets:\n", "    my tweets:\n"), "prompts.by_source.my tweets: not a dataset name"),
    (("      system: \"phản hồi", "      colour: blue\n      system: \"phản hồi"),
     "prompts.by_source.uit_vsfc.colour: unknown key (allowed: instructions, system, user)"),
    (("instructions: [\"tweet {{ labels | join('|') }}\"]", "instructions: []"),
     "prompts.by_source.tweets.instructions: expected a non-empty list"),
    (("  by_source:\n" + SOURCES, "  by_source: [uit_vsfc]\n"), "prompts.by_source: expected a mapping"),
])
def test_bad_source_overrides_are_one_line_naming_file_and_key(tmp_path, mutation, message):
    path = _write(tmp_path, BY_SOURCE.replace(*mutation))
    with pytest.raises(UserError) as err:
        load_task(path)
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_token_budgets_let_the_json_answer_close():
    for name in ("fin_sentiment", "support_intent"):
        task = load_task(name)
        # The generator's budget holds the longest valid sample at one token per character.
        longest = task.generation_schema()(**{task.input_name: "x" * task.input_max_chars,
                                              task.label_name: max(task.label_names, key=len),
                                              **{o.name: "y" * o.max_chars for o in task.outputs.values()}})
        assert len(longest.model_dump_json()) <= task.max_new_tokens(with_input=True)
    # the numbers each stage has used: generator 384 / 1480, evaluator 24 (bare label) / 264 (JSON reply)
    fin, support = load_task("fin_sentiment"), load_task("support_intent")
    assert (fin.max_new_tokens(with_input=True), support.max_new_tokens(with_input=True)) == (384, 1480)
    assert (fin.max_new_tokens(), support.max_new_tokens()) == (24, 264)


RUBRIC = MINIMAL + """rubric:
  scores:
    - name: fits
      description: does it fit?
      options: {1: no, 2: partly, 3: yes}
      threshold: 2
    - name: label_right
      options: {0: wrong, 1: right}
      threshold: 1
  prompt: "{{ text }} is {{ label }} ({{ label_description }}). {{ rubric }} {{ answer_format }}"
"""


def test_a_rubric_gives_the_judge_its_prompt_schema_and_keep_rule(tmp_path):
    task = load_task(_write(tmp_path, RUBRIC))
    rubric = task.rubric
    assert rubric.names == ["fits", "label_right"] and rubric.keep == "all" and rubric.reasoning_chars == 200
    system, user = task.judge_messages("x", "en", {"label": "a"})
    assert system["content"].startswith("You review training examples")  # the default system turn
    assert user["content"].startswith("x is a (). - fits: does it fit?\n    1 = no\n    2 = partly\n    3 = yes")
    assert user["content"].endswith('{"reasoning": "...", "fits": 1|2|3, "label_right": 0|1}')
    reversed_prompt = task.judge_messages("x", "en", {"label": "a"}, reverse=True)[1]["content"]
    assert "3 = yes\n    2 = partly\n    1 = no" in reversed_prompt and '"fits": 3|2|1' in reversed_prompt
    props = rubric.schema().model_json_schema()["properties"]
    assert list(props) == ["reasoning", "fits", "label_right"]  # the reasoning comes before the scores
    assert props["reasoning"]["maxLength"] == 200 and props["fits"]["enum"] == [1, 2, 3]
    assert rubric.schema(reverse=True).model_json_schema()["properties"]["fits"]["enum"] == [3, 2, 1]
    assert rubric.keeps({"fits": 2, "label_right": 1}) and not rubric.keeps({"fits": 3, "label_right": 0})
    assert not rubric.keeps({"fits": 2, "label_right": 1}, {"fits": 3})
    assert rubric.parse_lenient('```json\n{"reasoning": "ok", "fits": "3", "label_right": 1.0}\n```') == {
        "reasoning": "ok", "fits": 3, "label_right": 1}
    assert rubric.parse_lenient('{"reasoning": "ok", "fits": 4, "label_right": 1}') is None
    any_task = load_task(_write(tmp_path, RUBRIC.replace("  scores:", "  keep: any\n  scores:")))
    assert any_task.rubric.keeps({"fits": 3, "label_right": 0})


def test_the_builtin_rubrics_render_for_every_language():
    for name in ("fin_sentiment", "support_intent"):
        task = load_task(name)
        assert task.rubric is not None and len(task.rubric.scores) >= 2
        labels = {task.label_name: task.label_names[0], **{o: "A reply." for o in task.outputs}}
        for lang in task.languages:
            prompt = task.judge_messages("Sample text", lang, labels)[1]["content"]
            assert "Sample text" in prompt and task.label_names[0] in prompt and "reasoning" in prompt
    assert "A reply." in load_task("support_intent").judge_messages("t", "en", {"intent": "bug.report",
                                                                                  "reply": "A reply."})[1]["content"]
    assert "students' feedback" in load_task("fin_sentiment").judge_messages("t", "vi", {"label": "neutral"})[1]["content"]


@pytest.mark.parametrize(("mutation", "message"), [
    (("      threshold: 2\n", ""), "rubric.scores[0].threshold: missing required key"),
    (("threshold: 2", "threshold: 5"), "rubric.scores[0].threshold: expected one of the option values (1, 2, 3)"),
    (("{1: no, 2: partly, 3: yes}", "{low: no, high: yes}"), "rubric.scores[0].options.low: an option's value must"),
    (("{0: wrong, 1: right}", "{1: right}"), "rubric.scores[1].options: expected a mapping of two or more"),
    (("name: fits", "name: reasoning"), "rubric.scores[0].name: 'reasoning' is not a score name"),
    (("name: label_right", "name: fits"), "rubric.scores[1].name: 'fits' is named twice"),
    (("  scores:", "  keep: most\n  scores:"), "rubric.keep: expected one of: all, any"),
    (("  scores:", "  colour: red\n  scores:"), "rubric.colour: unknown key"),
    (("  prompt: \"{{ text }}", "  prompt: \"{{ text"), "rubric.prompt: template syntax error"),
    (("  scores:", "  reasoning_chars: 5\n  scores:"), "rubric.reasoning_chars: expected a whole number"),
])
def test_bad_rubrics_name_file_and_key(tmp_path, mutation, message):
    path = _write(tmp_path, RUBRIC.replace(*mutation, 1))
    with pytest.raises(UserError) as err:
        load_task(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_validator_entry_can_be_configured_but_off(tmp_path):
    from validators.chain import chain_spec

    task = load_task(_write(tmp_path, RUBRIC + "validators:\n  - name: schema\n  - name: judge\n    enabled: false\n"
                                               "    mode: flag\n"))
    assert chain_spec(task) == [("schema", {})]
    assert chain_spec(task, enable=["judge"]) == [("schema", {}), ("judge", {"mode": "flag"})]
    with pytest.raises(UserError, match=r"validators\[1\]\.enabled: expected true or false"):
        load_task(_write(tmp_path, RUBRIC + "validators:\n  - name: schema\n  - name: judge\n    enabled: maybe\n"))

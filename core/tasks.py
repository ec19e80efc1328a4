"""Tasks are data: `tasks/<name>.yaml` is loaded into a `Task` that every stage shares.

    task = load_task("fin_sentiment")          # or a path to any YAML file of the same shape

Every problem in the file is one line naming the file and the key. What a loaded task does (schemas,
prompts, labels) is `core.task_spec.Task`.

A new task is one YAML file; see `tasks/fin_sentiment.yaml` for every key, documented inline.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import yaml

from core.errors import UserError, fail
from core.rubric import JUDGE_SYSTEM, KEEP_RULES, REASONING, SCORE_NAME, Rubric, RubricScore
from core.task_spec import (
    ClassifyPrompts,
    GenerationTemplate,
    LabelSpec,
    OutputField,
    Task,
)

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"

_TOP_KEYS = {
    "name", "description", "languages", "input", "label", "outputs", "prompts", "attributes", "validators",
    "rubric",
}
_REQUIRED_TOP = {"name", "languages", "input", "label", "prompts"}
_INPUT_KEYS = {"name", "description", "min_chars", "max_chars"}
_LABEL_KEYS = {"name", "values", "codes"}
_LABEL_VALUE_KEYS = {"description", "synonyms"}
_OUTPUT_KEYS = {"description", "max_chars"}
_PROMPT_KEYS = {"system", "instructions", "user", "generation", "demonstration", "by_lang", "by_source"}
_LANG_PROMPT_KEYS = {"system", "instructions", "user"}  # what a language or a source may override
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # dataset names as data/sources.py writes them
_GENERATION_KEYS = {"id", "description", "template", "demonstrations"}
_RUBRIC_KEYS = {"scores", "keep", "prompt", "system", "reasoning_chars"}
_SCORE_KEYS = {"name", "description", "options", "threshold"}

# ---- loading ------------------------------------------------------------------------------------
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def available_tasks() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def resolve_task_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            fail(f"{candidate}: task file not found")
        return candidate
    path = TASKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        fail(f"unknown task '{name_or_path}' (available: {', '.join(available_tasks())}; or pass a path to a .yaml file)")
    return path


def load_task(name_or_path: str | Path) -> Task:
    """Load and validate a task; every problem is a UserError naming the file and the key."""
    path = resolve_task_path(name_or_path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    return _build_task(path, copy.deepcopy(spec))


def _build_task(path: Path, spec: Any) -> Task:
    def where(key: str) -> str:
        return f"{path}: {key}"

    def check_keys(obj: Any, allowed: set[str], key: str, required: set[str] = frozenset()) -> dict:
        if not isinstance(obj, dict):
            fail(f"{where(key)}: expected a mapping, got {type(obj).__name__}")
        unknown = sorted(set(obj) - allowed)
        if unknown:
            fail(f"{where(key + '.' + unknown[0] if key else unknown[0])}: unknown key (allowed: {', '.join(sorted(allowed))})")
        missing = sorted(required - set(obj))
        if missing:
            fail(f"{where(key + '.' + missing[0] if key else missing[0])}: missing required key")
        return obj

    def template(source: Any, key: str) -> jinja2.Template:
        if not isinstance(source, str) or not source.strip():
            fail(f"{where(key)}: missing or empty template")
        try:
            return _JINJA.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"{where(key)}: template syntax error on its line {exc.lineno}: {exc.message}") from None

    spec = check_keys(spec, _TOP_KEYS, "", _REQUIRED_TOP)
    name = str(spec["name"])
    languages = spec["languages"]
    if not isinstance(languages, list) or not languages:
        fail(f"{where('languages')}: expected a non-empty list of language codes")

    inp = check_keys(spec["input"], _INPUT_KEYS, "input", {"name"})
    lab = check_keys(spec["label"], _LABEL_KEYS, "label", {"name", "values"})
    values = lab["values"]
    if not isinstance(values, dict) or not values:
        fail(f"{where('label.values')}: the label set is empty")
    labels: dict[str, LabelSpec] = {}
    for label, info in values.items():
        info = check_keys(info or {}, _LABEL_VALUE_KEYS, f"label.values.{label}")
        synonyms = info.get("synonyms", []) or []
        if not isinstance(synonyms, list):
            fail(f"{where(f'label.values.{label}.synonyms')}: expected a list")
        labels[str(label)] = LabelSpec(str(label), str(info.get("description", "")), tuple(str(s) for s in synonyms))
    codes: dict[str, dict[str, str]] = {}
    for source, mapping in (lab.get("codes") or {}).items():
        if not isinstance(mapping, dict):
            fail(f"{where(f'label.codes.{source}')}: expected a mapping code -> label")
        for code, target in mapping.items():
            if target not in labels:
                fail(f"{where(f'label.codes.{source}.{code}')}: '{target}' is not a label ({', '.join(labels)})")
        codes[str(source)] = {str(c): str(t) for c, t in mapping.items()}

    outputs: dict[str, OutputField] = {}
    for out_name, info in (spec.get("outputs") or {}).items():
        info = check_keys(info or {}, _OUTPUT_KEYS, f"outputs.{out_name}")
        outputs[str(out_name)] = OutputField(str(out_name), str(info.get("description", "")), int(info.get("max_chars", 600)))

    prompts = check_keys(spec["prompts"], _PROMPT_KEYS, "prompts", {"system", "instructions", "user", "generation"})
    def instruction_list(value: Any, key: str) -> tuple[jinja2.Template, ...]:
        if not isinstance(value, list) or not value:
            fail(f"{where(key)}: expected a non-empty list of instruction paraphrases")
        return tuple(template(t, f"{key}[{i}]") for i, t in enumerate(value))

    defaults = ClassifyPrompts(template(prompts["system"], "prompts.system"),
                               instruction_list(prompts["instructions"], "prompts.instructions"),
                               template(prompts["user"], "prompts.user"))
    def overrides(override: Any, key: str) -> dict[str, Any]:
        """The prompt keys one language or source sets, as `ClassifyPrompts` fields."""
        parse = {"system": template, "instructions": instruction_list, "user": template}
        return {k: parse[k](v, f"{key}.{k}") for k, v in check_keys(override or {}, _LANG_PROMPT_KEYS, key).items()}

    lang_prompts = {str(lang): replace(defaults, **overrides(override, f"prompts.by_lang.{lang}"))
                    for lang, override in check_keys(prompts.get("by_lang") or {}, set(map(str, languages)),
                                                     "prompts.by_lang").items()}
    by_source = prompts.get("by_source") or {}
    if not isinstance(by_source, dict):
        fail(f"{where('prompts.by_source')}: expected a mapping, got {type(by_source).__name__}")
    source_prompts: dict[str, dict[str, Any]] = {}
    for source, override in by_source.items():
        if not _SOURCE_NAME.fullmatch(str(source)):
            fail(f"{where(f'prompts.by_source.{source}')}: not a dataset name (letters, digits, '_', '.', '-'; "
                 "the `provenance.dataset` of the records, e.g. uit_vsfc)")
        source_prompts[str(source)] = overrides(override, f"prompts.by_source.{source}")
    gen_list = prompts["generation"]
    if not isinstance(gen_list, list) or not gen_list:
        fail(f"{where('prompts.generation')}: expected a non-empty list of generation templates")
    generation: dict[str, GenerationTemplate] = {}
    for i, item in enumerate(gen_list):
        item = check_keys(item, _GENERATION_KEYS, f"prompts.generation[{i}]", {"id", "template"})
        demonstrations = item.get("demonstrations", True)
        if not isinstance(demonstrations, bool):
            key = f"prompts.generation[{item['id']}].demonstrations"
            fail(f"{where(key)}: expected true or false")
        generation[str(item["id"])] = GenerationTemplate(
            str(item["id"]), template(item["template"], f"prompts.generation[{item['id']}].template"),
            str(item.get("description", "")), demonstrations,
        )
    demonstration = (template(prompts["demonstration"], "prompts.demonstration")
                     if prompts.get("demonstration") else None)

    attributes: dict[str, dict[str, list[str]]] = {}
    for attr, vals in (spec.get("attributes") or {}).items():
        if isinstance(vals, list) and vals:
            attributes[str(attr)] = {"*": [str(v) for v in vals]}
        elif isinstance(vals, dict) and vals and all(isinstance(v, list) and v for v in vals.values()):
            attributes[str(attr)] = {str(k): [str(x) for x in v] for k, v in vals.items()}
        else:
            fail(f"{where(f'attributes.{attr}')}: expected a non-empty list, or a mapping language -> list")

    validators = spec.get("validators") or []
    if not isinstance(validators, list) or not all(isinstance(v, dict) and "name" in v for v in validators):
        fail(f"{where('validators')}: expected a list of mappings, each with a 'name'")
    for i, entry in enumerate(validators):
        if not isinstance(entry.get("enabled", True), bool):
            fail(f"{where(f'validators[{i}].enabled')}: expected true or false")
    rubric = None
    if spec.get("rubric") is not None:
        rubric = _rubric(check_keys(spec["rubric"], _RUBRIC_KEYS, "rubric", {"scores", "prompt"}), where, template)

    return Task(
        name=name, path=path, description=str(spec.get("description", "")).strip(),
        languages=tuple(str(x) for x in languages),
        input_name=str(inp["name"]), input_description=str(inp.get("description", "")),
        input_min_chars=int(inp.get("min_chars", 1)), input_max_chars=int(inp.get("max_chars", 400)),
        label_name=str(lab["name"]), labels=labels, label_codes=codes, outputs=outputs,
        system_prompt=defaults.system, instructions=defaults.instructions, user_template=defaults.user,
        generation_templates=generation, demonstration=demonstration, attributes=attributes, validators=validators, lang_prompts=lang_prompts,
        source_prompts=source_prompts, rubric=rubric,
    )


def _rubric(spec: dict, where: Any, template: Any) -> Rubric:
    """The `rubric:` mapping as a `Rubric`; every problem names the file and the key."""
    scores_spec = spec["scores"]
    if not isinstance(scores_spec, list) or not scores_spec:
        fail(f"{where('rubric.scores')}: expected a non-empty list of scores")
    scores: list[RubricScore] = []
    for i, item in enumerate(scores_spec):
        key = f"rubric.scores[{i}]"
        if not isinstance(item, dict):
            fail(f"{where(key)}: expected a mapping with name, description, options and threshold")
        unknown = sorted(set(item) - _SCORE_KEYS)
        if unknown:
            fail(f"{where(f'{key}.{unknown[0]}')}: unknown key (allowed: {', '.join(sorted(_SCORE_KEYS))})")
        for required in ("name", "options", "threshold"):
            if required not in item:
                fail(f"{where(f'{key}.{required}')}: missing required key")
        name = str(item["name"])
        if not SCORE_NAME.fullmatch(name) or name == REASONING:
            fail(f"{where(f'{key}.name')}: '{name}' is not a score name (lower-case letters, digits and '_', "
                 f"not '{REASONING}')")
        if name in {s.name for s in scores}:
            fail(f"{where(f'{key}.name')}: '{name}' is named twice")
        options = item["options"]
        if not isinstance(options, dict) or len(options) < 2:
            fail(f"{where(f'{key}.options')}: expected a mapping of two or more values to their meaning")
        parsed: list[tuple[int, str]] = []
        for value, meaning in options.items():
            if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
                fail(f"{where(f'{key}.options.{value}')}: an option's value must be a whole number "
                     "(an ordered scale, higher is better)")
            if isinstance(meaning, bool):  # YAML reads a bare `no` / `yes` as a boolean
                meaning = "yes" if meaning else "no"
            if not isinstance(meaning, str) or not meaning.strip():
                fail(f"{where(f'{key}.options.{value}')}: expected the meaning of this value as text")
            parsed.append((int(str(value).strip()), meaning.strip()))
        threshold = item["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold not in dict(parsed):
            fail(f"{where(f'{key}.threshold')}: expected one of the option values "
                 f"({', '.join(str(v) for v, _ in parsed)})")
        scores.append(RubricScore(name, str(item.get("description", "")).strip(), tuple(parsed), threshold))
    keep = spec.get("keep", "all")
    if keep not in KEEP_RULES:
        fail(f"{where('rubric.keep')}: expected one of: {', '.join(KEEP_RULES)} (every score at or above its "
             "threshold, or at least one)")
    chars = spec.get("reasoning_chars", 200)
    if isinstance(chars, bool) or not isinstance(chars, int) or not 20 <= chars <= 2000:
        fail(f"{where('rubric.reasoning_chars')}: expected a whole number of characters from 20 to 2000")
    system = template(spec["system"], "rubric.system") if "system" in spec else template(JUDGE_SYSTEM, "rubric")
    return Rubric(scores=tuple(scores), prompt=template(spec["prompt"], "rubric.prompt"), system=system,
                  keep=str(keep), reasoning_chars=chars)

"""Tasks are data: `tasks/<name>.yaml` is loaded into a `Task` that every stage shares.

    task = load_task("fin_sentiment")          # or a path to any YAML file of the same shape
    task.output_schema()                        # pydantic model: label enum (+ bounded free text)
    task.classify_messages("Profit rose 5%", lang="en", variant=1, source="uit_vsfc")
    task.max_new_tokens(with_input=True)        # a decoding budget that lets the JSON answer close
    task.normalise_label("bullish")             # -> "positive"

A new task is one YAML file; see `tasks/fin_sentiment.yaml` for every key, documented inline.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, create_model

from core.errors import UserError, fail

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"

_TOP_KEYS = {
    "name", "description", "languages", "input", "label", "outputs", "prompts", "attributes", "validators",
}
_REQUIRED_TOP = {"name", "languages", "input", "label", "prompts"}
_INPUT_KEYS = {"name", "description", "min_chars", "max_chars"}
_LABEL_KEYS = {"name", "values", "codes"}
_LABEL_VALUE_KEYS = {"description", "synonyms"}
_OUTPUT_KEYS = {"description", "max_chars"}
_PROMPT_KEYS = {"system", "instructions", "user", "generation", "by_lang", "by_source"}
_LANG_PROMPT_KEYS = {"system", "instructions", "user"}  # what a language or a source may override
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # dataset names as data/sources.py writes them
_GENERATION_KEYS = {"id", "description", "template"}


@dataclass(frozen=True)
class LabelSpec:
    name: str
    description: str = ""
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputField:
    """A free-text field the model writes besides the label (e.g. a support reply)."""

    name: str
    description: str = ""
    max_chars: int = 600


@dataclass(frozen=True)
class GenerationTemplate:
    id: str
    template: jinja2.Template = field(repr=False)
    description: str = ""


@dataclass(frozen=True)
class ClassifyPrompts:
    """The prompts that ask for a label: the task's defaults, one language's (`prompts.by_lang.<lang>`)
    or one source's (`prompts.by_source.<dataset>`), each key falling back to the level below."""

    system: jinja2.Template = field(repr=False)
    instructions: tuple[jinja2.Template, ...] = field(repr=False)
    user: jinja2.Template = field(repr=False)


@dataclass(frozen=True)
class Task:
    """A loaded task spec. Build it with `load_task`; never edit it in place (see `with_labels`)."""

    name: str
    path: Path
    description: str
    languages: tuple[str, ...]
    input_name: str
    input_description: str
    input_min_chars: int
    input_max_chars: int
    label_name: str
    labels: dict[str, LabelSpec]
    label_codes: dict[str, dict[str, str]]
    outputs: dict[str, OutputField]
    system_prompt: jinja2.Template = field(repr=False)
    instructions: tuple[jinja2.Template, ...] = field(repr=False)
    user_template: jinja2.Template = field(repr=False)
    generation_templates: dict[str, GenerationTemplate] = field(repr=False)
    attributes: dict[str, dict[str, list[str]]] = field(repr=False)
    validators: list[dict[str, Any]] = field(repr=False)
    # Per-language overrides of the classification prompts; a language not here uses the defaults.
    lang_prompts: dict[str, ClassifyPrompts] = field(default_factory=dict, repr=False)
    # Per-source-dataset overrides (`provenance.dataset` of a record): only the keys a source sets,
    # applied over the language's prompts.
    source_prompts: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    # ---- labels -------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def normalise_label(self, raw: object, source: str | None = None) -> str | None:
        """Map a raw label spelling to a task label, or None when nothing matches (never a guess).

        Matches, in order: a numeric code of `source` (from `label.codes`), the label name, a synonym;
        case, spacing, '_'/'-' and Vietnamese diacritics are ignored.
        """
        if raw is None:
            return None
        text = str(raw).strip()
        if source is not None and source in self.label_codes:
            code = text[:-2] if re.fullmatch(r"-?\d+\.0", text) else text
            if code in self.label_codes[source]:
                return self.label_codes[source][code]
        return self._label_lookup.get(fold_label(text))

    @cached_property
    def _label_lookup(self) -> dict[str, str]:
        lookup: dict[str, str] = {}
        for spec in self.labels.values():
            for spelling in (spec.name, *spec.synonyms):
                lookup.setdefault(fold_label(spelling), spec.name)
        return lookup

    def with_labels(self, names: list[str]) -> Task:
        """The same task with its label set replaced by `names` (known labels keep their synonyms).

        `run.py` uses this to take the intent taxonomy from the training rows.
        """
        if not names:
            fail(f"{self.path}: a task needs at least one label")
        labels = {n: self.labels.get(n, LabelSpec(name=n)) for n in names}
        return replace(self, labels=labels)

    # ---- schemas ------------------------------------------------------------------------------
    def _output_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {self.label_name: (Literal[tuple(self.label_names)], ...)}
        for out in self.outputs.values():
            fields[out.name] = (Annotated[str, StringConstraints(min_length=1, max_length=out.max_chars)], ...)
        return fields

    def output_schema(self) -> type[BaseModel]:
        """What a model predicts for one input: the label (an enum) plus any bounded free-text outputs."""
        return create_model(
            _model_name(self.name, "Output"), __config__=ConfigDict(extra="forbid"), **self._output_fields()
        )

    def generation_schema(self) -> type[BaseModel]:
        """What the generator writes: the input text (bounded so constrained JSON always closes),
        its label and any other outputs."""
        text_type = Annotated[
            str, StringConstraints(min_length=self.input_min_chars, max_length=self.input_max_chars)
        ]
        fields = {self.input_name: (text_type, ...), **self._output_fields()}
        return create_model(_model_name(self.name, "Sample"), __config__=ConfigDict(extra="forbid"), **fields)

    # ---- prompts ------------------------------------------------------------------------------
    def answer(self, labels: dict[str, str]) -> str:
        """The assistant turn a model is trained to produce: the bare label for label-only tasks,
        otherwise compact JSON of the output schema's fields in order."""
        if not self.outputs:
            return labels[self.label_name]
        ordered = {self.label_name: labels[self.label_name]}
        ordered.update({name: labels.get(name, "") for name in self.outputs})
        return json.dumps(ordered, ensure_ascii=False)

    def classify_prompts(self, lang: str, source: str | None = None) -> ClassifyPrompts:
        """The system prompt, instruction paraphrases and user template for `lang` and a record of
        dataset `source`: `prompts.by_source.<source>` first, then `prompts.by_lang.<lang>`, then the
        task's, key by key."""
        prompts = self.lang_prompts.get(lang) or ClassifyPrompts(self.system_prompt, self.instructions,
                                                                 self.user_template)
        override = self.source_prompts.get(source) if source is not None else None
        return replace(prompts, **override) if override else prompts

    def classify_messages(self, text: str, lang: str, variant: int = 0,
                          source: str | None = None) -> list[dict[str, str]]:
        """System + user messages asking for the label of `text`; `variant` picks an instruction
        paraphrase (modulo their count), so training can vary the wording; `source` is the record's
        dataset (`provenance.dataset`) for `prompts.by_source`."""
        ctx = self._prompt_context(lang)
        prompts = self.classify_prompts(lang, source)
        instruction = prompts.instructions[variant % len(prompts.instructions)].render(**ctx)
        user = prompts.user.render(instruction=instruction, input=text, **ctx)
        return [
            {"role": "system", "content": prompts.system.render(**ctx).strip()},
            {"role": "user", "content": user.strip()},
        ]

    def training_messages(self, text: str, lang: str, labels: dict[str, str], variant: int = 0,
                          source: str | None = None) -> list[dict]:
        return [*self.classify_messages(text, lang, variant, source),
                {"role": "assistant", "content": self.answer(labels)}]

    def max_new_tokens(self, *, with_input: bool = False) -> int:
        """The decoding budget of one answer, so that the task's JSON answer can close.

        `with_input` (the generator writes the input text too): one token per character of every bounded
        string field (a token is at least one character) plus room for keys, label and punctuation, so
        constrained JSON always closes. Otherwise (the evaluator): room for a short sentence around a
        bare label, or a whole JSON answer at about three characters per token for free-text outputs."""
        out_chars = sum(o.max_chars for o in self.outputs.values())
        if with_input:
            return self.input_max_chars + out_chars + 16 * (2 + len(self.outputs)) + 32
        return 24 if not self.outputs else 64 + out_chars // 3

    def render_generation(self, template_id: str, **context: Any) -> str:
        """Render one generation template; context usually holds lang, label, seeds and attributes."""
        if template_id not in self.generation_templates:
            fail(f"{self.path}: no generation template '{template_id}' (have: {', '.join(self.generation_templates)})")
        ctx = {**self._prompt_context(context.get("lang", self.languages[0])), **context}
        try:
            return self.generation_templates[template_id].template.render(**ctx).strip()
        except jinja2.UndefinedError as exc:
            raise UserError(f"{self.path}: prompts.generation[{template_id}]: {exc.message}") from None

    def attribute_values(self, name: str, lang: str) -> list[str]:
        values = self.attributes[name]
        return values.get(lang) or values.get("*", [])

    def _prompt_context(self, lang: str) -> dict[str, Any]:
        return {
            "task": self, "lang": lang, "language": LANGUAGE_NAMES.get(lang, lang),
            "labels": self.label_names, "label_specs": list(self.labels.values()),
            "label_name": self.label_name, "input_name": self.input_name, "outputs": list(self.outputs.values()),
        }


LANGUAGE_NAMES = {"en": "English", "vi": "Vietnamese", "de": "German", "fr": "French", "es": "Spanish"}


def fold_label(text: str) -> str:
    """Case-, space-, separator- and diacritic-insensitive form of a label spelling."""
    text = unicodedata.normalize("NFD", text.casefold().replace("đ", "d"))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return re.sub(r"[\s_.\-/]+", " ", text).strip()


def _model_name(task_name: str, suffix: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9a-zA-Z]+", task_name) if part) + suffix


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
        generation[str(item["id"])] = GenerationTemplate(
            str(item["id"]), template(item["template"], f"prompts.generation[{item['id']}].template"),
            str(item.get("description", "")),
        )

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

    return Task(
        name=name, path=path, description=str(spec.get("description", "")).strip(),
        languages=tuple(str(x) for x in languages),
        input_name=str(inp["name"]), input_description=str(inp.get("description", "")),
        input_min_chars=int(inp.get("min_chars", 1)), input_max_chars=int(inp.get("max_chars", 400)),
        label_name=str(lab["name"]), labels=labels, label_codes=codes, outputs=outputs,
        system_prompt=defaults.system, instructions=defaults.instructions, user_template=defaults.user,
        generation_templates=generation, attributes=attributes, validators=validators, lang_prompts=lang_prompts,
        source_prompts=source_prompts,
    )

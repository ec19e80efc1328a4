"""What a task is, once loaded: labels, prompts, schemas and their rendering (`core.tasks.load_task` builds it).

    task.output_schema()                        # pydantic model: label enum (+ bounded free text)
    task.classify_messages("Profit rose 5%", lang="en", variant=1, source="uit_vsfc")
    task.generation_messages(prompt)            # the chat prompt that asks a model for a sample
    task.max_new_tokens(with_input=True)        # a decoding budget that lets the JSON answer close
    task.normalise_label("bullish")             # -> "positive"
    task.judge_messages(text, "en", {"label": "positive"})   # the LLM judge's prompt (task.rubric)
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, StringConstraints, create_model

from core.errors import UserError, fail
from core.rubric import Rubric

# The system turn of every generation prompt: the task's templates say what to write, this says how.
GENERATION_SYSTEM = (
    "You write realistic, varied training examples for a text classifier. "
    "Follow the requested label, language, style and length exactly, and answer with JSON only."
)



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
    demonstrations: bool = True  # the plan's seeds go before the request as solved example turns


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
    # The user turn of one solved example (`prompts.demonstration`, rendered per seed); None: no example turns.
    demonstration: jinja2.Template | None = field(repr=False)
    attributes: dict[str, dict[str, list[str]]] = field(repr=False)
    validators: list[dict[str, Any]] = field(repr=False)
    # Per-language overrides of the classification prompts; a language not here uses the defaults.
    lang_prompts: dict[str, ClassifyPrompts] = field(default_factory=dict, repr=False)
    # Per-source-dataset overrides (`provenance.dataset` of a record): only the keys a source sets,
    # applied over the language's prompts.
    source_prompts: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # The LLM judge's rubric (`rubric:` in the YAML); None for a task without one.
    rubric: Rubric | None = field(default=None, repr=False)

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

    def sample_json(self, text: str, labels: dict[str, str]) -> str:
        """A record as the generator writes it: compact JSON of the generation schema's fields, in order."""
        fields = {self.input_name: text, self.label_name: labels[self.label_name],
                  **{name: labels.get(name, "") for name in self.outputs}}
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))

    def demonstration_turns(self, template_id: str, seeds: list[dict[str, Any]], lang: str) -> list[dict[str, str]]:
        """Solved examples as chat turns: per seed, the task's `prompts.demonstration` request, then the seed
        as the JSON answer. Small models follow a format they were shown far better than one described: with
        the seeds listed inside the request, SmolLM2-135M copied the list's shapes ("{{1}}:", "Here are ...")
        into its samples (docs/generation.md#prompts-small-models-follow)."""
        if self.demonstration is None or not self.generation_templates[template_id].demonstrations:
            return []
        ctx = self._prompt_context(lang)
        turns: list[dict[str, str]] = []
        for seed in seeds:
            request = self.demonstration.render(seed=seed, label=seed[self.label_name], **ctx).strip()
            turns += [{"role": "user", "content": request},
                      {"role": "assistant", "content": self.sample_json(seed["text"], seed)}]
        return turns

    @staticmethod
    def generation_messages(prompt: str, demonstrations: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        """The chat prompt that asks a model for one sample: the generation system turn, any solved
        example turns (`demonstration_turns`), then `prompt`."""
        return [{"role": "system", "content": GENERATION_SYSTEM}, *(demonstrations or []),
                {"role": "user", "content": prompt}]

    def judge_messages(self, text: str, lang: str, labels: dict[str, str], *,
                       reverse: bool = False) -> list[dict[str, str]]:
        """System + user messages asking the judge to score one sample against the task's rubric.

        The rubric's templates see the prompt variables of every task prompt (`language`, `labels`,
        `label_specs`, ...) and `text`, `label` (the claimed one), `label_description`, `outputs` (the
        sample's other fields by name, e.g. `outputs.reply`), `task_description`, `rubric` (the scores
        and their options as a list, reversed for the order check), `scores` (the same as objects:
        `name`, `description`, `options` as (value, meaning) pairs in prompt order) and `answer_format`.
        """
        if self.rubric is None:
            fail(f"{self.path}: rubric: missing (the judge needs one; see tasks/fin_sentiment.yaml)")
        label = labels.get(self.label_name, "")
        spec = self.labels.get(label)
        ctx = {
            **self._prompt_context(lang), "text": text, "label": label,
            "label_description": spec.description if spec else "", "task_description": self.description,
            "outputs": {name: labels.get(name, "") for name in self.outputs},
            "rubric": self.rubric.text(reverse), "answer_format": self.rubric.answer_format(reverse),
            "scores": [{"name": s.name, "description": s.description, "options": s.ordered(reverse)}
                       for s in self.rubric.scores],
        }
        try:
            return [{"role": "system", "content": self.rubric.system.render(**ctx).strip()},
                    {"role": "user", "content": self.rubric.prompt.render(**ctx).strip()}]
        except jinja2.UndefinedError as exc:
            raise UserError(f"{self.path}: rubric.prompt: {exc.message}") from None

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



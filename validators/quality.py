"""`quality`: repeated n-grams, the label word leaking into the text, prompt echoes, assistant boilerplate,
template placeholders copied instead of filled.

Every check is a plain rule with a threshold in the task YAML, and each rejection names the rule
and the offending words, so an annotator can see at once why a sample was dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cached_property
from typing import Any, ClassVar

from core.records import Record, Verdict
from core.task_spec import fold_label
from validators.base import BaseValidator, clip01
from validators.text import contains_phrase, ngrams, words

# Phrases a chat model adds around the content; matched case-insensitively anywhere in the text.
BOILERPLATE = [
    r"\bas an ai\b", r"\bas a (large )?language model\b", r"\bi('m| am) (sorry|unable)\b", r"\bi can(no|')t\b",
    r"^\s*(sure|certainly|of course)\b[!,.]", r"\bhere('s| is| are) (a|an|the|one|some)\b",
    r"<\|[a-z_]+\|>", r"```", r"^\s*[{\[]", r'"(text|label|ticket|intent)"\s*:',
    r"\btôi là một (mô hình|trợ lý|ai)\b", r"\blà một mô hình ngôn ngữ\b", r"\bdưới đây là\b", r"\bxin lỗi, tôi\b",
]
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
# A template placeholder copied instead of filled: {{name}}, {name}, [Company Name], [Insurance Company], <ticker>, {{1}}.
PLACEHOLDER = re.compile(
    r"\{\{[^{}]{0,40}\}\}|\{%|\{[A-Za-z_][\w ]{0,30}\}"
    r"|[\[<](?:insert |your |the )?(?:company|customer|product|brand)?[ _]?(?:name|amount|date|ticker|number|percent(?:age)?|"
    r"figure|value|x|y|z)[\]>]"
    # a kind of company in brackets where a name belongs: [Insurance Company], [Tech Firm] (a real name is unbracketed)
    r"|\[(?:[A-Za-z]+ ){0,3}(?:company|corporation|corp|firm|bank|group|brand)\]", re.I)


class QualityValidator(BaseValidator):
    name = "quality"
    defaults: ClassVar[dict[str, Any]] = {
        "repeat_n": 3,               # n-gram size for repetition
        "max_repeat_share": 0.25,    # share of n-grams that are repeats of an earlier one
        "leak_words": [],            # extra words that must not appear (besides the claimed label's name)
        "leak_synonyms": False,      # also treat the label's YAML synonyms as leaks
        "echo_n": 4,                 # n-gram size for prompt echoes
        "max_echo_share": 0.2,       # share of the text's n-grams found in the task's prompts
        "boilerplate": [],           # extra regular expressions
    }

    @cached_property
    def _boilerplate(self) -> list[re.Pattern]:
        return [re.compile(p, re.I | re.M) for p in [*BOILERPLATE, *self.options["boilerplate"]]]

    @cached_property
    def _prompt_ngrams(self) -> set[str]:
        """n-grams of everything the model was told: system prompt, instructions, generation templates."""
        n = int(self.options["echo_n"])
        grams: set[str] = set()
        for lang in self.task.languages:
            for message in self.task.classify_messages("", lang):
                grams.update(ngrams(words(message["content"]), n))
        for text in self._template_sources():
            for part in _JINJA_TAG.split(text):  # static text between tags, so no value leaks in
                toks = words(part)
                if len(toks) >= n:
                    grams.update(ngrams(toks, n))
        return grams

    def _template_sources(self) -> list[str]:
        # A compiled jinja2 Template keeps no source, so read the generation templates from the YAML.
        import yaml

        spec = yaml.safe_load(self.task.path.read_text(encoding="utf-8"))
        return [g["template"] for g in spec["prompts"]["generation"]] + [spec["prompts"].get("demonstration") or ""]

    def _leak_phrases(self, label: str) -> list[list[str]]:
        phrases = [label, *self.options["leak_words"]]
        if self.options["leak_synonyms"] and label in self.task.labels:
            phrases.extend(self.task.labels[label].synonyms)
        return [words(fold_label(p)) for p in phrases if words(fold_label(p))]

    def check(self, records: list[Record]) -> list[Verdict]:
        return [self._one(r) for r in records]

    def _one(self, record: Record) -> Verdict:
        toks = words(record.text)
        n = int(self.options["repeat_n"])
        grams = ngrams(toks, n) if len(toks) >= n else []
        counts = Counter(grams)
        repeats = sum(c - 1 for c in counts.values())
        repeat_share = repeats / len(grams) if grams else 0.0
        details = {"repeat_share": round(repeat_share, 3)}
        if repeat_share > self.options["max_repeat_share"]:
            top, times = counts.most_common(1)[0]
            return self.verdict(False, repeat_share, f"repeated n-grams: '{top}' ×{times}", rule="repeat", **details)

        label = self.claimed_label(record)
        if label:
            folded = words(fold_label(record.text))
            for phrase in self._leak_phrases(label):
                if contains_phrase(folded, phrase):
                    word = " ".join(phrase)
                    return self.verdict(False, repeat_share, f"label word leak: '{word}' in a {label} sample",
                                        rule="label_leak", word=word, **details)

        echo_n = int(self.options["echo_n"])
        own = set(ngrams(toks, echo_n)) if len(toks) >= echo_n else set()
        prompt_grams = set(self._prompt_ngrams)
        if isinstance(record.provenance.get("prompt"), str):
            prompt_grams.update(ngrams(words(record.provenance["prompt"]), echo_n))
        echo_share = len(own & prompt_grams) / len(own) if own else 0.0
        details["echo_share"] = round(echo_share, 3)
        if echo_share > self.options["max_echo_share"]:
            hit = next(g for g in ngrams(toks, echo_n) if g in prompt_grams)
            return self.verdict(False, repeat_share, f"echoes the prompt: '{hit}' ({echo_share:.0%} of its {echo_n}-grams)",
                                rule="prompt_echo", **details)

        placeholder = PLACEHOLDER.search(record.text)
        if placeholder:
            return self.verdict(False, repeat_share, f"template placeholder: '{placeholder.group(0)}'",
                                rule="placeholder", **details)
        for pattern in self._boilerplate:
            match = pattern.search(record.text)
            if match:
                return self.verdict(False, repeat_share, f"boilerplate: '{match.group(0).strip()}'",
                                    rule="boilerplate", **details)
        return self.verdict(True, repeat_share, **details)

    def doubt(self, verdict: Verdict) -> float:
        if not verdict.passed:
            return 1.0
        # Half-way-to-rejection repetition or echo is worth a look, never more than a mild doubt.
        rep = verdict.details.get("repeat_share", 0.0) / max(self.options["max_repeat_share"], 1e-9)
        echo = verdict.details.get("echo_share", 0.0) / max(self.options["max_echo_share"], 1e-9)
        return 0.5 * clip01(max(rep, echo))

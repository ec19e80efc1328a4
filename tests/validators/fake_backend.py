"""A FAKE model backend for the self-consistency mechanics tests: no model, scripted answers.

It is a test double, named as one, and `test_fake_backend_is_a_backend` checks that it satisfies
the real `Backend` protocol. The real path is tested once end to end with the tiny model.
"""

from __future__ import annotations

import json
import math

from backends import Completion, Prompt, Sampling


def _text_of(prompt: Prompt) -> str:
    content = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    return content.rsplit("Text: ", 1)[-1].strip()


class FakeScoringBackend:
    """Answers from a script: text -> label probabilities (score) or a cycle of labels (generate).

    Args:
        probs: {text: {label: probability}}; unscripted texts get a uniform distribution.
        answers: {text: [label, label, ...]}; generate round r answers answers[text][r % len].
    """

    name = "fake"
    model_id = "fake-scripted"

    def __init__(self, probs: dict[str, dict[str, float]] | None = None,
                 answers: dict[str, list[str]] | None = None):
        self.probs = probs or {}
        self.answers = answers or {}
        self.score_calls: list[list[Prompt]] = []
        self.generate_calls: list[tuple[list[Prompt], Sampling]] = []

    def score(self, prompts: list[Prompt], choices: list[str]) -> list[list[float]]:
        self.score_calls.append(list(prompts))
        rows = []
        for prompt in prompts:
            dist = self.probs.get(_text_of(prompt), {})
            rows.append([math.log(dist.get(c, 1e-12)) if dist else math.log(1 / len(choices)) for c in choices])
        return rows

    def generate(self, prompts: list[Prompt], schema, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        round_ = len(self.generate_calls)  # one call per self-consistency round
        self.generate_calls.append((list(prompts), sampling))
        out = []
        for prompt in prompts:
            script = self.answers.get(_text_of(prompt), ["?"])
            label = script[round_ % len(script)]
            text = json.dumps({"label": label})
            parsed = {"label": label} if label != "?" else None
            out.append(Completion(text=text, parsed=parsed, error=None if parsed else "not a label"))
        return out


class PlantedJudge:
    """A FAKE judge model for the judge's mechanics tests: no model, answers planted per sample.

    `answer(text, label, enums)` gets the sample's text and claimed label (read back from the judge's
    prompt) and each score's option values in the order the prompt lists them, and returns the scores
    ({score: value}; the reasoning is added here) or a raw string, which is sent as the model's text
    unparsed (an answer that does not parse). Token counts are fixed: 10 in, 5 out per prompt.
    """

    name = "planted"
    model_id = "planted-judge"

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[tuple[list[Prompt], Sampling]] = []

    def generate(self, prompts: list[Prompt], schema, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        self.calls.append((list(prompts), sampling))
        props = schema.model_json_schema()["properties"]
        enums = {name: p["enum"] for name, p in props.items() if "enum" in p}
        out = []
        for prompt in prompts:
            content = prompt[-1]["content"]
            text = content.split("Text: ", 1)[1].split("\nClaimed label: ", 1)[0]
            label = content.split("Claimed label: ", 1)[1].split(" (", 1)[0]
            got = self.answer(text, label, enums)
            if isinstance(got, str):
                out.append(Completion(text=got, error="invalid JSON: planted", finish_reason="error",
                                      prompt_tokens=10, completion_tokens=5))
                continue
            parsed = {"reasoning": f"planted for {label}", **got}
            out.append(Completion(text=json.dumps(parsed), parsed=parsed, prompt_tokens=10, completion_tokens=5))
        return out

    def score(self, prompts: list[Prompt], choices: list[str], **frame: str) -> list[list[float]]:
        raise AssertionError("the judge never scores")


def first_listed(text: str, label: str, enums: dict[str, list[int]]) -> dict[str, int]:
    """A judge that follows position: every score gets the option listed first."""
    return {name: values[0] for name, values in enums.items()}

"""Seed-conditioned prompt plans: what sample `i` asks for, as a pure function of (config, seed, i).

    planner = Planner(task, "en", seeds, PlanConfig(seed=0, k=3))
    plan = planner.plan(17)        # target label, seed examples, template, attributes, sampling
    plan.messages                  # the chat prompt sent to the backend

Purity is what makes runs resumable: every random choice uses `random.Random` seeded from (run seed,
purpose, index). The four diversity draws: docs/generation.md#design-generatorpromptspy
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from backends import Sampling
from core.errors import fail
from core.records import Record
from core.task_spec import Task
from generator.seeds import seeds_by_label


@dataclass(frozen=True)
class PlanConfig:
    """Everything besides the task, language and seeds that decides the plans.

    Attributes:
        seed: the run seed every draw derives from.
        k: seed examples shown per prompt.
        templates: generation template ids to draw from (empty: all of the task's).
        samples_per_prompt: consecutive sample indices that share one prompt plan.
        temperature, top_p: sampling; temperature 0 is greedy.
        temperature_mix: if set, prompt `p` uses `temperature_mix[p % len]` (a mix across prompts).
        max_new_tokens: decoding budget per sample.
        weights: sampling weights learnt from review (`review_app.weights.sampling_weights`): templates
            and attribute values are drawn in proportion to `weight` (a value without an entry gets
            `prior_mean`). None: uniform draws, exactly as without review data.
    """

    seed: int = 0
    k: int = 3
    templates: tuple[str, ...] = ()
    samples_per_prompt: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    temperature_mix: tuple[float, ...] = ()
    max_new_tokens: int = 384
    weights: dict[str, Any] | None = None

    def strategy(self, temperature: float) -> str:
        """A short name for the sampling strategy, reported per sample."""
        if self.temperature_mix:
            return f"mix(t={temperature:g},top_p={self.top_p:g})"
        if temperature == 0:
            return "greedy"
        return f"sample(t={temperature:g},top_p={self.top_p:g})"


@dataclass(frozen=True)
class Plan:
    index: int
    prompt_index: int
    target_label: str
    seeds: list[Record]
    template_id: str
    attributes: dict[str, str]
    sampling: Sampling
    prompt: str
    messages: list[dict[str, str]] = field(repr=False)


class Planner:
    """Builds `Plan`s for one task, language and seed set."""

    def __init__(self, task: Task, lang: str, seeds: list[Record], config: PlanConfig):
        self.task, self.lang, self.config = task, lang, config
        self.by_label = seeds_by_label(seeds, task)
        self.all_seeds = seeds
        self.templates = list(config.templates) or list(task.generation_templates)
        unknown = [t for t in self.templates if t not in task.generation_templates]
        if unknown:
            fail(f"{task.path}: no generation template '{unknown[0]}' "
                 f"(have: {', '.join(task.generation_templates)})")
        if config.k < 0 or config.samples_per_prompt < 1:
            fail("--k must be >= 0 and --samples-per-prompt >= 1")

    def _rng(self, purpose: str, index: int) -> random.Random:
        # String seeds hash with SHA-512 in CPython: stable across processes and PYTHONHASHSEED.
        return random.Random(f"{self.config.seed}:{purpose}:{index}")

    def _draw(self, rng: random.Random, options: list[str], kind: str, name: str = "") -> str:
        """One of `options`: uniform, or in proportion to the review weights when the run has them."""
        weights = self.config.weights
        if not weights:
            return rng.choice(options)
        table = weights.get(kind, {})
        table = table.get(name, {}) if name else table
        default = float(weights.get("prior_mean", 0.5))
        return rng.choices(options, weights=[float(table.get(o, {}).get("weight", default)) for o in options])[0]

    def target_label(self, prompt_index: int) -> str:
        """Quota-balanced: each block of len(labels) prompts holds every label once, shuffled."""
        labels = self.task.label_names
        block, position = divmod(prompt_index, len(labels))
        order = list(labels)
        self._rng("labels", block).shuffle(order)
        return order[position]

    def pick_seeds(self, label: str, rng: random.Random) -> list[Record]:
        """`k` seeds of the target label; topped up from other labels when that label has too few."""
        same = self.by_label.get(label, [])
        picked = rng.sample(same, min(self.config.k, len(same)))
        if len(picked) < self.config.k:
            rest = [s for s in self.all_seeds if s.labels[self.task.label_name] != label]
            picked += rng.sample(rest, min(self.config.k - len(picked), len(rest)))
        return picked

    def plan(self, index: int, target_label: str | None = None) -> Plan:
        """Sample `index`'s plan; `target_label` overrides the quota-balanced label (the rounds of
        `generate.py --accepted` aim each prompt at a label still short of accepted samples)."""
        cfg = self.config
        prompt_index = index // cfg.samples_per_prompt
        rng = self._rng("prompt", prompt_index)
        label = target_label or self.target_label(prompt_index)
        seeds = self.pick_seeds(label, rng)
        template_id = self._draw(rng, self.templates, "templates")
        attributes = {name: self._draw(rng, self.task.attribute_values(name, self.lang), "attributes", name)
                      for name in self.task.attributes}
        temperature = cfg.temperature_mix[prompt_index % len(cfg.temperature_mix)] if cfg.temperature_mix \
            else cfg.temperature
        sampling = Sampling(temperature=temperature, top_p=cfg.top_p if temperature > 0 else 1.0,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed * 1_000_000 + index,
                            strategy=cfg.strategy(temperature))
        seed_ctx = [{"id": s.id, "text": s.text, "label": s.labels[self.task.label_name], **s.labels}
                    for s in seeds]
        prompt = self.task.render_generation(template_id, lang=self.lang, label=label, seeds=seed_ctx,
                                             attributes=attributes)
        demonstrations = self.task.demonstration_turns(template_id, seed_ctx, self.lang)
        messages = self.task.generation_messages(prompt, demonstrations)
        return Plan(index=index, prompt_index=prompt_index, target_label=label, seeds=seeds,
                    template_id=template_id, attributes=attributes, sampling=sampling, prompt=prompt,
                    messages=messages)

    def provenance(self, plan: Plan) -> dict[str, Any]:
        """The plan's part of a sample's provenance (the backend adds model, tokens, errors)."""
        return {
            "index": plan.index, "prompt_index": plan.prompt_index,
            "seed_ids": [s.id for s in plan.seeds], "seed_texts": [s.text for s in plan.seeds],
            "template_id": plan.template_id, "attributes": plan.attributes,
            "target_label": plan.target_label, "prompt": plan.prompt,
        }

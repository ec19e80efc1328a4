"""Local Hugging Face model on CPU or GPU: the default backend (`--backend transformers`).

Generation is greedy decoding of our own (backends/decode.py: rows leave the batch and
its KV cache as they stop, and queued prompts take their slots); with a schema, decoding is constrained by Outlines-core guides so every
output parses. Sampling is per row: each row draws from its own `torch.Generator` (seeded with the
row's seed), so a sample is a function of its seed alone, whatever else shares its batch. `score`
returns log P(choice | prompt) per choice, on exactly the tokens the training text has there
(`backends.chat.choice_tokens`): one forward pass per prompt batch, kept as a KV cache, then only each
multi-token choice's own tokens on top of it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backends import Completion, Prompt, Sampling, chat, parse_with_schema, row_seeds
from backends.decode import decode, prefill
from backends.models import TINY, load_model
from backends.prefix import prefix_groups, shared_prefix
from backends.processors import GuidedMask, RowSampler


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model: str = TINY,
        *,
        adapter: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 16,
        loaded: tuple[Any, Any] | None = None,
    ):
        """Args:
            model: Hub id, local path or "tiny".
            adapter: a PEFT adapter folder to apply on top of `model`.
            loaded: an already loaded (model, tokenizer) pair, e.g. straight from the trainer.
        """
        self.model_id = model if adapter is None else f"{model}+{adapter}"
        self.model, self.tokenizer = loaded or load_model(model, device=device, adapter=adapter)
        self.batch_size = batch_size
        self._outlines_model: Any = None
        self._processors: dict[str, Any] = {}
        self.compile_seconds: dict[str, float] = {}  # schema key -> seconds to compile (benchmarks)
        self.score_tokens = 0  # tokens `score` has read, prompts and choices (a run's usage table)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    # ---- prompts ------------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        """A chat prompt through the model's own chat template (with the assistant header)."""
        if isinstance(prompt, str):
            return prompt
        return chat.render(self.tokenizer, prompt, add_generation_prompt=True)

    def answer_prefix(self, prompt: Prompt) -> str:
        """Where an answer starts in the training text of `prompt` (`chat.answer_prefix`); a string prompt
        is used verbatim."""
        return prompt if isinstance(prompt, str) else chat.answer_prefix(self.tokenizer, prompt)

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        # Rendered chat text already holds BOS; add_special_tokens would double it.
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in batch.items()}

    # ---- generate -----------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], schema: type[BaseModel] | None, sampling: Sampling,
                 seeds: list[int] | None = None) -> list[Completion]:
        if schema is not None:
            return self._generate_constrained(prompts, schema, sampling, seeds)
        return self._generate_free(prompts, sampling, seeds=seeds)

    def _generate_free(
        self, prompts: list[Prompt], sampling: Sampling, processor: Any = None, seeds: list[int] | None = None,
        hf_generate: bool = False,
    ) -> list[Completion]:
        """Greedy decoding through `decode` (continuous batching: rows leave the batch as they stop and
        queued prompts take their slots, at most `batch_size` rows at a time), with `processor` (a
        schema constraint) and then RowSampler when sampling.

        `hf_generate`, or a `processor` that cannot follow the batch (no `keep`/`add`, e.g. Outlines'
        own), runs the same steps through `model.generate` instead, in fixed batches of `batch_size`:
        every row until the longest one stops.
        """
        import torch

        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        all_seeds = row_seeds(sampling, len(prompts), seeds)
        hf_generate = hf_generate or (processor is not None and not hasattr(processor, "add"))
        texts = [self.render(p) for p in prompts]
        rows: list[list[int]] = []
        prompt_tokens: list[int] = []

        def processors(first: int, count: int) -> list[Any]:
            # Greedy always: sampling is done by RowSampler (last, after the schema's mask), whose
            # per-row noise turns the argmax into a draw that depends on the row's seed only.
            found = []
            if processor is not None:
                processor.reset()  # fresh guides per call or batch: the processor is shared across calls
                found.append(processor)
            if sampling.temperature > 0:
                found.append(RowSampler(all_seeds[first : first + count], sampling.temperature, sampling.top_p))
            return found

        with torch.inference_mode():
            if hf_generate:
                for start in range(0, len(texts), self.batch_size):
                    batch = self._encode(texts[start : start + self.batch_size])
                    rows += self._hf_generate(batch, sampling.max_new_tokens,
                                              processors(start, len(batch["input_ids"])))
                    prompt_tokens += batch["attention_mask"].sum(-1).tolist()
            elif texts:
                # Rendered chat text already holds BOS; add_special_tokens would double it.
                ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
                prompt_tokens = [len(row) for row in ids]
                rows = decode(self.model, ids, batch_size=self.batch_size, pad_id=self.tokenizer.pad_token_id,
                              max_new_tokens=sampling.max_new_tokens, stop_ids=eos_ids,
                              processors=processors(0, len(texts)))
        out: list[Completion] = []
        for new, count in zip(rows, prompt_tokens, strict=True):
            stopped = next((i for i, t in enumerate(new) if t in eos_ids), None)
            tokens = new if stopped is None else new[:stopped]
            out.append(Completion(
                text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                finish_reason="length" if stopped is None else "stop",
                prompt_tokens=int(count), completion_tokens=len(tokens) + (stopped is not None),
            ))
        return out

    def _hf_generate(self, batch: dict[str, Any], max_new_tokens: int, processors: list[Any]) -> list[list[int]]:
        """Each row's new tokens from one greedy `model.generate` over the batch (finished rows get pads)."""
        from transformers import LogitsProcessorList

        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id,
                                  "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        generated = self.model.generate(**batch, **kwargs)
        return [row.tolist() for row in generated[:, batch["input_ids"].shape[1] :]]

    def _generate_constrained(
        self, prompts: list[Prompt], schema: type[BaseModel], sampling: Sampling, seeds: list[int] | None = None
    ) -> list[Completion]:
        """The schema's `GuidedMask` (Outlines-core guides) inside our own batched decoding.

        Driving decoding ourselves (rather than `outlines.Generator.batch`) keeps token counts and
        finish reasons per row, and drops a row from the batch as soon as its JSON closes; the index
        is Outlines-core's, compiled once per schema.
        """
        processor = self.logits_processor(schema)
        out = self._generate_free(prompts, sampling, processor=processor, seeds=seeds)
        for completion in out:
            completion.parsed, completion.error = parse_with_schema(completion.text, schema)
            if completion.error:
                if completion.finish_reason == "length":
                    completion.error = f"hit max_new_tokens={sampling.max_new_tokens} before the JSON closed"
                completion.finish_reason = "error"
        return out

    def logits_processor(self, schema: type[BaseModel]) -> Any:
        """The constraint for `schema` (a `GuidedMask` over Outlines' compiled index), cached by its
        JSON schema text."""

        key = json.dumps(schema.model_json_schema())  # property order kept: it is the output order
        if key not in self._processors:
            import outlines
            from outlines.types import JsonSchema

            start = time.perf_counter()
            if self._outlines_model is None:
                self._outlines_model = outlines.from_transformers(self.model, self.tokenizer)
                _keep_decoder_spaces(self._outlines_model.tokenizer)
            # Compact JSON only: a free whitespace pattern lets a weak model pad forever.
            generator = outlines.Generator(self._outlines_model, JsonSchema(key, whitespace_pattern=""))
            eos = self.model.generation_config.eos_token_id
            stops = set(eos if isinstance(eos, list) else [eos]) - {self.tokenizer.eos_token_id}
            self._processors[key] = GuidedMask(generator.logits_processor.index, tuple(sorted(stops)))
            self.compile_seconds[key] = time.perf_counter() - start
        return self._processors[key]

    # ---- score ----------------------------------------------------------------------------------
    def score(self, prompts: list[Prompt], choices: list[str], *, before: str = "",
              after: str = "") -> list[list[float]]:
        """log P(choice | prompt + before), the choice's tokens only (natural log, summed over them).

        Each prompt continues where a training text's answer starts (`answer_prefix`), then `before`
        (text every choice follows, e.g. '{"intent": "'), the choice, and `after` (text that follows it
        in the trained answer, e.g. '", "reply": "': it fixes how the choice's edge tokenises and is
        never scored). The whole string is tokenised at once and split by characters
        (`chat.choice_tokens`), so every choice is scored on the tokens training taught there.

        Prompts are batched by length (the call's prompts sorted by their token count, so a batch pads
        little); each prompt batch runs once and keeps its KV cache (the tokens all its prompts start with, such
        as a shared instruction, run once for the batch: `_prompt_pass`; a batch that mixes prompt
        families runs as one group per family where that is less work: `prefix.prefix_groups`); each
        multi-token choice then runs only its own tokens on top of that cache (single-token choices need
        no further pass), and log-softmax is taken only where a choice token is predicted. Peak memory
        beyond the weights is bounded by one forward pass over the prompt batch (its activations and KV
        cache, as in generation) + its last-position logits (B × V) + one choice's logits
        (B × (n − 1) × V, n its token count), in float32, ×2 inside logsumexp: never
        B × choices × sequence × V (bench/bench_scoring.py).
        """
        import torch

        if not choices or any(not c for c in choices):
            raise ValueError(f"a choice tokenises to nothing: {choices}")
        rows = [chat.choice_tokens(self.tokenizer, self.answer_prefix(p), choices, before=before, after=after)
                for p in prompts]
        prompt_ids = [_prompt_part(row) for row in rows]
        self.score_tokens += sum(len(p) + sum(len(ids) - len(p) for ids, _ in row)
                                 for p, row in zip(prompt_ids, rows, strict=True))
        # Batches of similar lengths: a batch is padded to its longest prompt (after the shared prefix).
        order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
        scores: list[list[float]] = [[] for _ in prompts]
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                passes = 1 + sum(any(len(rows[i][j][0]) - len(prompt_ids[i]) > 1 for i in batch)
                                 for j in range(len(choices)))  # forward passes per group
                for group in prefix_groups([prompt_ids[i] for i in batch], passes):
                    members = [batch[g] for g in group]
                    feeds = [[ids[len(prompt_ids[i]):] for ids, _ in rows[i]] for i in members]
                    scored = [[n for _, n in rows[i]] for i in members]
                    got = self._score_batch([prompt_ids[i] for i in members], feeds, scored)
                    for i, row in zip(members, got, strict=True):
                        scores[i] = row
        return scores

    def _prompt_pass(self, ids: list[list[int]]) -> tuple[Any, Any, Any]:
        """One forward pass over a prompt batch: (last-position logits [rows, V], KV cache, 2D mask).

        The tokens every prompt of the batch starts with (the task's instruction, a system prompt,
        k-shot examples) run once, as one row, and their KV cache is repeated for every row; only the
        rest of each prompt runs batched, left-padded after the shared part (`decode.prefill`, as
        decoding's prefill). Same scores as one padded pass over the whole prompts, for a fraction of
        the work when the shared part is most of each prompt.
        """
        _, mask, _, out = prefill(self.model, ids, pad_id=self.tokenizer.pad_token_id, shared=shared_prefix(ids))
        return out.logits[:, -1, :], out.cache, mask

    def _score_batch(self, ids: list[list[int]], feeds: list[list[list[int]]],
                     scored: list[list[int]]) -> list[list[float]]:
        """Scores of every choice for one batch of tokenised prompts (see `score` for the memory bound).

        ids[r]: row r's prompt tokens; feeds[r][j]: the tokens after them for choice j (at least one);
        scored[r][j]: how many of those, at the end, are the choice's. The first feed token is predicted
        by the prompt pass; the rest run on its KV cache, right-padded across rows (pads come after
        every real token, so causal attention never lets a real token see one).
        """
        import torch

        logits, cache, mask = self._prompt_pass(ids)
        rows, device = mask.shape[0], mask.device
        n_choices = len(feeds[0])
        first = torch.tensor([[feed[0] for feed in row] for row in feeds], device=device)
        first_scored = torch.tensor([[len(f) == n for f, n in zip(row, ns, strict=True)]
                                     for row, ns in zip(feeds, scored, strict=True)], device=device)
        totals = _token_logprobs(logits, first) * first_scored  # [rows, choices]
        del logits
        lengths = mask.sum(-1, keepdim=True)
        pad = self.tokenizer.pad_token_id
        for j in range(n_choices):
            width = max(len(row[j]) for row in feeds) - 1  # the last token is only predicted, never fed
            if width == 0:
                continue
            tokens = torch.tensor([row[j] + [pad] * (width + 1 - len(row[j])) for row in feeds], device=device)
            # Position i of the step predicts feed token i + 1: scored where it is one of the choice's last n.
            take = torch.tensor([[len(row[j]) - ns[j] <= i + 1 < len(row[j]) for i in range(width)]
                                 for row, ns in zip(feeds, scored, strict=True)], device=device)
            step = self.model(
                input_ids=tokens[:, :-1], cache=cache, use_cache=True,
                attention_mask=torch.cat([mask, mask.new_ones(rows, width)], dim=1),
                position_ids=lengths + torch.arange(width, device=device),
            )
            totals[:, j] += (_token_logprobs(step.logits, tokens[:, 1:]) * take).sum(-1)
            del step
            cache.crop(-width)  # back to the prompt alone for the next choice (negative: tokens removed)
        return totals.tolist()


def _prompt_part(row: list[tuple[list[int], int]]) -> list[int]:
    """The tokens every choice's sequence of one prompt starts with, before any choice's scored tokens
    (the prompt pass runs these once; what follows differs by choice)."""
    first = min(len(ids) - n for ids, n in row)
    ids0 = row[0][0]
    common = next((k for k in range(first) if any(ids[k] != ids0[k] for ids, _ in row)), first)
    if common == 0:
        raise ValueError("nothing to score the choices after: the prompt tokenises to nothing before them")
    return ids0[:common]


def _keep_decoder_spaces(tokenizer: Any) -> None:
    """Make Outlines' idea of the text a "▁" token writes the decoder's own.

    Outlines adds a space to every "▁" token's string, for SentencePiece decoders that strip it (Llama 2,
    Mistral: "▁the" decodes to "the"). Gemma's decoder keeps the space, so Outlines would believe
    "▁the" writes "  the" and count string lengths wrong; where the decoder already gives the space,
    its string is used as it is.
    """
    default = tokenizer.convert_token_to_string
    to_string = tokenizer.tokenizer.convert_tokens_to_string

    def convert(token: str) -> str:
        text = to_string([token])
        return text if token.startswith("\u2581") and text.startswith(" ") else default(token)

    tokenizer.convert_token_to_string = convert


def _token_logprobs(logits: Any, targets: Any) -> Any:
    """log-softmax(logits)[..., target] per position, in float32 (float64 stays float64), without a full
    log-softmax copy.

    logits: [rows, (positions,) vocab]; targets: [rows, k] token ids. With positions, target i is read
    at position i ([rows, k] out); without, every target is read at the one position ([rows, k] out).
    """
    import torch

    if logits.dtype != torch.float64:
        logits = logits.float()
    norm = torch.logsumexp(logits, dim=-1, keepdim=True)  # [rows, (positions,) 1]
    if logits.dim() == 2:
        return logits.gather(-1, targets) - norm
    return (logits.gather(-1, targets.unsqueeze(-1)) - norm).squeeze(-1)

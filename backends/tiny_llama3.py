"""`tiny-llama3`: an offline, randomly initialised model with the real Llama 3.2 Instruct shape.

    model, tok = load_model("tiny-llama3")          # backends.models: built once, then cached
    build_tiny_llama3(Path("out"), seed=0)          # tokenizer + weights into a folder (a few seconds)

It matches meta-llama/Llama-3.2-1B-Instruct where it matters for correctness (128,256 token ids,
special tokens at their ids, pre-tokenizer, chat template, tied embeddings, generation config) and
is small: hidden 64, 2 layers (~8.3M parameters). What matches, what is small, and the one
deliberate difference: docs/training.md#design-backendstiny_llama3py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from backends.tiny import tiny_corpus

VERSION = 1
REGULAR_VOCAB = 128_000
NAMED_SPECIALS = {
    128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
    128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128008: "<|eom_id|>", 128009: "<|eot_id|>",
    128010: "<|python_tag|>",
}
BOS_ID, EOS_IDS, PAD_ID = 128000, [128001, 128008, 128009], 128004


def special_tokens() -> list[str]:
    """The 256 Llama 3 special tokens in id order (128000 first); unnamed slots are reserved_special_token_N."""
    out, reserved = [], 0
    for token_id in range(REGULAR_VOCAB, REGULAR_VOCAB + 256):
        if token_id in NAMED_SPECIALS:
            out.append(NAMED_SPECIALS[token_id])
        else:
            out.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return out


# Llama 3's pre-tokenizer split pattern (tokenizer.json of every Llama 3 model).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

SHAPE = {
    "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
}

# The chat template of meta-llama/Llama-3.2-1B-Instruct (tokenizer_config.json), verbatim.
LLAMA32_CHAT_TEMPLATE = r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
'''


def build_tokenizer(corpus: list[str]):
    """The 128,256-token byte-level BPE tokenizer (a `tokenizers.Tokenizer`), deterministic for `corpus`."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre
    trained.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=REGULAR_VOCAB, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(trained.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    _fill(vocab, merges)

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens()])
    bos = NAMED_SPECIALS[BOS_ID]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, BOS_ID)]),
    ])
    return tok


def _fill(vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """Extend `vocab`/`merges` in place to REGULAR_VOCAB tokens with merges of two trained tokens.

    Fixed seed (not the model's): the tokenizer is a function of the corpus alone, like `tiny`'s. The
    right-hand part never starts a word ("Ġ" = a space), so the new tokens are word pieces that can
    occur inside one pre-token, as real BPE merges do.
    """
    rng = random.Random(0)
    by_id = sorted(vocab, key=vocab.__getitem__)
    left = [t for t in by_id if len(t) > 1] or by_id
    right = [t for t in by_id if not t.startswith("Ġ")]
    while len(vocab) < REGULAR_VOCAB:
        a, b = left[rng.randrange(len(left))], right[rng.randrange(len(right))]
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))


def build_tiny_llama3(out: Path, *, seed: int = 0, corpus: list[str] | None = None) -> None:
    """Build the tokenizer, initialise the weights from `seed` and save both to `out` (a few seconds)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = corpus if corpus is not None else tiny_corpus()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(corpus), bos_token=NAMED_SPECIALS[BOS_ID],
        eos_token=NAMED_SPECIALS[128009], pad_token=NAMED_SPECIALS[PAD_ID],
        model_max_length=SHAPE["max_position_embeddings"], clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = LLAMA32_CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    config = LlamaConfig(
        # No pad_token_id, as in Llama 3.2's config.json (the generation config names it).
        vocab_size=len(tokenizer), tie_word_embeddings=True, bos_token_id=BOS_ID, eos_token_id=list(EOS_IDS),
        hidden_act="silu", **SHAPE,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=BOS_ID, eos_token_id=list(EOS_IDS), pad_token_id=PAD_ID).save_pretrained(out)

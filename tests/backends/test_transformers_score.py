"""`TransformersBackend.score` (prompt once + KV cache, then only the choice tokens) against the
straightforward definition: the prompt's answer start + choice tokenised whole, one unpadded forward
pass per prompt + choice, full log-softmax, summed over the tokens that overlap the choice."""

from __future__ import annotations

import numpy as np
import pytest

from backends import chat
from backends.models import TINY, TINY_LLAMA3, load_model
from backends.transformers_backend import TransformersBackend

PROMPTS = [
    [{"role": "user", "content": "Profit rose."}],
    [{"role": "system", "content": "Answer with one label."},
     {"role": "user", "content": "Shares of the company fell sharply after the quarterly report missed estimates."}],
    "plain text prompt, no chat template",
    [{"role": "user", "content": "Lợi nhuận quý 3 tăng mạnh so với cùng kỳ năm ngoái, công ty cho biết."}],
    [{"role": "user", "content": "x"}],
]
# Token counts differ (1 to many), and two choices share their first token.
CHOICES = ["positive", "negative", "neutral", "billing.refund_request", "billing.plan_change",
           " a much longer answer with several words in it"]


def reference_scores(model, tokenizer, backend: TransformersBackend, prompts, choices, before: str = "",
                     after: str = "") -> list[list[float]]:
    import torch

    out = []
    with torch.inference_mode():
        for prompt in prompts:
            context = backend.answer_prefix(prompt) + before
            row = []
            for choice in choices:
                enc = tokenizer(context + choice + after, add_special_tokens=False, return_offsets_mapping=True)
                start, end = len(context), len(context) + len(choice)
                scored = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start]
                ids = torch.tensor([enc["input_ids"][: scored[-1] + 1]])
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
                targets = torch.tensor([enc["input_ids"][i] for i in scored])
                row.append(float(logprobs[torch.tensor(scored) - 1, targets].sum()))
            out.append(row)
    return out


def _random_adapter(model):
    """A LoRA adapter whose B matrices are random (not zero), so it really changes the scores."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(model, config).eval()


@pytest.mark.parametrize("name", [TINY, TINY_LLAMA3])
@pytest.mark.parametrize("adapter", [False, True], ids=["base", "lora"])
def test_score_equals_one_pass_per_prompt_and_choice(name, adapter):
    model, tokenizer = load_model(name, device="cpu")  # fresh: the adapter is injected in place
    if adapter:
        base_scores = TransformersBackend(name, loaded=(model, tokenizer)).score(PROMPTS[:1], CHOICES)
        model = _random_adapter(model)
    lengths = {len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in CHOICES}
    assert 1 in lengths and len(lengths) >= 3, "single- and multi-token choices of several lengths"
    backend = TransformersBackend(name, loaded=(model, tokenizer), batch_size=3)  # 2 batches, left padding
    got = backend.score(PROMPTS, CHOICES)
    want = reference_scores(model, tokenizer, backend, PROMPTS, CHOICES)
    assert len(got) == len(PROMPTS) and all(len(r) == len(CHOICES) for r in got)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert all(s < 0 for row in got for s in row)
    if adapter:
        assert np.abs(np.array(got[0]) - base_scores[0]).max() > 1e-2, "the adapter is applied"


def test_score_single_token_choices_and_batch_independence(tiny):
    model, tokenizer = tiny
    backend = TransformersBackend(TINY, loaded=tiny, batch_size=4)
    single = [c for c in CHOICES if len(tokenizer(c, add_special_tokens=False)["input_ids"]) == 1]
    assert single
    together = backend.score(PROMPTS, single)
    alone = [backend.score([p], single)[0] for p in PROMPTS]  # no padding at all
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(together, reference_scores(model, tokenizer, backend, PROMPTS, single), atol=1e-4)


@pytest.mark.parametrize("name", [TINY, TINY_LLAMA3])
def test_choices_inside_an_answer_score_the_tokens_around_them(name, tiny, tiny_llama3):
    """`before`/`after` put each choice inside an answer. After 'label(' Llama 3's pre-tokenizer fuses
    the parenthesis with the label ('(n', 'egative'), so scored tokens straddle the choice's start and
    the prompt part differs by choice; the scores are still the straightforward ones."""
    loaded = tiny if name == TINY else tiny_llama3
    model, tokenizer = loaded
    backend = TransformersBackend(name, loaded=loaded, batch_size=3)
    if name == TINY_LLAMA3:
        rows = chat.choice_tokens(tokenizer, backend.answer_prefix(PROMPTS[0]), CHOICES[:5], before="label(")
        assert len({len(ids) - n for ids, n in rows}) > 1, "some choices' tokens start inside the context"
    for before, after in (('{"label": "', '", "why": ""}'), ("label(", ")")):
        got = backend.score(PROMPTS, CHOICES[:5], before=before, after=after)
        want = reference_scores(model, tokenizer, backend, PROMPTS, CHOICES[:5], before, after)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_choice_tokens_are_those_of_the_whole_text(tiny_llama3):
    """Encoding prompt + choice together (lm-eval's _encode_pair) where encoding the choice alone gives
    other tokens: Llama 3 merges '"' with the text after it."""
    _, tokenizer = tiny_llama3
    head = chat.answer_prefix(tokenizer, PROMPTS[0])
    [(ids, n)] = chat.choice_tokens(tokenizer, head, ['RefundRequest"'], before='{"intent": "', after=', "reply": "')
    assert tokenizer.convert_ids_to_tokens(ids[-n:]) == ["Ref", "und", "Request", '",']
    alone = tokenizer('RefundRequest"', add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(alone)[-1] == '"', "alone, the quote is a token training never has there"
    whole = tokenizer(head + '{"intent": "RefundRequest", "reply": "', add_special_tokens=False)["input_ids"]
    assert ids == whole[: len(ids)]


def test_score_rejects_an_empty_choice(tiny):
    with pytest.raises(ValueError, match="tokenises to nothing"):
        TransformersBackend(TINY, loaded=tiny).score(PROMPTS[:1], ["positive", ""])


INSTRUCTION = [{"role": "system", "content": "You are a careful financial analyst."},
               {"role": "user", "content": "Classify the sentiment. Answer with one word.\n\nText: Profit rose."}]
SHARED = [INSTRUCTION,
          [INSTRUCTION[0], {**INSTRUCTION[1], "content": INSTRUCTION[1]["content"] + " Sales fell in the quarter."}],
          [INSTRUCTION[0], {**INSTRUCTION[1], "content": INSTRUCTION[1]["content"][:-12] + "Dividend cut."}],
          INSTRUCTION]  # identical prompts, and one whose text extends another's


@pytest.mark.parametrize("name", [TINY, TINY_LLAMA3])
def test_a_shared_instruction_runs_once_with_the_same_scores(name, tiny, tiny_llama3):
    """Prompts that start alike (one instruction, different texts; one prompt a prefix of another;
    duplicates) give the scores of one pass per prompt and choice, and the shared part ran as one row."""
    loaded = tiny if name == TINY else tiny_llama3
    model, tokenizer = loaded
    backend = TransformersBackend(name, loaded=loaded, batch_size=len(SHARED))
    texts = [backend.render(p) for p in SHARED]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    shared = next(i for i in range(len(ids[0])) if len({tuple(row[: i + 1]) for row in ids}) > 1)
    assert shared > 10
    _, _, mask = backend._prompt_pass(ids)
    # Padding sits after the shared part (which ran once), not before each prompt.
    assert mask.shape[1] == max(map(len, ids)) and mask[:, :shared].all() and not mask.all()
    got = backend.score(SHARED, CHOICES)
    np.testing.assert_allclose(got, reference_scores(model, tokenizer, backend, SHARED, CHOICES), rtol=1e-4, atol=1e-4)
    assert got[0] == pytest.approx(got[3])


def test_a_batch_of_two_prompt_families_is_scored_in_two_groups(tiny):
    """English and Vietnamese instructions mixed in one batch: each family runs its instruction
    once (two groups), with the scores of one pass per prompt and choice."""
    from backends.prefix import prefix_groups

    model, tokenizer = tiny
    vi = [{"role": "system", "content": "Bạn là một nhà phân tích tài chính cẩn thận."},
          {"role": "user", "content": "Phân loại cảm xúc của văn bản tài chính này. Trả lời bằng một từ.\n\nVăn bản: "}]
    prompts = []
    for i, text in enumerate(["Profit rose.", "Lợi nhuận tăng.", "Sales fell.", "Doanh thu giảm.", "Flat year."]):
        family = INSTRUCTION if i % 2 == 0 else vi
        prompts.append([family[0], {**family[1], "content": family[1]["content"].rsplit("Text: ", 1)[0] + text}])
    backend = TransformersBackend(TINY, loaded=tiny, batch_size=len(prompts))
    ids = [tokenizer(backend.render(p), add_special_tokens=False)["input_ids"] for p in prompts]
    assert sorted(map(sorted, prefix_groups(ids))) == [[0, 2, 4], [1, 3]]
    assert len(prefix_groups(ids[::2])) == 1  # one family: one group
    got = backend.score(prompts, CHOICES)
    np.testing.assert_allclose(got, reference_scores(model, tokenizer, backend, prompts, CHOICES), rtol=1e-4, atol=1e-4)

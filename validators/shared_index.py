"""The `near_duplicates` check split over many workers through one Redis-held MinHash LSH index,
with verdicts identical to the single-process check, whatever the worker count and timing.

    found = shared_similarities(pool, "redis://127.0.0.1:6379/0", rows, query)   # rows: (key, text, lang)
    # found[i]: {key: estimated Jaccard} of every LSH candidate of query[i] (itself excluded)

Two phases with a barrier (every worker adds its shard, then every worker queries), every write
commutative; the driver then applies the validator's own rule. The keys live under the run's id
(`pool.run_id`, from the run's manifest): concurrent runs of one input never share or delete each
other's index. A Redis failure, or an index that lost entries between the phases (a restarted or
evicting Redis), raises `SharedIndexError` (one line), never an answer with candidates missing.
Shingles and signatures: `validators.minhash`. Design: docs/validation.md#design-validatorsshared_indexpy
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from core.errors import UserError
from core.optional import require
from core.urls import redact_url
from validators.minhash import SHINGLING, Shingler, band_ranges, signatures

TTL_S = 24 * 3600  # leftovers of a killed run vanish; a finished check deletes its run's keys itself
_CHUNK = 512  # records per Redis pipeline
_PREFIX = "seedloop:nd"
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # no ':' or glob characters: the run's keys are one SCAN pattern


class SharedIndexError(UserError):
    """Redis failed mid-check, or the index lost entries between the phases: no verdicts, re-run the check."""


class ShardPool(Protocol):
    """Workers that run `fn` over contiguous shards of `items`, one shard each, and join the results in order
    (`backends.ray_pool.RayBackendPool` / `ValidationPool`). `run_id` (optional attribute): the run they
    serve; the index's keys live under it."""

    def map_shards(self, fn: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[Any]: ...


@dataclass(frozen=True)
class IndexSpec:
    """Everything a worker needs to open the index (small and picklable: it travels with each shard)."""

    redis_url: str
    name: str
    threshold: float = 0.7
    num_perm: int = 128
    seed: int = 1
    rules: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in SHINGLING.items()})


def run_prefix(run_id: str) -> str:
    """`seedloop:nd:<run id>`: every key of one run's checks starts with it (and only its run drops them)."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"shared index: run id {run_id!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return f"{_PREFIX}:{run_id}"


def namespace(rows: Sequence[tuple[str, str, str]], threshold: float, num_perm: int, seed: int,
              rules: dict[str, dict[str, Any]], *, run_id: str) -> str:
    """`seedloop:nd:<run id>:<digest>` of the settings and every (key, lang, text) row.

    The run id keeps two runs of one input apart; the digest keeps one run's inputs apart (a resume
    with a larger `n` has other rows under the same keys, which must not meet a killed session's).
    """
    digest = hashlib.sha256(json.dumps([threshold, num_perm, seed, rules], sort_keys=True).encode())
    for key, text, lang in rows:
        digest.update(f"{key}\0{lang}\0{text}\0".encode())
    return f"{run_prefix(run_id)}:{digest.hexdigest()[:24]}"


class SharedNearDuplicateIndex:
    """One namespace of the Redis-held index: `add` (phase 1), `neighbours` (phase 2), `drop`.

    Redis errors propagate as `redis.RedisError`; `neighbours` raises `SharedIndexError` when the index
    no longer holds what phase 1 added (a Redis restarted without persistence, or evicting keys).
    """

    def __init__(self, spec: IndexSpec):
        redis = require("redis")
        self.spec = spec
        self.client = redis.Redis.from_url(spec.redis_url)
        self.shingler = Shingler({k: dict(v) for k, v in spec.rules.items()})
        # The band layout datasketch's MinHashLSH picks for (threshold, num_perm): the same candidates.
        self.ranges = band_ranges(spec.threshold, spec.num_perm)

    def _bands(self, sig: bytes) -> list[str]:
        return [f"{self.spec.name}:b{b}:{sig[4 * start:4 * end].hex()}" for b, (start, end) in enumerate(self.ranges)]

    def add(self, rows: Sequence[tuple[str, str, str]]) -> int:
        """Add (key, text, lang) rows; a row without shingles (empty text) is not indexed. Idempotent."""
        added = 0
        sig_key = f"{self.spec.name}:sig"
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            sets = [self.shingler(text, lang) for _, text, lang in chunk]
            sigs = signatures(sets, num_perm=self.spec.num_perm, seed=self.spec.seed).astype("<u4")
            pipe = self.client.pipeline(transaction=False)
            mapping: dict[str, bytes] = {}
            for (key, _, _), sig, shingles in zip(chunk, sigs, sets, strict=True):
                if not shingles:
                    continue
                data = sig.tobytes()
                mapping[key] = data
                for band in self._bands(data):
                    pipe.sadd(band, key)
                    pipe.expire(band, TTL_S)
            if mapping:
                pipe.hset(sig_key, mapping=mapping)
                pipe.expire(sig_key, TTL_S)
                pipe.execute()
            added += len(mapping)
        return added

    def neighbours(self, keys: Sequence[str], expected: int | None = None) -> list[dict[str, float]]:
        """For each key: every LSH candidate (itself excluded) with its estimated Jaccard, unthresholded.

        `expected`: how many signatures phase 1 added. Each chunk's reads end with a count of the
        signatures in the same pipeline, and every candidate's signature must be there: an index that
        lost entries (a Redis restarted or evicting between the phases) raises instead of answering
        with candidates missing, which would read as "no duplicates".
        """
        sig_key = f"{self.spec.name}:sig"
        out: list[dict[str, float]] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = list(keys[i : i + _CHUNK])
            mine = self.client.hmget(sig_key, chunk)
            pipe = self.client.pipeline(transaction=False)
            for data in mine:
                for band in (self._bands(data) if data else []):
                    pipe.smembers(band)
            pipe.hlen(sig_key)
            *replies, held = pipe.execute()
            if expected is not None and held != expected:
                raise SharedIndexError(f"the index {self.spec.name} holds {held} of the {expected} signatures "
                                       "phase 1 added (Redis restarted or evicting keys between the phases?)")
            members = iter(replies)
            candidates: list[set[str]] = []
            for key, data in zip(chunk, mine, strict=True):
                found: set[str] = set()
                for _ in (self.ranges if data else []):
                    found.update(m.decode() for m in next(members))
                found.discard(key)
                candidates.append(found)
            others = sorted(set().union(*candidates))
            theirs = dict(zip(others, self.client.hmget(sig_key, others), strict=True)) if others else {}
            lost = [k for k in others if not theirs[k]]
            if lost:
                raise SharedIndexError(f"the index {self.spec.name} lost the signature of {lost[0]} "
                                       f"(and {len(lost) - 1} more) during the check (Redis restarted?)")
            for data, found in zip(mine, candidates, strict=True):
                if not data:
                    out.append({})
                    continue
                sig = np.frombuffer(data, dtype="<u4")
                # float(np.mean(a == b)): the in-process validator's estimate, bit for bit.
                out.append({k: float(np.mean(sig == np.frombuffer(theirs[k], dtype="<u4")))
                            for k in sorted(found)})
        return out

    def drop(self, prefix: str | None = None) -> int:
        """Delete the namespace (or every key under `prefix`, e.g. its run's); returns the keys removed."""
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{prefix or self.spec.name}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += self.client.unlink(*batch)
                batch = []
        if batch:
            removed += self.client.unlink(*batch)
        return removed


def _redis_errors() -> tuple[type[BaseException], ...]:
    return (require("redis").RedisError,)


def add_shard(spec: IndexSpec, rows: list[tuple[str, str, str]]) -> list[int]:
    """Phase 1 on a worker: add its shard of (key, text, lang) rows."""
    try:
        return [SharedNearDuplicateIndex(spec).add(rows)]
    except _redis_errors() as exc:  # a plain picklable error with the reason, not a Redis traceback
        raise SharedIndexError(f"{type(exc).__name__}: {exc}") from None


def neighbours_shard(spec: IndexSpec, expected: int, keys: list[str]) -> list[dict[str, float]]:
    """Phase 2 on a worker: the candidates of its shard of keys (after every add returned)."""
    try:
        return SharedNearDuplicateIndex(spec).neighbours(keys, expected)
    except _redis_errors() as exc:
        raise SharedIndexError(f"{type(exc).__name__}: {exc}") from None


def _phase(pool: ShardPool, fn: Callable[[list[Any]], list[Any]], items: list[Any], spec: IndexSpec,
           phase: str) -> list[Any]:
    """`pool.map_shards`, a Redis failure on any worker (or here) turned into one `SharedIndexError` line."""
    try:
        return pool.map_shards(fn, items)
    except Exception as exc:
        cause = getattr(exc, "cause", None) or exc  # a Ray task error carries the worker's exception
        if not isinstance(cause, (SharedIndexError, *_redis_errors())):
            raise
        why = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise SharedIndexError(f"near_duplicates: the shared index in Redis ({redact_url(spec.redis_url)}) failed in "
                               f"phase {phase}: {why}; no verdict was given") from None


def shared_similarities(pool: ShardPool, redis_url: str, rows: Sequence[tuple[str, str, str]], query: Sequence[str],
                        *, threshold: float = 0.7, num_perm: int = 128, seed: int = 1,
                        shingler: Shingler | None = None, keep: bool = False,
                        run_id: str | None = None) -> list[dict[str, float]]:
    """The LSH candidates (key -> estimated Jaccard, itself excluded) of each `query` key among `rows`.

    `rows` are (key, text, lang), keys unique; the work is split over `pool`'s workers in the two
    phases of the module docstring, under `run_id` (default: `pool.run_id`, else a fresh id for this
    call). Afterwards every key of the run is deleted (this check's and a killed session's), unless
    `keep`. Raises `SharedIndexError` when Redis fails or loses entries mid-check.
    """
    keys = [key for key, _, _ in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("shared_similarities: row keys must be unique")
    run_id = run_id or getattr(pool, "run_id", None) or uuid.uuid4().hex
    rules = (shingler or Shingler()).rules
    spec = IndexSpec(redis_url, namespace(rows, threshold, num_perm, seed, rules, run_id=run_id), threshold,
                     num_perm, seed, {k: dict(v) for k, v in rules.items()})
    added = _phase(pool, partial(add_shard, spec), list(rows), spec, "1 (add)")  # returns when all are in: the barrier
    found = _phase(pool, partial(neighbours_shard, spec, sum(added)), list(query), spec, "2 (query)")
    if not keep:
        try:
            SharedNearDuplicateIndex(spec).drop(run_prefix(run_id))
        except _redis_errors():
            pass  # the verdicts are whole; the keys expire after TTL_S
    return found

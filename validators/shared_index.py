"""The `near_duplicates` check split over many workers through one Redis-held MinHash LSH index,
with verdicts identical to the single-process check, whatever the worker count and timing.

    found = shared_similarities(pool, "redis://127.0.0.1:6379/0", rows, query)   # rows: (key, text, lang)
    # found[i]: {key: estimated Jaccard} of every LSH candidate of query[i] (itself excluded)

Two phases with a barrier (every worker adds its shard, then every worker queries), every write
commutative; the driver then applies the validator's own rule. Shingles and signatures: `validators.minhash`.
Design: docs/validation.md#design-validatorsshared_indexpy
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from core.optional import require
from validators.minhash import SHINGLING, Shingler, band_ranges, signatures

TTL_S = 24 * 3600  # leftovers of a killed run vanish; a finished check deletes its namespace itself
_CHUNK = 512  # records per Redis pipeline


class ShardPool(Protocol):
    """Workers that run `fn` over contiguous shards of `items`, one shard each, and join the results in order
    (`backends.ray_pool.RayBackendPool` / `ValidationPool`)."""

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


def namespace(rows: Sequence[tuple[str, str, str]], threshold: float, num_perm: int, seed: int,
              rules: dict[str, dict[str, Any]]) -> str:
    """`seedloop:nd:<digest>` of the settings and every (key, lang, text) row: one input, one namespace."""
    digest = hashlib.sha256(json.dumps([threshold, num_perm, seed, rules], sort_keys=True).encode())
    for key, text, lang in rows:
        digest.update(f"{key}\0{lang}\0{text}\0".encode())
    return f"seedloop:nd:{digest.hexdigest()[:24]}"


class SharedNearDuplicateIndex:
    """One namespace of the Redis-held index: `add` (phase 1), `neighbours` (phase 2), `drop`."""

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

    def neighbours(self, keys: Sequence[str]) -> list[dict[str, float]]:
        """For each key: every LSH candidate (itself excluded) with its estimated Jaccard, unthresholded."""
        sig_key = f"{self.spec.name}:sig"
        out: list[dict[str, float]] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = list(keys[i : i + _CHUNK])
            mine = self.client.hmget(sig_key, chunk)
            pipe = self.client.pipeline(transaction=False)
            for data in mine:
                for band in (self._bands(data) if data else []):
                    pipe.smembers(band)
            members = iter(pipe.execute())
            candidates: list[set[str]] = []
            for key, data in zip(chunk, mine, strict=True):
                found: set[str] = set()
                for _ in (self.ranges if data else []):
                    found.update(m.decode() for m in next(members))
                found.discard(key)
                candidates.append(found)
            others = sorted(set().union(*candidates))
            theirs = dict(zip(others, self.client.hmget(sig_key, others), strict=True)) if others else {}
            for data, found in zip(mine, candidates, strict=True):
                if not data:
                    out.append({})
                    continue
                sig = np.frombuffer(data, dtype="<u4")
                # float(np.mean(a == b)): the in-process validator's estimate, bit for bit.
                out.append({k: float(np.mean(sig == np.frombuffer(theirs[k], dtype="<u4")))
                            for k in sorted(found) if theirs.get(k)})
        return out

    def drop(self) -> int:
        """Delete the namespace; returns the number of keys removed."""
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{self.spec.name}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += self.client.unlink(*batch)
                batch = []
        if batch:
            removed += self.client.unlink(*batch)
        return removed


def add_shard(spec: IndexSpec, rows: list[tuple[str, str, str]]) -> list[int]:
    """Phase 1 on a worker: add its shard of (key, text, lang) rows."""
    return [SharedNearDuplicateIndex(spec).add(rows)]


def neighbours_shard(spec: IndexSpec, keys: list[str]) -> list[dict[str, float]]:
    """Phase 2 on a worker: the candidates of its shard of keys (after every add returned)."""
    return SharedNearDuplicateIndex(spec).neighbours(keys)


def shared_similarities(pool: ShardPool, redis_url: str, rows: Sequence[tuple[str, str, str]], query: Sequence[str],
                        *, threshold: float = 0.7, num_perm: int = 128, seed: int = 1,
                        shingler: Shingler | None = None, keep: bool = False) -> list[dict[str, float]]:
    """The LSH candidates (key -> estimated Jaccard, itself excluded) of each `query` key among `rows`.

    `rows` are (key, text, lang), keys unique; the work is split over `pool`'s workers in the two
    phases of the module docstring. The namespace is deleted afterwards unless `keep`.
    """
    keys = [key for key, _, _ in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("shared_similarities: row keys must be unique")
    rules = (shingler or Shingler()).rules
    spec = IndexSpec(redis_url, namespace(rows, threshold, num_perm, seed, rules), threshold, num_perm, seed,
                     {k: dict(v) for k, v in rules.items()})
    pool.map_shards(partial(add_shard, spec), list(rows))  # returns when every shard is in: the barrier
    found = pool.map_shards(partial(neighbours_shard, spec), list(query))
    if not keep:
        SharedNearDuplicateIndex(spec).drop()
    return found

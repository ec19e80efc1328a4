"""A near-duplicate index shared by many processes through one Redis, with an atomic claim.

    index = SharedNearDuplicateIndex("redis://127.0.0.1:6379/0", name="fin_sentiment/en")
    index.claim(records)   # [None, ("ab12...", 0.81), ...]: None = accepted and now held

datasketch's `MinHashLSH` with Redis storage shares the buckets, but `query` then `insert` are two
round trips: two workers holding a near-duplicate pair can both query (nothing found), then both
insert, and both accept. Here the check and the insert are one Lua script, which Redis runs
atomically: the script reads the record's LSH bucket members (the same bands as datasketch's index
for the threshold), verifies each candidate's estimated Jaccard on the stored signatures, and only
when none reaches the threshold (and no exact copy is held) adds the record to its buckets. Of any
pair, whichever claim runs first is accepted and the other is told which record holds its place.

Signatures and shingles are `validators.minhash`'s (the same as the `near_duplicates` validator's).
A claim is idempotent: claiming a record already held under the same key accepts it again, so a
resumed or repeated run does not reject its own records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from datasketch import MinHashLSH

from core.records import Record, normalise_text
from validators.minhash import Shingler, signatures

# KEYS[1]: hash key -> signature bytes; KEYS[2]: the exact-copy key; KEYS[3..]: the record's LSH buckets.
# ARGV: key, signature (little-endian uint32 x num_perm), threshold, num_perm.
_CLAIM = """
local me, sig, threshold, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HEXISTS', KEYS[1], me) == 1 then return {} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= me then return {holder, '1'} end
local best_key, best, seen = false, -1, {}
for i = 3, #KEYS do
  for _, other in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    if not seen[other] then
      seen[other] = true
      local theirs = redis.call('HGET', KEYS[1], other)
      if theirs and #theirs == #sig then
        local eq = 0
        for p = 1, 4 * n, 4 do
          if string.sub(sig, p, p + 3) == string.sub(theirs, p, p + 3) then eq = eq + 1 end
        end
        local sim = eq / n
        if sim >= threshold and sim > best then best, best_key = sim, other end
      end
    end
  end
end
if best_key then return {best_key, tostring(best)} end
redis.call('HSET', KEYS[1], me, sig)
redis.call('SET', KEYS[2], me)
for i = 3, #KEYS do redis.call('SADD', KEYS[i], me) end
return {}
"""


class SharedNearDuplicateIndex:
    """Claims of records in one Redis-held LSH index (see the module docstring)."""

    def __init__(self, redis_url: str, *, name: str, threshold: float = 0.7, num_perm: int = 128, seed: int = 1,
                 shingler: Shingler | None = None):
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.name, self.threshold, self.num_perm, self.seed = name, threshold, num_perm, seed
        self.shingler = shingler or Shingler()
        # The band layout datasketch's MinHashLSH picks for (threshold, num_perm): the same candidates.
        self.ranges = MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges
        self._script = self.client.register_script(_CLAIM)

    def _keys(self, record: Record, sig_bytes: bytes, has_shingles: bool) -> list[str]:
        exact = hashlib.sha1(normalise_text(record.text).encode("utf-8")).hexdigest()
        keys = [f"{self.name}:sig", f"{self.name}:exact:{exact}"]
        if has_shingles:
            keys += [f"{self.name}:band{b}:{sig_bytes[4 * start:4 * end].hex()}"
                     for b, (start, end) in enumerate(self.ranges)]
        return keys

    def claim(self, records: Sequence[Record], keys: Sequence[str] | None = None) -> list[tuple[str, float] | None]:
        """For each record: None when it is accepted (and now held), else (key of the holder, Jaccard).

        `keys` name the records in the index (default: their ids). Each claim is atomic; they are
        sent in one pipeline, and run in order.
        """
        keys = list(keys) if keys is not None else [r.id for r in records]
        sets = [self.shingler(r.text, r.lang) for r in records]
        sigs = signatures(sets, num_perm=self.num_perm, seed=self.seed).astype("<u4")
        pipe = self.client.pipeline(transaction=False)
        for key, record, sig, shingles in zip(keys, records, sigs, sets, strict=True):
            data = sig.tobytes()
            self._script(keys=self._keys(record, data, bool(shingles)),
                         args=[key, data, repr(float(self.threshold)), self.num_perm], client=pipe)
        out: list[tuple[str, float] | None] = []
        for answer in pipe.execute():
            out.append((answer[0].decode(), float(answer[1])) if answer else None)
        return out

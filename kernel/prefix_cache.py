"""The prefix cache: full KV pages keyed by a chained hash of their tokens.

Page ``i`` of a token sequence is keyed by ``hash((key of page i-1, its
tokens, salt))``. A hit must also match the tokens and the exact parent
entry, so a hash collision can never serve wrong K/V. The cache holds one
reference on each cached frame; a frame only the cache holds is
*evictable*: least recently used first, but among the oldest
:data:`EVICTION_WINDOW` the pages last used by the lowest-priority process
(highest nice) go first. Plain Python: frames are numbers.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HashFn = Callable[[object], int]
EVICTION_WINDOW = 32


@dataclass(frozen=True, eq=False)
class CacheEntry:
    """One cached page: its key, its parent entry, its tokens and its frame."""

    entry_id: int
    key: int
    parent_id: int  # 0 for the first page of a sequence
    salt: int
    tokens: tuple[int, ...]
    frame: int


class PrefixCache:
    """Cached pages by key and by frame, and the LRU order of the evictable ones."""

    def __init__(self, page_size: int, hash_fn: HashFn = hash) -> None:
        self.page_size = page_size
        self.hash_fn = hash_fn
        self.by_key: dict[int, CacheEntry] = {}
        self.by_frame: dict[int, CacheEntry] = {}
        self.evictable: OrderedDict[int, int] = OrderedDict()  # frames only we hold -> nice
        self._ids = itertools.count(1)
        self.num_hits = 0
        self.num_misses = 0

    def __contains__(self, frame: int) -> bool:
        return frame in self.by_frame

    @property
    def num_cached(self) -> int:
        return len(self.by_frame)

    @property
    def num_evictable(self) -> int:
        return len(self.evictable)

    @property
    def hit_rate(self) -> float:
        lookups = self.num_hits + self.num_misses
        return self.num_hits / lookups if lookups else 0.0

    def key_of(self, parent: CacheEntry | None, tokens: tuple[int, ...], salt: int) -> int:
        parent_key = 0 if parent is None else parent.key
        return self.hash_fn((parent_key, tokens, salt))

    def lookup(
        self, parent: CacheEntry | None, tokens: Sequence[int], salt: int
    ) -> CacheEntry | None:
        """The cached page following ``parent`` with exactly these tokens, if any."""
        page = tuple(tokens)
        entry = self.by_key.get(self.key_of(parent, page, salt))
        parent_id = 0 if parent is None else parent.entry_id
        if entry is None or entry.parent_id != parent_id or entry.tokens != page:
            return None
        if entry.salt != salt:
            return None
        return entry

    def insert(
        self, parent: CacheEntry | None, tokens: Sequence[int], salt: int, frame: int
    ) -> CacheEntry | None:
        """Cache ``frame`` (the caller adds the cache's reference); None if the key is taken.

        A taken key is either the same content (already cached elsewhere) or
        a collision; either way the existing entry stays.
        """
        page = tuple(tokens)
        key = self.key_of(parent, page, salt)
        if key in self.by_key or frame in self.by_frame:
            return None
        parent_id = 0 if parent is None else parent.entry_id
        entry = CacheEntry(next(self._ids), key, parent_id, salt, page, frame)
        self.by_key[key] = entry
        self.by_frame[frame] = entry
        return entry

    def mark_evictable(self, frame: int, nice: int = 0) -> None:
        """Only the cache holds ``frame`` now (last used by a process of ``nice``): it may
        be evicted, after older ones and after those of lower-priority processes."""
        self.evictable[frame] = nice
        self.evictable.move_to_end(frame)

    def mark_in_use(self, frame: int) -> None:
        self.evictable.pop(frame, None)

    def evict(self) -> int:
        """Forget an evictable page (LRU, lowest priority first); return its frame to free."""
        window = itertools.islice(self.evictable.items(), EVICTION_WINDOW)
        frame = max(window, key=lambda item: item[1])[0]  # max keeps the oldest of ties
        del self.evictable[frame]
        entry = self.by_frame.pop(frame)
        del self.by_key[entry.key]
        return frame

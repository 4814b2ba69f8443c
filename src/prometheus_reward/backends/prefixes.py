"""Rows that share a token prefix (a GRPO group's template header and instruction): grouped so the
local backend runs each shared prefix once in forward-only batches and reuses its KV cache.

Example:
    >>> shared_prefix_groups([[1, 2, 3, 4], [1, 2, 3, 5], [9, 9]], min_shared=2)
    [(3, [0, 1]), (0, [2])]
"""

from __future__ import annotations

from typing import Sequence

MIN_SHARED_PREFIX = 64  # tokens: below this a shared prefix saves less than the extra pass costs


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def shared_prefix_groups(rows: Sequence[Sequence[int]], min_shared: int = MIN_SHARED_PREFIX) -> list[tuple[int, list[int]]]:
    """Rows grouped by a shared token prefix: ``(prefix length, row indices)``, prefix 0 for rows
    that share none worth reusing. Rows are sorted (so rows with a common prefix are neighbours)
    and a group grows while that saves more prefix tokens ((size - 1) x prefix); every row keeps at
    least its last token outside the prefix.

    >>> shared_prefix_groups([[1, 2, 3, 4], [1, 2, 3, 5], [9, 9]], min_shared=2)
    [(3, [0, 1]), (0, [2])]
    """
    if not rows:
        return []
    order = sorted(range(len(rows)), key=lambda i: list(rows[i]))
    groups: list[tuple[int, list[int]]] = []
    members, shared = [order[0]], len(rows[order[0]]) - 1
    for i in order[1:]:
        common = min(shared, _common_length(rows[members[0]], rows[i]), len(rows[i]) - 1)
        if common >= min_shared and len(members) * common >= (len(members) - 1) * shared:
            members.append(i)
            shared = common
        else:
            groups.append((shared if len(members) > 1 else 0, members))
            members, shared = [i], len(rows[i]) - 1
    groups.append((shared if len(members) > 1 else 0, members))
    return groups

"""Which teacher layer each student layer learns from.

Layers are numbered from 1 (the output of the first transformer layer) to N, matching `hidden_states[i]` and
`attentions[i - 1]` of a Transformers model; 0 is the embedding output and is handled by the embedding loss.
"""

from __future__ import annotations

from ..errors import BertliteError

STRATEGIES = ("uniform", "last", "first")


def parse_layer_map(spec) -> list[tuple[int, int]] | str:
    """`uniform`/`last`/`first`, "1:2,2:4,3:6" or [[1, 2], [2, 4]] -> strategy name or list of (student, teacher)."""
    if isinstance(spec, str):
        text = spec.strip()
        if text in STRATEGIES:
            return text
        try:
            pairs = [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item.strip()]
        except ValueError:
            pairs = []
        if not pairs or any(len(p) != 2 for p in pairs):
            raise BertliteError(f"Invalid layer map {spec!r}: use one of {', '.join(STRATEGIES)} or explicit "
                                "student:teacher pairs like '1:2,2:4,3:6'.")
        return pairs
    if isinstance(spec, (list, tuple)):
        try:
            pairs = [(int(a), int(b)) for a, b in spec]
        except (TypeError, ValueError) as err:
            raise BertliteError(f"Invalid layer map {spec!r}: expected a list of [student, teacher] pairs.") from err
        return pairs
    raise BertliteError(f"Invalid layer map {spec!r}.")


def resolve_layer_map(spec, num_student_layers: int, num_teacher_layers: int) -> list[tuple[int, int]]:
    """Concrete (student_layer, teacher_layer) pairs, validated against both depths.

    uniform: student layer m learns from teacher layer m*N/M (TinyBERT's g(m)); last: from the top M teacher
    layers; first: from the bottom M.
    """
    parsed = parse_layer_map(spec)
    m, n = num_student_layers, num_teacher_layers
    if parsed == "uniform":
        pairs = [(i, round(i * n / m)) for i in range(1, m + 1)]
    elif parsed == "last":
        pairs = [(i, n - m + i) for i in range(1, m + 1)]
    elif parsed == "first":
        pairs = [(i, i) for i in range(1, m + 1)]
    else:
        pairs = list(parsed)
    if m > n and parsed in ("last", "first"):
        raise BertliteError(f"Layer map {parsed!r} needs a student ({m} layers) no deeper than the teacher ({n}).")
    for s, t in pairs:
        if not 1 <= s <= m:
            raise BertliteError(f"Layer map pair {s}:{t}: the student has layers 1..{m}, not {s}.")
        if not 1 <= t <= n:
            raise BertliteError(f"Layer map pair {s}:{t}: the teacher has layers 1..{n}, not {t}.")
    if len({s for s, _ in pairs}) != len(pairs):
        raise BertliteError(f"Layer map {pairs}: a student layer is mapped twice.")
    return pairs

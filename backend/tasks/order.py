"""The order of the crowd queue before a model ranks the slices: pure, no database.

A slice's import priority is a fixed scramble of its id: consecutive ids (a case's neighbouring
slices, imported in order) land far apart, and the order says nothing a volunteer could read
off the image. (An earlier order, fullest brain share first, let a volunteer tell gold from
normal tasks by the brain share and level of the slice: gold is drawn from every level, the
queue worked through one band at a time; issue 34's red team.) The lease statement then
passes over the case of the caller's previous task (``backend.tasks.queue``), so consecutive
tasks come from different cases while other cases have open tasks. A model's ranking (an
active-learning round's chosen slices, priorities from RANKED up) is not mixed: the round
asked for those slices first, whatever their cases.
"""

RANKED = 1.0  # priorities from here up are a round's chosen slices
_GOLDEN = 2654435761  # Knuth's multiplicative hash: 2^32 / the golden ratio, odd


def queue_priority(slice_id: int) -> float:
    """A slice's import priority, in [0, 1): its id scrambled (a bijection on 32-bit ids, so
    no two slices of a project tie), below every slice a round chose."""
    return (slice_id * _GOLDEN % (1 << 32)) / (1 << 32) * 0.999

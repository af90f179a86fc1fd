"""The order of the crowd queue before a model ranks the slices: pure, no database.

Slices with more brain come first, in bands; inside a band a case's slices are spread by the
bit-reversed slice index (van der Corput), so the queue walks positions 32, 16, 48, 8, ... of
every case rather than one case's neighbouring slices in a row. The lease statement then passes
over the case of the caller's previous task (``backend.tasks.queue.candidate_statement``), so
consecutive tasks come from different cases while other cases have open tasks. A model's
ranking (an active-learning round's chosen slices, priorities from RANKED up) is not mixed:
the round asked for those slices first, whatever their cases.
"""

BANDS = 10
RANKED = 1.0  # priorities from here up are a round's chosen slices
INDEX_BITS = 12  # slice indices up to 4,095 get distinct spreads


def spread(index: int) -> float:
    """``index`` bit-reversed over INDEX_BITS bits, in [0, 1): neighbouring indices land far
    apart (0 -> 0, 1 -> 0.5, 2 -> 0.25, 3 -> 0.75)."""
    value = index % (1 << INDEX_BITS)
    reversed_bits = int(f"{value:0{INDEX_BITS}b}"[::-1], 2)
    return reversed_bits / (1 << INDEX_BITS)


def queue_priority(brain_fraction: float, index: int) -> float:
    """A slice's import priority, in [0, 1): its brain share's band (tenths; the fullest band
    first), then its spread position inside the band. Active learning's chosen slices start at
    1 and so stay ahead of every imported one."""
    band = min(max(int(brain_fraction * BANDS), 0), BANDS - 1)
    return (band + 0.999 * spread(index)) / BANDS

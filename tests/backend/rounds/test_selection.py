"""Selection strategies: the contract every strategy keeps, determinism under a seed, and what
each one prefers."""

import numpy as np
import pytest

from backend.rounds.selection import GAP, STRATEGIES, Pool, priorities, select


def _pool(n: int = 60, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    return Pool(
        ids=np.arange(1000, 1000 + n),
        cases=np.repeat(np.arange(n // 20), 20),
        indices=np.tile(np.arange(20), n // 20),
        foreground=rng.random(n) ** 3,
        scores={"entropy": rng.random(n), "bald": rng.random(n)},
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_keeps_the_contract(name: str) -> None:
    pool = _pool()
    chosen = select(name, pool, 12, seed=3)
    assert len(chosen) == len(set(chosen)) == 12
    assert set(chosen) <= set(pool.ids.tolist())
    assert select(name, pool, 12, seed=3) == chosen  # the same under the same seed
    assert len(select(name, pool, 500, seed=3)) == 60  # a budget above the pool: all of it
    assert select(name, pool, 0) == []


def test_uncertainty_strategies_take_the_highest_scores() -> None:
    pool = _pool()
    for name in ("entropy", "bald"):
        chosen = select(name, pool, 5)
        best = pool.ids[np.argsort(-pool.scores[name])[:5]]
        assert chosen == best.tolist()
    # Without a model there are no scores: only the model-free strategies work.
    bare = Pool(pool.ids, pool.cases, pool.indices, pool.foreground)
    assert len(select("cold_start", bare, 5)) == 5
    with pytest.raises(ValueError, match="no 'bald' scores"):
        select("bald_diverse", bare, 5)
    with pytest.raises(ValueError, match="unknown strategy 'smart'; known: bald, bald_diverse"):
        select("smart", pool, 5)


def test_random_fg_favours_slices_with_candidates() -> None:
    pool = _pool(600)
    picked = np.concatenate([select("random_fg", pool, 30, seed=s) for s in range(20)])
    plain = np.concatenate([select("random", pool, 30, seed=s) for s in range(20)])
    share = dict(zip(pool.ids.tolist(), pool.foreground.tolist(), strict=True))
    # Weights cap at the pool's 95th percentile of shares (an artefact-bright slice must not
    # take every round), so the top shares are favoured alike: 2.0x here, 2.3x uncapped.
    assert np.mean([share[i] for i in picked]) > 1.8 * np.mean([share[i] for i in plain])


def test_random_fg_favours_candidates_at_real_shares_and_survives_none() -> None:
    """Real slices have about 0 to 1.6 % of their brain hyperintense, most of them none: the
    bias must hold at that scale (it did not while a floor was added to the raw shares)."""
    rng = np.random.default_rng(1)
    n = 600
    shares = np.where(rng.random(n) < 0.3, rng.random(n) * 0.016, 0.0)
    pool = Pool(np.arange(n), np.zeros(n, dtype=np.int64), np.arange(n), shares)
    picked = np.concatenate([select("random_fg", pool, 8, seed=s) for s in range(30)])
    with_candidates = np.mean(shares[picked] > 0)
    assert with_candidates > 0.8  # 30 % of the pool has candidates
    flat = Pool(pool.ids, pool.cases, pool.indices, np.zeros(n))
    assert len(set(select("random_fg", flat, 20, seed=0))) == 20  # no candidates: random
    assert select("cold_start", pool, 8, seed=4) == select("random_fg", pool, 8, seed=4)


def test_bald_diverse_spreads_over_cases_and_skips_neighbours() -> None:
    pool = _pool(60)
    # Make one case's run of neighbouring slices the most uncertain of all.
    bald = pool.scores["bald"].copy()
    bald[:10] += 10
    pool = Pool(pool.ids, pool.cases, pool.indices, pool.foreground, {"bald": bald})
    chosen = select("bald_diverse", pool, 9)
    by_id = {int(i): n for n, i in enumerate(pool.ids)}
    cases = [int(pool.cases[by_id[i]]) for i in chosen]
    assert max(cases.count(c) for c in set(cases)) <= 4  # a third of 9, rounded up
    for case in set(cases):
        taken = sorted(int(pool.indices[by_id[i]]) for i in chosen if pool.cases[by_id[i]] == case)
        assert all(b - a > GAP for a, b in zip(taken, taken[1:], strict=False))
    # Plain BALD takes the neighbouring run.
    assert all(pool.cases[by_id[i]] == 0 for i in select("bald", pool, 9))


def test_priorities_follow_the_order_and_bad_pools_are_refused() -> None:
    order = priorities([7, 3, 9])
    assert order[7] > order[3] > order[9] > 1.0
    with pytest.raises(ValueError, match="one value per slice"):
        Pool(np.arange(3), np.arange(2), np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match="unique"):
        Pool(np.zeros(3, dtype=np.int64), np.arange(3), np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match="negative"):
        select("random", _pool(), -1)

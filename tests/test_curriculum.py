"""Curricula: SEC against hand-computed values, the baselines' defining behaviour, the shared
interface and state round trips, the registry, and the instance pools."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest

from seccrm.curriculum import (
    CURRICULA,
    SEC,
    UCB,
    ArmPools,
    Curriculum,
    EasyToHard,
    HardToEasy,
    Learnability,
    Uniform,
    make_curriculum,
    register_curriculum,
)
from seccrm.curriculum import registry as registry_module
from seccrm.world.arms import ALL_ARMS, parse_arm

A, B, C = "CRUD/easy", "POLICY/hard", "KNOWLEDGE/medium"
ARMS3 = (A, B, C)


def json_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint stores the state as JSON: make sure that is all it needs."""
    out: dict[str, Any] = json.loads(json.dumps(state))
    return out


def fake_batch(arms: list[str], rng: random.Random, n: int = 4) -> tuple[list[str], list[float], list[float]]:
    """n completions per prompt with random rewards and GRPO advantages (plain loop, std-scaled)."""
    comp_arms: list[str] = []
    advantages: list[float] = []
    rewards: list[float] = []
    for arm in arms:
        group = [rng.choice([0.0, 0.1, 1.0]) for _ in range(n)]
        mean = sum(group) / n
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (n - 1))
        comp_arms += [arm] * n
        rewards += group
        advantages += [(r - mean) / (std + 1e-6) for r in group]
    return comp_arms, advantages, rewards


# ------------------------------------------------------------------------------------------------
# SEC
# ------------------------------------------------------------------------------------------------

# A scripted sequence of updates: (completion arms, advantages). Mean |A| per arm in each update:
#   1: A -> 1.0, B -> 0.5          (C absent)
#   2: A -> 0.2, C -> 1.0          (B absent)
#   3: B -> 1.0                    (A, C absent)
SCRIPT = [
    ([A, A, B, B], [1.0, -1.0, 0.5, -0.5]),
    ([A, A, C, C], [0.2, -0.2, 2.0, 0.0]),
    ([B, B], [-1.0, 1.0]),
]
# Q after each update by hand, alpha = 0.3: Q <- 0.7 Q + 0.3 r.
#   hold:  1: A .3,  B .15, C 0     2: A .27, B .15,  C .3    3: A .27,  B .405,  C .3
#   decay: 1: A .3,  B .15, C 0     2: A .27, B .105, C .3    3: A .189, B .3735, C .21
EXPECTED_Q = {
    "hold": [(0.3, 0.15, 0.0), (0.27, 0.15, 0.3), (0.27, 0.405, 0.3)],
    "decay": [(0.3, 0.15, 0.0), (0.27, 0.105, 0.3), (0.189, 0.3735, 0.21)],
}
# softmax(Q / 0.5) of the final Q, e.g. hold: exp(.54), exp(.81), exp(.6) normalised.
EXPECTED_FINAL_P = {
    "hold": (0.296577408, 0.3885058613, 0.3149167307),
    "decay": (0.286600119, 0.4145061993, 0.2988936817),
}


@pytest.mark.parametrize("mode", ["hold", "decay"])
def test_sec_matches_hand_computed_values(mode: str) -> None:
    sec = SEC(ARMS3, alpha=0.3, tau=0.5, unsampled=mode)
    for (arms, adv), expected in zip(SCRIPT, EXPECTED_Q[mode], strict=True):
        sec.update(arms, adv)
        assert [sec.q[a] for a in ARMS3] == pytest.approx(expected, abs=1e-12)
    assert [sec.probs()[a] for a in ARMS3] == pytest.approx(EXPECTED_FINAL_P[mode], abs=1e-9)
    assert sec.step == 3
    assert sec.observations == {A: 4, B: 4, C: 2}


def test_sec_starts_uniform_and_probs_sum_to_one() -> None:
    sec = SEC(ALL_ARMS)
    assert sec.probs() == pytest.approx({a: 1 / 12 for a in ALL_ARMS})
    rng = random.Random(0)
    for _ in range(5):
        sec.update(*fake_batch(sec.sample(8), rng)[:2])
        p = sec.probs()
        assert list(p) == list(ALL_ARMS)
        assert sum(p.values()) == pytest.approx(1.0, abs=1e-12)
        assert len(set(p.values())) > 1  # the updates moved it away from uniform


@pytest.mark.parametrize("mode", ["hold", "decay"])
def test_sec_learns_to_avoid_arms_that_teach_nothing(mode: str) -> None:
    """Easy arms are all-solved (every advantage 0); the others have mixed groups (|A| = 1)."""
    sec = SEC(ALL_ARMS, unsampled=mode, seed=0)
    easy_share = []
    for _ in range(15):
        drawn = sec.sample(32)
        comp = [a for a in drawn for _ in range(4)]
        adv = [0.0 if parse_arm(a)[1] == "easy" else (1.0 if i % 2 else -1.0) for i, a in enumerate(comp)]
        sec.update(comp, adv)
        easy_share.append(sum(p for a, p in sec.probs().items() if parse_arm(a)[1] == "easy"))
    assert easy_share[-1] < easy_share[0] < 1 / 3
    assert easy_share[-1] < 0.15  # Q(easy) stays 0, Q(other) -> 1: 4 / (4 + 8 e^2) = 0.06


def test_sec_softmax_is_stable_for_large_values() -> None:
    sec = SEC(ARMS3, tau=1e-3)
    sec.q = {A: 50.0, B: 49.0, C: 0.0}  # exp(50 / 1e-3) would overflow without the max shift
    p = sec.probs()
    assert p[A] == pytest.approx(1.0) and p[C] == 0.0


def test_sec_metrics_log_the_drawn_distribution_counts_and_rewards() -> None:
    sec = SEC(ARMS3, seed=1)
    sec.q = {A: 1.0, B: 0.0, C: 0.0}
    p_before = sec.probs()
    drawn = sec.sample(10)
    comp_arms = [a for a in drawn for _ in range(2)]
    adv = [0.5, -0.5] * 10
    rewards = [1.0, 0.0] * 10
    m = sec.update(comp_arms, adv, rewards)
    for arm in ARMS3:
        assert m[f"curriculum/p/{arm}"] == pytest.approx(p_before[arm])  # p that drew the batch
        assert m[f"curriculum/n/{arm}"] == drawn.count(arm)
        assert m[f"curriculum/q/{arm}"] == pytest.approx(sec.q[arm])
        if arm in drawn:
            assert m[f"curriculum/r/{arm}"] == pytest.approx(0.5)
            assert m[f"curriculum/reward/{arm}"] == pytest.approx(0.5)
        else:
            assert f"curriculum/r/{arm}" not in m  # hold: absent arms have no signal
    assert sec.counts == {a: drawn.count(a) for a in ARMS3}
    assert m == sec.metrics()
    assert all(isinstance(v, float) for v in m.values())


def test_sec_decay_logs_zero_signal_for_absent_arms() -> None:
    sec = SEC(ARMS3, unsampled="decay")
    m = sec.update([A, A], [1.0, -1.0])
    assert m[f"curriculum/r/{B}"] == 0.0 and m[f"curriculum/r/{A}"] == 1.0
    assert f"curriculum/reward/{A}" not in m  # no rewards were given


def test_sampling_frequencies_follow_probs() -> None:
    sec = SEC(ALL_ARMS, seed=7)
    sec.q = {a: 0.1 * i for i, a in enumerate(ALL_ARMS)}  # p from about 3% to 14%
    p = sec.probs()
    k = 30_000
    drawn = sec.sample(k)
    chi2 = sum((drawn.count(a) - k * p[a]) ** 2 / (k * p[a]) for a in ALL_ARMS)
    assert chi2 < 31.26  # chi-square, 11 degrees of freedom, p = 0.001


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"arms": []}, "at least one arm"),
        ({"arms": ["CRUD/easy", "CRUD/easy"]}, "duplicate"),
        ({"arms": ["CRUD-easy"]}, "SKILL/difficulty"),
        ({"arms": ["SALES/easy"]}, "unknown skill"),
        ({"arms": ARMS3, "alpha": 0.0}, "alpha"),
        ({"arms": ARMS3, "alpha": 1.5}, "alpha"),
        ({"arms": ARMS3, "tau": 0.0}, "tau"),
        ({"arms": ARMS3, "unsampled": "forget"}, "unsampled"),
    ],
)
def test_sec_rejects_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SEC(**kwargs)


def test_sec_alpha_one_is_allowed_and_replaces_q() -> None:
    sec = SEC(ARMS3, alpha=1.0)
    sec.update([A, A], [0.4, -0.2])
    assert sec.q[A] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "args, match",
    [
        (([A, "CRUD/hard"], [1.0, 1.0]), "unknown arms in update: CRUD/hard"),
        (([A, A], [1.0]), "2 arms but 1 advantages"),
        (([A, A], [1.0, 1.0], [1.0]), "2 arms but 1 rewards"),
        (([], []), "no completions"),
        (([A], [float("nan")]), "finite"),
        (([A, A], [[1.0, 2.0], [3.0, 4.0]]), "one number per completion"),
    ],
)
def test_update_rejects_bad_inputs(args: tuple[Any, ...], match: str) -> None:
    sec = SEC(ARMS3)
    with pytest.raises(ValueError, match=match):
        sec.update(*args)
    assert sec.q == {a: 0.0 for a in ARMS3} and sec.step == 0  # nothing half-applied


def test_update_accepts_numpy_arrays() -> None:
    sec = SEC(ARMS3)
    sec.update([A, A], np.array([1.0, -1.0], dtype=np.float32), np.array([1.0, 0.0]))
    assert sec.q[A] == pytest.approx(0.3)


def test_sample_sizes() -> None:
    sec = SEC(ARMS3)
    assert sec.sample(0) == []
    assert len(sec.sample(5)) == 5
    with pytest.raises(ValueError, match="k must be"):
        sec.sample(-1)


def test_sec_state_round_trip_continues_identically() -> None:
    rng = random.Random(3)
    sec = SEC(ALL_ARMS, seed=11, unsampled="decay")
    for _ in range(3):
        sec.update(*fake_batch(sec.sample(6), rng)[:2])
    state = json_round_trip(sec.state_dict())
    restored = SEC(ALL_ARMS, seed=999, unsampled="decay")  # another seed: the state must win
    restored.load_state_dict(state)
    assert restored.q == sec.q and restored.step == sec.step and restored.counts == sec.counts
    for _ in range(3):
        drawn = sec.sample(20)
        assert restored.sample(20) == drawn
        batch = fake_batch(drawn, rng)[:2]
        assert restored.update(*batch) == sec.update(*batch)


def test_sec_state_refuses_other_arms_or_mode() -> None:
    state = SEC(ARMS3).state_dict()
    with pytest.raises(ValueError, match="same arms"):
        SEC((A, B)).load_state_dict(state)
    with pytest.raises(ValueError, match="unsampled"):
        SEC(ARMS3, unsampled="decay").load_state_dict(state)
    with pytest.raises(ValueError, match="curriculum 'sec'"):
        Uniform(ARMS3).load_state_dict(state)


# ------------------------------------------------------------------------------------------------
# Difficulty schedules and uniform
# ------------------------------------------------------------------------------------------------


def test_uniform_stays_uniform() -> None:
    cur = Uniform(ALL_ARMS)
    cur.update([A] * 4, [2.0, -2.0, 2.0, -2.0])
    assert cur.probs() == pytest.approx({a: 1 / 12 for a in ALL_ARMS})


@pytest.mark.parametrize(
    "cls, thirds", [(EasyToHard, ("easy", "medium", "hard")), (HardToEasy, ("hard", "medium", "easy"))]
)
def test_schedules_follow_training_thirds(cls: type[Curriculum], thirds: tuple[str, ...]) -> None:
    cur = cls(ALL_ARMS, seed=0)
    assert {parse_arm(a)[1] for a in cur.sample(50)} == {thirds[0]}  # before set_progress: first level
    for step in range(9):
        cur.set_progress(step, 9)
        level = thirds[step // 3]  # steps 0-2, 3-5, 6-8
        p = cur.probs()
        for arm, prob in p.items():
            assert prob == pytest.approx(0.25 if parse_arm(arm)[1] == level else 0.0)  # 4 skills
        drawn = cur.sample(40)
        assert {parse_arm(a)[1] for a in drawn} == {level}
        assert len({parse_arm(a)[0] for a in drawn}) == 4  # every skill of the level shows up
    cur.set_progress(12, 9)  # past the end: stays in the last level
    assert {parse_arm(a)[1] for a in cur.sample(10)} == {thirds[2]}


def test_schedule_splits_evenly_over_the_levels_present() -> None:
    cur = EasyToHard(["CRUD/easy", "POLICY/easy", "CRUD/hard"])
    assert cur.stages == ("easy", "hard")
    cur.set_progress(4, 10)
    assert cur.probs() == {"CRUD/easy": 0.5, "POLICY/easy": 0.5, "CRUD/hard": 0.0}
    cur.set_progress(5, 10)
    assert cur.probs() == {"CRUD/easy": 0.0, "POLICY/easy": 0.0, "CRUD/hard": 1.0}
    assert cur.update(["CRUD/hard"], [0.0])["curriculum/stage"] == 1.0


def test_set_progress_validates() -> None:
    cur = EasyToHard(ALL_ARMS)
    with pytest.raises(ValueError, match="total_steps"):
        cur.set_progress(0, 0)
    with pytest.raises(ValueError, match="step"):
        cur.set_progress(-1, 10)


# ------------------------------------------------------------------------------------------------
# UCB (DUMP)
# ------------------------------------------------------------------------------------------------


def test_ucb_plays_unplayed_arms_first_then_the_best() -> None:
    ucb = UCB(ARMS3, window=2, c=1.0, temperature=0.0)
    assert ucb.probs() == pytest.approx({a: 1 / 3 for a in ARMS3})
    ucb.update([A, A, B, B], [1.0, -1.0, 0.5, -0.5])
    assert ucb.probs() == {A: 0.0, B: 0.0, C: 1.0}  # C never played: it goes first
    assert set(ucb.sample(20)) == {C}
    ucb.update([C, C], [0.0, 0.0])
    # All played twice (N = 6): equal bonuses sqrt(ln 6 / 2), so the best mean |A| wins: A (1.0).
    bonus = math.sqrt(math.log(6) / 2)
    assert ucb.scores() == pytest.approx({A: 1.0 + bonus, B: 0.5 + bonus, C: bonus})
    assert ucb.probs() == {A: 1.0, B: 0.0, C: 0.0}


def test_ucb_window_forgets_old_updates_and_weights_by_completions() -> None:
    ucb = UCB(ARMS3, window=2, c=0.5, temperature=0.0)
    ucb.update([A, B, C], [9.0, 0.5, 0.1])  # A's 9.0 will slide out of the window
    ucb.update([A], [3.0])
    ucb.update([A, A, A], [1.0, -1.0, 1.0])
    # Window of A = last two updates: (3 + 1 + 1 + 1) / 4 completions = 1.5 (not (3 + 1) / 2).
    assert ucb.q[A] == pytest.approx(1.5)
    m = ucb.metrics()
    assert m[f"curriculum/q/{A}"] == pytest.approx(1.5)
    # N = 7 completions; A has 5, B and C 1 each.
    assert m[f"curriculum/bonus/{A}"] == pytest.approx(0.5 * math.sqrt(math.log(7) / 5))
    assert m[f"curriculum/bonus/{B}"] == pytest.approx(0.5 * math.sqrt(math.log(7) / 1))
    ucb.update([A, A], [0.0, 0.0])
    ucb.update([A, A], [0.0, 0.0])  # A now all zeros in its window: B (0.5 + bonus) is best
    assert ucb.q[A] == 0.0
    assert ucb.probs()[B] == 1.0


def test_ucb_softmax_temperature_spreads_the_batch() -> None:
    ucb = UCB(ARMS3, c=0.0, temperature=0.5)
    ucb.update([A, B, C], [1.0, 0.5, 0.0])
    expected = [math.exp(v / 0.5) for v in (1.0, 0.5, 0.0)]
    assert [ucb.probs()[a] for a in ARMS3] == pytest.approx([e / sum(expected) for e in expected])


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"c": -1.0}, {"temperature": -0.1}])
def test_ucb_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UCB(ARMS3, **kwargs)


# ------------------------------------------------------------------------------------------------
# Learnability (LILO)
# ------------------------------------------------------------------------------------------------


def test_learnability_matches_hand_computed_values_and_favours_half_success() -> None:
    cur = Learnability(ARMS3, alpha=0.5, epsilon=0.1, prior=0.5)
    assert cur.probs() == pytest.approx({a: 1 / 3 for a in ARMS3})
    # A always right, B half right (0.1 = formatted but wrong is no success), C always wrong.
    arms = [A] * 4 + [B] * 4 + [C] * 4
    rewards = [1.0] * 4 + [1.0, 0.1, 1.0, 0.1] + [0.0] * 4
    adv = [0.0] * 12
    cur.update(arms, adv, rewards)
    # p: A .75, B .5, C .25 -> p(1-p): .1875, .25, .1875 (sum .625) -> .9 * w / .625 + .1 / 3
    assert cur.success == pytest.approx({A: 0.75, B: 0.5, C: 0.25})
    assert [cur.probs()[a] for a in ARMS3] == pytest.approx([0.27 + 0.1 / 3, 0.36 + 0.1 / 3, 0.27 + 0.1 / 3])
    cur.update(arms, adv, rewards)
    # p: A .875, B .5, C .125 -> w: .109375, .25, .109375 (sum .46875)
    assert [cur.probs()[a] for a in ARMS3] == pytest.approx([0.21 + 0.1 / 3, 0.48 + 0.1 / 3, 0.21 + 0.1 / 3])
    assert cur.metrics()[f"curriculum/success/{C}"] == pytest.approx(0.125)


def test_learnability_floor_keeps_every_arm_alive() -> None:
    cur = Learnability(ARMS3, alpha=1.0, epsilon=0.1)
    cur.update([A, A, B, B, C, C], [0.0] * 6, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    p = cur.probs()  # A solved, C failed: learnability 0, but the floor keeps 0.1 / 3 each
    assert p[A] == pytest.approx(0.1 / 3) and p[C] == pytest.approx(0.1 / 3)
    assert p[B] == pytest.approx(0.9 + 0.1 / 3)
    cur.update([B, B], [0.0, 0.0], [1.0, 1.0])  # now nothing is learnable: uniform
    assert cur.probs() == pytest.approx({a: 1 / 3 for a in ARMS3})


def test_learnability_needs_rewards() -> None:
    with pytest.raises(ValueError, match="rewards"):
        Learnability(ARMS3).update([A], [0.0])
    bad: list[dict[str, Any]] = [{"alpha": 0.0}, {"epsilon": 1.5}, {"prior": -0.1}]
    for kwargs in bad:
        with pytest.raises(ValueError):
            Learnability(ARMS3, **kwargs)


# ------------------------------------------------------------------------------------------------
# The shared interface, for every registered curriculum
# ------------------------------------------------------------------------------------------------


def run_steps(cur: Curriculum, rng: random.Random, steps: range, total: int) -> list[list[str]]:
    out = []
    for step in steps:
        cur.set_progress(step, total)
        drawn = cur.sample(16)
        out.append(drawn)
        cur.update(*fake_batch(drawn, rng))
    return out


@pytest.mark.parametrize("name", list(CURRICULA))
def test_every_curriculum_shares_the_interface(name: str) -> None:
    cur = make_curriculum(name, ALL_ARMS, seed=5)
    assert isinstance(cur, Curriculum)
    p = cur.probs()
    assert list(p) == list(ALL_ARMS) and sum(p.values()) == pytest.approx(1.0)
    run_steps(cur, random.Random(0), range(4), total=6)
    p = cur.probs()
    assert sum(p.values()) == pytest.approx(1.0) and min(p.values()) >= 0.0
    m = cur.metrics()
    assert all(f"curriculum/p/{a}" in m and f"curriculum/n/{a}" in m for a in ALL_ARMS)
    assert sum(m[f"curriculum/n/{a}"] for a in ALL_ARMS) == 16
    assert all(math.isfinite(v) for v in m.values())
    json.dumps(m)
    assert cur.step == 4 and sum(cur.counts.values()) == 64


@pytest.mark.parametrize("name", list(CURRICULA))
def test_every_curriculum_resumes_exactly(name: str) -> None:
    """Stop after 3 steps and a half-done 4th (drawn, not yet updated); resume; same future."""
    full = make_curriculum(name, ALL_ARMS, seed=5)
    run_steps(full, random.Random(1), range(3), total=8)
    full.set_progress(3, 8)
    pending = full.sample(16)
    state = json_round_trip(full.state_dict())
    resumed = make_curriculum(name, ALL_ARMS, seed=77)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    batch = fake_batch(pending, random.Random(2))
    assert resumed.update(*batch) == full.update(*batch)
    assert run_steps(resumed, random.Random(3), range(4, 8), 8) == run_steps(full, random.Random(3), range(4, 8), 8)
    assert resumed.state_dict() == full.state_dict()


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------


def test_registry_names_and_classes() -> None:
    assert list(CURRICULA) == ["sec", "sec_decay", "uniform", "easy2hard", "hard2easy", "ucb", "learnability"]
    expected = {"sec": SEC, "uniform": Uniform, "easy2hard": EasyToHard, "hard2easy": HardToEasy,
                "ucb": UCB, "learnability": Learnability}
    for name, cls in expected.items():
        assert type(make_curriculum(name, ARMS3)) is cls
    sec = make_curriculum("sec", ARMS3, tau=0.25, seed=3)
    assert isinstance(sec, SEC) and sec.tau == 0.25 and sec.unsampled == "hold" and sec.seed == 3
    for spelling in ("sec_decay", "sec-decay", "SEC-Decay"):
        decay = make_curriculum(spelling, ARMS3)
        assert isinstance(decay, SEC) and decay.unsampled == "decay"
    with pytest.raises(ValueError, match="fixes unsampled"):
        make_curriculum("sec_decay", ARMS3, unsampled="hold")


def test_registry_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown curriculum 'bandit'; known: sec, sec_decay, uniform"):
        make_curriculum("bandit", ARMS3)
    with pytest.raises(ValueError, match="already registered"):
        register_curriculum("sec", Uniform)
    monkeypatch.setitem(registry_module._REGISTRY, "placeholder", Uniform)  # removed after the test
    assert "placeholder" in CURRICULA  # the names are a live view
    assert type(make_curriculum("placeholder", ARMS3)) is Uniform
    with pytest.raises(ValueError, match="lower case"):
        register_curriculum("My-Curriculum", Uniform)


# ------------------------------------------------------------------------------------------------
# ArmPools
# ------------------------------------------------------------------------------------------------

POOLS = {A: [f"a{i}" for i in range(10)], B: ["b0", "b1", "b2"]}


def test_pools_draw_without_replacement_and_refill_reshuffled() -> None:
    pools = ArmPools(POOLS, seed=0)
    cycles = []
    for cycle in range(3):
        order = [pools.draw(A) for _ in range(10)]
        assert sorted(order) == sorted(POOLS[A])  # each cycle uses every instance exactly once
        assert pools.remaining(A) == 0 and pools.refills[A] == cycle
        cycles.append(order)
    assert cycles[0] != cycles[1] or cycles[1] != cycles[2]  # reshuffled, not replayed
    assert pools.draw_many([B, B, B, A]) and pools.refills == {A: 3, B: 0}
    assert pools.remaining(B) == 0 and pools.remaining(A) == 9


def test_pools_do_not_depend_on_the_callers_list_order() -> None:
    p1 = ArmPools(POOLS, seed=4)
    p2 = ArmPools({B: list(reversed(POOLS[B])), A: list(reversed(POOLS[A]))}, seed=4)
    arms = [A, B] * 15
    assert p1.draw_many(arms) == p2.draw_many(arms)


def test_pools_resume_exactly() -> None:
    rng = random.Random(0)
    arms = [rng.choice([A, B]) for _ in range(40)]
    full = ArmPools(POOLS, seed=1)
    first = full.draw_many(arms[:13])
    resumed = ArmPools(POOLS, seed=2)
    resumed.load_state_dict(json_round_trip(full.state_dict()))
    assert resumed.draw_many(arms[13:]) == full.draw_many(arms[13:])
    assert resumed.refills == full.refills and first


def test_pools_errors() -> None:
    with pytest.raises(ValueError, match="no instances: POLICY/hard"):
        ArmPools({A: ["a0"], B: []})
    with pytest.raises(ValueError, match="at least one arm"):
        ArmPools({})
    pools = ArmPools(POOLS)
    with pytest.raises(KeyError, match="no pool for arm 'CRUD/hard'"):
        pools.draw("CRUD/hard")
    other = ArmPools({A: [f"x{i}" for i in range(10)], B: POOLS[B]})
    with pytest.raises(ValueError, match="other instances"):
        other.load_state_dict(pools.state_dict())
    with pytest.raises(ValueError, match="pools for arms"):
        ArmPools({A: POOLS[A]}).load_state_dict(pools.state_dict())

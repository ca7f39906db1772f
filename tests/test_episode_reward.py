"""How episodes are paid: the form bonus needs a query that ran; shaping terms are named and optional."""

from __future__ import annotations

import pytest

from seccrm.world.episode_reward import EpisodeReward, pay_episode


def test_a_well_formed_answer_without_a_query_that_ran_earns_nothing() -> None:
    assert pay_episode(False, True, [], [], turns=1)["reward"] == 0.0
    assert pay_episode(False, True, ["SELECT x"], [False], turns=2)["reward"] == 0.0     # the query failed
    assert pay_episode(False, True, ["SELECT 1"], [True], turns=2)["reward"] == pytest.approx(0.1)
    assert pay_episode(False, False, ["SELECT 1"], [True], turns=2)["reward"] == 0.0     # no answer block


def test_a_correct_answer_is_worth_one_however_it_was_reached() -> None:
    assert pay_episode(True, True, [], [], turns=1)["reward"] == 1.0
    assert pay_episode(True, True, ["SELECT 1", "SELECT 2"], [True, False], turns=3)["reward"] == 1.0


def test_the_report_rule_is_one_switch_away() -> None:
    report = EpisodeReward(form_needs_query=False)
    assert pay_episode(False, True, [], [], turns=1, rules=report)["reward"] == pytest.approx(0.1)
    assert not report.shaped and not EpisodeReward().shaped


def test_shaping_terms_add_up_and_are_reported_by_name() -> None:
    rules = EpisodeReward(per_query=0.05, max_query_bonus=0.1, repeat_penalty=0.05, turn_penalty=0.01)
    queries = ["SELECT a FROM t", "select  a from t;", "SELECT b FROM t", "SELECT c FROM t"]
    d = pay_episode(False, True, queries, [True, True, True, False], turns=5, rules=rules)
    assert d["queries_ran"] == 3
    assert d["query_bonus"] == pytest.approx(0.1)                       # 3 x 0.05 capped at 0.1
    assert d["repeats"] == pytest.approx(-0.05)                          # the second query repeats the first
    assert d["turn_cost"] == pytest.approx(-0.05)
    parts = d["answer"] + d["form"] + d["query_bonus"] + d["repeats"] + d["turn_cost"]
    assert d["reward"] == pytest.approx(parts) and d["reward"] == pytest.approx(0.1)
    assert rules.shaped


def test_impossible_shaping_is_refused() -> None:
    with pytest.raises(ValueError, match="repeat_penalty"):
        EpisodeReward(repeat_penalty=-0.1)


def test_an_episode_pays_form_only_after_a_query_that_ran(tiny_suite) -> None:  # type: ignore[no-untyped-def]
    from seccrm.data import load_split
    from seccrm.world.episode import Episode, EpisodeSettings
    from seccrm.world.rewards import org_path

    val = load_split(tiny_suite, "val")
    inst, other = next((a, b) for a in val for b in val
                       if a["task"] == b["task"] and a["answer"] != b["answer"] and "None" not in b["answer"])
    wrong = f"<answer>{other['answer'][0]}</answer>"          # a well-formed wrong answer of the task's kind
    guess = Episode(inst, org_path(inst))
    guess.act(wrong)
    assert guess.score()["reward"] == 0.0 and guess.score()["formatted"]
    looked = Episode(inst, org_path(inst))
    looked.act("<execute>SELECT COUNT(*) FROM Account</execute>")
    looked.act(wrong)
    d = looked.score()
    assert d["reward"] == pytest.approx(0.1) and d["reward_parts"]["queries_ran"] == 1
    report = Episode(inst, org_path(inst), EpisodeSettings(reward=EpisodeReward(form_needs_query=False)))
    report.act(wrong)
    assert report.score()["reward"] == pytest.approx(0.1)

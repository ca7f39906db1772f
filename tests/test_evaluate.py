import numpy as np

from seccrm.evaluation.evaluate import bootstrap_ci, relative_improvement, summarise


def test_bootstrap_interval_covers_the_truth_most_of_the_time():
    rng = np.random.default_rng(1)
    p, hits, trials = 0.3, 0, 200
    for t in range(trials):
        x = (rng.random(200) < p).astype(float)
        lo, hi = bootstrap_ci(x, resamples=500, seed=t)
        hits += lo <= p <= hi
    assert 0.88 <= hits / trials <= 0.99  # nominal 95%


def test_bootstrap_interval_narrows_with_more_data():
    x_small = np.array([1.0, 0.0] * 10)
    x_large = np.array([1.0, 0.0] * 500)
    w_small = np.diff(bootstrap_ci(x_small))[0]
    w_large = np.diff(bootstrap_ci(x_large))[0]
    assert w_large < w_small / 3


def test_summary_groups_and_rates():
    rows = [{"task": "a", "skill": "POLICY", "difficulty": "easy", "reward": r} for r in (1.0, 0.1, 0.0, 1.0)]
    rows += [{"task": "b", "skill": "CRUD", "difficulty": "hard", "reward": 0.1}]
    s = summarise(rows)
    assert s["n"] == 5 and abs(s["accuracy"] - 0.4) < 1e-9 and abs(s["format_rate"] - 0.8) < 1e-9
    assert s["by_task"]["a"]["accuracy"] == 0.5 and s["by_skill"]["CRUD"]["accuracy"] == 0.0
    assert s["by_difficulty"]["hard"]["format_rate"] == 1.0


def test_relative_improvement_matches_the_report():
    assert abs(relative_improvement(0.28, 0.37) - 0.3214) < 1e-3

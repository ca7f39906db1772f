import argparse

import pytest

from seccrm.rl.config import PRESETS, TrainConfig, add_config_args, config_from_args


def test_presets_are_valid_configs():
    for name, values in PRESETS.items():
        cfg = TrainConfig(**values)
        assert cfg.group_size >= 2, name


@pytest.mark.parametrize("bad,match", [
    (dict(prompts_per_step=6, mini_batches=4), "split evenly"),
    (dict(prompts_per_step=8, mini_batches=2, micro_batch_groups=3), "micro-batches"),
    (dict(group_size=1), "group-size"),
    (dict(unsampled="forget"), "unsampled"),
    (dict(top_p=0.0), "top-p"),
    (dict(tau=0.0), "tau"),
])
def test_impossible_configs_are_refused_with_reason(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_cli_flags_override_preset():
    p = argparse.ArgumentParser()
    add_config_args(p)
    cfg = config_from_args(p.parse_args(["--preset", "report", "--steps", "7", "--no-share-prompt"]))
    assert cfg.steps == 7 and cfg.prompts_per_step == 256 and cfg.share_prompt is False


def test_json_round_trip(tmp_path):
    cfg = TrainConfig(steps=3, curriculum="uniform")
    f = tmp_path / "c.json"
    f.write_text(cfg.to_json())
    assert TrainConfig.from_json(f) == cfg
    f.write_text('{"stepz": 3}')
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_json(f)


def test_every_nonsense_flag_is_refused_before_work_all_at_once():
    import math

    import pytest

    from seccrm.rl.config import TrainConfig
    bad = dict(lr=math.inf, temperature=math.inf, clip_eps=math.nan, grad_clip=-1.0, lora_r=-3, eval_every=-1,
               eval_limit=-1, save_every=0, max_nan_steps=-1, device="cpux", curriculum="nope")
    for k, v in bad.items():
        with pytest.raises(ValueError, match=k.replace("_", "-")):
            TrainConfig(**{k: v})
    with pytest.raises(ValueError) as e:
        TrainConfig(grad_clip=-1.0, lora_r=-3, save_every=0, device="cpux")
    assert all(x in str(e.value) for x in ("--grad-clip", "--lora-r", "--save-every", "--device"))
    with pytest.raises(ValueError, match="must be a int"):
        TrainConfig(steps="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exclude each other"):
        TrainConfig(resume=True, overwrite=True)

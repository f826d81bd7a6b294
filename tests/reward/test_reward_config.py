"""`RewardConfig` and the `reward` config group: every YAML loads, every bad value is named."""

import dataclasses
import pathlib

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from orchestra.reward import RewardConfig

CONF = pathlib.Path(__file__).resolve().parents[2] / "conf"
YAMLS = sorted((CONF / "reward").glob("*.yaml"))
FIELDS = {f.name for f in dataclasses.fields(RewardConfig)}


def load(name: str) -> RewardConfig:
    return RewardConfig.from_omegaconf(OmegaConf.load(CONF / "reward" / f"{name}.yaml"))


def test_the_group_holds_the_ablation_table():
    assert {p.stem for p in YAMLS} == {"graduated", "strict", "atomic_only", "orchestration_only", "binary",
                                       "atomic_name", "atomic_name_params"}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_every_yaml_is_a_flat_mapping_of_every_field(path):
    values = OmegaConf.to_container(OmegaConf.load(path))
    assert set(values) == FIELDS  # all keys listed, so any one is a plain Hydra override
    RewardConfig.from_dict(values)


def test_the_default_is_the_paper_reward():
    assert load("graduated") == RewardConfig()
    assert RewardConfig().mode == "paper"
    assert (RewardConfig().w_atomic, RewardConfig().w_orch) == (0.5, 0.5)
    assert (RewardConfig().w_name, RewardConfig().w_params, RewardConfig().w_values) == (0.33, 0.33, 0.34)


def test_each_ablation_sets_the_weights_it_names():
    assert (load("atomic_only").w_atomic, load("atomic_only").w_orch) == (1.0, 0.0)
    assert (load("orchestration_only").w_atomic, load("orchestration_only").w_orch) == (0.0, 1.0)
    assert (load("binary").w_atomic, load("binary").w_orch, load("binary").w_binary) == (0.0, 0.0, 1.0)
    name = load("atomic_name")
    assert (name.w_name, name.w_params, name.w_values) == (1.0, 0.0, 0.0)
    name_params = load("atomic_name_params")
    assert (name_params.w_name, name_params.w_params, name_params.w_values) == (0.5, 0.5, 0.0)
    assert load("strict").mode == "strict" and load("strict").penalise_extra_calls


def test_a_reward_is_one_hydra_override():
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name=None, overrides=["+reward=atomic_only", "reward.w_orch=0.25"])
    config = RewardConfig.from_omegaconf(cfg.reward)
    assert (config.w_atomic, config.w_orch) == (1.0, 0.25)


@pytest.mark.parametrize("values, message", [
    ({"w_atomc": 1.0}, "unknown key(s) ['w_atomc']"),
    ({"mode": "lenient"}, "reward.mode must be one of ('paper', 'strict'), got 'lenient'"),
    ({"w_orch": -0.5}, "reward.w_orch must not be negative, got -0.5"),
    ({"w_values": "0.34"}, "reward.w_values must be a finite number, got '0.34'"),
    ({"w_name": float("nan")}, "reward.w_name must be a finite number"),
    ({"w_state": 0.1}, "reward.w_state must be 0"),
    ({"w_atomic": 0.0, "w_orch": 0.0}, "every reward would be 0"),
    ({"w_name": 0.0, "w_params": 0.0, "w_values": 0.0}, "w_name, w_params and w_values are all 0"),
    ({"penalise_extra_calls": True}, "reward.penalise_extra_calls needs reward.mode=strict"),
    ({"mode": "strict", "penalise_extra_calls": "yes"}, "must be true or false"),
    ({"count_unparsable": 1}, "reward.count_unparsable must be true or false, got 1"),
    ({"params_credit": "some"}, "reward.params_credit must be one of ('coverage', 'all'), got 'some'"),
])
def test_a_bad_value_gets_an_error_naming_it(values, message):
    with pytest.raises(ValueError) as error:
        RewardConfig.from_dict(values)
    assert message in str(error.value)

"""Fixtures for the synthesis tests: one environment (so the jitted replay compiles once) and a few
synthesized task sets, built once per session on the real Booking cache."""

import pytest

from orchestra.env.build import Environment
from orchestra.env.cache import ApiCache
from orchestra.env.env import EnvConfig
from orchestra.synth import SynthConfig, synthesize
from orchestra.synth.index import ReverseIndex

MAX_STEPS = 12  # longer than any shipped template or composed chain used here


@pytest.fixture(scope="session")
def cache(booking):
    return ApiCache.from_entries(booking.cache_entries)


@pytest.fixture(scope="session")
def index(cache):
    return ReverseIndex(cache)


@pytest.fixture(scope="session")
def env(booking):
    return Environment.from_ecosystem(booking, config=EnvConfig(max_turns=MAX_STEPS, max_calls=MAX_STEPS,
                                                                max_calls_per_turn=1))


@pytest.fixture(scope="session")
def mixed(booking, env):
    """Template and composed chains with default complexity."""
    return synthesize(booking, SynthConfig(count=120, source="mixed"), seed=7, env=env)


@pytest.fixture(scope="session")
def shaped(booking, env):
    """Every complexity knob set away from its default."""
    cfg = SynthConfig.from_dict({"count": 60, "source": "mixed",
                                 "complexity": {"steps": [3, 5], "depth": 2, "distractors": 5,
                                                "calls_per_turn": 2}})
    return synthesize(booking, cfg, seed=3, env=env)


@pytest.fixture(scope="session")
def composed(booking, env):
    cfg = SynthConfig.from_dict({"count": 40, "source": "composed", "complexity": {"steps": [3, 5], "depth": [1, 3]}})
    return synthesize(booking, cfg, seed=11, env=env)

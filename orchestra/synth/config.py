"""Synthesis settings, checked key by key: a wrong name or value raises `ConfigError` naming it.

The Hydra group `conf/synth/default.yaml` mirrors these fields (plus the run's `seed`, which
`synthesize` takes as an argument). Ranges (`steps`, `depth`) are null (any), one integer (exactly
that), or `[min, max]` (inclusive).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


class ConfigError(ValueError):
    """A synthesis setting that cannot be used; the message names the key."""


def parse_range(value, where: str, minimum: int = 0) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected null, an integer or [min, max], got {value!r}")
    if isinstance(value, int):
        value = [value, value]
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{where}: expected null, an integer or [min, max], got {value!r}")
    lo, hi = value
    if lo < minimum or hi < lo:
        raise ConfigError(f"{where}: need {minimum} <= min <= max, got [{lo}, {hi}]")
    return (lo, hi)


def in_range(x: int, r: tuple[int, int] | None) -> bool:
    return r is None or r[0] <= x <= r[1]


def _choice(value, options: tuple[str, ...], where: str) -> str:
    if value not in options:
        raise ConfigError(f"{where}: must be one of {list(options)}, got {value!r}")
    return value


def _int(value, where: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _fraction(value, where: str, low_open: bool = False) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not (0 <= value <= 1) or (
            low_open and value == 0):
        raise ConfigError(f"{where}: expected a number in {'(0' if low_open else '[0'}, 1], got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Complexity:
    steps: tuple[int, int] | None = None    # steps per task
    depth: tuple[int, int] | None = None    # longest dependency chain, in edges (0: no dependency)
    distractors: int = 2                    # tools offered beside the gold ones, exactly this many
    domains: tuple[str, ...] = ()           # keep chains whose tools all lie in these inferred domains
    calls_per_turn: int = 1                 # independent consecutive steps grouped into one turn, at most this many

    def __post_init__(self):
        object.__setattr__(self, "steps", parse_range(self.steps, "synth.complexity.steps", 1))
        object.__setattr__(self, "depth", parse_range(self.depth, "synth.complexity.depth", 0))
        _int(self.distractors, "synth.complexity.distractors", 0)
        _int(self.calls_per_turn, "synth.complexity.calls_per_turn", 1)
        if isinstance(self.domains, str) or not all(isinstance(d, str) for d in self.domains):
            raise ConfigError(f"synth.complexity.domains: expected a list of domain names, got {self.domains!r}")
        object.__setattr__(self, "domains", tuple(self.domains))
        if self.steps and self.depth and self.depth[0] > self.steps[1] - 1:
            raise ConfigError(f"synth.complexity.depth: a depth of {self.depth[0]} needs at least "
                              f"{self.depth[0] + 1} steps, but steps is at most {self.steps[1]}")


@dataclasses.dataclass(frozen=True)
class RealiserConfig:
    kind: str = "offline"                   # offline | llm (OpenAI-compatible chat endpoint)
    base_url: str = "http://localhost:8000/v1"
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"     # read from the environment, never from the config
    timeout_s: float = 30.0
    temperature: float = 0.0

    def __post_init__(self):
        _choice(self.kind, ("offline", "llm"), "synth.realiser.kind")
        if self.kind == "llm" and not self.model:
            raise ConfigError("synth.realiser.model: the llm realiser needs a model name")
        if not isinstance(self.timeout_s, int | float) or self.timeout_s <= 0:
            raise ConfigError(f"synth.realiser.timeout_s: expected a positive number, got {self.timeout_s!r}")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    by: str = "values"                # seed | workflow | values
    held_out_fraction: float = 0.2
    # by=values: a value used by more than this share of the tasks (a time like 08:00, adults=1) is
    # too common to separate tasks by; it is ignored, and the report lists how many were.
    common_value_share: float = 0.25

    def __post_init__(self):
        _choice(self.by, ("seed", "workflow", "values"), "synth.split.by")
        _fraction(self.held_out_fraction, "synth.split.held_out_fraction")
        _fraction(self.common_value_share, "synth.split.common_value_share", low_open=True)


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    count: int = 100
    sampler: str = "constrained"       # constrained | unconstrained (the baseline)
    source: str = "templates"          # templates | composed (mined graph) | mixed
    composed_fraction: float = 0.5     # source=mixed: share of draws from composed chains
    compose_max_steps: int = 6         # composed chains when complexity.steps is null: 2..this
    weighting: str = "uniform"         # over templates: uniform | frequency
    quotas: Mapping[str, int] = dataclasses.field(default_factory=dict)  # workflow id -> exact count
    max_per_workflow: int | None = None
    unique: bool = True                # no two tasks with the same calls
    distinct_calls: bool = True        # no call repeated inside one task
    max_restarts: int = 20             # dead ends tolerated per draw before it counts as a failure
    max_failures: int = 30             # consecutive failed draws before a template is given up
    max_attempts: int = 50000          # chain attempts in all, then stop with what there is
    validate_batch: int = 64           # traces replayed through the environment at once
    complexity: Complexity = Complexity()
    realiser: RealiserConfig = RealiserConfig()
    split: SplitConfig = SplitConfig()

    def __post_init__(self):
        _int(self.count, "synth.count", 1)
        _choice(self.sampler, ("constrained", "unconstrained"), "synth.sampler")
        _choice(self.source, ("templates", "composed", "mixed"), "synth.source")
        _choice(self.weighting, ("uniform", "frequency"), "synth.weighting")
        _fraction(self.composed_fraction, "synth.composed_fraction")
        _int(self.compose_max_steps, "synth.compose_max_steps", 2)
        for name in ("max_restarts", "max_failures", "max_attempts", "validate_batch"):
            _int(getattr(self, name), f"synth.{name}", 1)
        if self.max_per_workflow is not None:
            _int(self.max_per_workflow, "synth.max_per_workflow", 1)
        if not isinstance(self.quotas, Mapping):
            raise ConfigError(f"synth.quotas: expected a mapping of workflow id -> count, got {self.quotas!r}")
        for wid, n in self.quotas.items():
            _int(n, f"synth.quotas.{wid}", 0)
        object.__setattr__(self, "quotas", dict(sorted(self.quotas.items())))
        if sum(self.quotas.values()) > self.count:
            raise ConfigError(f"synth.quotas: they ask for {sum(self.quotas.values())} tasks, more than "
                              f"synth.count={self.count}")
        if self.sampler == "unconstrained" and self.source != "templates":
            raise ConfigError("synth.sampler: the unconstrained baseline samples template steps only; "
                              "use synth.source=templates with it")
        for name in ("unique", "distinct_calls"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"synth.{name}: expected true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: Mapping) -> "SynthConfig":
        """From the Hydra group (as a plain dict); unknown keys are errors."""
        values = dict(values)
        nested = {"complexity": Complexity, "realiser": RealiserConfig, "split": SplitConfig}
        for key, sub in nested.items():
            if key in values:
                values[key] = _build(sub, values[key], f"synth.{key}")
        return _build(cls, values, "synth")


def _build(cls, values, where: str):
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {known}")
    return cls(**values)

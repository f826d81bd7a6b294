import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orchestra.data.types import Call
from orchestra.env.build import Environment
from orchestra.env.codec import format_observation, format_tool_call
from orchestra.env.env import EnvConfig
from orchestra.env.validators import ErrorKind, Problem

TURNS = 8


@pytest.fixture(scope="module")
def environment(booking):
    return Environment.from_ecosystem(booking, config=EnvConfig(max_turns=TURNS, max_calls=16, max_calls_per_turn=2))


def decode(ts, slot):
    return bytes(np.asarray(ts.obs_tokens[slot, : int(ts.obs_lengths[slot])], np.uint8)).decode()


def expected_observation(environment, response):
    return format_observation(environment.view.render(response))


def batch_turn_calls(environment, texts):
    encoded = [environment.encoder.encode_text(t)[0] for t in texts]
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *encoded)


def test_jitted_batched_episode_returns_recorded_responses(booking, environment):
    tasks = booking.tasks[:16]
    env, params = environment.env, environment.params
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None, 0)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, None)))
    keys = jax.random.split(jax.random.key(0), len(tasks))
    state, _ = reset(keys, params, jnp.arange(len(tasks))[:, None])
    for k in range(max(len(t.steps) for t in tasks)):
        texts = [format_tool_call(t.steps[k].call) if k < len(t.steps) else "Done." for t in tasks]
        state, ts = step(state, batch_turn_calls(environment, texts), params)
        for i, t in enumerate(tasks):
            if k < len(t.steps):
                assert bool(ts.success[i, 0])
                assert decode(jax.tree.map(lambda x: x[i], ts), 0).startswith("<tool_response>\n")
                got = decode(jax.tree.map(lambda x: x[i], ts), 0)
                assert got == expected_observation(environment, t.steps[k].response)
    assert np.asarray(state.n_calls).tolist() == [len(t.steps) for t in tasks]
    assert np.asarray(state.done).tolist() == [len(t.steps) < k + 1 for t in tasks]  # answered in text
    state, _ = step(state, batch_turn_calls(environment, ["Done."] * len(tasks)), params)
    assert bool(state.done.all())


def test_wrong_and_malformed_calls_get_their_errors(environment):
    env, params, enc = environment.env, environment.params, environment.encoder
    state, _ = env.reset(jax.random.key(0), params, jnp.array([0]))
    text = (format_tool_call(Call("Search_Flights", {"fromId": "BOS.AIRPORT", "toId": "NOWHERE.AIRPORT",
                                                     "departDate": "2024-11-15"}))
            + '<tool_call>{"name": "Search_Flights", "arguments": {"fromId": </tool_call>')
    state, ts = env.step(state, enc.encode_text(text)[0], params)
    assert json.loads(decode(ts, 0).splitlines()[1]) == {"error": "No results found"}
    assert "not valid JSON" in decode(ts, 1)
    assert not bool(ts.success.any()) and np.asarray(ts.entry).tolist() == [-1, -1]
    state, ts = env.step(state, enc.encode_text(format_tool_call(Call("Search_Flights", {
        "fromId": "BOS.AIRPORT", "toId": "LAX.AIRPORT", "departDate": "15 Nov"})))[0], params)
    row = environment.errors.row(Problem(ErrorKind.BAD_DATE, "Search_Flights", "departDate"))
    assert json.loads(decode(ts, 0).splitlines()[1]) == environment.errors.messages[row]
    assert int(state.n_calls) == 3 and np.asarray(state.call_entry[:3]).tolist() == [-1, -1, -1]


def test_step_compiles_once_per_shape(booking, environment):
    env, params = environment.env, environment.params

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, calls):
        return env.step(state, calls, params)

    state, _ = env.reset(jax.random.key(0), params, jnp.array([0]))
    for task in booking.tasks[:3]:
        for s in task.steps:
            state, _ = step(state, environment.encoder.encode_text(format_tool_call(s.call))[0])
    chex.clear_trace_counter()


def test_vmapped_batch_equals_per_task_loop(booking, environment):
    env, params = environment.env, environment.params
    tasks = booking.tasks[20:28]
    texts = [format_tool_call(t.steps[0].call) + format_tool_call(t.steps[-1].call) for t in tasks]
    calls = batch_turn_calls(environment, texts)
    states, _ = jax.vmap(env.reset, in_axes=(0, None, 0))(
        jax.random.split(jax.random.key(1), len(tasks)), params, jnp.arange(len(tasks))[:, None])
    batched_state, batched_ts = jax.vmap(env.step, in_axes=(0, 0, None))(states, calls, params)
    for i in range(len(tasks)):
        one_state, one_ts = env.step(jax.tree.map(lambda x: x[i], states), jax.tree.map(lambda x: x[i], calls), params)
        chex.assert_trees_all_equal(one_ts, jax.tree.map(lambda x: x[i], batched_ts))
        chex.assert_trees_all_equal(one_state, jax.tree.map(lambda x: x[i], batched_state))


def test_call_budget_and_turn_limit_end_the_episode(booking):
    environment = Environment.from_ecosystem(booking, config=EnvConfig(max_turns=3, max_calls=3, max_calls_per_turn=2))
    env, params = environment.env, environment.params
    call = booking.tasks[0].steps[0].call
    two = environment.encoder.encode_text(format_tool_call(call) * 2)[0]
    state, _ = env.reset(jax.random.key(0), params, jnp.array([0]))
    state, ts = env.step(state, two, params)
    assert np.asarray(ts.executed).tolist() == [True, True] and not bool(state.done)
    state, ts = env.step(state, two, params)  # only one call left in the budget
    assert np.asarray(ts.executed).tolist() == [True, False] and int(ts.obs_lengths[1]) == 0
    assert bool(state.done) and int(state.n_calls) == 3


def test_text_answer_ends_the_episode(booking, environment):
    env, params = environment.env, environment.params
    state, _ = env.reset(jax.random.key(0), params, jnp.array([0]))
    state, ts = env.step(state, environment.encoder.encode_text("All done, here is your summary.")[0], params)
    assert bool(state.done) and int(state.n_calls) == 0 and int(ts.obs_lengths.sum()) == 0


def test_reset_draws_from_the_task_pool(environment):
    env, params = environment.env, environment.params
    drawn = {int(env.reset(jax.random.key(s), params, jnp.array([4, 9]))[0].task_index) for s in range(20)}
    assert drawn == {4, 9}


def test_replay_of_all_recorded_tasks_succeeds(booking, environment):
    success = environment.replay([[s.call for s in t.steps] for t in booking.tasks])
    lengths = np.array([len(t.steps) for t in booking.tasks])
    assert success.sum() == lengths.sum() and all(success[i, : lengths[i]].all() for i in range(len(lengths)))

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orchestra.rl.checkpoint import Checkpointer
from orchestra.rl.metrics_logger import MetricsLogger


def test_checkpoints_every_n_keep_k_and_restore_latest(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ckpt"), every=2, keep=2)
    state = {"w": jnp.arange(3.0), "key": jax.random.key_data(jax.random.key(7))}
    saved = [ckpt.save(step, jax.tree.map(lambda x: x + step, state), {"step": step, "batch": step * 4})
             for step in range(1, 7)]
    assert saved == [False, True, False, True, False, True]
    assert ckpt.manager.all_steps() == [4, 6]
    step, restored, meta = ckpt.restore(state)
    assert step == 6 and meta == {"step": 6, "batch": 24}
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(3.0) + 6)
    assert Checkpointer(str(tmp_path / "empty"), every=1, keep=1).restore(state) is None
    # the end of a run forces a save; when its last step was on the interval it is already saved
    assert ckpt.save(6, state, {"step": 6}, force=True) is False
    assert ckpt.save(7, state, {"step": 7}, force=True) is True and ckpt.manager.all_steps() == [6, 7]


def test_bad_checkpoint_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="checkpoint.every"):
        Checkpointer(str(tmp_path), every=0, keep=1)


def test_metrics_are_written_as_jsonl(tmp_path):
    log = MetricsLogger(str(tmp_path), kind="none")
    log.log({"reward": jnp.float32(0.5), "note": "x"}, step=3)
    log.close()
    assert [json.loads(l) for l in open(tmp_path / "metrics.jsonl")] == [{"step": 3, "reward": 0.5, "note": "x"}]
    with pytest.raises(ValueError, match="logger.kind"):
        MetricsLogger(str(tmp_path), kind="tensorboard")

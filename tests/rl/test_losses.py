import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orchestra.rl.losses import (aggregate, clipped_policy_loss, clipped_value_loss, entropy_from_logits, gae,
                                 group_advantages, kl_penalty, token_log_probs)


def test_ratio_is_clipped_on_both_sides_with_separate_ranges():
    old = jnp.zeros((1, 4))
    logp = jnp.log(jnp.array([[1.5, 0.5, 1.5, 0.5]]))
    adv = jnp.array([[1.0, 1.0, -1.0, -1.0]])
    mask = jnp.ones((1, 4))
    loss, stats = clipped_policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # A>0: min(r, clip) -> 1.28 and 0.5; A<0: max(r, clip) -> 1.5 and 0.8 (pessimistic side)
    expected = np.mean([-1.28, -0.5, 1.5, 0.8])
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert float(stats["clip_fraction"]) == pytest.approx(0.5)


def test_group_advantages_normalise_by_group_std():
    r = jnp.array([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    adv = np.asarray(group_advantages(r))
    np.testing.assert_allclose(adv[0], [1, -1, -1, 1], atol=1e-5)
    np.testing.assert_allclose(adv[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(group_advantages(r, normalise_std=False))[0], [0.5, -0.5, -0.5, 0.5])


def test_gae_matches_hand_computation_and_skips_unmasked_positions():
    gamma, lam = 0.9, 0.8
    rewards = jnp.array([[0.0, 0.0, 0.0, 1.0]])
    values = jnp.array([[0.5, 9.0, 0.2, 0.4]])
    mask = jnp.array([[1, 0, 1, 1]])  # position 1 is an observation token
    adv, ret = gae(rewards, values, mask, gamma, lam)
    d3 = 1.0 - 0.4
    d2 = 0.0 + gamma * 0.4 - 0.2
    d0 = 0.0 + gamma * 0.2 - 0.5
    a3, a2 = d3, d2 + gamma * lam * d3
    a0 = d0 + gamma * lam * a2
    np.testing.assert_allclose(np.asarray(adv)[0], [a0, 0.0, a2, a3], atol=1e-6)
    np.testing.assert_allclose(np.asarray(ret)[0], [a0 + 0.5, 0.0, a2 + 0.2, a3 + 0.4], atol=1e-6)


def test_kl_estimators():
    logp, ref = jnp.log(jnp.array([0.5])), jnp.log(jnp.array([0.25]))
    log_r = np.log(2.0)
    assert float(kl_penalty(logp, ref, "k1")[0]) == pytest.approx(log_r)
    assert float(kl_penalty(logp, ref, "k2")[0]) == pytest.approx(0.5 * log_r**2)
    assert float(kl_penalty(logp, ref, "k3")[0]) == pytest.approx(0.5 - 1 + log_r)
    assert float(kl_penalty(ref, ref, "k3")[0]) == 0.0
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(logp, ref, "k9")


def test_k1_and_k3_are_unbiased_estimates_of_the_true_kl():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.4, 0.4, 0.2])
    true_kl = float((p * np.log(p / q)).sum())
    samples = jax.random.choice(jax.random.key(0), 3, (200_000,), p=jnp.asarray(p))
    logp, ref = jnp.log(jnp.asarray(p))[samples], jnp.log(jnp.asarray(q))[samples]
    for est in ("k1", "k3"):
        assert float(kl_penalty(logp, ref, est).mean()) == pytest.approx(true_kl, abs=3e-3)


def test_aggregation_modes():
    x = jnp.array([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0]])
    m = jnp.array([[1, 1, 1], [1, 0, 0]])
    assert float(aggregate(x, m, "token_mean")) == pytest.approx(16 / 4)
    assert float(aggregate(x, m, "seq_mean_token_mean")) == pytest.approx((2.0 + 10.0) / 2)
    with pytest.raises(ValueError, match="loss_aggregation"):
        aggregate(x, m, "sum")


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean"])
def test_zero_mask_removes_a_tokens_gradient_exactly(mode):
    key = jax.random.key(0)
    logits = jax.random.normal(key, (2, 5, 7))
    tokens = jax.random.randint(jax.random.key(1), (2, 5), 0, 7)
    old = token_log_probs(logits, tokens) - 0.1
    adv = jnp.array([1.0, -0.5])
    mask = jnp.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]])

    def loss(lg):
        lp = token_log_probs(lg, tokens)
        pg, _ = clipped_policy_loss(lp, old, adv, mask, 0.2, 0.2, mode)
        return pg + 0.1 * aggregate(kl_penalty(lp, old), mask, mode) - 0.01 * aggregate(entropy_from_logits(lg), mask, mode)

    grad = jax.grad(loss)(logits)
    assert np.all(np.asarray(grad)[np.asarray(mask) == 0] == 0.0)
    assert np.all(np.abs(np.asarray(grad)[np.asarray(mask) == 1]).sum(-1) > 0)
    # Perturbing masked-out logits leaves the loss unchanged.
    bumped = logits.at[0, 2].add(5.0).at[1, 0].add(-3.0)
    assert float(loss(bumped)) == pytest.approx(float(loss(logits)), abs=1e-6)


def test_value_loss_is_clipped_around_old_values():
    v, old, ret = jnp.array([[2.0]]), jnp.array([[0.0]]), jnp.array([[0.0]])
    # unclipped error 2^2; clipped value 0.5 -> 0.25; the max keeps the larger (pessimistic) one
    assert float(clipped_value_loss(v, old, ret, jnp.ones((1, 1)), clip=0.5)) == pytest.approx(0.5 * 4.0)
    ret = jnp.array([[3.0]])
    assert float(clipped_value_loss(v, old, ret, jnp.ones((1, 1)), clip=0.5)) == pytest.approx(0.5 * 2.5**2)


def test_entropy_of_uniform_is_log_vocab():
    assert float(entropy_from_logits(jnp.zeros((1, 8)))[0]) == pytest.approx(np.log(8), abs=1e-6)

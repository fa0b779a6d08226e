"""spikejax.delays against independent references: numpy loops of the module docstring's equations
(float64), the closed-form derivative of the Gaussian taps, and central finite differences in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import delays
from tests.reference import delayed_dense_numpy, gaussian_taps_numpy, shifted_dense_numpy

T, B, IN, OUT, D = 12, 3, 5, 4, 6
SIGMA = 1.3
U32 = np.finfo(np.float32).eps / 2  # unit roundoff of float32, 2^-24
U16 = 2.0**-8  # of bfloat16


def _data(seed=0, per="synapse", low=0.2, high=D - 1.2):
    """x, W float32; real delays in [low, high] whose fractional parts keep 0.1 from a half-integer
    (round(d), and so the largest tap, changes there: the taps' derivative in d jumps)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, IN)).astype(np.float32)
    w = rng.standard_normal((IN, OUT)).astype(np.float32)
    shape = (IN, OUT) if per == "synapse" else (IN,)
    d = rng.uniform(low, high, shape)
    fraction = d - np.floor(d)
    d = np.where(np.abs(fraction - 0.5) < 0.1, d + 0.25, d).astype(np.float32)
    return x, w, d


def _magnitude(x, w):
    """sum_{i, tau} |W_ij x_i[t - tau]| [T, B, OUT]: bounds sum |terms| whatever the taps (k <= 1)."""
    return delayed_dense_numpy(x, w, np.ones((D, IN, OUT)))[1]


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_interpolated_forward_matches_numpy_loop(per):
    x, w, d = _data(per=per)
    y = np.asarray(delays.delayed_dense(x, w, d, kernel_size=D, sigma=SIGMA))
    taps, _ = gaussian_taps_numpy(d, D, SIGMA)
    reference, _ = delayed_dense_numpy(x, w, taps)
    # float32: each tap is within (D + 8) u of exact in absolute terms (exp of an exponent A held to a few
    # u relative is off by ~3uA relative, damped by exp(-A), so absolutely at most ~3u/e; the D-term
    # normaliser and the division add D + 2 u); the product W k x adds 2u; a sum of IN*D terms (per channel:
    # D, then IN) is off by at most (IN*D - 1) u of sum |terms|. x, W, d are exact float32 in both.
    bound = (IN * D + 2 * D + 16) * U32 * _magnitude(x, w)
    assert np.all(np.abs(y - reference) <= bound), np.max(np.abs(y - reference) / bound)


def test_gaussian_taps_match_formula():
    _, _, d = _data()
    taps = np.asarray(delays.gaussian_taps(d, D, SIGMA))
    reference, _ = gaussian_taps_numpy(d, D, SIGMA)
    assert taps.shape == (D, IN, OUT) and taps.dtype == np.float32
    np.testing.assert_allclose(taps, reference, rtol=0, atol=(D + 8) * U32)
    np.testing.assert_allclose(taps.sum(0), 1.0, rtol=0, atol=(D + 8) * U32 + 1e-7)


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_exact_shifts_match_numpy_loop(per):
    rng = np.random.default_rng(1)
    x, w, _ = _data(per=per)
    shape = (IN, OUT) if per == "synapse" else (IN,)
    integer = rng.integers(0, D, shape)
    integer.flat[0], integer.flat[-1] = 0, D - 1  # both ends of the kernel
    y = np.asarray(delays.delayed_dense(x, w, integer, kernel_size=D))
    # a sum of IN products, each rounded once: (IN + 1) u of sum |terms| (per channel the shift is exact)
    bound = (IN + 1) * U32 * shifted_dense_numpy(np.abs(x), np.abs(w), integer)
    assert np.all(np.abs(y - shifted_dense_numpy(x, w, integer)) <= bound)
    # real delays shift by round(clip(d)): numpy's rint is half to even too
    real = rng.uniform(-2.0, D + 2.0, shape).astype(np.float32)
    real.flat[:4] = [0.5, 1.5, 2.5, -0.7][: real.size]
    y = np.asarray(delays.delayed_dense(x, w, real, kernel_size=D))
    rounded = np.rint(np.clip(real, 0, D - 1)).astype(int)
    bound = (IN + 1) * U32 * shifted_dense_numpy(np.abs(x), np.abs(w), rounded)
    assert np.all(np.abs(y - shifted_dense_numpy(x, w, rounded)) <= bound)


def test_rounding_rule():
    d = np.array([0.5, 1.5, 2.5, 3.5, 2.49, 2.51, -3.0, -0.4, 5.4, 7.2, 40.0], np.float32)
    expected = np.array([0, 2, 2, 4, 2, 3, 0, 0, 5, 5, 5])  # half to even; clipped to [0, D - 1]
    got = np.asarray(delays.rounded(d, D))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    one_hot = np.asarray(delays.one_hot_taps(d, D))
    np.testing.assert_array_equal(one_hot, np.eye(D)[expected].T)


def test_delay_line_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, IN)).astype(np.float32)
    shift = np.array([0, 1, 3, T - 1, T + 4])  # a delay of T or more leaves only zeros
    reference = np.zeros_like(x)
    for t in range(T):
        for i in range(IN):
            if t >= shift[i]:
                reference[t, :, i] = x[t - shift[i], :, i]
    np.testing.assert_array_equal(np.asarray(delays.delay_line(x, shift)), reference)


def _loss(c, per_sigma=SIGMA):
    return lambda w, d, x: jnp.sum(delays.delayed_dense(x, w, d, kernel_size=D, sigma=per_sigma) * c)


def _correlation(x, c):
    """corr[tau, i, j] = sum_{t, b} c[t, b, j] x[t - tau, b, i] (float64 loop)."""
    out = np.zeros((D, IN, OUT))
    for tau in range(D):
        for t in range(tau, T):
            out[tau] += x[t - tau].T @ c[t]
    return out


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_gradients_match_finite_differences_and_closed_form(per):
    x, w, d = (a.astype(np.float64) for a in _data(seed=3, per=per))
    c = np.random.default_rng(4).standard_normal((T, B, OUT))
    with jax.enable_x64(True):
        loss = jax.jit(_loss(c))
        grad_w, grad_d = jax.grad(loss, argnums=(0, 1))(w, d, x)
        grad_w, grad_d = np.asarray(grad_w), np.asarray(grad_d)
        assert grad_w.dtype == grad_d.dtype == np.float64

        def central(argnum, h=1e-6):
            args = [w, d]
            out = np.zeros_like(args[argnum])
            for index in np.ndindex(out.shape):
                plus, minus = args[argnum].copy(), args[argnum].copy()
                plus[index] += h
                minus[index] -= h
                step = [(plus if k == argnum else a) for k, a in enumerate(args)]
                back = [(minus if k == argnum else a) for k, a in enumerate(args)]
                out[index] = (float(loss(*step, x)) - float(loss(*back, x))) / (2 * h)
            return out

        # float64: truncation h^2 |L'''| ~ 1e-12 and rounding 1e-16 |L| / h ~ 1e-9: 1e-7 relative is ample
        np.testing.assert_allclose(grad_w, central(0), rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(grad_d, central(1), rtol=1e-7, atol=1e-7)
    # closed form: dL/dW_ij = sum_tau k_ij[tau] corr[tau, i, j], dL/dd_ij = W_ij sum_tau dk_ij[tau] corr[tau, i, j]
    taps, dtaps = gaussian_taps_numpy(d, D, SIGMA)
    if per == "channel":
        taps, dtaps = taps[:, :, None], dtaps[:, :, None]
    corr = _correlation(x, c)
    closed_w = np.sum(taps * corr, axis=0)
    closed_d = w * np.sum(dtaps * corr, axis=0)
    if per == "channel":
        closed_d = closed_d.sum(axis=1)
    np.testing.assert_allclose(grad_w, closed_w, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad_d, closed_d, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_input_gradient_matches_closed_form_and_finite_differences(per):
    """dL/dx[s, b, i] = sum_j sum_tau W_ij k_ij[tau] c[s + tau, b, j]: what a layer below receives."""
    x, w, d = (a.astype(np.float64) for a in _data(seed=6, per=per))
    c = np.random.default_rng(7).standard_normal((T, B, OUT))
    taps, _ = gaussian_taps_numpy(d, D, SIGMA)
    kernel = w * (taps if per == "synapse" else taps[:, :, None])  # [D, IN, OUT]
    closed = np.zeros_like(x)
    for s in range(T):
        for tau in range(min(D, T - s)):
            closed[s] += c[s + tau] @ kernel[tau].T
    with jax.enable_x64(True):
        loss = jax.jit(_loss(c))
        grad_x = np.asarray(jax.grad(loss, argnums=2)(w, d, x))
        assert grad_x.dtype == np.float64
        np.testing.assert_allclose(grad_x, closed, rtol=1e-10, atol=1e-10)
        h = 1e-6
        for index in [(0, 0, 0), (T - 1, B - 1, IN - 1), (T // 2, 1, 2), (T - D, 0, 3)]:
            plus, minus = x.copy(), x.copy()
            plus[index] += h
            minus[index] -= h
            central = (float(loss(w, d, plus)) - float(loss(w, d, minus))) / (2 * h)
            np.testing.assert_allclose(grad_x[index], central, rtol=1e-7, atol=1e-7)


def test_clipped_delays_have_zero_gradient():
    x, w, _ = _data()
    d = np.full((IN, OUT), 2.2, np.float32)
    d[0, 0], d[1, 1] = -1.0, D + 0.5
    grad_d = np.asarray(jax.grad(_loss(np.ones((T, B, OUT))), argnums=1)(w, d, x))
    assert grad_d[0, 0] == 0 and grad_d[1, 1] == 0 and np.all(grad_d[2:] != 0)


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_small_sigma_equals_exact_shifts(per):
    rng = np.random.default_rng(5)
    x, w, _ = _data(per=per)
    shape = (IN, OUT) if per == "synapse" else (IN,)
    integer = rng.integers(0, D, shape)
    offset = rng.uniform(-0.4, 0.4, shape)  # up to 0.4 off a tap, where DCLS's absolute 1e-7 would dominate
    d = np.clip(integer + offset, 0, D - 1).astype(np.float32)
    y = np.asarray(delays.delayed_dense(x, w, d, kernel_size=D, sigma=0.05))
    # sigma 0.05: a neighbour tap weighs exp(-(1 - 2 * 0.4) / (2 * 0.05^2)) = e^-40 of the nearest, the
    # nearest's tap is 1 / (1 + 1e-7) (2u off); so the exact bound plus 3u of each term
    bound = (IN + 4) * U32 * shifted_dense_numpy(np.abs(x), np.abs(w), integer)
    assert np.all(np.abs(y - shifted_dense_numpy(x, w, integer)) <= bound)


@pytest.mark.parametrize("per", ["synapse", "channel"])
def test_bfloat16_in_bfloat16_out(per):
    x, w, d = _data(per=per)
    x16, w16 = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
    y = delays.delayed_dense(x16, w16, d, kernel_size=D, sigma=SIGMA)
    assert y.dtype == jnp.bfloat16
    grads = jax.grad(lambda w, d, x: jnp.sum(delays.delayed_dense(x, w, d, kernel_size=D, sigma=SIGMA)
                                             .astype(jnp.float32)), argnums=(0, 1, 2))(w16, d, x16)
    assert grads[0].dtype == jnp.bfloat16 and grads[1].dtype == jnp.float32 and grads[2].dtype == jnp.bfloat16
    assert delays.delayed_dense(x16, w16, d, kernel_size=D).dtype == jnp.bfloat16
    # against the float32 loop on the same bf16 values: the kernel W k rounded to bf16 (u each), the sum
    # rounded once or accumulated in bf16 ((IN*D) u at most) -> (IN*D + 2) bf16 units of sum |W x|
    taps, _ = gaussian_taps_numpy(d, D, SIGMA)
    reference, _ = delayed_dense_numpy(np.asarray(x16, np.float32), np.asarray(w16, np.float32), taps)
    bound = (IN * D + 2) * U16 * _magnitude(np.asarray(x16, np.float32), np.asarray(w16, np.float32))
    assert np.all(np.abs(np.asarray(y, np.float32) - reference) <= bound)


@pytest.mark.parametrize("call, argument", [
    (lambda x, w, d: delays.delayed_dense(x[0], w, d, kernel_size=D, sigma=1.0), "x"),  # no time axis
    (lambda x, w, d: delays.delayed_dense(np.swapaxes(x, 1, 2), w, d, kernel_size=D), "weight"),  # [T, IN, B]
    (lambda x, w, d: delays.delayed_dense(x, w, d[:, :2], kernel_size=D), "delays"),
    (lambda x, w, d: delays.delayed_dense(x, w, d[:, 0][:3], kernel_size=D), "delays"),
    (lambda x, w, d: delays.delayed_dense(x, w, d, kernel_size=0), "kernel_size"),
    (lambda x, w, d: delays.delayed_dense(x, w, d, kernel_size=6.0), "kernel_size"),
    (lambda x, w, d: delays.delayed_dense(x, w, d, kernel_size=D, sigma=0.0), "sigma"),
    (lambda x, w, d: delays.delay_line(x, d), "delays"),
])
def test_bad_arguments_are_named(call, argument):
    x, w, d = _data()
    with pytest.raises(ValueError, match=argument):
        call(x, w, d)


def test_a_numpy_integer_kernel_size_is_a_kernel_size():
    x, w, d = _data()
    np.testing.assert_array_equal(delays.delayed_dense(x, w, d, kernel_size=np.int64(D)),
                                  delays.delayed_dense(x, w, d, kernel_size=D))
    with pytest.raises(ValueError, match="kernel_size"):
        delays.delayed_dense(x, w, d, kernel_size=True)


def test_annealed_sigma_closed_form():
    start, end, fraction = 6.0, 0.25, 0.4
    for progress, expected in [(0.0, start), (fraction / 2, np.sqrt(start * end)), (fraction, end),
                               (0.7, end), (1.0, end)]:
        got = float(delays.annealed_sigma(progress, start, end, fraction))
        assert abs(got - expected) <= 8 * U32 * expected, (progress, got, expected)
    with pytest.raises(ValueError, match="anneal_fraction"):
        delays.annealed_sigma(0.5, start, end, 0.0)

"""The layers against plain float64-eigh implementations of the same layers, written here.

Each layer runs in float32 on well-conditioned data (covariance condition ~10) and must agree
with its reference, outputs and gradients, to the float32 targets of `tritonsqrt.testing.accuracy`.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest
import torch

import tritonsqrt.functional as F
import tritonsqrt.nn as tnn
from tritonsqrt.testing.accuracy import TARGETS
from tritonsqrt.testing import relative_error

# (sqrtm, inv_sqrtm, grad sqrtm, grad inv_sqrtm) at condition <= 1e2, float32.
SQRT_FWD, INV_FWD, SQRT_BWD, INV_BWD = TARGETS[torch.float32][1e2]
# "auto" is float64 eigh on CPU; scaled_ns is the GPU default, here on the torch path.
METHODS = ["auto", "scaled_ns"]
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


# ---------------------------------------------------------------------------------------
# References: the same layers in float64 with torch.linalg.eigh (autograd through eigh).


def eigh_power(a: torch.Tensor, power: float) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(a)
    return (evecs * evals.pow(power).unsqueeze(-2)) @ evecs.mT


def reference_covariance(features: torch.Tensor, correction: int = 0) -> torch.Tensor:
    centered = features - features.mean(dim=-1, keepdim=True)
    return centered @ centered.mT / (features.shape[-1] - correction)


def reference_zca(x, num_groups, eps, weight=None, bias=None, running=None):
    """Output, batch mean (C,), whitening (g, G, G); running=(mean, whitening) for eval mode."""
    n, c = x.shape[:2]
    groups = x.transpose(0, 1).reshape(num_groups, c // num_groups, -1)
    if running is None:
        mean = groups.mean(dim=-1, keepdim=True)
        eye = torch.eye(c // num_groups, dtype=x.dtype)
        whitening = eigh_power(reference_covariance(groups) + eps * eye, -0.5)
    else:
        mean, whitening = running[0].reshape(num_groups, -1, 1), running[1]
    out = (whitening @ (groups - mean)).reshape(c, -1)
    if weight is not None:
        out = out * weight[:, None] + bias[:, None]
    return out.reshape(c, n, *x.shape[2:]).transpose(0, 1), mean.flatten(), whitening


def reference_pooling(x, prenorm="trace", compensate=True, eps=1e-5, vectorize=True):
    features = x.flatten(2) if x.dim() == 4 else x.transpose(1, 2)
    cov = reference_covariance(features)
    if prenorm == "trace":
        divisor = cov.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
    elif prenorm == "frobenius":
        divisor = torch.linalg.matrix_norm(cov)[:, None, None]
    else:
        divisor = torch.ones(1, 1, 1, dtype=x.dtype)
    root = eigh_power(cov / divisor + eps * torch.eye(cov.shape[-1], dtype=x.dtype), 0.5)
    if compensate:
        root = root * divisor.sqrt()
    if not vectorize:
        return root
    rows, cols = torch.triu_indices(cov.shape[-1], cov.shape[-1])
    return root[:, rows, cols]


def reference_wct(content, style, alpha, eps):
    fc, fs = content.flatten(2), style.flatten(2)
    eye = torch.eye(fc.shape[1], dtype=fc.dtype)
    whitening = eigh_power(reference_covariance(fc, 1) + eps * eye, -0.5)
    coloring = eigh_power(reference_covariance(fs, 1) + eps * eye, 0.5)
    colored = coloring @ whitening @ (fc - fc.mean(-1, keepdim=True)) + fs.mean(-1, keepdim=True)
    return (alpha * colored + (1 - alpha) * fc).reshape(content.shape)


# ---------------------------------------------------------------------------------------
# Helpers


def correlated(*shape, channel_dim=1, spread=3.0, seed=0):
    """Random features whose channels are mixed so the covariance has condition ~spread^2."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[channel_dim]
    q, _ = torch.linalg.qr(torch.randn(c, c, generator=gen, dtype=torch.float64))
    mixing = q * torch.logspace(0, -torch.log10(torch.tensor(spread)).item(), c, dtype=torch.float64)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64).movedim(channel_dim, -1) @ mixing.T
    return (x.movedim(-1, channel_dim) + 0.5).float()


def close(result, exact, tol, what):
    """Worst relative Frobenius error over the matrices (..., n, n) of result; see `whole`."""
    assert torch.isfinite(result).all(), f"{what}: non-finite values"
    err = float(relative_error(result.detach(), exact.detach()).max())
    assert err <= tol, f"{what}: relative error {err:.2e} > {tol:.1e}"


def whole(t):
    return t.reshape(1, 1, -1)  # one relative error over the whole tensor


def grads_of(fn, inputs, upstream):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    grads = torch.autograd.grad(out, inputs, upstream.to(out.dtype))
    return out.detach(), grads


# ---------------------------------------------------------------------------------------
# DecorrelatedBatchNorm


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape, num_groups", [((8, 12, 5, 6), 3), ((96, 7), 1)])
def test_zca_matches_eigh_reference(method, shape, num_groups):
    x = correlated(*shape)
    c = shape[1]
    layer = tnn.DecorrelatedBatchNorm(c, num_groups=num_groups, eps=1e-3, method=method)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_()
    upstream = torch.randn(shape)
    x_in = x.clone().requires_grad_(True)
    out = layer(x_in)
    out.backward(upstream)

    ref_w, ref_b = layer.weight.detach().double(), layer.bias.detach().double()
    ref_out, (gx, gw, gb) = grads_of(lambda a, w, b: reference_zca(a, num_groups, 1e-3, w, b)[0],
                                     [x.double(), ref_w, ref_b], upstream.double())
    close(whole(out), whole(ref_out), INV_FWD, "output")
    close(whole(x_in.grad), whole(gx), INV_BWD, "grad x")
    close(whole(layer.weight.grad), whole(gw), INV_BWD, "grad weight")
    close(whole(layer.bias.grad), whole(gb), INV_BWD, "grad bias")


@pytest.mark.parametrize("method", METHODS)
def test_zca_output_has_identity_covariance(method):
    x = correlated(16, 8, 4, 4)
    layer = tnn.DecorrelatedBatchNorm(8, num_groups=2, eps=0.0, affine=False, method=method)
    out = layer(x).detach().transpose(0, 1).reshape(2, 4, -1).double()
    cov = reference_covariance(out)
    close(cov, torch.eye(4, dtype=torch.float64).expand_as(cov), INV_FWD, "whitened covariance")
    # Across groups nothing is decorrelated: only the diagonal blocks are whitened.
    cross = reference_covariance(out.reshape(8, -1))[:4, 4:]
    assert cross.abs().max() > 1e-2


def test_zca_running_statistics_and_eval_mode():
    layer = tnn.DecorrelatedBatchNorm(6, num_groups=2, eps=1e-3, momentum=0.25)
    batches = [correlated(32, 6, seed=s) for s in range(3)]
    run_mean, run_white = torch.zeros(6, dtype=torch.float64), torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    for batch in batches:
        layer(batch)
        _, mean, whitening = reference_zca(batch.double(), 2, 1e-3)
        run_mean, run_white = 0.75 * run_mean + 0.25 * mean, 0.75 * run_white + 0.25 * whitening
    assert int(layer.num_batches_tracked) == 3
    close(whole(layer.running_mean), whole(run_mean), INV_FWD, "running_mean")
    close(layer.running_whitening, run_white, INV_FWD, "running_whitening")

    layer.eval()
    test = correlated(5, 6, seed=9)
    before = [b.clone() for b in layer.buffers()]
    out = layer(test)
    assert all(torch.equal(a, b) for a, b in zip(before, layer.buffers())), "eval mode changed the buffers"
    expected = reference_zca(test.double(), 2, 1e-3, running=(run_mean, run_white))[0]
    close(whole(out), whole(expected), INV_FWD, "eval output")
    assert layer(test[:1]).shape == (1, 6)  # one sample is fine in eval, as in BatchNorm


def test_zca_cumulative_average_and_no_tracking():
    layer = tnn.DecorrelatedBatchNorm(4, num_groups=1, momentum=None)
    batches = [correlated(20, 4, seed=s) for s in range(4)]
    for batch in batches:
        layer(batch)
    expected = torch.stack([b.double().mean(0) for b in batches]).mean(0)
    close(whole(layer.running_mean), whole(expected), 1e-6, "cumulative running_mean")

    untracked = tnn.DecorrelatedBatchNorm(4, num_groups=1, track_running_stats=False).eval()
    assert untracked.running_mean is None
    x = correlated(20, 4)
    close(whole(untracked(x)), whole(reference_zca(x.double(), 1, 1e-5)[0]), INV_FWD, "batch statistics in eval")


def test_zca_state_dict_round_trip():
    layer = tnn.DecorrelatedBatchNorm(8, num_groups=4, momentum=0.5)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
    for seed in range(2):
        layer(correlated(10, 8, 3, 3, seed=seed))
    state = layer.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_whitening", "num_batches_tracked"}
    fresh = tnn.DecorrelatedBatchNorm(8, num_groups=4)
    fresh.load_state_dict(state)
    x = correlated(4, 8, 3, 3, seed=7)
    assert torch.equal(layer.eval()(x), fresh.eval()(x))


def test_zca_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_groups must divide num_features"):
        tnn.DecorrelatedBatchNorm(10, num_groups=3)
    with pytest.raises(ValueError, match=r"x must be \(N, 4\)"):
        tnn.DecorrelatedBatchNorm(4)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        tnn.DecorrelatedBatchNorm(4)(torch.randn(1, 4))
    with pytest.raises(ValueError, match="method"):
        tnn.DecorrelatedBatchNorm(4, method="svd")(torch.randn(8, 4))


def test_dbn_group_default_and_small_batch_warning():
    # DBN / IterNorm whiten groups of 16 channels by default: the largest divisor <= 16.
    assert tnn.DecorrelatedBatchNorm(64).num_groups == 4
    assert tnn.DecorrelatedBatchNorm(24).group_size == 12 and tnn.DecorrelatedBatchNorm(7).num_groups == 1
    assert tnn.DecorrelatedBatchNorm(64, group_size=32).num_groups == 2
    with pytest.warns(UserWarning, match="8 samples per channel for groups of 16 channels"):
        tnn.DecorrelatedBatchNorm(16)(correlated(8, 16))
    with pytest.raises(ValueError, match="num_groups or group_size, not both"):
        tnn.DecorrelatedBatchNorm(16, num_groups=2, group_size=8)
    with pytest.raises(ValueError, match="group_size must divide"):
        tnn.DecorrelatedBatchNorm(16, group_size=5)


@pytest.mark.parametrize("build, match", [
    (lambda: tnn.DecorrelatedBatchNorm(8, iteration=3), "unexpected keyword argument 'iteration'"),
    (lambda: tnn.CovariancePooling(iteration=3), "unexpected keyword argument 'iteration'"),
    (lambda: tnn.ZCAWhitening(iterations_=3), "unexpected keyword argument 'iterations_'"),
])
def test_layers_reject_unknown_keywords_at_construction(build, match):
    with pytest.raises(TypeError, match=match):
        build()


@pytest.mark.parametrize("build, match", [
    (lambda: tnn.DecorrelatedBatchNorm(8, eps=float("nan")), "eps must be a finite number >= 0"),
    (lambda: tnn.DecorrelatedBatchNorm(8, eps=-1e-3), "eps must be a finite number >= 0"),
    (lambda: tnn.DecorrelatedBatchNorm(8, eps="1e-3"), "eps must be a finite number >= 0"),
    (lambda: tnn.DecorrelatedBatchNorm(8, momentum=1.5), "momentum must be None or a number in"),
    (lambda: tnn.DecorrelatedBatchNorm(0), "num_features must be a positive int"),
    (lambda: tnn.DecorrelatedBatchNorm(8, method="ns", iterations=0), "iterations"),
    (lambda: tnn.DecorrelatedBatchNorm(8, precision="fp8"), "precision"),
    (lambda: tnn.DecorrelatedBatchNorm(8, backend="cuda"), "backend"),
    (lambda: tnn.ZCAWhitening(eps=float("nan")), "eps must be a finite number >= 0"),
    (lambda: tnn.ZCAWhitening(eps=float("inf")), "eps must be a finite number >= 0"),
    (lambda: tnn.CovariancePooling(eps=-1.0), "eps must be a finite number >= 0"),
    (lambda: tnn.CovariancePooling(layout="NCHW"), "layout must be"),
    (lambda: tnn.CovariancePooling(in_channels=8), "both in_channels and reduced_channels"),
])
def test_layer_options_are_validated_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_covariance_pooling_channel_reduction():
    head = tnn.CovariancePooling(in_channels=12, reduced_channels=5)
    assert isinstance(head.reduction[0], torch.nn.Conv2d) and head.reduction[0].bias is None
    assert head(torch.randn(3, 12, 4, 4)).shape == (3, 15)


def reference_iternorm(x, num_groups, eps, iterations):
    """IterNorm (Huang et al., CVPR 2019), Alg. 1: Sigma_N = Sigma / tr(Sigma), P_0 = I,
    P_k = (3 P_{k-1} - P_{k-1}^3 Sigma_N) / 2, W = P_T / sqrt(tr(Sigma)), out = W (x - mean)."""
    n, c = x.shape[:2]
    groups = x.transpose(0, 1).reshape(num_groups, c // num_groups, -1)
    centered = groups - groups.mean(-1, keepdim=True)
    eye = torch.eye(c // num_groups, dtype=x.dtype)
    sigma = centered @ centered.mT / centered.shape[-1] + eps * eye
    trace = sigma.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
    p = eye.expand_as(sigma)
    for _ in range(iterations):
        p = 1.5 * p - 0.5 * p @ p @ p @ (sigma / trace)
    out = (p / trace.sqrt()) @ centered
    return out.reshape(c, n, *x.shape[2:]).transpose(0, 1)


def test_dbn_with_ns_is_iternorm():
    """method="ns" whitens as IterNorm's T-step iteration (equal to the coupled one in exact arithmetic)."""
    x = correlated(32, 8, 3, 3, spread=10.0).double()
    upstream = torch.randn(x.shape, dtype=torch.float64)
    layer = tnn.DecorrelatedBatchNorm(8, num_groups=2, eps=1e-3, affine=False, method="ns", iterations=5).double()
    out, (grad,) = grads_of(layer, [x], upstream)
    ref, (ref_grad,) = grads_of(lambda a: reference_iternorm(a, 2, 1e-3, 5), [x], upstream)
    close(whole(out), whole(ref), 1e-10, "IterNorm output")
    close(whole(grad), whole(ref_grad), 1e-10, "IterNorm gradient")
    exact = tnn.DecorrelatedBatchNorm(8, num_groups=2, eps=1e-3, affine=False).double()(x)
    assert float(relative_error(whole(out), whole(exact)).max()) > 1e-3  # 5 steps are not converged


def test_zca_passes_op_keywords_and_keeps_dtype():
    x = correlated(64, 4)
    # Two plain Newton–Schulz iterations are far from converged: proof the keyword reached the op.
    rough = tnn.DecorrelatedBatchNorm(4, method="ns", iterations=2)(x)
    exact = tnn.DecorrelatedBatchNorm(4)(x)
    assert (rough - exact).abs().max() > 1e-2
    half = tnn.DecorrelatedBatchNorm(4)(x.bfloat16())
    assert half.dtype == torch.bfloat16
    assert (half.float() - exact).abs().max() < 0.05


# ---------------------------------------------------------------------------------------
# CovariancePooling


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(3, 9, 5, 4), (4, 30, 7)], ids=["NCHW", "NTC"])
@pytest.mark.parametrize("prenorm, compensate", [("trace", True), ("frobenius", False), (None, True)])
def test_covariance_pooling_matches_eigh_reference(method, shape, prenorm, compensate):
    x = correlated(*shape, channel_dim=1 if len(shape) == 4 else 2)
    layer = tnn.CovariancePooling(prenorm=prenorm, compensate=compensate, eps=1e-4, method=method,
                                  layout="tokens" if len(shape) == 3 else None)
    c = shape[1] if len(shape) == 4 else shape[2]
    upstream = torch.randn(shape[0], c * (c + 1) // 2)
    x_in = x.clone().requires_grad_(True)
    out = layer(x_in)
    assert out.shape == (shape[0], tnn.CovariancePooling.output_features(c))
    out.backward(upstream)
    reference = lambda a: reference_pooling(a, prenorm, compensate, 1e-4)  # noqa: E731
    ref_out, (gx,) = grads_of(reference, [x.double()], upstream.double())
    close(out[:, None], ref_out[:, None], SQRT_FWD, "output")
    close(whole(x_in.grad), whole(gx), SQRT_BWD, "grad x")


def test_covariance_pooling_layout():
    x = correlated(2, 5, 6, 6)
    full = tnn.CovariancePooling(vectorize=False)(x)
    vector = tnn.CovariancePooling()(x)
    rows, cols = torch.triu_indices(5, 5)
    assert full.shape == (2, 5, 5) and torch.equal(vector, full[:, rows, cols])
    assert torch.allclose(full, full.mT)
    # (N, T, C) tokens and (N, C, H, W) maps are the same features in two layouts.
    tokens = x.flatten(2).transpose(1, 2)
    close(tnn.CovariancePooling(vectorize=False, layout="tokens")(tokens), full, 1e-6, "token layout")
    # (N, C, L), a Conv1d's output, is the same features channels-first; 3-D must say which it is.
    close(tnn.CovariancePooling(vectorize=False, layout="channels_first")(x.flatten(2)), full, 1e-6, "(N, C, L)")
    with pytest.raises(ValueError, match="ambiguous.*layout='channels_first'.*layout='tokens'"):
        tnn.CovariancePooling()(x.flatten(2))
    # Without compensation the head ignores the features' scale.
    scale_free = tnn.CovariancePooling(compensate=False)
    close(scale_free(7.0 * x)[:, None], scale_free(x)[:, None], 1e-5, "scale invariance")
    with pytest.raises(ValueError, match="prenorm"):
        tnn.CovariancePooling(prenorm="spectral")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        tnn.CovariancePooling()(torch.randn(4, 5))


# ---------------------------------------------------------------------------------------
# whiten_color (WCT)


@pytest.mark.parametrize("method", METHODS)
def test_whiten_color_matches_eigh_reference(method):
    content, style = correlated(2, 6, 7, 7, seed=1), correlated(2, 6, 5, 9, seed=2, spread=2.0) * 2.0
    upstream = torch.randn(content.shape)
    fn = lambda c, s: F.whiten_color(c, s, alpha=0.8, eps=1e-4, method=method)  # noqa: E731
    out, (gc, gs) = grads_of(fn, [content, style], upstream)
    ref_out, (rc, rs) = grads_of(lambda c, s: reference_wct(c, s, 0.8, 1e-4), [content.double(), style.double()],
                                 upstream.double())
    close(whole(out), whole(ref_out), INV_FWD, "output")
    close(whole(gc), whole(rc), INV_BWD, "grad content")
    close(whole(gs), whole(rs), INV_BWD, "grad style")


def test_whiten_color_transfers_the_style_statistics():
    content, style = correlated(6, 8, 8, seed=3), correlated(1, 6, 10, 10, seed=4, spread=2.0)
    out = F.whiten_color(content, style[0], eps=0.0)
    assert out.shape == content.shape
    fo, fs = out.flatten(1).double(), style[0].flatten(1).double()
    close(reference_covariance(fo, 1), reference_covariance(fs, 1), INV_FWD, "covariance after colouring")
    close(whole(fo.mean(1)), whole(fs.mean(1)), INV_FWD, "mean after colouring")
    assert torch.equal(F.whiten_color(content, style[0], alpha=0.0), content)
    batched = F.whiten_color(content.expand(3, -1, -1, -1), style)  # one style for the batch
    close(whole(batched[1]), whole(F.whiten_color(content, style[0])), 1e-6, "style broadcast")
    with pytest.raises(ValueError, match="same channels"):
        F.whiten_color(content, torch.randn(5, 4, 4))


# ---------------------------------------------------------------------------------------
# torch.compile and the example


class TinyNet(torch.nn.Module):
    """Each layer once: whitening, WCT against a fixed style, covariance pooling."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.whiten = tnn.DecorrelatedBatchNorm(4, num_groups=2)
        self.pool = tnn.CovariancePooling()
        self.head = torch.nn.Linear(10, 3)
        self.register_buffer("style", correlated(1, 4, 3, 3, seed=5))

    def forward(self, x):
        h = torch.relu(self.whiten(self.conv(x)))
        h = F.whiten_color(h, self.style, alpha=0.5)
        return self.head(self.pool(h))


def test_layers_run_under_torch_compile():
    eager, x = TinyNet(), torch.randn(4, 2, 5, 5)
    compiled_model = TinyNet()
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, fullgraph=True)  # one graph: nothing in the layers breaks it
    out_eager, out_compiled = eager(x), compiled(x)
    out_eager.square().sum().backward()
    out_compiled.square().sum().backward()
    close(whole(out_compiled), whole(out_eager), 1e-5, "compiled output")
    close(whole(compiled_model.conv.weight.grad), whole(eager.conv.weight.grad), 1e-5, "compiled grad")
    close(compiled_model.whiten.running_whitening, eager.whiten.running_whitening, 1e-5, "compiled running stats")
    assert int(compiled_model.whiten.num_batches_tracked) == 1


def test_train_digits_example_loss_falls():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    lines = []
    result = example.train(steps=20, device="cpu", log=lines.append, log_every=10)
    losses = result["losses"]
    assert len(losses) == 20 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1, losses
    assert 0.0 <= result["test_accuracy"] <= 1.0 and lines[-1].startswith("test accuracy")

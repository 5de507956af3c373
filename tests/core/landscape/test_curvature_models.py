"""The curvature analysis of real models against the dense Hessian
(torch.autograd.functional.hessian), in float64: the sine fit, linear regression, a small MLP
(tanh and ReLU), and experiment files whose loss has no Hessian."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from core.landscape import curvature_job as cj
from core.landscape.curvature import hessian_eigs
from core.train.losses import build_loss
from core.train.tasks import build_task, get_task

REL = 1e-4  # the bar for eigenvalues


def dense_hessian(model: nn.Module, terms) -> torch.Tensor:
    """The full Hessian of ``sum(terms(model))`` in the model's parameter order (P, P)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # (P,)

    class At(nn.Module):
        def __init__(self, params):
            super().__init__()
            self.params = params

        def forward(self, *args):
            return functional_call(model, self.params, args)

    def loss(t):
        params, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            params[name] = t[i : i + size].reshape(shape)
            i += size
        return sum(terms(At(params)))

    return torch.autograd.functional.hessian(loss, theta)


def run(model, terms, **request) -> cj.CurvatureResult:
    events = list(cj.analyse(model, terms, cj.CurvatureRequest(**request)))
    assert isinstance(events[0], cj.Planned)
    assert isinstance(events[-1], cj.Done)
    return events[-1].result


def task(key: str):
    setup = build_task(key, dtype=torch.float64)
    step = 10 if key == "sine" else 1  # 200 of the 2,000 points: the same fit, 10x quicker
    x, y = setup.val_x[::step], setup.val_y[::step]
    terms = cj.task_terms(build_loss(get_task(key).loss), x, y)
    return setup.model, terms


def mlp(act: type[nn.Module]):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 12), act(), nn.Linear(12, 12), act(), nn.Linear(12, 1))
    model = model.double()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    return model, cj.task_terms(nn.MSELoss(), x, y)


CASES = {
    "sine": lambda: task("sine"),
    "linreg": lambda: task("linreg"),
    "mlp_tanh": lambda: mlp(nn.Tanh),
    "mlp_relu": lambda: mlp(nn.ReLU),  # piecewise linear: its Hessian exists almost everywhere
}


@pytest.mark.parametrize("case", CASES)
def test_top_eigenvalues_and_trace_match_the_dense_hessian(case):
    model, terms = CASES[case]()
    h = dense_hessian(model, terms)
    exact = torch.linalg.eigvalsh(h).flip(0).numpy()  # descending
    k = min(4, len(exact))
    r = run(model, terms, top=k, trace=True, tol=1e-10, trace_samples=100)
    np.testing.assert_allclose(r.top_eigenvalues, exact[:k], rtol=REL)
    truth = float(h.trace())
    # a standard error covers the truth 68% of the time by definition (the calibration test
    # in test_curvature_spectrum.py proves it does); three cover it 99.7% of the time
    assert abs(r.trace.value - truth) <= 3 * r.trace.error + 1e-9 * abs(truth)
    assert r.trace.error > 0


def test_per_layer_is_the_top_eigenvalue_of_each_diagonal_block():
    model, terms = mlp(nn.Tanh)
    h = dense_hessian(model, terms)
    r = run(model, terms, top=0, per_layer=True, layer_tol=1e-10, layer_steps=200)
    assert [(layer.name, layer.kind) for layer in r.per_layer] == [
        ("0", "Linear"), ("2", "Linear"), ("4", "Linear"),
    ]  # fmt: skip
    start = 0
    for layer in r.per_layer:
        block = h[start : start + layer.parameters, start : start + layer.parameters]
        expect = float(torch.linalg.eigvalsh(block)[-1])
        assert layer.top_eigenvalue == pytest.approx(expect, rel=REL)
        start += layer.parameters
    assert start == h.shape[0]


def test_density_is_a_normalised_spectrum_with_its_mass_where_the_eigenvalues_are():
    model, terms = mlp(nn.Tanh)
    exact = torch.linalg.eigvalsh(dense_hessian(model, terms)).numpy()
    r = run(model, terms, top=1, density=True, density_runs=4, density_steps=60)
    d = r.density
    dx = d.grid[1] - d.grid[0]
    assert float(d.values.sum() * dx) == pytest.approx(1.0, abs=1e-3)
    assert d.grid[0] <= exact.min() and d.grid[-1] >= exact.max()
    # the mean of the density is tr H / P (the first moment is exact under quadrature)
    mean = float((d.grid * d.values).sum() * dx)
    assert mean == pytest.approx(exact.mean(), abs=0.2 * np.abs(exact).max())


@pytest.mark.slow
def test_lanczos_agrees_with_power_iteration_in_fewer_products():
    model, terms = mlp(nn.Tanh)
    r = run(model, terms, top=2, tol=1e-10)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    power, _ = hessian_eigs(model, nn.MSELoss(), x, y, k=2, iters=2000, tol=1e-12)
    np.testing.assert_allclose(r.top_eigenvalues, power, rtol=REL)
    assert r.lanczos_steps < 2000


def test_the_callers_model_is_left_untouched():
    model, terms = mlp(nn.Tanh)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    run(model, terms, top=1, trace=True, trace_samples=4)
    assert model.training
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b.detach()) and b.grad is None


def test_plan_counts_products_and_costs_them():
    model, terms = mlp(nn.Tanh)
    events = list(cj.analyse(model, terms, cj.CurvatureRequest(top=0, trace=True,
                                                               trace_samples=7)))  # fmt: skip
    plan = events[0]
    assert plan.products == 7 and plan.seconds_per_product > 0
    assert plan.seconds == pytest.approx(7 * plan.seconds_per_product)
    done = events[-1].result
    assert 1 <= plan.timed <= 3
    assert done.products == 7 + plan.timed  # and those timed at the start
    assert [e.done for e in events if isinstance(e, cj.Progress)][-1] == 7


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        ({"top": 0}, "nothing to compute"),
        ({"top": -1}, "Invalid top"),
        ({"top": 1, "trace": True, "trace_samples": 1}, "Invalid trace samples"),
    ],
)
def test_bad_requests_are_value_errors(request_, match):
    with pytest.raises(ValueError, match=match):
        cj.CurvatureRequest(**request_).check()


def test_more_eigenvalues_than_parameters_gives_all_of_them():
    # the sine fit has 4 weights and the panel asks for 5 by default: that first Compute
    # failed with "Invalid top"; every eigenvalue is the answer instead
    model, terms = task("sine")
    r = run(model, terms, top=5)
    exact = torch.linalg.eigvalsh(dense_hessian(model, terms)).flip(0).numpy()  # descending
    assert r.top_eigenvalues is not None and len(r.top_eigenvalues) == 4
    np.testing.assert_allclose(r.top_eigenvalues, exact, rtol=1e-4, atol=1e-8 * exact[0])


# --- experiment files whose loss has no Hessian ---------------------------------------------

EXPERIMENT = """
import torch
from torch import nn

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))

def batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g))]

def loss(model, batch):
    x, y = batch
    {body}
"""


def own_problem(tmp_path, body: str):
    from core.landscape.problems import OwnProblem
    from core.landscape.subject import load_model_subject

    f = tmp_path / "exp.py"
    f.write_text(textwrap.dedent(EXPERIMENT).replace("{body}", body))
    return OwnProblem(load_model_subject(str(f)), "cpu")


def test_an_experiment_file_with_a_twice_differentiable_loss_works(tmp_path):
    problem = own_problem(tmp_path, "return ((model(x) - y) ** 2).mean()")
    model, terms = cj.loss_terms(problem)
    h = dense_hessian(model, terms)
    r = run(model, terms, top=2, tol=1e-8)
    np.testing.assert_allclose(r.top_eigenvalues, torch.linalg.eigvalsh(h).flip(0)[:2], rtol=1e-3)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        # torch.cdist has no double backward: autograd raises NotImplementedError
        ("return torch.cdist(model(x), y).mean()", "cannot be differentiated twice.*cdist"),
        # the output detached: no gradient at all
        ("return ((model(x).detach() - y) ** 2).mean()", "does not depend on the weights"),
        # the user's own code failing inside the loss: its file and line are named
        ("return model(x).nope()", r"exp\.py, line \d+, in loss"),
    ],
)
def test_a_loss_without_a_hessian_gets_a_message(tmp_path, body, match):
    problem = own_problem(tmp_path, body)
    with pytest.raises(cj.CurvatureError, match=match):
        list(cj.analyse_problem(problem, cj.CurvatureRequest(top=1)))

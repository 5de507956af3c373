import inspect

import pytest
import torch

from core.optimizers import (
    CATALOGUE,
    SCHEDULERS,
    OptimizerSpec,
    SchedulerSpec,
    build_optimizer,
    build_scheduler,
    get_optimizer,
    parse_value,
)

REQUIRED = {
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "adamax",
    "rmsprop",
    "rmsprop_centered",
    "rprop",
    "adam",
    "adamw",
    "nadam",
    "radam",
    "asgd",
    "lbfgs",
}
OVERRIDES = {
    "momentum": {"momentum"},
    "nesterov": {"momentum", "nesterov"},
    "rmsprop_centered": {"centered"},
    "lbfgs": {"max_iter", "max_eval", "line_search_fn"},
}


def test_catalogue_has_every_optimizer():
    assert REQUIRED <= set(CATALOGUE)
    assert {
        "step",
        "exponential",
        "cosine",
        "cosine_restarts",
        "onecycle",
        "cyclic",
        "linear",
        "plateau",
    } <= set(SCHEDULERS)


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_defaults_are_read_from_the_real_class(key):
    info = get_optimizer(key)
    sig = inspect.signature(info.cls.__init__).parameters
    for p in info.params:
        if p.name in OVERRIDES.get(key, ()):
            continue
        real = sig[p.arg].default
        if p.index is not None:
            real = real[p.index]
        assert p.default == real, (key, p.name)
        if p.kind in ("float", "int") and p.default is not None:
            assert p.low <= p.default <= p.high


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_build_gives_the_real_torch_class(key):
    p = torch.zeros(2, requires_grad=True)
    opt = build_optimizer(OptimizerSpec(key), [p])
    assert type(opt) is get_optimizer(key).cls
    assert isinstance(opt, torch.optim.Optimizer)


def test_tuple_arguments_are_reassembled():
    p = torch.zeros(2, requires_grad=True)
    opt = build_optimizer(OptimizerSpec("adam", {"beta1": 0.8, "beta2": 0.99}), [p])
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    opt = build_optimizer(OptimizerSpec("rprop", {"eta_plus": 1.5}), [p])
    assert opt.param_groups[0]["etas"] == (0.5, 1.5)


@pytest.mark.parametrize(
    "spec, message",
    [
        (OptimizerSpec("adamm"), "Unknown optimizer 'adamm'; choose one of: sgd"),
        (OptimizerSpec("adam", {"lrr": 0.1}), "Unknown hyperparameter 'lrr' for Adam; valid: lr"),
        (OptimizerSpec("adam", {"lr": 1e9}), "Invalid lr for Adam: 1000000000.0 (allowed"),
        (OptimizerSpec("adam", {"lr": float("nan")}), "Invalid lr"),
        (OptimizerSpec("adam", {"lr": "fast"}), "must be a number"),
        (OptimizerSpec("adam", {"amsgrad": 1}), "must be true or false"),
        (OptimizerSpec("sgd", {"nesterov": True}), "Nesterov momentum requires"),
        (OptimizerSpec("lbfgs", {"line_search_fn": "armijo"}), "choose one of"),
        (OptimizerSpec("lbfgs", {"max_iter": 2.5}), "must be whole"),
    ],
)
def test_invalid_specs_name_the_field(spec, message):
    with pytest.raises(ValueError) as info:
        build_optimizer(spec, [torch.zeros(2, requires_grad=True)])
    assert message in str(info.value)


@pytest.mark.parametrize("key", sorted(SCHEDULERS))
def test_every_scheduler_builds_and_steps(key):
    p = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_scheduler(SchedulerSpec(key), opt)
    assert type(sched) is SCHEDULERS[key].cls
    for _ in range(3):
        p.grad = torch.ones(2)
        opt.step()
        sched.step(1.0) if SCHEDULERS[key].needs_metric else sched.step()
    assert opt.param_groups[0]["lr"] > 0


def test_scheduler_spec_errors():
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="Unknown scheduler"):
        build_scheduler(SchedulerSpec("warmup"), opt)
    with pytest.raises(ValueError, match="Invalid step_size"):
        build_scheduler(SchedulerSpec("step", {"step_size": 0}), opt)


def test_spec_json_round_trip():
    spec = OptimizerSpec("adam", {"lr": 0.01, "beta1": 0.8})
    assert OptimizerSpec.from_dict(spec.to_dict()) == spec


def test_parse_value_reads_text_by_kind():
    adam = get_optimizer("adam")
    assert parse_value(adam.param("lr"), "1e-3") == 1e-3
    assert parse_value(adam.param("amsgrad"), "true") is True
    lbfgs = get_optimizer("lbfgs")
    assert parse_value(lbfgs.param("history_size"), "10") == 10
    assert parse_value(lbfgs.param("line_search_fn"), "none") is None
    with pytest.raises(ValueError, match="must be a number"):
        parse_value(adam.param("lr"), "fast")

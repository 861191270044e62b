"""fnn.optim against its PyTorch twins: every optimizer and option of API.md 6.3, the
groups (`partition`, `adamw(mask=...)`), `ema`, and the schedules of 6.3, step by step.

Each optimizer case runs 50 updates on the same gradient sequence (gradients that shrink,
so that AMSGrad's maximum matters) in four ways: fnn in float64 (`jax_enable_x64`)
against `torch.optim` in float64, to 1e-10 (the rule itself), and fnn in float32 eager,
jitted and inside `lax.scan` against the same float64 trajectory at float32 tolerances.
Skipped without torch (`pip install torch==2.13.0`, the CPU build).
"""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optim
from fnn.optim import schedules

torch = pytest.importorskip("torch", reason="the PyTorch twins need torch (the CPU build)")

N_STEPS = 50
SHAPES = {"w": (3, 4), "b": (4,)}


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    scale = 2.0 * 0.93 ** np.arange(N_STEPS) + 0.05   # shrinking gradients: v falls behind v_max
    grads = [{k: rng.normal(size=s) * scale[t] for k, s in SHAPES.items()} for t in range(N_STEPS)]
    return params, grads


@contextlib.contextmanager
def torch_float64():
    """torch's optimizers keep scalar state (step, NAdam's μ product) in the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def torch_trajectory(make_torch, params, grads):
    """float64 params after each of the updates, stacked per leaf: {k: (N_STEPS, *shape)}."""
    with torch_float64():
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        opt = make_torch(tensors)
        out = {k: [] for k in tensors}
        for g in grads:
            for k, t in tensors.items():
                t.grad = torch.tensor(g[k])
            opt.step()
            for k, t in tensors.items():
                out[k].append(t.detach().numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}


def stack(trees):
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def fnn_trajectories(make, params, grads):
    """{mode: trajectory} for eager, jit and scan in float32."""
    p32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    g32 = [jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g) for g in grads]
    opt = make()
    out = {}
    for mode, update in (("eager", opt.update), ("jit", jax.jit(opt.update))):
        state, history = opt.init(p32), []
        for g in g32:
            state, new = update(state, g)
            history.append(new)
        out[mode] = stack(history)

    @jax.jit
    def run(state, grads):
        return jax.lax.scan(opt.update, state, grads)[1]

    out["scan"] = run(opt.init(p32), stack(g32))
    return out


def fnn_float64(make, params, grads):
    with jax.enable_x64(True):
        opt = make()
        run = jax.jit(lambda s, gs: jax.lax.scan(opt.update, s, gs)[1])
        return jax.tree.map(np.asarray, run(opt.init(jax.tree.map(jnp.asarray, params)),
                                            stack(grads)))


def assert_twins(make, make_torch, seed=0, rtol32=2e-5, atol32=2e-6):
    params, grads = make_problem(seed)
    want = torch_trajectory(make_torch, params, grads)
    got64 = fnn_float64(make, params, grads)
    for k in want:
        np.testing.assert_allclose(got64[k], want[k], rtol=1e-10, atol=1e-12,
                                   err_msg=f"float64, leaf {k}")
    for mode, got in fnn_trajectories(make, params, grads).items():
        for k in want:
            np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=rtol32, atol=atol32,
                                       err_msg=f"float32 {mode}, leaf {k}")


T = torch.optim
CASES = {  # id: (fnn optimizer, torch optimizer over the dict of tensors)
    # coupled weight decay
    "sgd_wd": (lambda: optim.sgd(0.1, weight_decay=0.1),
               lambda p: T.SGD(p.values(), lr=0.1, weight_decay=0.1)),
    "momentum_wd": (lambda: optim.momentum(0.05, weight_decay=0.05),
                    lambda p: T.SGD(p.values(), lr=0.05, momentum=0.9, weight_decay=0.05)),
    "nesterov_wd": (lambda: optim.momentum(0.05, beta=0.8, nesterov=True, weight_decay=0.02),
                    lambda p: T.SGD(p.values(), lr=0.05, momentum=0.8, nesterov=True,
                                    weight_decay=0.02)),
    "adagrad_wd": (lambda: optim.adagrad(0.1, weight_decay=0.1),
                   lambda p: T.Adagrad(p.values(), lr=0.1, weight_decay=0.1)),
    "rmsprop_wd": (lambda: optim.rmsprop(0.01, weight_decay=0.1),
                   lambda p: T.RMSprop(p.values(), lr=0.01, weight_decay=0.1)),
    "adam_wd": (lambda: optim.adam(0.01, weight_decay=0.1),
                lambda p: T.Adam(p.values(), lr=0.01, weight_decay=0.1)),
    # RMSprop's momentum and centring
    "rmsprop_momentum": (lambda: optim.rmsprop(0.01, momentum=0.9),
                         lambda p: T.RMSprop(p.values(), lr=0.01, momentum=0.9)),
    "rmsprop_centered": (lambda: optim.rmsprop(0.01, centered=True),
                         lambda p: T.RMSprop(p.values(), lr=0.01, centered=True)),
    "rmsprop_all": (lambda: optim.rmsprop(0.005, decay=0.9, eps=1e-6, momentum=0.5,
                                          centered=True, weight_decay=0.01),
                    lambda p: T.RMSprop(p.values(), lr=0.005, alpha=0.9, eps=1e-6, momentum=0.5,
                                        centered=True, weight_decay=0.01)),
    # AMSGrad
    "adam_amsgrad": (lambda: optim.adam(0.01, amsgrad=True),
                     lambda p: T.Adam(p.values(), lr=0.01, amsgrad=True)),
    "adamw_amsgrad": (lambda: optim.adamw(0.01, b2=0.99, weight_decay=0.1, amsgrad=True),
                      lambda p: T.AdamW(p.values(), lr=0.01, betas=(0.9, 0.99), weight_decay=0.1,
                                        amsgrad=True)),
    # the new members of the Adam family, at their defaults and not
    "nadam": (optim.nadam, lambda p: T.NAdam(p.values())),
    "nadam_custom": (lambda: optim.nadam(0.01, b1=0.8, b2=0.99, eps=1e-6, momentum_decay=0.01),
                     lambda p: T.NAdam(p.values(), lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                       momentum_decay=0.01)),
    "radam": (optim.radam, lambda p: T.RAdam(p.values())),
    "radam_custom": (lambda: optim.radam(0.01, b1=0.8, b2=0.9, eps=1e-6),  # rectified from t=7
                     lambda p: T.RAdam(p.values(), lr=0.01, betas=(0.8, 0.9), eps=1e-6)),
    "adamax": (optim.adamax, lambda p: T.Adamax(p.values())),
    "adamax_custom": (lambda: optim.adamax(0.01, b1=0.5, b2=0.9, eps=1e-3),
                      lambda p: T.Adamax(p.values(), lr=0.01, betas=(0.5, 0.9), eps=1e-3)),
    # the seven of API.md section 3 at their defaults (float64 numpy references elsewhere)
    "adam": (optim.adam, lambda p: T.Adam(p.values())),
    "adamw": (optim.adamw, lambda p: T.AdamW(p.values())),
    "rmsprop": (optim.rmsprop, lambda p: T.RMSprop(p.values())),
    "adagrad": (optim.adagrad, lambda p: T.Adagrad(p.values())),
    "adadelta": (optim.adadelta, lambda p: T.Adadelta(p.values())),
    # per-group settings: torch's parameter groups
    "adamw_decay_mask": (
        lambda: optim.adamw(0.01, weight_decay=0.1, mask=optim.decay_mask),
        lambda p: T.AdamW([{"params": [p["w"]]}, {"params": [p["b"]], "weight_decay": 0.0}],
                          lr=0.01, weight_decay=0.1)),
    "partition": (
        lambda: optim.partition({"head": optim.adam(0.02, b1=0.8), "bias": optim.adam(0.005)},
                                {"w": "head", "b": "bias"}),
        lambda p: T.Adam([{"params": [p["w"]], "lr": 0.02, "betas": (0.8, 0.999)},
                          {"params": [p["b"]], "lr": 0.005}])),
}


@pytest.mark.parametrize("name", CASES)
def test_equals_torch_over_50_steps(name):
    make, make_torch = CASES[name]
    assert_twins(make, make_torch)


def test_radam_is_rectified_from_step_6_with_the_defaults():
    """ρ_t crosses 5 between t = 5 and 6 for b2 = 0.999: float32 finds the same step."""
    params, grads = {"w": np.ones(1)}, [{"w": np.ones(1)}] * 7
    opt = optim.radam(1.0)
    state = opt.init(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params))
    moves = []
    for g in grads:
        old = state.params["w"]
        state, new = jax.jit(opt.update)(state, jax.tree.map(jnp.float32, g))
        moves.append(float(old[0] - new["w"][0]))
    # unrectified steps move by lr·m̂ = 1 (constant gradient 1); rectified ones by r·… < 1
    np.testing.assert_allclose(moves[:5], 1.0, rtol=1e-6)
    assert all(0 < m < 0.5 for m in moves[5:]), moves


# ---------------------------------------------------------------------------
# ema = torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn


def test_ema_equals_torch_averaged_model():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    params, grads = make_problem(3)
    with torch_float64():
        model = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(v))
                                        for k, v in params.items()})
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
        averaged.update_parameters(model)   # the first call copies: ema starts at the params
        opt = T.Adam(model.parameters(), lr=0.05)
        want = []
        for g in grads:
            for k, t in model.items():
                t.grad = torch.tensor(g[k])
            opt.step()
            averaged.update_parameters(model)
            want.append({k: t.detach().numpy().copy() for k, t in averaged.module.items()})
    want = stack(want)

    def make():
        return optim.ema(optim.adam(0.05), decay=0.9)

    with jax.enable_x64(True):
        opt64 = make()
        state = opt64.init(jax.tree.map(jnp.asarray, params))
        history = []
        for g in grads:
            state, _ = jax.jit(opt64.update)(state, jax.tree.map(jnp.asarray, g))
            history.append(optim.ema_params(state))
        got = stack(jax.tree.map(np.asarray, history))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12)
    opt = make()

    @jax.jit
    def run(state, grads):
        return jax.lax.scan(lambda s, g: (opt.update(s, g)[0],) * 2, state, grads)[1].ema

    got = run(opt.init(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)),
              stack(grads))
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------------------
# schedules = their torch.optim.lr_scheduler twins, step by step


def torch_rates(base_lr, make_scheduler, n):
    """The learning rate torch uses for updates 0 .. n−1."""
    opt = T.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = make_scheduler(opt)
    rates = []
    for _ in range(n):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(rates)


S = T.lr_scheduler
SCHEDULE_TWINS = {  # id: (fnn schedule, torch base lr, torch scheduler, steps compared)
    "multistep": (schedules.multistep(0.1, [3, 7, 8], gamma=0.5), 0.1,
                  lambda o: S.MultiStepLR(o, [3, 7, 8], gamma=0.5), 12),
    "multistep_default_gamma": (schedules.multistep(0.3, [5]), 0.3,
                                lambda o: S.MultiStepLR(o, [5]), 8),
    "one_cycle": (schedules.one_cycle(0.1, 40), 0.1,
                  lambda o: S.OneCycleLR(o, 0.1, total_steps=40, cycle_momentum=False), 40),
    "one_cycle_custom": (schedules.one_cycle(0.5, 25, pct_start=0.5, div_factor=10.0,
                                             final_div_factor=100.0), 0.5,
                         lambda o: S.OneCycleLR(o, 0.5, total_steps=25, pct_start=0.5,
                                                div_factor=10.0, final_div_factor=100.0,
                                                cycle_momentum=False), 25),
    "one_cycle_no_rise": (schedules.one_cycle(0.2, 10, pct_start=0.0), 0.2,
                          lambda o: S.OneCycleLR(o, 0.2, total_steps=10, pct_start=0.0,
                                                 cycle_momentum=False), 10),
    "cosine_restarts": (schedules.cosine_restarts(0.1, 7), 0.1,
                        lambda o: S.CosineAnnealingWarmRestarts(o, 7), 30),
    "cosine_restarts_mult": (schedules.cosine_restarts(0.1, 3, period_mult=2, min_lr=0.01), 0.1,
                             lambda o: S.CosineAnnealingWarmRestarts(o, 3, T_mult=2,
                                                                     eta_min=0.01), 50),
    "linear_warmup_cosine": (
        schedules.linear_warmup(schedules.cosine_decay(0.1, 20), 5, start_lr=0.01), 0.1,
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=5),
                                     S.CosineAnnealingLR(o, T_max=20)], milestones=[5]), 25),
    "linear_warmup_constant": (
        schedules.linear_warmup(schedules.constant(0.3), 4, start_lr=0.03), 0.3,
        lambda o: S.LinearLR(o, start_factor=0.1, total_iters=4), 10),
}


@pytest.mark.parametrize("name", SCHEDULE_TWINS)
def test_schedule_equals_torch_step_by_step(name):
    schedule, base_lr, make_scheduler, n = SCHEDULE_TWINS[name]
    want = torch_rates(base_lr, make_scheduler, n)
    np.testing.assert_allclose(schedule(jnp.arange(n)), want, rtol=2e-6, atol=1e-9)
    traced = jax.jit(schedule)
    np.testing.assert_allclose([float(traced(jnp.int32(s))) for s in (0, n // 2, n - 1)],
                               want[[0, n // 2, n - 1]], rtol=2e-6, atol=1e-9)
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(schedule(jnp.arange(n))), want, rtol=1e-12,
                                   atol=1e-15)


def test_one_cycle_drives_an_optimizer_like_torch():
    """Inside an optimizer, update t uses schedule(t): the same rates torch steps through."""
    params, grads = make_problem(5)
    assert_twins(lambda: optim.momentum(schedules.one_cycle(0.1, N_STEPS), beta=0.9),
                 lambda p: _with_scheduler(T.SGD(p.values(), lr=0.1, momentum=0.9),
                                           lambda o: S.OneCycleLR(o, 0.1, total_steps=N_STEPS,
                                                                  cycle_momentum=False)),
                 seed=5)


class _with_scheduler:
    """A torch optimizer whose `step` also steps its scheduler (one per update)."""

    def __init__(self, opt, make_scheduler):
        self.opt, self.scheduler = opt, make_scheduler(opt)

    def step(self):
        self.opt.step()
        self.scheduler.step()

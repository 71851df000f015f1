"""Stochastic discrete lot-sizing on parallel machines (Felizardo et al., PDPPO) — ``"lotsizing"``.

``n`` items are made on ``m`` parallel machines over ``T`` periods. Each period every machine
either idles or produces one item; demand for every item is then drawn i.i.d. from
Binomial(``demand.n``, ``demand.p``) (Binomial(20, 0.4) in the paper's instances).

**State and observation** (float32 Box of length ``n + m``): ``[inventory_1..n, setup_1..m]``,
where ``setup_k`` ∈ {0, 1..n} is the item machine ``k`` is set up for (0: none).

**Action** (MultiDiscrete ``[n + 1] * m``): ``a_k = 0`` idles machine ``k``, ``a_k = j`` makes
item ``j``. Several machines may make the same item in one period.

**One period** (the order of operations, a choice where the paper is silent):

1. *Decision (deterministic, s^x = f(s, a))*. Machine ``k`` with ``a_k = j > 0`` and a
   positive rate ``rate[k, j]`` produces. If it was not already set up for ``j`` it pays
   ``setup_cost[k, j]`` and loses ``setup_loss[k, j]`` units of that period's output; its setup
   becomes ``j``. An idle machine — or one told to make an item it cannot make
   (``rate[k, j] = 0``, treated as idle) — loses its setup (setup 0), as in the reference
   implementation. Production ``max(rate − loss, 0)`` is added to the item's inventory, which is
   then capped at ``max_inventory`` (the excess is discarded, ``info["overflow"]``). The
   **post-decision state** ``s^x = [inventory after production, new setups]`` is returned in
   ``info["post_decision_obs"]`` (same layout and space as the observation).
2. *Demand (stochastic, s' = g(s^x, ξ))*. ``d_i ~ Binomial(demand.n_i, demand.p_i)``;
   ``sold = min(inventory^x, d)``, ``lost = d − sold``, ``inventory' = inventory^x − sold``.
   Setups are unchanged by the demand.
3. *Reward* ``= −(setup costs + lost_sales_cost · lost + holding_cost · inventory')``: holding
   is charged on the end-of-period inventory.

The episode is ``truncated`` after ``horizon`` periods (never ``terminated``: costs are
stationary and the observation carries no clock, so learners bootstrap at the time limit).

**Instances.** ``instance`` is a preset name, ``"tiny"``, a mapping in the file format below,
or a :class:`LotSizingInstance`; ``instance_file`` loads a YAML or JSON file instead;
``overrides`` replaces fields of whichever instance was chosen. The presets ``"15x5"``,
``"20x10"``, ``"25x10"`` (items × machines) are drawn from ``instance_seed`` by
:func:`generate_instance` — deterministic given the seed. Paper facts: T = 100, rates 0–40,
setup cost 1–2 with a loss of 1 unit, holding 0.01/unit, lost sales 0.2/unit, max inventory
100, demand Binomial(20, 0.4). Choices where the paper is silent: each (machine, item) pair is
capable with probability 0.6 (at least one machine per item and one item per machine); a
capable pair's rate is uniform on {1, …, 40} (0 = incapable); setup costs are uniform on
[1, 2] rounded to cents; the initial inventory is uniform on {0, …, max_inventory} and each
machine starts set up for a random item it can make, drawn at every reset from the
environment's generator (as in the reference implementation's random initial state).

**File format** (YAML or JSON; scalars broadcast; ``envs/instances/tiny_2x1.yaml`` is an
example)::

    name: tiny_2x1            # optional
    horizon: 100              # periods per episode
    n_items: 2
    n_machines: 1
    production_rate: [[10, 6]]     # [machine][item], integer units per period, 0 = cannot make
    setup_cost: [[1.5, 1.0]]       # [machine][item] (or a scalar)
    setup_loss: 1                  # [machine][item] integer units lost when setting up
    holding_cost: 0.01             # per item, per unit of end-of-period inventory
    lost_sales_cost: 0.2           # per item, per unit of unmet demand
    max_inventory: 100             # per item, integer
    demand: {n: 20, p: 0.4}        # Binomial(n, p) per item; n and p scalars or per-item lists
    initial_inventory: [5, 0]      # per item, or "random" (uniform on 0..max_inventory)
    initial_setup: [0]             # per machine (0 = none), or "random"

``reset(options={"inventory": [...], "setup": [...]})`` starts from a given state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prl.envs._registry import accepted_render_mode, register_env
from prl.errors import InvalidInputError

INSTANCE_DIR = Path(__file__).resolve().parent / "instances"
PRESETS: dict[str, tuple[int, int]] = {"15x5": (15, 5), "20x10": (20, 10), "25x10": (25, 10)}

# Paper facts (Felizardo et al.): used by the presets.
PAPER = {
    "horizon": 100,
    "max_rate": 40,
    "setup_cost": (1.0, 2.0),
    "setup_loss": 1,
    "holding_cost": 0.01,
    "lost_sales_cost": 0.2,
    "max_inventory": 100,
    "demand_n": 20,
    "demand_p": 0.4,
}
CAPABLE_PROB = 0.6  # our choice: probability that a machine can make a given item


@dataclass(frozen=True)
class LotSizingInstance:
    """One lot-sizing instance: rates and costs per (machine, item), demand law, initial state."""

    name: str
    horizon: int
    production_rate: np.ndarray  # int64 [m, n]
    setup_cost: np.ndarray  # float64 [m, n]
    setup_loss: np.ndarray  # int64 [m, n]
    holding_cost: np.ndarray  # float64 [n]
    lost_sales_cost: np.ndarray  # float64 [n]
    max_inventory: np.ndarray  # int64 [n]
    demand_n: np.ndarray  # int64 [n]
    demand_p: np.ndarray  # float64 [n]
    initial_inventory: np.ndarray | None  # int64 [n]; None = random at reset
    initial_setup: np.ndarray | None  # int64 [m]; None = random at reset

    @property
    def n_items(self) -> int:
        return int(self.production_rate.shape[1])

    @property
    def n_machines(self) -> int:
        return int(self.production_rate.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The instance in the documented file format (plain lists and numbers)."""

        def lst(x: np.ndarray | None) -> Any:
            return "random" if x is None else np.asarray(x).tolist()

        return {
            "name": self.name,
            "horizon": self.horizon,
            "n_items": self.n_items,
            "n_machines": self.n_machines,
            "production_rate": lst(self.production_rate),
            "setup_cost": lst(self.setup_cost),
            "setup_loss": lst(self.setup_loss),
            "holding_cost": lst(self.holding_cost),
            "lost_sales_cost": lst(self.lost_sales_cost),
            "max_inventory": lst(self.max_inventory),
            "demand": {"n": lst(self.demand_n), "p": lst(self.demand_p)},
            "initial_inventory": lst(self.initial_inventory),
            "initial_setup": lst(self.initial_setup),
        }

    def save(self, path: str | Path) -> None:
        """Write the instance as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
        path = Path(path)
        d = self.to_dict()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(d, sort_keys=False, default_flow_style=None))
        else:
            path.write_text(json.dumps(d, indent=2) + "\n")


def _array(value: Any, shape: tuple[int, ...], name: str, integer: bool, low: float) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be numeric, got {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(shape, float(arr))
    if arr.shape != shape:
        raise InvalidInputError(
            f"{name} must have shape {list(shape)} (or be a scalar), got {list(arr.shape)}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} contains NaN or inf")
    if np.any(arr < low):
        raise InvalidInputError(f"{name} must be >= {low}, got min {arr.min():g}")
    if integer:
        if not np.all(arr == np.round(arr)):
            raise InvalidInputError(f"{name} must hold integers, got {value!r}")
        return arr.astype(np.int64)
    return arr


_KEYS = {
    "name",
    "horizon",
    "n_items",
    "n_machines",
    "production_rate",
    "setup_cost",
    "setup_loss",
    "holding_cost",
    "lost_sales_cost",
    "max_inventory",
    "demand",
    "initial_inventory",
    "initial_setup",
}


def instance_from_dict(spec: dict[str, Any]) -> LotSizingInstance:
    """Validate a mapping in the documented file format and build the instance."""
    if not isinstance(spec, dict):
        raise InvalidInputError(
            f"a lot-sizing instance must be a mapping, got {type(spec).__name__}"
        )
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise InvalidInputError(
            f"unknown lot-sizing instance field(s) {unknown} (known: {sorted(_KEYS)})"
        )
    if "production_rate" not in spec:
        raise InvalidInputError("a lot-sizing instance needs production_rate [machine][item]")
    rate = np.asarray(spec["production_rate"], dtype=np.float64)
    if rate.ndim != 2 or rate.size == 0:
        raise InvalidInputError(
            "production_rate must be a non-empty [machine][item] matrix, "
            f"got shape {list(rate.shape)}"
        )
    m, n = rate.shape
    for key, val in (("n_items", n), ("n_machines", m)):
        if key in spec and int(spec[key]) != val:
            raise InvalidInputError(f"{key} is {spec[key]} but production_rate implies {val}")
    horizon = spec.get("horizon", PAPER["horizon"])
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise InvalidInputError(f"horizon must be a positive integer, got {horizon!r}")
    demand = spec.get("demand", {"n": PAPER["demand_n"], "p": PAPER["demand_p"]})
    if not isinstance(demand, dict) or set(demand) - {"n", "p"}:
        raise InvalidInputError(f"demand must be a mapping {{n: ..., p: ...}}, got {demand!r}")
    demand_p = _array(demand.get("p", PAPER["demand_p"]), (n,), "demand.p", False, 0.0)
    if np.any(demand_p > 1):
        raise InvalidInputError(f"demand.p must lie in [0, 1], got max {demand_p.max():g}")
    max_inv = _array(
        spec.get("max_inventory", PAPER["max_inventory"]), (n,), "max_inventory", True, 0
    )

    def initial(key: str, size: int, high: np.ndarray) -> np.ndarray | None:
        val = spec.get(key, "random")
        if isinstance(val, str):
            if val != "random":
                raise InvalidInputError(f"{key} must be a list or 'random', got {val!r}")
            return None
        arr = _array(val, (size,), key, True, 0)
        if np.any(arr > high):
            raise InvalidInputError(
                f"{key} exceeds its upper bound {high.tolist()}: {arr.tolist()}"
            )
        return arr

    return LotSizingInstance(
        name=str(spec.get("name", f"custom_{n}x{m}")),
        horizon=int(horizon),
        production_rate=_array(rate, (m, n), "production_rate", True, 0),
        setup_cost=_array(spec.get("setup_cost", 0.0), (m, n), "setup_cost", False, 0.0),
        setup_loss=_array(spec.get("setup_loss", 0), (m, n), "setup_loss", True, 0),
        holding_cost=_array(
            spec.get("holding_cost", PAPER["holding_cost"]), (n,), "holding_cost", False, 0.0
        ),
        lost_sales_cost=_array(
            spec.get("lost_sales_cost", PAPER["lost_sales_cost"]),
            (n,),
            "lost_sales_cost",
            False,
            0.0,
        ),
        max_inventory=max_inv,
        demand_n=_array(demand.get("n", PAPER["demand_n"]), (n,), "demand.n", True, 0),
        demand_p=demand_p,
        initial_inventory=initial("initial_inventory", n, max_inv),
        initial_setup=initial("initial_setup", m, np.full(m, n)),
    )


def load_instance(path: str | Path) -> LotSizingInstance:
    """Read an instance from a YAML (``.yaml``/``.yml``) or JSON file."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"lot-sizing instance file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            spec = json.loads(text)
    except Exception as exc:
        raise InvalidInputError(f"cannot parse {path}: {exc}".splitlines()[0]) from None
    spec = dict(spec) if isinstance(spec, dict) else spec
    if isinstance(spec, dict):
        spec.setdefault("name", path.stem)
    return instance_from_dict(spec)


def generate_instance(n_items: int, n_machines: int, seed: int = 0) -> LotSizingInstance:
    """A paper-style instance: random capabilities, rates and setup costs drawn from ``seed``."""
    if n_items < 1 or n_machines < 1:
        raise InvalidInputError(f"need n_items, n_machines >= 1, got {n_items}, {n_machines}")
    rng = np.random.default_rng([int(seed), int(n_items), int(n_machines)])
    m, n = n_machines, n_items
    capable = rng.random((m, n)) < CAPABLE_PROB
    for i in np.flatnonzero(~capable.any(axis=0)):  # every item on at least one machine
        capable[rng.integers(m), i] = True
    for k in np.flatnonzero(~capable.any(axis=1)):  # every machine makes at least one item
        capable[k, rng.integers(n)] = True
    rate = np.where(capable, rng.integers(1, PAPER["max_rate"] + 1, size=(m, n)), 0)
    lo, hi = PAPER["setup_cost"]
    setup_cost = np.where(capable, np.round(rng.uniform(lo, hi, size=(m, n)), 2), 0.0)
    return LotSizingInstance(
        name=f"{n}x{m}_seed{seed}",
        horizon=PAPER["horizon"],
        production_rate=rate.astype(np.int64),
        setup_cost=setup_cost,
        setup_loss=np.where(capable, PAPER["setup_loss"], 0).astype(np.int64),
        holding_cost=np.full(n, PAPER["holding_cost"]),
        lost_sales_cost=np.full(n, PAPER["lost_sales_cost"]),
        max_inventory=np.full(n, PAPER["max_inventory"], dtype=np.int64),
        demand_n=np.full(n, PAPER["demand_n"], dtype=np.int64),
        demand_p=np.full(n, PAPER["demand_p"]),
        initial_inventory=None,
        initial_setup=None,
    )


def tiny_instance(**overrides: Any) -> LotSizingInstance:
    """A 2-item, 1-machine instance for tests and teaching (fields overridable, file format)."""
    spec: dict[str, Any] = {
        "name": "tiny_2x1",
        "horizon": 10,
        "production_rate": [[10, 6]],
        "setup_cost": [[1.5, 1.0]],
        "setup_loss": 1,
        "holding_cost": 0.01,
        "lost_sales_cost": 0.2,
        "max_inventory": 30,
        "demand": {"n": 20, "p": 0.4},
        "initial_inventory": [5, 0],
        "initial_setup": [0],
    }
    spec.update(overrides)
    return instance_from_dict(spec)


def resolve_instance(
    instance: Any = "15x5",
    instance_file: str | Path | None = None,
    instance_seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> LotSizingInstance:
    """The instance named by the environment's arguments (preset, tiny, mapping, file)."""
    if instance_file is not None:
        inst = load_instance(instance_file)
    elif isinstance(instance, LotSizingInstance):
        inst = instance
    elif isinstance(instance, dict):
        inst = instance_from_dict(instance)
    elif instance == "tiny":
        inst = tiny_instance()
    elif isinstance(instance, str) and instance in PRESETS:
        n, m = PRESETS[instance]
        inst = generate_instance(n, m, seed=int(instance_seed))
    else:
        raise InvalidInputError(
            f"instance must be one of {[*PRESETS, 'tiny']}, a mapping or a LotSizingInstance; "
            f"got {instance!r}"
        )
    if overrides:
        spec = inst.to_dict()
        if "demand" in overrides and isinstance(overrides["demand"], dict):
            overrides = {**overrides, "demand": {**spec["demand"], **overrides["demand"]}}
        spec.update(overrides)
        for key in ("n_items", "n_machines"):
            if key not in overrides:
                spec.pop(key)
        inst = instance_from_dict(spec)
    return inst


class LotSizingEnv(gym.Env):
    """Stochastic discrete lot-sizing; post-decision state in ``info["post_decision_obs"]``."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012  (gymnasium convention)

    def __init__(
        self,
        instance: Any = "15x5",
        instance_file: str | None = None,
        instance_seed: int = 0,
        overrides: dict[str, Any] | None = None,
        horizon: int | None = None,
        render_mode: str | None = None,
    ):
        render_mode = accepted_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        if horizon is not None:
            overrides = {**(overrides or {}), "horizon": horizon}
        inst = resolve_instance(instance, instance_file, instance_seed, overrides)
        self.instance = inst
        self.render_mode = render_mode
        n, m = inst.n_items, inst.n_machines
        self.n_items, self.n_machines, self.horizon = n, m, inst.horizon
        high = np.concatenate([inst.max_inventory, np.full(m, n)]).astype(np.float32)
        self.observation_space = spaces.Box(0.0, high, shape=(n + m,), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete(np.full(m, n + 1, dtype=np.int64))
        # padded tables: column 0 is "idle" (rate 0, no cost) so that a[k] indexes directly
        pad = np.zeros((m, 1))
        self._rate = np.hstack([pad, inst.production_rate]).astype(np.int64)
        self._setup_cost = np.hstack([pad, inst.setup_cost])
        self._setup_loss = np.hstack([pad, inst.setup_loss]).astype(np.int64)
        self._capable = [np.flatnonzero(inst.production_rate[k]) + 1 for k in range(m)]
        self.inventory = np.zeros(n, dtype=np.int64)
        self.setup = np.zeros(m, dtype=np.int64)
        self.t = 0
        self._max_inv = inst.max_inventory
        self._rate_l = self._rate.tolist()
        self._cost_l = self._setup_cost.tolist()
        self._loss_l = self._setup_loss.tolist()
        self._obs_buf_len = n + m
        self._last_action: np.ndarray | None = None
        self._last_demand: np.ndarray | None = None
        self._last_reward = 0.0

    # ---- state -------------------------------------------------------------------------------
    def _obs(self, inventory: np.ndarray, setup: np.ndarray) -> np.ndarray:
        out = np.empty(self._obs_buf_len, dtype=np.float32)
        out[: self.n_items] = inventory
        out[self.n_items :] = setup
        return out

    def get_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (inventory, setups, period, generator) for exact resumption."""
        return {
            "inventory": self.inventory.tolist(),
            "setup": self.setup.tolist(),
            "t": self.t,
            "rng": json.loads(json.dumps(self.np_random.bit_generator.state, default=int)),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`get_state`."""
        self.inventory = np.asarray(state["inventory"], dtype=np.int64)
        self.setup = np.asarray(state["setup"], dtype=np.int64)
        self.t = int(state["t"])
        self.np_random.bit_generator.state = state["rng"]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Initial inventory and setups: ``options``, else the instance's, else random."""
        super().reset(seed=seed)
        inst, rng = self.instance, self.np_random
        options = options or {}
        if "inventory" in options:
            inv = _array(options["inventory"], (self.n_items,), "options['inventory']", True, 0)
            if np.any(inv > inst.max_inventory):
                raise InvalidInputError(
                    f"options['inventory'] exceeds max_inventory: {inv.tolist()}"
                )
        elif inst.initial_inventory is not None:
            inv = inst.initial_inventory.copy()
        else:
            inv = rng.integers(0, inst.max_inventory + 1)
        if "setup" in options:
            setup = _array(options["setup"], (self.n_machines,), "options['setup']", True, 0)
            if np.any(setup > self.n_items):
                raise InvalidInputError(f"options['setup'] must lie in 0..{self.n_items}")
        elif inst.initial_setup is not None:
            setup = inst.initial_setup.copy()
        else:
            setup = np.array(
                [c[rng.integers(len(c))] if len(c) else 0 for c in self._capable], dtype=np.int64
            )
        self.inventory = np.asarray(inv, dtype=np.int64)
        self.setup = np.asarray(setup, dtype=np.int64)
        self.t = 0
        self._last_action = self._last_demand = None
        self._last_reward = 0.0
        return self._obs(self.inventory, self.setup), {}

    # ---- dynamics ----------------------------------------------------------------------------
    def post_decision(
        self, inventory: np.ndarray, setup: np.ndarray, action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The deterministic step s^x = f(s, a): (inventory^x, setup^x, costs and production)."""
        n = self.n_items
        per_item = [0] * (n + 1)
        setup_x = [0] * self.n_machines
        setup_cost, setups = 0.0, 0
        for k, (j, s) in enumerate(zip(action.tolist(), setup.tolist())):
            r = self._rate_l[k][j]
            if r <= 0:  # idle, or an item the machine cannot make: no production, no setup
                continue
            if j != s:
                setup_cost += self._cost_l[k][j]
                setups += 1
                r = max(r - self._loss_l[k][j], 0)
            per_item[j] += r
            setup_x[k] = j
        produced = np.array(per_item[1:], dtype=np.int64)
        raw = inventory + produced
        inv_x = np.minimum(raw, self._max_inv)
        return (
            inv_x,
            np.array(setup_x, dtype=np.int64),
            {
                "setup_cost": setup_cost,
                "setups": setups,
                "production": produced,
                "overflow": raw - inv_x,
            },
        )

    def _check_action(self, action: Any) -> np.ndarray:
        a = action
        if not (
            isinstance(a, np.ndarray) and a.shape == (self.n_machines,) and a.dtype.kind in "iu"
        ):
            try:
                a2 = np.asarray(action, dtype=np.float64).reshape(self.n_machines)
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"action must be {self.n_machines} integers in 0..{self.n_items}, "
                    f"got {action!r}"
                ) from None
            if not np.all(a2 == np.round(a2)):
                raise InvalidInputError(f"action must hold integers, got {action!r}")
            a = a2
        a = a.astype(np.int64)
        if a.min() < 0 or a.max() > self.n_items:
            raise InvalidInputError(
                f"action entries must lie in 0..{self.n_items} (0 = idle), got {a.tolist()}"
            )
        return a

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Decide (setups, production: the post-decision state), then demand, then costs."""
        a = self._check_action(action)
        inst = self.instance
        inv_x, setup_x, info = self.post_decision(self.inventory, self.setup, a)
        post_obs = self._obs(inv_x, setup_x)
        demand = self.np_random.binomial(inst.demand_n, inst.demand_p)
        sold = np.minimum(inv_x, demand)
        lost = demand - sold
        inv_next = inv_x - sold
        lost_cost = float(inst.lost_sales_cost @ lost)
        holding_cost = float(inst.holding_cost @ inv_next)
        reward = -(info["setup_cost"] + lost_cost + holding_cost)
        self.inventory, self.setup = inv_next, setup_x
        self.t += 1
        info.update(
            post_decision_obs=post_obs,
            demand=demand,
            sold=sold,
            lost_sales=lost,
            lost_sales_cost=lost_cost,
            holding_cost=holding_cost,
        )
        self._last_action, self._last_reward, self._last_demand = a, reward, demand
        truncated = self.t >= self.horizon
        return self._obs(inv_next, setup_x), float(reward), False, truncated, info

    def render(self) -> str | None:
        """Period, inventories, setups and the last period's costs (``"ansi"`` mode)."""
        if self.render_mode != "ansi":
            return None
        last = ""
        if self._last_action is not None:
            last = (
                f"\n  last action {self._last_action.tolist()} "
                f"demand {self._last_demand.tolist()} reward {self._last_reward:.3f}"
            )
        return (
            f"t={self.t}/{self.horizon} inventory={self.inventory.tolist()} "
            f"setup={self.setup.tolist()}{last}\n"
        )


register_env(
    "lotsizing",
    LotSizingEnv,
    "LotSizing-v0",
    "stochastic lot-sizing on parallel machines (PDPPO): presets 15x5, 20x10, 25x10, tiny, file",
)

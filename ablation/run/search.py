"""The Optuna side of a run: the study's ledger of trials and the order trials are run in.

One Optuna trial per (variant, seed), with user attrs `trial_id`, `variant`, `seed`. The driver
is the only writer. Designed studies are enqueued trial by trial (never GridSampler, which
repeats points under concurrency); `design: optuna` lets a seeded sampler choose each variant
over the factor space, and the same point is then enqueued for the variant's other seeds.
Enqueue and ask happen together, right before a trial starts, so the asked trial is always the
one just enqueued.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from ablation.vocabulary.direction import Direction

if TYPE_CHECKING:
    from ablation.study import Study, TrialSpec

# Attribute names on Optuna trials.
ATTR_TRIAL_ID = "trial_id"
ATTR_VARIANT = "variant"
ATTR_SEED = "seed"
ATTR_DUPLICATE = "duplicate_of"
# How many sampler proposals in a row may repeat a known variant before the search stops.
MAX_REPEATS = 50

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(study: Study) -> optuna.samplers.BaseSampler:
    """The study's seeded sampler (`grid` is enumerated by the caller, so it gets a random one)."""
    search = study.search
    seed = search.seed
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def objectives(study: Study) -> list[tuple[str, str]]:
    """(metric, mode) pairs Optuna is told: search.objectives for design optuna, else the metric."""
    if study.design == "optuna":
        return [(o.metric, o.mode) for o in study.objectives]
    return [(study.metric.name, study.metric.mode)]


def objective_values(
    study: Study, final: Mapping[str, float], history: Mapping[int, Mapping[str, float]]
) -> list[float] | None:
    """The trial's objective values; the study metric at metric.epoch when the file declares one."""
    values = []
    for metric, _ in objectives(study):
        value = final.get(metric)
        declared = study.metric.epoch
        if metric == study.metric.name and declared is not None and declared in history:
            value = history[declared].get(metric, value)
        if value is None or not math.isfinite(value):
            return None
        values.append(float(value))
    return values


class Ledger:
    """The study's Optuna trials: which trial ids are done, and the one writer of new ones."""

    def __init__(self, storage: str, study: Study, space: Mapping[str, list[Any]]) -> None:
        """`space`: each factor's levels (ablation.study.factor_space), the params' choices."""
        self.spec_study = study
        self.storage_url = storage
        self.storage = _storage(storage)
        directions = [Direction.of(mode).optuna for _, mode in objectives(study)]
        self.study = optuna.create_study(
            study_name=study.study,
            storage=self.storage,
            directions=directions,
            sampler=make_sampler(study),
            load_if_exists=True,
        )
        if len(self.study.directions) != len(directions):
            raise ValueError(
                f"the Optuna study {study.study!r} in {storage} has "
                f"{len(self.study.directions)} objective(s), the study file {len(directions)}; "
                "give it another storage (--optuna-storage) or another study name"
            )
        self._asked: dict[int, optuna.Trial] = {}  # asked here, not told yet
        self._factor_distributions = {
            key: CategoricalDistribution([json.dumps(level) for level in levels])
            for key, levels in space.items()
        }

    def recover(self) -> int:
        """Fail the trials a dead driver left RUNNING or WAITING; returns how many.

        The study has one live driver (this one), so any trial still open is stale. Optuna's
        `fail_stale_trials` only sees trials with heartbeats, which ask-and-tell trials do not
        send; `tell` fails a RUNNING trial, and asking pops a WAITING one so it can be told.
        """
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        for trial in running:
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        for _ in waiting:
            self.study.tell(self.study.ask(), state=TrialState.FAIL)
        return len(running) + len(waiting)

    def trials_by_id(self) -> dict[str, list[optuna.trial.FrozenTrial]]:
        out: dict[str, list[optuna.trial.FrozenTrial]] = {}
        for trial in self.study.get_trials(deepcopy=False):
            trial_id = trial.user_attrs.get(ATTR_TRIAL_ID)
            if trial_id and ATTR_DUPLICATE not in trial.user_attrs:
                out.setdefault(trial_id, []).append(trial)
        return out

    def sampled_levels(self) -> list[dict[str, Any]]:
        """The factor levels of every variant the sampler chose before, in the order chosen."""
        seen: list[dict[str, Any]] = []
        for trial in self.study.get_trials(deepcopy=False):
            if ATTR_DUPLICATE in trial.user_attrs or ATTR_TRIAL_ID not in trial.user_attrs:
                continue
            levels = self._levels(trial.params)
            if levels and levels not in seen:
                seen.append(levels)
        return seen

    def start(self, spec: TrialSpec) -> int:
        """Enqueue the trial's fixed point and ask it at once; returns the Optuna trial number.

        The factor levels become the trial's params (JSON strings over each factor's levels);
        named variants have none. Should an edited study file have changed a factor's levels,
        Optuna refuses the new choices, and the trial is kept without those params.
        """
        params = {k: json.dumps(v) for k, v in spec.levels.items() if self._known(k, v)}
        self.study.enqueue_trial(params, user_attrs=_attrs(spec))
        trial = self._ask()
        if trial.user_attrs.get(ATTR_TRIAL_ID) != spec.trial_id:  # another writer interfered
            raise RuntimeError(
                f"Optuna study {self.study.study_name!r}: asked trial {trial.number} is not "
                f"the one just enqueued ({spec.trial_id}); is another driver running it?"
            )
        for key in params:
            try:  # the enqueued (fixed) value
                trial.suggest_categorical(key, self._factor_distributions[key].choices)
            except ValueError:  # incompatible with the distribution earlier trials recorded
                continue
        return trial.number

    def ask_levels(self) -> tuple[int, dict[str, Any]]:
        """Let the sampler choose a point of the factor space: (Optuna trial number, levels)."""
        trial = self._ask(self._factor_distributions)
        return trial.number, self._levels(trial.params)

    def claim(self, number: int, spec: TrialSpec) -> None:
        """Make a sampler-asked trial the record of `spec` (its first seed)."""
        for key, value in _attrs(spec).items():
            self._asked[number].set_user_attr(key, value)

    def discard_repeat(self, number: int, variant: str) -> None:
        """A sampler proposal of a variant already run: kept as FAIL, marked as a repeat."""
        self._asked[number].set_user_attr(ATTR_DUPLICATE, variant)
        self._tell(number, state=TrialState.FAIL)

    def complete(self, number: int, values: list[float] | None) -> None:
        if values is None:
            self._tell(number, state=TrialState.FAIL, skip_if_finished=True)
        else:
            self._tell(number, values, skip_if_finished=True)

    def prune(self, number: int) -> None:
        self._tell(number, state=TrialState.PRUNED, skip_if_finished=True)

    def fail(self, number: int) -> None:
        self._tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def record(self, spec: TrialSpec, values: list[float] | None) -> None:
        """A trial finished outside this run (earlier run, or reused): one COMPLETE trial."""
        self.complete(self.start(spec), values)

    def _levels(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in params.items() if k in self._factor_distributions}

    def _known(self, key: str, level: Any) -> bool:
        dist = self._factor_distributions.get(key)
        return dist is not None and json.dumps(level) in dist.choices

    def _ask(self, distributions: dict[str, Any] | None = None) -> optuna.Trial:
        # The asked Trial is kept until told: user attrs are set through it (Optuna's public
        # way to write to a running trial), not through the storage by trial id.
        trial = self.study.ask(distributions)
        self._asked[trial.number] = trial
        return trial

    def _tell(self, number: int, *args: Any, **kwargs: Any) -> None:
        self.study.tell(self._asked.pop(number, number), *args, **kwargs)


def _attrs(spec: TrialSpec) -> dict[str, Any]:
    return {ATTR_TRIAL_ID: spec.trial_id, ATTR_VARIANT: spec.variant, ATTR_SEED: spec.seed}


class MissingDriver(RuntimeError):
    """A postgresql:// storage without a PostgreSQL driver installed; one line, naming the
    extra that installs them."""


def storage_url(url: str) -> str:
    """The SQLAlchemy URL of an Optuna storage URL (also used by ablation.run.lease); raises
    MissingDriver for a postgresql:// URL when neither PostgreSQL driver is installed."""
    if not url.startswith("postgresql"):
        return url
    has_psycopg3 = importlib.util.find_spec("psycopg") is not None
    if not has_psycopg3 and importlib.util.find_spec("psycopg2") is None:
        # The drivers are the `server` extra's: `make demo`'s plain install has neither.
        raise MissingDriver(
            "the Optuna storage is PostgreSQL but no PostgreSQL driver is installed: "
            "pip install '.[server]' (from the repository) installs psycopg 3 and psycopg2"
        )
    if url.startswith("postgresql://") and not has_psycopg3:
        # SQLAlchemy 2.1 reads a plain postgresql:// as psycopg 3; only psycopg2 is here.
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _storage(url: str) -> optuna.storages.BaseStorage:
    url = storage_url(url)
    if url.startswith("sqlite"):
        # One writer, but `ablation status` may read while a run writes: wait, don't fail.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


# -- the order trials run in ---------------------------------------------------------------


class TrialQueue:
    """The trials still to run, in order; for `design: optuna`, asks the sampler for more.

    `next()` returns (spec, Optuna trial number) with the Optuna trial already RUNNING, or
    None when the study has nothing left to run. `is_done(trial_id)` says a trial needs no run
    (finished before, reused, or already started in this run), so no trial ever runs twice.
    """

    def __init__(
        self,
        ledger: Ledger,
        pending: list[TrialSpec],
        *,
        is_done: Callable[[str], bool],
        sample: Callable[[], Iterator[tuple[int, list[TrialSpec]]]] | None = None,
    ) -> None:
        self.ledger = ledger
        self._pending = deque(pending)
        self._is_done = is_done
        self._sample = sample() if sample else None
        self.started: set[str] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def extend(self, specs: list[TrialSpec]) -> None:
        """More trials to run after those pending (sequential seeds: the next look's)."""
        self._pending.extend(specs)

    @property
    def may_sample(self) -> bool:
        """Whether the sampler may still propose variants (it has not said it is done)."""
        return self._sample is not None

    def next(self) -> tuple[TrialSpec, int] | None:
        while self._pending:
            spec = self._pending.popleft()
            if spec.trial_id in self.started or self._is_done(spec.trial_id):
                continue
            self.started.add(spec.trial_id)
            return spec, self.ledger.start(spec)
        if self._sample is None:
            return None
        for number, specs in self._sample:
            fresh = [
                s for s in specs if s.trial_id not in self.started and not self._is_done(s.trial_id)
            ]
            if not fresh:  # the point is a variant known by other means (e.g. the baseline)
                self.ledger.discard_repeat(number, specs[0].variant)
                continue
            first, *rest = fresh
            self.started.add(first.trial_id)
            self.ledger.claim(number, first)
            self._pending.extend(rest)
            return first, number
        self._sample = None
        return None


def sampled_variants(
    study: Study,
    ledger: Ledger,
    space: Mapping[str, list[Any]],
    *,
    budget: int,
    known: list[dict[str, Any]],
    make_specs: Callable[[dict[str, Any]], list[TrialSpec]],
) -> Iterator[tuple[int, list[TrialSpec]]]:
    """Up to `budget` new variants over the factor space: (Optuna trial number, their trials).

    `grid` enumerates the space in order (each point once); the other samplers are asked, and a
    proposal of a variant already known is kept as a marked FAIL and asked again (at most
    MAX_REPEATS times in a row, then the space is taken as exhausted). `known`: the levels of
    variants the study has already (sampled before, or design variants such as the baseline).
    """
    factors = space
    size = math.prod(len(levels) for levels in factors.values())
    seen = list(known)
    made = 0
    if study.search.sampler == "grid":
        for combo in itertools.product(*factors.values()):
            if made >= budget:
                return
            levels = dict(zip(factors, combo, strict=True))
            if levels in seen:
                continue
            seen.append(levels)
            specs = make_specs(levels)
            number = ledger.start(specs[0])
            made += 1
            yield number, specs
        return
    repeats = 0
    while made < budget and len(seen) < size and repeats < MAX_REPEATS:
        number, levels = ledger.ask_levels()
        specs = make_specs(levels)
        if levels in seen:
            ledger.discard_repeat(number, specs[0].variant)
            repeats += 1
            continue
        repeats = 0
        seen.append(levels)
        made += 1
        yield number, specs

"""Designs: which variants a study runs.

- `full-factorial`: every combination of the factor levels (the last factor varies fastest).
- `one-at-a-time`: the default configuration (every factor at its value in the base sections),
  then, factor by factor, each of its other levels with every other factor at its default.
- `fractional`: a regular two-level fraction of resolution IV or more (pyDOE3), with its
  aliasing structure (`fractional_design(study).describe()`).
- `optuna`: the sampler picks levels as it goes; `factor_space` gives the choices and
  `variant_from_levels` turns a pick into a variant.

Named `variants` add to every design. `expand` turns the variants into trials: every variant
runs every seed. Levels here are always the validated values (a level `1` of a float key is
`1.0`), so equal configurations compare equal.
"""

from __future__ import annotations

import itertools
import json
import math
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ablation.study.schema import Study, get_path
from ablation.study.trials import (
    TrialSpec,
    Variant,
    canonical_json,
    resolve_config,
    trials_for_variant,
)

DESIGNED = ("full-factorial", "one-at-a-time", "fractional")
# Up to this many generator sets are all tried when choosing a fraction.
EXHAUSTIVE_LIMIT = 20_000


class DesignError(ValueError):
    """A design that cannot be built from the factors; `key` is the study key to blame."""

    def __init__(self, key: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


# -- levels and names ----------------------------------------------------------------------


def factor_space(study: Study) -> dict[str, list[Any]]:
    """Each factor's levels as validated values, in file order: what a sampler chooses among.

    For Optuna, use categorical distributions over level indices (`range(len(levels))`) or
    over `level_label(level)` strings (distinct within a factor), then `variant_from_levels`.
    """
    return {
        key: [get_path(resolve_config(study, {key: level}), key) for level in levels]
        for key, levels in study.factors.items()
    }


def level_label(level: Any) -> str:
    """A short readable label of a level: `[avg, max]` -> `avg+max`, `true` -> `true`."""
    if isinstance(level, bool):
        return "true" if level else "false"
    if level is None:
        return "none"
    if isinstance(level, list | tuple):
        return "+".join(level_label(v) for v in level) if level else "[]"
    if isinstance(level, dict):
        return json.dumps(level, sort_keys=True, separators=(",", ":"))
    return str(level)


def factor_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest dotted suffix that no other key ends with (for names)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            others = [k for k in keys if k != key and (k == suffix or k.endswith("." + suffix))]
            if not others:
                names[key] = suffix
                break
        else:  # pragma: no cover - keys are distinct, so the full key always works
            names[key] = key
    return names


def variant_name(levels: dict[str, Any], keys: list[str]) -> str:
    """`channel_pool=avg+max,kernel_size=7`: the design variant's name, from its levels."""
    short = factor_names(keys)
    return ",".join(f"{short[k]}={level_label(levels[k])}" for k in keys)


def _design_variant(study: Study, levels: dict[str, Any], base: dict[str, Any]) -> Variant:
    keys = list(study.factors)
    return Variant(
        name=variant_name(levels, keys),
        levels=dict(levels),
        overrides=dict(levels),
        kind="design",
        is_base=all(_same(levels[k], get_path(base, k)) for k in keys),
    )


def _same(a: Any, b: Any) -> bool:
    return canonical_json(a) == canonical_json(b)


def variant_from_levels(study: Study, levels: dict[str, Any]) -> Variant:
    """The design variant with these factor levels (dotted key -> level, every factor once).

    Each level must be one of the factor's levels (validated value, or as written in the file).
    Raises ValueError otherwise.
    """
    space = factor_space(study)
    if set(levels) != set(space):
        missing, extra = sorted(set(space) - set(levels)), sorted(set(levels) - set(space))
        raise ValueError(f"levels must name every factor once; missing {missing}, unknown {extra}")
    chosen = {}
    for key, choices in space.items():
        value = levels[key]
        raw = study.factors[key]
        for i, choice in enumerate(choices):
            if _same(value, choice) or _same(value, raw[i]):
                chosen[key] = choice
                break
        else:
            raise ValueError(f"{value!r} is not a level of factor {key}; levels: {choices}")
    return _design_variant(study, chosen, resolve_config(study, {}))


def levels_from_labels(study: Study, labels: dict[str, str]) -> dict[str, Any]:
    """Inverse of `level_label` per factor: {key: label} -> {key: level}."""
    space = factor_space(study)
    out = {}
    for key, label in labels.items():
        matches = [lv for lv in space[key] if level_label(lv) == label]
        if not matches:
            raise ValueError(f"{label!r} is not a level label of factor {key}")
        out[key] = matches[0]
    return out


# -- the designs -----------------------------------------------------------------------------


def full_factorial(study: Study) -> list[Variant]:
    space, base = factor_space(study), resolve_config(study, {})
    keys = list(space)
    return [
        _design_variant(study, dict(zip(keys, combo, strict=True)), base)
        for combo in itertools.product(*space.values())
    ]


def one_at_a_time(study: Study) -> list[Variant]:
    space, base = factor_space(study), resolve_config(study, {})
    default = {k: get_path(base, k) for k in space}
    variants = [_design_variant(study, default, base)]
    for key, levels in space.items():
        for level in levels:
            if not _same(level, default[key]):
                variants.append(_design_variant(study, {**default, key: level}, base))
    return variants


@dataclass(frozen=True)
class FractionalDesign:
    """A regular two-level fraction: factor `keys[i]` is column letter `letters[i]`."""

    keys: list[str]
    letters: list[str]
    generators: str  # pyDOE3's generator string, e.g. "a b c d abcd"
    resolution: int | None  # None: no aliasing (a full factorial)
    matrix: list[list[int]]  # runs x factors, -1 = first level, +1 = second
    aliases: list[str]  # pyDOE3.fracfact_aliasing, in letters

    @property
    def runs(self) -> int:
        return len(self.matrix)

    def describe(self) -> str:
        """The fraction, its defining relation and aliasing, readable."""
        k, runs = len(self.keys), self.runs
        p = k - int(math.log2(runs))
        res = _roman(self.resolution) if self.resolution else "full (no aliasing)"
        lines = [f"fractional factorial 2^({k}-{p}) = {runs} runs, resolution {res}"]
        lines.append(
            "factors: "
            + ", ".join(f"{a} = {key}" for a, key in zip(self.letters, self.keys, strict=True))
        )
        lines.append(f"generators: {self.generators}")
        if self.resolution:
            words = _defining_words(self.generators)
            lines.append(
                "defining relation: I = " + " = ".join(sorted(words, key=lambda w: (len(w), w)))
            )
        lines.append("aliases (main effects and two-factor interactions):")
        for chain in self.aliases:
            terms = [t.strip() for t in chain.split("=")]
            if min(len(t) for t in terms) <= 2 and len(terms) > 1:
                lines.append("  " + " = ".join(terms))
        return "\n".join(lines)


def _roman(n: int) -> str:
    return {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(n, str(n))


def _parse_generators(generators: str, k: int) -> list[str]:
    tokens = generators.split()
    if len(tokens) != k:
        raise ValueError(f"has {len(tokens)} words for {k} factors; give one word per factor")
    for t in tokens:
        if not t.lstrip("+-").isalpha() or not t.lstrip("+-").islower():
            raise ValueError(f"word {t!r} must be lower-case letters, optionally signed")
    return tokens


def _defining_words(generators: str) -> set[str]:
    """The words of the defining relation, in pyDOE3's column letters (a, b, c, ...)."""
    tokens = [t.lstrip("+-") for t in generators.split()]
    column = {t: string.ascii_lowercase[i] for i, t in enumerate(tokens) if len(t) == 1}
    base_words = []
    for i, t in enumerate(tokens):
        if len(t) > 1:
            letters = {column[c] for c in t}
            base_words.append(frozenset(letters ^ {string.ascii_lowercase[i]}))
    words = set()
    for r in range(1, len(base_words) + 1):
        for combo in itertools.combinations(base_words, r):
            w: frozenset[str] = frozenset()
            for part in combo:
                w = w ^ part
            words.add("".join(sorted(w)))
    return words


def _generators(k: int, min_resolution: int) -> str | None:
    """A generator string for k two-level factors: the fewest runs whose fraction has resolution
    >= `min_resolution`, and among those the highest resolution; None if there is none.

    As in pyDOE3's `fracfact_by_res`, the added factors are interactions of the base factors;
    unlike it, every set of interactions is tried (up to EXHAUSTIVE_LIMIT sets), including the
    interaction of all base factors (the classic 2^(5-1) resolution V fraction, E = ABCD), and
    each candidate's resolution is computed from its whole defining relation.
    """
    for n_base in range(1, k + 1):
        if n_base == k:
            return " ".join(string.ascii_lowercase[:k])  # the full factorial, no aliasing
        base = list(string.ascii_lowercase[:n_base])
        pool = ["".join(c) for r in range(2, n_base + 1) for c in itertools.combinations(base, r)]
        p = k - n_base
        if len(pool) < p:
            continue
        if math.comb(len(pool), p) <= EXHAUSTIVE_LIMIT:  # every choice of generators
            choices: Iterable[tuple[str, ...]] = itertools.combinations(pool, p)
        else:  # too many: add interactions greedily, longest first, while resolution holds
            chosen: list[str] = []
            for word in sorted(pool, key=len, reverse=True):
                if len(chosen) == p:
                    break
                trial = " ".join(base + chosen + [word])
                if (_resolution(trial) or k + 1) >= min_resolution:
                    chosen.append(word)
            choices = [tuple(chosen)] if len(chosen) == p else []
        best: tuple[int, str] | None = None
        for extra in choices:
            gen = " ".join(base + list(extra))
            res = _resolution(gen) or k + 1
            if res >= min_resolution and (best is None or res > best[0]):
                best = (res, gen)
        if best is not None:
            return best[1]
    return None


def fractional_design(study: Study) -> FractionalDesign:
    """The study's fraction: the fewest runs at resolution IV, at the highest resolution those
    runs allow (or `fractional.resolution`, or the given `fractional.generators`).

    Raises DesignError when a factor has other than two levels or no such fraction exists.
    """
    import pyDOE3

    keys = list(study.factors)
    k = len(keys)
    for key, levels in study.factors.items():
        if len(levels) != 2:
            raise DesignError(
                ("factors", key),
                f"design fractional needs two-level factors; this one has {len(levels)} levels",
            )
    options = study.fractional
    if options is not None and options.generators is not None:
        try:
            tokens = _parse_generators(options.generators, k)
            matrix = pyDOE3.fracfact(" ".join(tokens))
        except Exception as exc:  # pyDOE3 raises several types for a malformed generator
            raise DesignError(
                ("fractional", "generators"), f"not a valid generator: {exc}"
            ) from exc
        generators = " ".join(tokens)
        resolution = _resolution(generators)
        if resolution is not None and resolution < 4:
            raise DesignError(
                ("fractional", "generators"),
                f"gives resolution {_roman(resolution)}; main effects would be aliased with "
                "two-factor interactions (resolution IV or more is required)",
            )
    else:
        if k < 4:
            raise DesignError(
                ("design",),
                f"a fraction of resolution IV needs at least 4 two-level factors; with {k}, "
                f"use design: full-factorial ({2**k} runs)",
            )
        wanted = options.resolution if options and options.resolution else 4
        generators = _generators(k, wanted)
        if generators is None or all(len(t) == 1 for t in generators.split()):
            raise DesignError(
                ("fractional", "resolution"),
                f"no regular two-level fraction of resolution {wanted} for {k} factors (only "
                f"the full factorial, {2**k} runs: use design: full-factorial)",
            )
        matrix = pyDOE3.fracfact(generators)
        resolution = _resolution(generators)
    aliases, _ = pyDOE3.fracfact_aliasing(matrix)
    return FractionalDesign(
        keys=keys,
        letters=list(string.ascii_lowercase[:k]),
        generators=generators,
        resolution=resolution,
        matrix=[[int(v) for v in row] for row in matrix],
        aliases=list(aliases),
    )


def _resolution(generators: str) -> int | None:
    words = _defining_words(generators)
    return min(len(w) for w in words) if words else None


def fractional(study: Study) -> list[Variant]:
    design, space, base = fractional_design(study), factor_space(study), resolve_config(study, {})
    return [
        _design_variant(
            study,
            {k: space[k][0 if s < 0 else 1] for k, s in zip(design.keys, row, strict=True)},
            base,
        )
        for row in design.matrix
    ]


def design_variants(study: Study) -> list[Variant]:
    """The design's variants in design order (none for `optuna`: the sampler picks them)."""
    if study.design == "optuna":
        return []
    if not study.factors:
        return [Variant(name="base", levels={}, overrides={}, kind="design", is_base=True)]
    build = {
        "full-factorial": full_factorial,
        "one-at-a-time": one_at_a_time,
        "fractional": fractional,
    }
    return build[study.design](study)


def named_variants(study: Study) -> list[Variant]:
    """The study's `variants`, in file order."""
    base = resolve_config(study, {})
    out = []
    for item in study.variants:
        overrides = {k: v for k, v in item.items() if "." in k}
        out.append(
            Variant(
                name=item["name"],
                levels={},
                overrides=overrides,
                kind="named",
                is_base=_same(resolve_config(study, overrides), base),
                description=item.get("description", ""),
            )
        )
    return out


def all_variants(study: Study) -> list[Variant]:
    """Design variants then named ones, with the baseline moved first.

    For `design: optuna` the baseline is included even when it is a point of the factor space
    (the base configuration): the reference must run whatever the sampler picks.
    """
    variants = design_variants(study) + named_variants(study)
    if study.design == "optuna" and study.baseline not in {v.name for v in variants}:
        base = base_variant(study)
        if base is not None and base.name == study.baseline:
            variants.insert(0, base)
    first = [v for v in variants if v.name == study.baseline]
    return first + [v for v in variants if v.name != study.baseline]


def base_variant(study: Study) -> Variant | None:
    """The design variant with every factor at its base value, if those are all levels."""
    space, base = factor_space(study), resolve_config(study, {})
    levels = {}
    for key, choices in space.items():
        value = get_path(base, key)
        if not any(_same(value, c) for c in choices):
            return None
        levels[key] = value
    return _design_variant(study, levels, base)


def expand(study: Study) -> list[TrialSpec]:
    """Every trial of a designed study: every variant x every seed.

    Order: seed by seed (so that after the first pass every variant has one paired result),
    and within a seed the baseline first, then the design variants in design order, then the
    named variants in file order. For `design: optuna` only the baseline's and the named
    variants' trials (the sampler proposes the rest; see `variant_from_levels` and
    `trials_for_variant`).
    """
    per_variant = [trials_for_variant(study, v) for v in all_variants(study)]
    by_seed = zip(*per_variant, strict=True) if per_variant else []
    return [trial for seed_trials in by_seed for trial in seed_trials]


def seed_trials(study: Study, variants: Iterable[str], seeds: Iterable[int]) -> list[TrialSpec]:
    """The trials of the named variants for `seeds`, seed by seed in the order of `expand`.

    Sequential seeds: a look asks for more seeds of the comparisons still open (and of the
    baseline, so the pairs stay paired); this maps that answer to the trials to run. Raises
    KeyError for a name that is not one of the study's variants.
    """
    wanted = set(variants)
    chosen = [v for v in all_variants(study) if v.name in wanted]
    missing = wanted - {v.name for v in chosen}
    if missing:
        raise KeyError(f"not variants of study {study.study!r}: {sorted(missing)}")
    seeds = list(seeds)
    per_variant = [trials_for_variant(study, v, seeds) for v in chosen]
    return [t for seed_trials in zip(*per_variant, strict=True) for t in seed_trials]


def sample_budget(study: Study) -> int:
    """How many variants the sampler of a `design: optuna` study may choose in all (0 for
    another design): `search.n_trials`, at most the level combinations no fixed variant has
    (the sampler never proposes one a fixed variant, e.g. the base, already has)."""
    if study.design != "optuna" or not study.factors:
        return 0
    size = math.prod(len(v) for v in factor_space(study).values())
    free = size - sum(1 for v in all_variants(study) if v.levels)
    return max(0, min(study.search.n_trials or free, free))


def trial_count(study: Study) -> str:
    """How many trials the study has, in the one wording validate, the dry run and the run
    print: `3 variants x 2 seeds = 6 trials`, `3 variants x 2-4 (sequential) seeds = 6-12
    trials`, `1 fixed + up to 8 sampled variants x 2 seeds = up to 18 trials`."""
    seq = study.sequential_seeds
    low = high = len(study.seeds)
    seeds = f"{low} seed{'s' * (low != 1)}"
    if seq is not None:
        low, high = seq.start, seq.max
        seeds = f"{low}-{high} (sequential) seeds"
    fixed = len(all_variants(study))
    if study.design == "optuna":
        sampled = sample_budget(study)
        most = (fixed + sampled) * high
        return f"{fixed} fixed + up to {sampled} sampled variants x {seeds} = up to {most} trials"
    total = f"{fixed * low}" if low == high else f"{fixed * low}-{fixed * high}"
    return f"{fixed} variant{'s' * (fixed != 1)} x {seeds} = {total} trials"

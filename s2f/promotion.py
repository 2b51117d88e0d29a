"""The promotion gate: move `champion` to the `challenger` only when it is measurably better.

The rule is data (`params.yaml` → `promote`: metric, direction, minimum improvement) and the decision is a pure
function of two numbers, so it is tested without a registry. Applying it writes the decision and its numbers onto the
challenger version (`promotion.*` tags), whichever way it goes: the registry itself answers "why is this the
champion?" and "why was that one refused?". Refusal raises `PromotionRefused`, which the CLI turns into a non-zero
exit and the flow into a failed run, both with the reason.

Before any comparison, a challenger must beat chance (`promote.chance_p_value`): the report puts a chance level beside
its retrieval and matching metrics, and a model that the evaluation cannot tell from guessing is never crowned, even
when there is no champion yet (the demo's GANs at the CPU demo's widths are such models, docs/gan_families.md).

Every audio → face model family is promoted the same way, each on its own: `speech2face` (whose encoder and decoder
versions move with it) or a GAN family (`wen2019`, `wav2pix`), compared on the same gate metric of its own section of
the evaluation report.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace

from s2f.config import PromoteParams
from s2f.registry import (CHALLENGER, CHAMPION, COMPOSITE, alias_version, champion_history, set_champion,
                          version_metric)


ROLLED_BACK_TAG = "promotion.rolled_back_at"
HISTORY_KEPT = 50  # previous champions remembered for rollbacks (a tag value holds at most 5000 characters)


class PromotionRefused(RuntimeError):
    """The gate said no (or there is nothing to promote or roll back); the message is the reason."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_value: float | None
    champion_value: float | None
    chance_p: float | None = None  # the challenger's p-value against chance, when the floor was applied


@dataclass(frozen=True)
class Chance:
    """A metric's chance level in the evaluation report, and how many trials (queries) it was measured on."""

    level: float
    trials: int
    unit: str = "trials"  # what a trial is, for the reason: "queries" for retrieval


def chance_metrics(metric: str) -> tuple[str, str] | None:
    """The report's names for a gate metric's chance level and trial count, in the same section: `…recall_at_K` →
    (`…chance_at_K`, `…queries`), `matching.…accuracy[_X]` → (`…chance`, `…trials[_X]`); None for a metric the
    report gives no chance level with a trial count (a Fréchet distance, a loss, `unseen_speech.accuracy`)."""
    section, _, last = metric.rpartition(".")
    prefix = f"{section}." if section else ""
    if last.startswith("recall_at_"):
        return f"{prefix}chance_at_{last.removeprefix('recall_at_')}", f"{prefix}queries"
    if section.startswith("matching.") or ".matching." in section:   # 1:2 matching, plain or gender-stratified
        if last == "accuracy":
            return f"{prefix}chance", f"{prefix}trials"
        if last.startswith("accuracy_"):
            return f"{prefix}chance", f"{prefix}trials_{last.removeprefix('accuracy_')}"
    return None


def chance_p_value(value: float, chance: Chance) -> float:
    """P(a model guessing at `chance.level` scores at least `value` over `chance.trials`): one-sided binomial.

    Queries of one speaker (and a matching query's ten foils) are not independent, so this p is optimistic; the
    floor is there to refuse models at chance, not to certify small gains."""
    from scipy.stats import binom

    hits = round(value * chance.trials)
    return float(binom.sf(hits - 1, chance.trials, chance.level))


def decide(gate: PromoteParams, challenger: float | None, champion: float | None,
           has_champion: bool | None = None, chance: Chance | None = None) -> Decision:
    """Promote when the challenger beats chance (`chance`, where the report gives one and the gate asks for it) and
    there is no champion yet, or it beats the champion: strictly, and by `min_improvement`.

    A champion that exists but lacks the gate's metric (the gate changed since it was promoted) is not "no champion":
    the challenger cannot be compared with it, so it is refused rather than waved through.
    """
    has_champion = champion is not None if has_champion is None else has_champion
    if challenger is None:
        return Decision(False, f"the challenger has no metric {gate.metric!r}", None, champion)
    p = None
    if chance is not None and gate.chance_p_value is not None and gate.higher_is_better:
        if chance.trials <= 0:   # fail closed: a floor that cannot be checked is not waved through
            return Decision(False, f"the challenger's evaluation recorded no chance level with a trial count for "
                                   f"{gate.metric}: it cannot be told from chance (promote.chance_p_value: null "
                                   f"promotes without this floor)", challenger, champion)
        p = chance_p_value(challenger, chance)
        if p > gate.chance_p_value:
            reason = (f"{gate.metric} = {challenger:.4f} is not above chance {chance.level:.4f} over {chance.trials} "
                      f"{chance.unit} (one-sided binomial p = {p:.2g} > {gate.chance_p_value:g})")
            return Decision(False, reason, challenger, champion, p)
    decision = _against_champion(gate, challenger, champion, has_champion)
    if p is None:
        return decision
    return replace(decision, chance_p=p, reason=f"{decision.reason}; above chance {chance.level:.4f} (p = {p:.2g})")


def _against_champion(gate: PromoteParams, challenger: float, champion: float | None,
                      has_champion: bool) -> Decision:
    if not has_champion:
        return Decision(True, f"no champion yet; {gate.metric} = {challenger:.4f}", challenger, None)
    if champion is None:
        return Decision(False, f"the champion has no metric {gate.metric!r} to compare with", challenger, None)
    gain = (challenger - champion) if gate.higher_is_better else (champion - challenger)
    verdict = (f"{gate.metric}: challenger {challenger:.4f} vs champion {champion:.4f}, improvement {gain:+.4f} "
               f"(needed ≥ {gate.min_improvement:g})")
    return Decision(gain > 0 and gain >= gate.min_improvement, verdict, challenger, champion)


def _record(client, name: str, version: str, decision: Decision, gate: PromoteParams,
            champion_version: str | None) -> None:
    tags = {"promotion.decision": "promoted" if decision.promote else "refused",
            "promotion.reason": decision.reason, "promotion.metric": gate.metric,
            "promotion.min_improvement": repr(gate.min_improvement),
            "promotion.challenger_value": repr(decision.challenger_value),
            "promotion.champion_value": repr(decision.champion_value),
            "promotion.champion_version": champion_version or "none",
            "promotion.chance_p_value": repr(decision.chance_p),
            "promotion.at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def promote(client, gate: PromoteParams, name: str = COMPOSITE) -> Decision:
    """Apply the gate to `name@challenger` (default `speech2face`, or a GAN family); on success it becomes
    `champion` (the composite with its components, a family alone)."""
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise PromotionRefused(f"no {name}@{CHALLENGER} in this tracking store: run the pipeline first (dvc repro "
                               f"registers one; `dvc repro -f register` when the stage was restored from a run-cache "
                               f"made against another store)")
    champion = alias_version(client, name, CHAMPION)
    if champion is not None and champion.version == challenger.version:
        raise PromotionRefused(f"{name} version {challenger.version} is already the champion")
    if ROLLED_BACK_TAG in challenger.tags:
        raise PromotionRefused(f"{name} version {challenger.version} was rolled back; register a new one")
    decision = decide(gate, version_metric(client, challenger, gate.metric),
                      None if champion is None else version_metric(client, champion, gate.metric), champion is not None,
                      _chance(client, challenger, gate.metric))
    _record(client, name, challenger.version, decision, gate, None if champion is None else str(champion.version))
    if not decision.promote:
        raise PromotionRefused(f"refused {name} version {challenger.version}: {decision.reason}")
    history = champion_history(client, name) + ([str(champion.version)] if champion is not None else [])
    set_champion(client, challenger, history[-HISTORY_KEPT:], name)
    return decision


def _chance(client, version, metric: str) -> Chance | None:
    """The chance level recorded with `version`'s evaluation for `metric`: None for a metric that has none, 0 trials
    when it should have one and the version does not carry it (registered elsewhere, or its metrics unreadable)."""
    names = chance_metrics(metric)
    if names is None:
        return None
    level, trials = (version_metric(client, version, name) for name in names)
    unit = names[1].rpartition(".")[2]
    if level is None or trials is None or not math.isfinite(level) or not math.isfinite(trials):
        return Chance(math.nan, 0, unit)
    return Chance(level, int(trials), unit)


def promote_or_rollback(client, gate: PromoteParams | None, name: str = COMPOSITE) -> str:
    """What `s2f promote` and the promote flow do: apply `gate` to the registered model `name`, or roll it back when
    `gate` is None; returns what happened (a refusal raises `PromotionRefused` with the reason)."""
    if gate is None:
        return f"rolled back; {name}@{CHAMPION} is version {rollback(client, name)}"
    return f"{name}@{CHALLENGER} is now the champion ({promote(client, gate, name).reason})"


def rollback(client, name: str = COMPOSITE) -> str:
    """Make the previous champion of `name` the champion again; returns its version.

    The rolled-back version loses the `challenger` alias and is marked, so a later (perhaps scheduled) `promote`
    cannot put it back."""
    history = champion_history(client, name)
    if not history:
        raise PromotionRefused(f"{name} has no previous champion to roll back to")
    current = alias_version(client, name, CHAMPION)
    previous = client.get_model_version(name, history[-1])
    set_champion(client, previous, history[:-1], name)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    client.set_model_version_tag(name, previous.version, "promotion.rollback_at", stamp)
    if current is not None:
        client.set_model_version_tag(name, current.version, ROLLED_BACK_TAG, stamp)
        challenger = alias_version(client, name, CHALLENGER)
        if challenger is not None and challenger.version == current.version:
            client.delete_registered_model_alias(name, CHALLENGER)
    return previous.version

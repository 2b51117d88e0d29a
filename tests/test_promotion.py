"""The promotion gate: the decision rule, then real registrations in a SQLite MLflow registry promoted, refused and
rolled back through `s2f promote`, with the decision recorded on the model versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2f.config import PromoteParams
from s2f.promotion import Chance, chance_metrics, decide
from s2f.stages import promote as promote_cli
from tests.serving import tiny_models

GATE = PromoteParams(metric="retrieval.6s.recall_at_1", higher_is_better=True, min_improvement=0.01)


@pytest.mark.parametrize(("challenger", "champion", "promoted"), [
    (0.30, None, True),      # no champion yet
    (0.30, 0.25, True),      # better by more than the minimum
    (0.255, 0.25, False),    # better, but by less than the minimum
    (0.25, 0.25, False),     # a tie never wins
    (0.20, 0.25, False),     # worse
    (None, 0.25, False),     # the challenger lacks the metric
])
def test_decide(challenger, champion, promoted):
    assert decide(GATE, challenger, champion).promote is promoted


def test_a_champion_without_the_gate_metric_is_not_no_champion():
    decision = decide(GATE, 0.30, None, has_champion=True)
    assert not decision.promote and "the champion has no metric" in decision.reason


def test_lower_is_better_metrics_flip_the_direction():
    gate = PromoteParams(metric="features.6s.l2_mean", higher_is_better=False, min_improvement=0.0)
    assert decide(gate, 0.9, 1.0).promote and not decide(gate, 1.1, 1.0).promote


GALLERY_48 = Chance(1 / 48, 191, "queries")  # the demo's held-out retrieval: 191 queries, galleries of 48
FAR_FROM_CHANCE = Chance(0.01, 1000, "queries")  # what the registrations below record unless a test says otherwise


def reported(recall: float, chance: Chance | None = FAR_FROM_CHANCE) -> dict[str, float]:
    """An evaluation section as `register` links it: the gate's recall and, as evaluate writes it, its chance level."""
    metrics = {"retrieval.6s.recall_at_1": recall}
    if chance is not None:
        metrics |= {"retrieval.6s.chance_at_1": chance.level, "retrieval.6s.queries": chance.trials}
    return metrics


@pytest.mark.parametrize(("recall", "promoted"), [
    (0.010, False),   # below chance: the demo's wav2pix
    (0.037, False),   # 7 hits where a guess expects 4 (p 0.11): the demo's wen2019
    (0.063, True),    # 12 hits (p 0.001)
    (0.356, True),    # the demo's Speech2Face
])
def test_a_challenger_must_beat_chance_even_without_a_champion(recall, promoted):
    decision = decide(GATE, recall, None, chance=GALLERY_48)
    assert decision.promote is promoted
    assert ("not above chance" in decision.reason) is not promoted


def test_beating_chance_does_not_excuse_losing_to_the_champion():
    decision = decide(GATE, 0.30, 0.35, chance=GALLERY_48)
    assert not decision.promote and decision.chance_p < 1e-40


def test_the_chance_floor_is_off_when_the_gate_says_so_or_the_metric_has_no_chance_level():
    assert decide(GATE.model_copy(update={"chance_p_value": None}), 0.01, None, chance=GALLERY_48).promote
    assert decide(GATE, 0.01, None, chance=None).promote
    lower = PromoteParams(metric="features.6s.l2_mean", higher_is_better=False)
    assert decide(lower, 0.5, None, chance=Chance(0.9, 100)).promote   # no chance level for lower-is-better


@pytest.mark.parametrize(("metric", "names"), [
    ("retrieval.6s.recall_at_10", ("retrieval.6s.chance_at_10", "retrieval.6s.queries")),
    ("decoded.matching.3s_repeated.accuracy", ("decoded.matching.3s_repeated.chance",
                                               "decoded.matching.3s_repeated.trials")),
    ("matching.6s.accuracy_gender_stratified", ("matching.6s.chance", "matching.6s.trials_gender_stratified")),
    ("images.frechet_distance", None),
    ("unseen_speech.accuracy", None),   # a chance level, but no count of trials to test against
])
def test_where_a_gate_metric_finds_its_chance_level_in_the_report(metric, names):
    assert chance_metrics(metric) == names


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A fresh SQLite tracking store; `register(recall)` registers the three models as a new challenger."""
    import mlflow

    from s2f.io.tracking import stage_run
    from s2f.registry import register_candidates

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    monkeypatch.chdir(tmp_path)
    encoder, decoder = tiny_models(tmp_path)
    (tmp_path / "params.yaml").write_text("promote:\n  metric: retrieval.6s.recall_at_1\n  min_improvement: 0.01\n")

    def register(recall: float) -> dict[str, str]:
        with stage_run("register", {}):
            return register_candidates(encoder, decoder, reported(recall), GATE.metric, {"git_commit": "abc"}).versions

    yield register, mlflow.MlflowClient()
    mlflow.set_tracking_uri(None)


def _promote(*args: str) -> int:
    try:
        promote_cli.main(["--params", "params.yaml", *args])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_promote_refuse_and_rollback_through_the_cli(registry, capsys):
    register, client = registry
    assert register(0.20)["speech2face"] == "1"
    assert _promote() == 0                                            # no champion yet
    assert str(client.get_model_version_by_alias("speech2face", "champion").version) == "1"

    register(0.205)                                                   # better by less than 0.01
    assert _promote() == 1
    assert "improvement +0.0050 (needed ≥ 0.01)" in capsys.readouterr().err
    refused = client.get_model_version("speech2face", "2")
    assert refused.tags["promotion.decision"] == "refused"
    assert float(refused.tags["promotion.champion_value"]) == pytest.approx(0.20)
    assert str(client.get_model_version_by_alias("speech2face", "champion").version) == "1"

    versions = register(0.30)
    assert _promote() == 0
    champion = client.get_model_version_by_alias("speech2face", "champion")
    assert str(champion.version) == "3" and champion.tags["promotion.decision"] == "promoted"
    assert champion.tags["promotion.champion_version"] == "1"
    for component in ("s2f-voice-encoder", "s2f-face-decoder"):  # the components move with the composite
        assert str(client.get_model_version_by_alias(component, "champion").version) == versions[component] == "3"

    assert _promote() == 1                                            # the challenger is already the champion
    assert "already the champion" in capsys.readouterr().err
    assert _promote("--rollback") == 0
    assert str(client.get_model_version_by_alias("speech2face", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("s2f-voice-encoder", "champion").version) == "1"
    assert client.get_model_version("speech2face", "3").tags["promotion.rolled_back_at"]
    assert _promote() == 1                                            # the rolled-back version cannot come back
    assert "no speech2face@challenger" in capsys.readouterr().err
    assert _promote("--rollback") == 1                                # nothing older than version 1
    assert "no previous champion" in capsys.readouterr().err


def test_a_gate_changed_to_a_metric_the_versions_were_not_tagged_with_reads_their_linked_metrics(families):
    """Versions are tagged with the headline metrics and the gate's at registration; a later gate on another metric
    of the report still compares them, from the metrics linked to each version's LoggedModel."""
    import mlflow

    from s2f.io.tracking import stage_run
    from s2f.promotion import promote
    from s2f.registry import register_family
    from tests.serving import tiny_gan

    _, _, client = families
    model = tiny_gan(Path.cwd(), "wav2pix")
    for detection in (0.25, 0.5):   # not a headline metric, not the gate at registration time
        with stage_run("register", {}):
            register_family(model, "wav2pix", reported(0.1) | {"images.frechet_distance": detection},
                            GATE.metric, {"git_commit": "abc", "model.sha256": "f" * 64})
        if detection == 0.25:
            promote(mlflow.MlflowClient(), GATE, "wav2pix")
    version = client.get_model_version_by_alias("wav2pix", "challenger")
    assert "metric.images.frechet_distance" not in version.tags
    decision = promote(client, PromoteParams(metric="images.frechet_distance", higher_is_better=True,
                                             min_improvement=0.1), "wav2pix")
    assert (decision.challenger_value, decision.champion_value) == (0.5, 0.25)
    assert str(client.get_model_version_by_alias("wav2pix", "champion").version) == "2"


def test_promote_without_any_registration_says_what_to_do(registry, capsys):
    assert _promote() == 1
    assert "run the pipeline first" in capsys.readouterr().err


@pytest.fixture
def families(registry, tmp_path):
    """`register(recall)` of the speech2face fixture, plus `register_gan(family, recall)`: the family's tiny model
    registered as a new challenger of the registered model named after it."""
    from s2f.io.tracking import stage_run
    from s2f.registry import register_family
    from tests.serving import tiny_gan

    register, client = registry
    models = {family: tiny_gan(tmp_path, family) for family in ("wav2pix", "wen2019")}

    def register_gan(family: str, recall: float, chance: Chance | None = FAR_FROM_CHANCE) -> str:
        with stage_run("register", {}):
            return register_family(models[family], family, reported(recall, chance), GATE.metric,
                                   {"git_commit": "abc", "model.sha256": "f" * 64})

    return register, register_gan, client


def _aliases(client, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def test_a_family_is_registered_under_its_name_with_its_own_metrics(families):
    _, register_gan, client = families
    assert register_gan("wav2pix", 0.125) == "1"
    version = client.get_model_version_by_alias("wav2pix", "challenger")
    assert str(version.version) == "1"
    assert version.tags["family"] == "wav2pix" and version.tags["git_commit"] == "abc"
    assert version.tags["model.sha256"] == "f" * 64 and version.tags["run_id"]
    assert float(version.tags["metric.retrieval.6s.recall_at_1"]) == 0.125
    assert not any(key.startswith("component.") for key in version.tags)


def test_a_wrong_familys_weights_are_not_registered(families, tmp_path):
    from s2f.io.checkpoints import ModelFileError
    from s2f.io.tracking import stage_run
    from s2f.registry import register_family

    with pytest.raises(ModelFileError, match="a wav2pix model, not the GAN family 'wen2019'"), \
            stage_run("register", {}):
        register_family(tmp_path / "wav2pix.pt", "wen2019", {}, GATE.metric, {})


def test_promote_a_family_moves_only_its_own_alias_and_refuses_through_the_same_gate(families, capsys):
    register, register_gan, client = families
    register(0.50)
    assert _promote() == 0                                            # speech2face v1 is the champion
    register_gan("wav2pix", 0.10)
    register_gan("wen2019", 0.90)
    assert _promote("--model", "wav2pix") == 0                        # no wav2pix champion yet
    assert "wav2pix@challenger is now the champion" in capsys.readouterr().out
    assert _aliases(client, "wav2pix") == {"challenger": "1", "champion": "1"}
    assert _aliases(client, "wen2019") == {"challenger": "1"}         # another family is not touched
    assert _aliases(client, "speech2face")["champion"] == "1"

    register_gan("wav2pix", 0.105)                                    # better by less than 0.01: refused
    assert _promote("--model", "wav2pix") == 1
    assert "refused wav2pix version 2" in capsys.readouterr().err
    refused = client.get_model_version("wav2pix", "2")
    assert refused.tags["promotion.decision"] == "refused"
    assert float(refused.tags["promotion.champion_value"]) == pytest.approx(0.10)

    register_gan("wav2pix", 0.20)
    assert _promote("--model", "wav2pix") == 0
    assert _aliases(client, "wav2pix") == {"challenger": "3", "champion": "3"}
    assert _aliases(client, "speech2face")["champion"] == "1"         # speech2face's champion stays
    assert _promote("--model", "wav2pix", "--rollback") == 0
    assert _aliases(client, "wav2pix")["champion"] == "1" and "challenger" not in _aliases(client, "wav2pix")
    assert _aliases(client, "speech2face")["champion"] == "1"
    assert _promote("--model", "wen2019", "--rollback") == 1          # its history is its own: empty
    assert "wen2019 has no previous champion" in capsys.readouterr().err


def test_a_family_at_chance_is_refused_with_the_reason_even_as_the_first_version(families, capsys):
    """The report's chance level and query count, linked to the version at registration, are what the gate reads."""
    _, register_gan, client = families
    register_gan("wen2019", 0.037, chance=GALLERY_48)
    assert _promote("--model", "wen2019") == 1
    assert "not above chance 0.0208 over 191 queries" in capsys.readouterr().err
    refused = client.get_model_version("wen2019", "1")
    assert refused.tags["promotion.decision"] == "refused"
    assert float(refused.tags["promotion.chance_p_value"]) == pytest.approx(0.106, abs=0.001)
    assert "champion" not in _aliases(client, "wen2019")

    register_gan("wen2019", 0.063, chance=GALLERY_48)
    assert _promote("--model", "wen2019") == 0
    assert "above chance 0.0208 (p = 0.00075)" in capsys.readouterr().out
    assert _aliases(client, "wen2019") == {"challenger": "2", "champion": "2"}


def test_a_version_without_the_chance_level_is_refused_not_waved_through(families, capsys):
    _, register_gan, client = families
    register_gan("wav2pix", 0.9, chance=None)   # registered by other tooling: its metrics lack the chance level
    assert _promote("--model", "wav2pix") == 1
    assert "recorded no chance level with a trial count" in capsys.readouterr().err
    assert "champion" not in _aliases(client, "wav2pix")


def test_promote_refuses_an_unknown_model_name(registry, capsys):
    assert _promote("--model", "s2f-voice-encoder") == 2               # a component moves with its composite only
    assert "invalid choice" in capsys.readouterr().err

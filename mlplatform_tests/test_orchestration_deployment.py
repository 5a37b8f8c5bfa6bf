"""What belongs to the deployment cannot be changed by a run: a launch that tries is refused
before any step runs, whatever it names (the policy, a store, the IO folder, the data source)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from mlplatform import config
from mlplatform.cli import execute
from mlplatform.definitions import build_definitions, promotion_policy
from mlplatform.promotion import PolicyError
from mlplatform_tests.conftest import small_overrides

# The exact reproduction of the loosened gate (issue 25), then one attempt per deployment fact.
LOOSENED_GATE = {
    "resources": {"policy": {"config": {"min_dsr": 0.0, "min_sharpe": -100000.0}}},
    "ops": {"backtest_report": {"config": {"cost_bps": 1000}}},
}
ATTEMPTS = {
    "loosened gate": LOOSENED_GATE,
    "planted pickles": {"resources": {"io_manager": {"config": {"base_dir": "/tmp/planted"}}}},
    "another registry": {
        "resources": {"stores": {"config": {"tracking_uri": "sqlite:////tmp/other.db"}}}
    },
    "another export": {"resources": {"stores": {"config": {"models_dir": "/tmp/elsewhere"}}}},
    "another data file": {
        "resources": {"market_data": {"config": {"kind": "file", "path": "/etc/passwd"}}}
    },
    "another webhook": {
        "resources": {"notifier": {"config": {"webhook_url": "http://attacker.invalid/"}}}
    },
    "shorter evaluation": {"resources": {"validation": {"config": {"evaluation_months": 1}}}},
    "another mlflow": {
        "resources": {"mlflow_tracking": {"config": {"mlflow_tracking_uri": "sqlite:////x"}}}
    },
}


@pytest.mark.parametrize("run_config", ATTEMPTS.values(), ids=ATTEMPTS.keys())
def test_run_config_naming_a_deployment_fact_is_refused_at_launch(
    platform_home: Path, run_config: dict
) -> None:
    defs = build_definitions(small_overrides())
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError, match="unexpected config entr"):
            execute(defs, instance, trigger="test", job="retrain_job", run_config=run_config)
        assert instance.get_runs() == []  # refused before a run existed: no step ran
    assert not (platform_home / "io").exists()


def test_the_launchpad_shows_no_resource_settings_to_change() -> None:
    """The run-config schema of every job has nothing under `resources` but empty entries."""
    defs = build_definitions()
    for name in (
        "retrain_job",
        "data_refresh_job",
        "rollback_job",
        "repair_export_job",
        "prune_job",
    ):
        job = defs.resolve_job_def(name)
        top = job.run_config_schema.config_type.fields
        if "resources" not in top:  # retrain_job's Launchpad shows its settings only
            assert set(top) == {"ops", "execution", "loggers"}, name
            continue
        for key, field in top["resources"].config_type.fields.items():
            inner = field.config_type.fields.get("config")
            assert inner is None or not inner.config_type.fields, (name, key)


def test_every_fixed_resource_says_what_it_is_set_to() -> None:
    """The UI's Resources tab shows the deployment's settings, secrets by variable name."""
    defs = build_definitions()
    policy = defs.resources["policy"]
    assert "min_dsr=0.95" in policy.description and "Fixed by the deployment" in policy.description
    assert "Fixed by the deployment" in defs.resources["stores"].description
    retention = defs.resources["retention"].description
    assert "keep_last=10" in retention and "Fixed by the deployment" in retention


def test_the_policy_changes_only_with_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.PROMOTION_POLICY_ENV, '{"min_dsr": 0.9, "min_sharpe": 0.1}')
    policy = promotion_policy()
    assert (policy.min_dsr, policy.min_sharpe, policy.max_p_value) == (0.9, 0.1, 0.05)
    assert "min_dsr=0.9" in build_definitions().resources["policy"].description
    monkeypatch.setenv(config.PROMOTION_POLICY_ENV, '{"min_dsr": -1}')
    with pytest.raises(PolicyError, match=f"{config.PROMOTION_POLICY_ENV}.*min_dsr=-1"):
        build_definitions()


def test_a_retrain_launched_with_a_setting_out_of_range_is_refused_before_it_runs(
    platform_home: Path,
) -> None:
    """A Launchpad typo (cost_bps: 5000) is refused at launch, naming the field: no run, so no
    check of backtest_report turns red for a run that never evaluated it."""
    defs = build_definitions(small_overrides())
    typo = {"ops": {"backtest_report": {"config": {"cost_bps": 5000}}}}
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterConfigMappingFunctionError) as refused:
            execute(defs, instance, trigger="test", job="retrain_job", run_config=typo)
        assert "cost_bps=5000.0: Input should be less than or equal to 1000" in str(
            refused.value.__cause__
        )
        assert instance.get_runs() == []

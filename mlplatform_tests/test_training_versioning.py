"""Semver rule: MAJOR schema/label, MINOR params, PATCH data (or nothing), first 1.0.0."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlplatform.training.versioning import VersionFacts, bump_kind, next_version, params_hash

BASE = VersionFacts(
    version="2.3.4",
    feature_schema_hash="schema-a",
    label_definition="sign(close[t+1]/close[t]-1) > 0",
    params_hash=params_hash({"learning_rate": 0.05, "num_leaves": 15}),
    data_fingerprint="data-a",
)
NEW = replace(BASE, version=None)


@pytest.mark.parametrize(
    ("changes", "expected", "kind"),
    [
        ({}, "2.3.5", "patch"),
        ({"data_fingerprint": "data-b"}, "2.3.5", "patch"),
        ({"params_hash": "p2"}, "2.4.0", "minor"),
        ({"params_hash": "p2", "data_fingerprint": "data-b"}, "2.4.0", "minor"),
        ({"feature_schema_hash": "schema-b"}, "3.0.0", "major"),
        ({"label_definition": "horizon 5"}, "3.0.0", "major"),
        (
            {"feature_schema_hash": "schema-b", "params_hash": "p2", "data_fingerprint": "x"},
            "3.0.0",
            "major",
        ),
    ],
)
def test_next_version_rule(changes: dict, expected: str, kind: str) -> None:
    current = replace(NEW, **changes)
    assert next_version(BASE, current) == expected
    assert bump_kind(BASE, current) == kind


def test_first_version_and_prefixed_previous() -> None:
    assert next_version(None, NEW) == "1.0.0"
    assert next_version(replace(BASE, version="v1.9.9"), replace(NEW, params_hash="p")) == "1.10.0"


@pytest.mark.parametrize("bad", ["1.2", "one.two.three", "1.2.3-rc1", None])
def test_bad_previous_version_is_refused(bad: str | None) -> None:
    with pytest.raises(ValueError):
        next_version(replace(BASE, version=bad), NEW)


def test_params_hash_is_canonical() -> None:
    a = {"learning_rate": 0.05, "num_leaves": 15, "num_threads": 2, "verbosity": -1}
    b = {"num_leaves": np.int64(15), "learning_rate": np.float64(0.05), "num_threads": 8}
    assert params_hash(a) == params_hash(b)  # key order, numpy scalars, run-time knobs ignored
    assert params_hash(a) != params_hash(a | {"learning_rate": 0.051})
    assert params_hash(a) != params_hash(a | {"num_boost_round": 300})
    assert len(params_hash(a)) == 64

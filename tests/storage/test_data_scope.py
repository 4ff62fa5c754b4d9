"""DataScope: a canonical, hashable union of grants. Merging grants never changes what the union selects, equal
access gives equal cache keys, and a whole-organisation grant absorbs the narrower ones of its organisation."""

from __future__ import annotations

import itertools
import random

from apps.storage.policies import DataScope, Grant

ORGANIZATIONS, SOURCES, METRICS = (1, 2), (10, 11, 20), ("temperature", "pressure")
LABELS = {"facility": ("f1", "f2", "f3"), "line": ("a", "b")}
SOURCE_ORGANIZATION = {10: 1, 11: 1, 20: 2}
SERIES = [
    (source, metric, dict(zip(LABELS, values, strict=True)))
    for source, metric, values in itertools.product(SOURCES, METRICS, itertools.product(*LABELS.values()))
] + [(10, "temperature", {"facility": "f1"})]  # a series without the line label


def _selects(grant: Grant, series) -> bool:
    source, metric, labels = series
    if grant.organization_id is not None and SOURCE_ORGANIZATION[source] != grant.organization_id:
        return False
    if grant.source_ids is not None and source not in grant.source_ids:
        return False
    if grant.metrics is not None and metric not in grant.metrics:
        return False
    return all(labels.get(key) in values for key, values in grant.labels)


def _selection(grants) -> set[int]:
    return {index for index, series in enumerate(SERIES) if any(_selects(grant, series) for grant in grants)}


def _random_grant(rng: random.Random) -> Grant:
    organization = rng.choice(ORGANIZATIONS)
    sources = [source for source in SOURCES if SOURCE_ORGANIZATION[source] == organization]
    return Grant.build(
        organization_id=organization,
        source_ids=None if rng.random() < 0.3 else rng.sample(sources, rng.randint(1, len(sources))),
        labels={
            key: rng.sample(values, rng.randint(1, len(values))) for key, values in LABELS.items() if rng.random() < 0.5
        },
        metrics=None if rng.random() < 0.5 else rng.sample(METRICS, rng.randint(1, 2)),
    )


def test_canonical_scopes_select_exactly_what_their_grants_do():
    rng = random.Random(18)
    merged_any = False
    for _ in range(2_000):
        grants = [_random_grant(rng) for _ in range(rng.randint(0, 8))]
        scope = DataScope.of(grants)
        assert _selection(scope.grants) == _selection(grants)
        merged_any = merged_any or len(scope.grants) < len(set(grants))
        shuffled = DataScope.of(rng.sample(grants, len(grants)))
        assert shuffled == scope
        assert shuffled.cache_key() == scope.cache_key()
        assert hash(shuffled) == hash(scope)
    assert merged_any


def test_one_policy_per_device_is_one_condition_and_a_whole_organisation_absorbs_the_rest():
    per_device = DataScope.of(
        [Grant.build(organization_id=1, labels={"device": [f"d{n}"]}, metrics=["temperature"]) for n in range(100)]
    )
    assert len(per_device.grants) == 1
    assert len(dict(per_device.grants[0].labels)["device"]) == 100
    absorbed = DataScope.of([*per_device.grants, Grant.build(organization_id=1)])
    assert absorbed.grants == (Grant.build(organization_id=1),)
    assert DataScope.of([]).empty
    assert DataScope.of([Grant.build()]).unrestricted
    assert DataScope.nothing().cache_key() != DataScope.everything().cache_key()

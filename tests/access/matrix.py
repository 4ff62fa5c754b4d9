"""The access matrix's world: users and roles, series, policy scenarios, and an oracle written apart from the code.

The oracle decides from the scenario's own description which series each user may read; the tests compare every
read path with it. Scenarios are data: adding one adds a row to every path's matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.access.models import DataPolicy
from apps.access.services import data_policy_create, team_create, team_member_add
from tests.factories import organization_get, user_create

ORG, RIVAL = "test-org", "rival-org"
# username -> (organisation, role); mel administers another organisation.
USERS = {"ada": (ORG, "admin"), "erin": (ORG, "editor"), "vic": (ORG, "viewer"), "mel": (RIVAL, "admin")}


@dataclass(frozen=True)
class SeriesSpec:
    organization: str
    source: str
    metric: str
    labels: tuple[tuple[str, str], ...]

    @property
    def device(self) -> str:
        return dict(self.labels)["device"]


def _series(organization: str, source: str, metrics: tuple[str, ...], **labels: str) -> list[SeriesSpec]:
    return [SeriesSpec(organization, source, metric, tuple(sorted(labels.items()))) for metric in metrics]


SERIES = [
    *_series(ORG, "plant", ("temperature", "pressure"), device="d1", facility="f1", line="a"),
    *_series(ORG, "plant", ("temperature", "pressure"), device="d2", facility="f2", line="b"),
    *_series(ORG, "plant", ("temperature", "pressure"), device="d3", facility="f3", line="a"),
    *_series(ORG, "lab", ("temperature",), device="d9", facility="f1", line="a"),
    *_series(RIVAL, "rival", ("temperature",), device="r1", facility="f1", line="a"),
]
SOURCES = {(spec.organization, spec.source) for spec in SERIES}


@dataclass(frozen=True)
class PolicySpec:
    all_members: bool = False
    users: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    source: str | None = None
    labels: dict = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Scenario:
    """Policies of the test organisation (None: keep its default policy) and its teams' members."""

    policies: tuple[PolicySpec, ...] | None
    teams: dict = field(default_factory=dict)


SCENARIOS = {
    "default-policy": Scenario(policies=None),
    "deny-by-default": Scenario(policies=()),
    "one-source": Scenario(policies=(PolicySpec(all_members=True, source="lab"),)),
    "label-values-ored": Scenario(policies=(PolicySpec(all_members=True, labels={"facility": ["f1", "f2"]}),)),
    "label-keys-anded": Scenario(
        policies=(PolicySpec(all_members=True, labels={"facility": ["f1", "f2"], "line": ["a"]}),)
    ),
    "metrics-only": Scenario(policies=(PolicySpec(all_members=True, metrics=("pressure",)),)),
    "per-user": Scenario(policies=(PolicySpec(users=("erin",)),)),
    "team": Scenario(
        policies=(PolicySpec(teams=("ops",), labels={"facility": ["f2"]}),), teams={"ops": ("ada", "vic")}
    ),
    "union-of-grants": Scenario(
        policies=(
            PolicySpec(users=("vic",), source="plant", labels={"facility": ["f1"]}, metrics=("temperature",)),
            PolicySpec(teams=("ops",), source="lab"),
            PolicySpec(users=("ada",), source="plant", labels={"line": ["b"]}),
        ),
        teams={"ops": ("erin", "vic")},
    ),
}


def granted(scenario: Scenario, username: str) -> set[SeriesSpec]:
    """The series `username` may read under the scenario: the oracle."""
    organization, _ = USERS[username]
    if organization == RIVAL or scenario.policies is None:  # the default policy: every member reads everything
        return {spec for spec in SERIES if spec.organization == organization}
    result = set()
    for spec in SERIES:
        if spec.organization != organization:
            continue
        labels = dict(spec.labels)
        for policy in scenario.policies:
            in_team = any(username in scenario.teams.get(team, ()) for team in policy.teams)
            if not (policy.all_members or username in policy.users or in_team):
                continue
            if policy.source is not None and policy.source != spec.source:
                continue
            if any(labels.get(key) not in values for key, values in policy.labels.items()):
                continue
            if policy.metrics is not None and spec.metric not in policy.metrics:
                continue
            result.add(spec)
            break
    return result


def users_create() -> dict:
    return {
        username: user_create(username=username, organization=organization, role=role)
        for username, (organization, role) in USERS.items()
    }


def scenario_apply(scenario: Scenario) -> None:
    """Replace the test organisation's policies (and teams) by the scenario's."""
    organization = organization_get(slug=ORG)
    for slug, members in scenario.teams.items():
        team = team_create(organization=organization, name=slug.title(), slug=slug)
        for username in members:
            team_member_add(team=team, username=username)
    if scenario.policies is None:
        return
    DataPolicy.objects.filter(organization=organization).delete()
    for number, policy in enumerate(scenario.policies):
        data_policy_create(
            organization=organization,
            name=f"policy {number}",
            source=policy.source,
            users=list(policy.users),
            teams=list(policy.teams),
            all_members=policy.all_members,
            labels=policy.labels,
            metrics=None if policy.metrics is None else list(policy.metrics),
        )

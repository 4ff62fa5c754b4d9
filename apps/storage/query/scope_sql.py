"""A data scope as SQL: the one place where row-level data policies become conditions on series.

The engine (series_selection.py) and the series selectors (apps/storage/selectors.py) both read through these:
SQL with bound parameters for the engine, the same conditions as a Django Q object for the selectors.
"""

from __future__ import annotations

from django.db.models import Q
from psycopg import sql

from apps.storage.policies import DataScope, Grant


def scope_condition(scope: DataScope, parameters: dict, *, prefix: str = "g") -> sql.Composable | None:
    """One SQL condition on `s` (storage_series) and `src` (sources_source); None when the scope reads everything.

    Each grant is a conjunction, the scope their disjunction; a scope without grants is FALSE.
    """
    if scope.grants is None:
        return None
    if not scope.grants:
        return sql.SQL("FALSE")
    disjuncts = [_grant_condition(grant, parameters, f"{prefix}{index}_") for index, grant in enumerate(scope.grants)]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(disjuncts))


def _grant_condition(grant: Grant, parameters: dict, prefix: str) -> sql.Composable:
    def placeholder(name: str, value) -> sql.Composable:
        parameters[prefix + name] = value
        return sql.SQL("%({})s").format(sql.SQL(prefix + name))

    parts: list[sql.Composable] = []
    if grant.organization_id is not None:
        parts.append(sql.SQL("src.organization_id = {}").format(placeholder("org", grant.organization_id)))
    if grant.source_ids is not None:
        parts.append(sql.SQL("s.source_id = ANY({}::bigint[])").format(placeholder("src", list(grant.source_ids))))
    for index, (key, values) in enumerate(grant.labels):
        parts.append(
            sql.SQL("s.labels->>{} = ANY({}::text[])").format(
                placeholder(f"lk{index}", key), placeholder(f"lv{index}", list(values))
            )
        )
    if grant.metrics is not None:
        parts.append(sql.SQL("s.metric = ANY({}::text[])").format(placeholder("m", list(grant.metrics))))
    if not parts:
        return sql.SQL("TRUE")
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def source_ids_named(cursor, *, slug: str, organization: str | None, scope: DataScope) -> list[tuple[int, str]]:
    """(id, organisation slug) of each source with this slug (in `organization` when named) that the scope reaches
    (labels and metrics aside). A source outside the scope is never counted: it looks exactly like one that does
    not exist, and a slug shared with another tenant neither widens a query nor makes it ambiguous."""
    parameters: dict = {"slug": slug}
    conditions = [sql.SQL("src.slug = %(slug)s")]
    if organization is not None:
        parameters["organization"] = organization
        conditions.append(sql.SQL("org.slug = %(organization)s"))
    if scope.grants is not None:
        if not scope.grants:
            return []
        disjuncts = []
        for index, grant in enumerate(scope.grants):
            parts = [sql.SQL("TRUE")]
            if grant.organization_id is not None:
                parameters[f"o{index}"] = grant.organization_id
                parts.append(sql.SQL("src.organization_id = %(o{})s").format(sql.SQL(str(index))))
            if grant.source_ids is not None:
                parameters[f"s{index}"] = list(grant.source_ids)
                parts.append(sql.SQL("src.id = ANY(%(s{})s::bigint[])").format(sql.SQL(str(index))))
            disjuncts.append(sql.SQL("({})").format(sql.SQL(" AND ").join(parts)))
        conditions.append(sql.SQL("({})").format(sql.SQL(" OR ").join(disjuncts)))
    cursor.execute(
        sql.SQL(
            "SELECT src.id, org.slug FROM sources_source src JOIN access_organization org "
            "ON org.id = src.organization_id WHERE {} ORDER BY org.slug"
        ).format(sql.SQL(" AND ").join(conditions)),
        parameters,
    )
    return [(row[0], row[1]) for row in cursor.fetchall()]


def scope_q(scope: DataScope, *, series: str = "") -> Q:
    """The scope as a Q object on Series (`series` is the path to the Series from the queried model, e.g. "")."""
    if scope.grants is None:
        return Q()
    if not scope.grants:
        return Q(pk__in=[])
    path = f"{series}__" if series else ""
    combined = Q(pk__in=[])
    for grant in scope.grants:
        condition = Q()
        if grant.organization_id is not None:
            condition &= Q(**{f"{path}source__organization_id": grant.organization_id})
        if grant.source_ids is not None:
            condition &= Q(**{f"{path}source_id__in": list(grant.source_ids)})
        for key, values in grant.labels:
            condition &= Q(**{f"{path}labels__{key}__in": list(values)})
        if grant.metrics is not None:
            condition &= Q(**{f"{path}metric__in": list(grant.metrics)})
        if not condition:
            return Q()  # a grant without conditions reads everything (`Q(...) | Q()` would drop it)
        combined |= condition
    return combined


def source_scope_q(scope: DataScope) -> Q:
    """The scope as a Q object on Source: the sources it reaches (labels and metrics aside)."""
    if scope.grants is None:
        return Q()
    combined = Q(pk__in=[])
    for grant in scope.grants:
        condition = Q()
        if grant.organization_id is not None:
            condition &= Q(organization_id=grant.organization_id)
        if grant.source_ids is not None:
            condition &= Q(pk__in=list(grant.source_ids))
        if not condition:
            return Q()
        combined |= condition
    return combined

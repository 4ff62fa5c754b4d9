"""The cost of row-level data policies on the storage benchmark's dashboard queries (a phase of bench/storage.py).

Three members of the bench organisation read the same series through 1, 10 and 100 policies of their own (one
grants every facility; the others grant single devices, so no grant absorbs another and the engine's SQL carries
a 1-, 10- or 100-way union). The baseline reads through no policy at all (a superuser: no policy look-up and no
scope condition). Every answer must equal the baseline's. Each round times every case for every reader, cold
(query cache and series plans emptied: a dashboard's first load) and warm (the same query again at once),
interleaved so drift on a shared machine hits each reader alike.
"""

from __future__ import annotations

import os
import secrets
import statistics
from datetime import datetime

POLICY_COUNTS = (1, 10, 100)
TARGET_OVERHEAD_PERCENT = 10.0


def _readers(devices: list[tuple[str, str]]) -> dict[str, object]:
    from django.contrib.auth import get_user_model

    from apps.access.models import DataPolicy, Organization
    from apps.access.services import data_policy_create

    organization = Organization.objects.get(slug="bench")
    # The default policy ("every member reads everything") would absorb every narrower grant: keep it for the
    # benchmark's own user only.
    default = DataPolicy.objects.get(organization=organization, all_members=True)
    default.all_members = False
    default.save()
    default.users.set(get_user_model().objects.filter(username="bench-storage"))
    users = get_user_model().objects
    readers: dict[str, object] = {
        "no policy (superuser)": users.create_superuser(username="bench-root", password=secrets.token_urlsafe(16))
    }
    facilities = sorted({facility for _, facility in devices})
    for count in POLICY_COUNTS:
        user = users.create_user(username=f"bench-policies-{count}", password=secrets.token_urlsafe(16))
        organization.memberships.create(user=user, role="viewer")
        data_policy_create(
            organization=organization, name=f"{count}: every facility", users=[user.username],
            labels={"facility": facilities},
        )  # fmt: skip
        for number in range(count - 1):
            device = devices[(number * 7) % len(devices)][0]
            data_policy_create(
                organization=organization, name=f"{count}: device {device} #{number}", users=[user.username],
                labels={"device": [device]}, metrics=["temperature"],
            )  # fmt: skip
        readers[f"{count} policies"] = user
    return readers


def _answer(result) -> list:
    return [(item.get("labels"), item.get("points")) for item in result.series]


def policies_cost(end: datetime, devices: list[tuple[str, str]], *, rounds: int) -> dict:
    """Median cold and warm milliseconds per case and reader, and each policy count's overhead on the baseline."""
    from bench.storage import _cache_clear, _cases, _ours_once

    rounds = int(os.environ.get("BENCH_STORAGE_POLICY_ROUNDS") or rounds)
    readers = _readers(devices)
    names = list(_cases(end, 0))
    cold = {reader: {name: [] for name in names} for reader in readers}
    warm = {reader: {name: [] for name in names} for reader in readers}
    same_answers = True
    for repetition in range(rounds + 1):  # the first round warms the process up and is not counted
        for name, (body, _) in _cases(end, repetition).items():
            baseline = None
            for reader, user in readers.items():
                _cache_clear()
                cold_ms, result, _ = _ours_once(body, end, user)
                warm_ms, _, _ = _ours_once(body, end, user)
                answer = _answer(result)
                if baseline is None:
                    baseline = answer
                elif answer != baseline:
                    same_answers = False
                if repetition:
                    cold[reader][name].append(cold_ms)
                    warm[reader][name].append(warm_ms)
    base = next(iter(readers))
    report: dict = {"rounds": rounds, "same_answers_as_baseline": same_answers, "cases": {}}
    worst = 0.0
    for name in names:
        entry = {}
        for reader in readers:
            cold_median = statistics.median(cold[reader][name])
            warm_median = statistics.median(warm[reader][name])
            entry[reader] = {"cold_median_ms": round(cold_median, 2), "warm_median_ms": round(warm_median, 2)}
            if reader != base:
                overhead = (cold_median / statistics.median(cold[base][name]) - 1) * 100
                warm_overhead = (warm_median / statistics.median(warm[base][name]) - 1) * 100
                entry[reader]["cold_overhead_percent"] = round(overhead, 1)
                entry[reader]["warm_overhead_percent"] = round(warm_overhead, 1)
                worst = max(worst, overhead)
        report["cases"][name] = entry
    report["target"] = {
        "cold_overhead_under_percent": TARGET_OVERHEAD_PERCENT,
        "worst_cold_overhead_percent": round(worst, 1),
        "pass": same_answers and worst < TARGET_OVERHEAD_PERCENT,
        "note": "cold: caches emptied first (a dashboard's first load); warm: the same query again at once, where "
        "the fixed cost of reading the reader's policies weighs most",
    }
    return report

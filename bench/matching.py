"""Benchmark: the facility matcher (aggregator/match.py) on real facilities, its precision and recall.

    python bench/matching.py [--seeds 1] [--examples 5]

Builds the evaluation set of tests/unit/test_match_evaluation.py (real SAMHSA and LA County records in
../shared/data, 2-3 synthetic variants of ~600 of them as other feeds would send them, every real
record kept as a hard negative) and prints, per seed:

* pairs scored (each pair the store would compare: within 300 m, 5 km for a record placed at a ZIP or
  city centroid, or sharing an identifier), precision of "same" (goal >= 99.5%), recall of the true
  pairs among them (goal >= 95%) and of all true pairs (what the candidate search loses), the share of
  true pairs left "uncertain", the verdicts by rule;
* links as the store makes them: each variant to ``best_match`` among all its candidates;
* time per ``compare`` (identities standardized beforehand) and per ``identity_of``.

Then, informational (unlabeled), two checks on the real records alone: each LA County site (placed at
its ZIP centroid, as the geocoder's fallback would) against the SAMHSA facilities within 5 km, and how
many it links; and SAMHSA's own listings within 300 m of each other judged as rows of one feed (each
is a facility of its own, so a "same" there is a merge, or a listing the source repeats).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator import match
from aggregator.local.sample import shared_data_dir
from tests.unit.test_match_evaluation import (
    LA_FILE,
    PRECISION_GOAL,
    RECALL_GOAL,
    SAMHSA_FILE,
    SEED,
    build,
    describe,
    evaluate,
    la_centers,
    meters,
    samhsa_centers,
)


def cross_list(data: Path, examples: int) -> None:
    samhsa = [c for c in samhsa_centers(data / SAMHSA_FILE) if c.address.state == "CA"]
    la = la_centers(data / LA_FILE)
    match.standard_street.cache_clear()
    match.name_key.cache_clear()
    started = time.perf_counter()
    known = [(c, match.identity_of(c)) for c in samhsa]
    per_identity = (time.perf_counter() - started) / len(known)
    decided: Counter[tuple[str, str]] = Counter()
    shown = 0
    for site in la:
        here = (site.latitude or 0.0, site.longitude or 0.0)  # every LA site is placed (at its ZIP at least)
        near = [
            i
            for c, i in known
            if c.latitude is not None and c.longitude is not None and meters(here, (c.latitude, c.longitude)) <= 5000
        ]
        found, verdict = match.best_match(match.identity_of(site), near)
        decided[(verdict.decision, verdict.rule.split(":")[0])] += 1
        if verdict.decision == "same" and found is not None and shown < examples:
            shown += 1
            print(
                f"    {site.name} / {site.alternate_name} | {site.address.address_1}\n"
                f"      = {found.name} / {found.alternate_name} | {found.street} {found.unit}  [{verdict.rule}]"
            )
    print(f"  {len(la)} LA County sites against {len(samhsa)} California SAMHSA facilities:")
    for (decision, rule), n in decided.most_common():
        print(f"    {n:4d} {decision:9s} {rule}")
    print(f"  identity_of (address standardization): {per_identity * 1e6:.0f} us per record")


def within_samhsa(data: Path, examples: int) -> None:
    """SAMHSA's own listings within 300 m of each other, judged without identifiers, as the store judges
    the rows of one feed: each listing is a facility of its own, so a "same" is a merge (or a listing
    repeated in the source)."""
    centers = samhsa_centers(data / SAMHSA_FILE)
    people = [dataclasses.replace(match.identity_of(c), identifiers=frozenset()) for c in centers]
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    for n, i in enumerate(people):
        grid[(int((i.latitude or 0.0) // 0.01), int((i.longitude or 0.0) // 0.01))].append(n)
    decided: Counter[tuple[str, str]] = Counter()
    shown = 0
    for n, a in enumerate(people):
        ci, cj = int((a.latitude or 0.0) // 0.01), int((a.longitude or 0.0) // 0.01)
        for m in (m for di in (-1, 0, 1) for dj in (-1, 0, 1) for m in grid.get((ci + di, cj + dj), ()) if m > n):
            b = people[m]
            if meters((a.latitude or 0.0, a.longitude or 0.0), (b.latitude or 0.0, b.longitude or 0.0)) > 300:
                continue
            v = match.compare(a, b)
            decided[(v.decision, v.rule)] += 1
            if v.decision == "same" and shown < examples:
                shown += 1
                print(
                    f"    {a.name} / {a.alternate_name} | {a.street} {a.unit} {a.postal_code}\n"
                    f"      = {b.name} / {b.alternate_name} | {b.street} {b.unit} {b.postal_code}  [{v.rule}]"
                )
    print(f"  {sum(decided.values())} pairs of SAMHSA listings within 300 m:")
    for (decision, rule), k in decided.most_common():
        print(f"    {k:5d} {decision:9s} {rule}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="evaluation sets to build (seed, seed+1, ...)")
    parser.add_argument("--examples", type=int, default=5, help="wrong links and cross-list links to print")
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None or not (data / SAMHSA_FILE).is_file() or not (data / LA_FILE).is_file():
        sys.exit("../shared/data with the SAMHSA and LA County files is needed")
    print(
        f"thresholds: SAME_DISTANCE_M={match.SAME_DISTANCE_M:g} FAR_M={match.FAR_M:g} "
        f"NAME_SAME={match.NAME_SAME:g} NAME_UNCERTAIN={match.NAME_UNCERTAIN:g} "
        f"WORD_ALIKE={match.WORD_ALIKE:g} PROGRAM_DIFFERENT={match.PROGRAM_DIFFERENT:g} "
        f"ADDRESS_SAME={match.ADDRESS_SAME:g}"
    )
    precisions, recalls = [], []
    for seed in range(SEED, SEED + args.seeds):
        started = time.perf_counter()
        evaluation = build(data / SAMHSA_FILE, data / LA_FILE, seed=seed)
        built = time.perf_counter() - started
        outcome = evaluate(evaluation)
        print(
            f"\nseed {seed}: bases {dict(evaluation.bases)} (built in {built:.1f} s, "
            f"scored in {time.perf_counter() - started - built:.1f} s)"
        )
        print("  " + outcome.report().replace("\n", "\n  "))
        print("  verdicts (decision, truly same, rule):")
        for (decision, truth, rule), n in sorted(outcome.rules.items(), key=lambda kv: -kv[1]):
            print(f"    {n:5d} {decision:9s} {'same ' if truth else 'other'} {rule}")
        for a, b, v in outcome.false_links[: args.examples]:
            print(f"  wrong link ({v.rule}):\n    {describe(a)}\n    {describe(b)}")
        precisions.append(outcome.precision)
        recalls.append(outcome.recall)
    if args.seeds > 1:
        print(
            f"\nover {args.seeds} seeds: precision min {min(precisions):.3%} mean {statistics.mean(precisions):.3%};"
            f" recall min {min(recalls):.2%} mean {statistics.mean(recalls):.2%}"
            f" (goals {PRECISION_GOAL:.1%}, {RECALL_GOAL:.0%})"
        )
    print("\nreal cross-list check (unlabeled: the same place may well be in both lists)")
    cross_list(data, args.examples)
    print("\nreal within-list check: SAMHSA's listings judged as rows of one feed")
    within_samhsa(data, args.examples)


if __name__ == "__main__":
    main()

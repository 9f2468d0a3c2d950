"""Render benchmarks/results/*.json as the Markdown table the README shows.

`python -m benchmarks.summary` prints it; `--write-readme` puts it in README.md between the
benchmarks markers, with the commits the results measured, so the README never holds a figure
that no result file has.
"""

from __future__ import annotations

import argparse
import json
import re

from benchmarks.common import RESULTS, ROOT
from benchmarks.full_shape import day_figures

README = ROOT.parent / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rate(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def table() -> str:
    lines = ["| benchmark | DuckDB | PostgreSQL | target |", "|---|---|---|---|"]
    raw = {s: load(f"raw_load_{s}") for s in ("duckdb", "postgres")}
    if all(raw.values()):
        d, p = raw["duckdb"], raw["postgres"]
        reference, speed = d["reference_duckdb_sorted_ctas"], d["speed_vs_reference"]
        lines.append(
            f"| raw load of {d['rows'] / 1e6:.0f}M ratings: typed, sorted into replay order, batch-tagged (rows/s, peak RSS) "
            f"| {rate(d['rows_per_s'])}/s, {d['peak_rss_mib'] / 1024:.1f} GiB | {rate(p['rows_per_s'])}/s, "
            f"{p['peak_rss_mib'] / 1024:.1f} GiB | peak < 2 GiB; >= 0.9x DuckDB's own; 2.3M/s PostgreSQL |"
        )
        lines.append(
            f"| reference: DuckDB's own sorted, batch-tagged `CREATE TABLE AS` from `read_csv`; our load's speed "
            f"against it, median of {len(speed['pairs'])} pairs | {rate(reference['rows_per_s'])}/s, "
            f"{reference['peak_rss_mib'] / 1024:.1f} GiB; {speed['median']:.2f}x | | |"
        )
        if "reference_server_copy" in p:
            server, ratio = p["reference_server_copy"], p["speed_vs_server_copy"]
            lines.append(
                f"| reference: PostgreSQL's own COPY of the same rows, encoded beforehand, from a file on its disk (+ BRIN "
                f"summary, ANALYZE); our load's speed against it, median of {len(ratio['pairs'])} pairs | | "
                f"{rate(server['rows_per_s'])}/s; {ratio['median']:.2f}x | |"
            )
    lake = {s: load(f"lake_batches_{s}") for s in ("duckdb", "postgres")}
    if all(lake.values()):
        d, p = lake["duckdb"], lake["postgres"]
        lines.append(
            f"| clean + validate one 50k lake partition (s) | {d['one_partition']['wall_s']:.2f} | "
            f"{p['one_partition']['wall_s']:.2f} | < 1 s |"
        )
        lines.append(
            f"| clean + validate 100 lake partitions in one run (rows/s) | {rate(d['range']['rows_per_s'])}/s | "
            f"{rate(p['range']['rows_per_s'])}/s | |"
        )
    feats = {s: load(f"feature_days_{s}") for s in ("duckdb", "postgres")}
    if all(feats.values()):
        d, p = feats["duckdb"], feats["postgres"]
        lines.append(
            f"| features + examples, one 50k partition (s) | {d['first_day']['wall_s']:.2f} | {p['first_day']['wall_s']:.2f} | < 1 s |"
        )
        lines.append(
            f"| features + examples, 100-partition single run (rows/s, peak RSS) | "
            f"{rate(d['backfill_100_days']['rows_per_s'])}/s, {d['backfill_100_days']['peak_rss_mib'] / 1024:.1f} GiB | "
            f"{rate(p['backfill_100_days']['rows_per_s'])}/s, {p['backfill_100_days']['peak_rss_mib'] / 1024:.1f} GiB | 500k/s DuckDB |"
        )
        lines.append(
            f"| memory one day adds to its process: first day vs after 100 days (MiB over the baseline) | "
            f"{d['first_day']['peak_increase_mib']} vs {d['day_after_100_days']['peak_increase_mib']} | "
            f"{p['first_day']['peak_increase_mib']} vs {p['day_after_100_days']['peak_increase_mib']} | no growth |"
        )
    model = load("model_training")
    if model:
        mse = model["next_day_mse"]
        lines.append(
            f"| training throughput, full training on {model['full_training']['examples'] / 1e6:.1f}M examples | "
            f"{rate(model['full_training']['examples_per_s'])} examples/s, {model['full_training']['wall_s']:.0f} s for "
            f"{model['full_training']['epochs']} epochs | | 300k examples/s |"
        )
        warm = model["warm_start_50k"]
        lines.append(
            f"| warm start on a 50k batch, {warm['epochs']} epochs as in the pipeline (train; with load) | "
            f"{warm['train_s']:.2f} s; {warm['with_load_s']:.2f} s | | < 3 s |"
        )
        lines.append(
            f"| user+item bias fit on {model['bias_fit']['ratings'] / 1e6:.1f}M ratings | {model['bias_fit']['wall_s']:.2f} s | | < 3 s |"
        )
        if "factor_fit" in model:
            lines.append(
                f"| the full training's movie factors: fit ({model['factor_fit']['iterations']} passes) on "
                f"{model['factor_fit']['ratings'] / 1e6:.1f}M ratings; every example's user folded in | "
                f"{model['factor_fit']['wall_s']:.0f} s; {model['factor_slots']['wall_s']:.0f} s | | |"
            )
        lines.append(f"| prediction throughput | {rate(model['prediction']['examples_per_s'])} examples/s | | |")
        retrieval = model.get("retrieval")
        if retrieval:
            full, warm_r, side = retrieval["full_training"], retrieval["warm_start_50k"], retrieval["side_by_side"]
            lines.append(
                f"| retrieval model: full training on {full['pairs'] / 1e6:.1f}M pairs ({full['epochs']} epoch); warm start on a 50k "
                f"batch | {full['wall_s']:.0f} s ({rate(full['pairs_per_s'])} pairs/s); {warm_r['train_s']:.2f} s | | |"
            )
            lines.append(
                f"| retrieval training, lazy Adam ({side['steps_per_call']} batches per traced call) vs Keras' Adam (a call per "
                f"batch), {side['pairs'] / 1e3:.0f}k pairs side by side | {side['lazy_adam_s']:.1f} s vs "
                f"{side['keras_adam_one_call_per_batch_s']:.1f} s ({side['speed_vs_keras_adam']:.1f}x) | | |"
            )
        lines.append(
            f"| next-day MSE: global mean / bias / model / noise floor | {mse['global_mean']:.3f} / {mse['bias']:.3f} / "
            f"{mse['model']:.3f} / {mse['noise_floor']:.3f} (gap closed {mse['gap_closed']:.0%}) | | closes >= 50% |"
        )
        lines.append(
            f"| next-day MSE, users without history ({mse['no_history_share']:.0%} of the day): bias / model | "
            f"{mse['bias_no_history']:.3f} / {mse['model_no_history']:.3f} | | model <= bias |"
        )
    replay = load("replay_30_days_duckdb")
    if replay:
        for mode, label in (("per_day", "one run per day"), ("range", "one run per week")):
            r = replay[mode]
            lines.append(
                f"| 30-day replay after a 1M bootstrap, {label} ({r['runs']} runs) | {r['wall_s']:.0f} s end to end, "
                f"{r['overhead_per_run_s']:.1f} s Dagster overhead a run, peak {r['peak_rss_mib'] / 1024:.1f} GiB | | < 300 s |"
            )
    if replay and "mean_ranking" in replay["per_day"]:
        ranks = replay["per_day"]["mean_ranking"]
        for protocol, label in (("catalog", "top 10 of every unrated movie"), ("rated", "the day's rated movies reordered")):
            # The catalog protocol compares what is served (two-stage, popularity for new users).
            ranker = "served" if "served" in ranks[protocol] else "champion"
            c, p = ranks[protocol][ranker], ranks[protocol]["popularity"]
            lines.append(
                f"| next-day NDCG@10 / recall@10 over the 30 days, {label}: {ranker} vs popularity | "
                f"{c['ndcg_at_10']:.4f} / {c['recall_at_10']:.4f} vs {p['ndcg_at_10']:.4f} / {p['recall_at_10']:.4f} | | |"
            )
    recs = {s: load(f"batch_recommendations_{s}") for s in ("duckdb", "postgres")}
    if all(recs.values()) and "side_by_side" in recs["duckdb"]:
        d, p = recs["duckdb"], recs["postgres"]
        side, exact = d["side_by_side"], min(d["hnsw"], key=lambda h: (h["recall_at_n"] < 0.99, -h["users_per_s"]))
        lines.append(
            f"| batch recommendations, everyone ranked: top-{d['n']} unrated of {d['movies']:,} movies for {d['users']:,} users "
            f"({d['rated_pairs'] / 1e6:.0f}M rated pairs excluded), faiss exact search | {d['compute_wall_s']:.0f} s "
            f"({d['users_per_s']:,} users/s), + {d['write']['wall_s']:.1f} s to store {d['write']['rows'] / 1e6:.0f}M recommendations ({d['write']['lists']:,} lists) | "
            f"{p['compute_wall_s']:.0f} s, + {p['write']['wall_s']:.1f} s to store | < 120 s |"
        )
        lines.append(
            f"| exact search side by side on {side['users']:,} users: faiss vs matrix product + TensorFlow top_k; "
            f"HNSW (ef {exact['ef_search']}) at recall@{d['n']} {exact['recall_at_n']:.3f} | {side['faiss_users_per_s']:,} vs "
            f"{side['matmul_top_k_users_per_s']:,} users/s ({side['speedup']:.1f}x); HNSW {exact['users_per_s']:,} users/s | | |"
        )
        dd, pd = d["day_without_promotion"], p["day_without_promotion"]
        lines.append(
            f"| a day without a promotion: {dd['users_ranked']:,} users who rated ranked and their lists written; the set "
            f"reads the others' where they were written | {dd['search']['wall_s']:.1f} s + {dd['write']['wall_s']:.2f} s "
            f"| {pd['search']['wall_s']:.1f} s + {pd['write']['wall_s']:.2f} s | |"
        )
        if "rating_champion_change" in d and "rating_champion_change" in p:
            dc, pc = d["rating_champion_change"], p["rating_champion_change"]
            lines.append(
                f"| a new rating champion alone: {dc['users']:,} lists ordered again from the stored retrieval candidates "
                f"(read + order) vs a full search then order, same lists | {dc['stored_candidates_then_order']['wall_s']:.1f} s vs "
                f"{dc['full_search_then_order']['wall_s']:.1f} s ({dc['speedup']:.0f}x) | {pc['stored_candidates_then_order']['wall_s']:.1f} s "
                f"vs {pc['full_search_then_order']['wall_s']:.1f} s ({pc['speedup']:.0f}x) | |"
            )
    shapes = {s: load(f"full_shape_{s}") for s in ("duckdb", "postgres")}
    if shapes["duckdb"]:
        def day(r: dict | None, kind: str) -> str:
            # Classified again from the days measured (`days_detail`): what counts as a changed
            # day was refined after some results were written.
            per_day = day_figures(r["days_detail"]) if r and "days_detail" in r else (r or {}).get("per_day")
            if not per_day or not per_day.get(kind, {}).get("days"):
                return "not measured"
            f = per_day[kind]
            steps = " / ".join(f"{f['steps_s'][layer]:.1f}" for layer in ("lake", "features", "models", "serving"))
            return f"{f['wall_s']:.1f} s ({steps}; {f['days']} days)"

        d, p = shapes["duckdb"], shapes["postgres"]
        lines.append(
            f"| MovieLens-32M shape ({d['users']:,} users, {d['movies']:,} movies), {d['bootstrap_rows'] / 1e6:.0f}M bootstrap, "
            f"days of {d['batch_size'] // 1000}k through Dagster: a day without a champion change (lake / features / models / "
            f"serving s) | {day(d, 'champion_unchanged')} | {day(p, 'champion_unchanged')} | <= 8 s DuckDB, <= 15 s PostgreSQL |"
        )
        lines.append(
            f"| the same, a day on which either stage's champion changed (everyone ranked again) | "
            f"{day(d, 'champion_changed')} | {day(p, 'champion_changed')} | |"
        )
        if "rating_champion_only" in d["per_day"]:
            for kind, label in (
                ("rating_champion_only", "of them, a new rating champion alone (stored retrieval candidates ordered again)"),
                ("retrieval_champion_changed", "of them, a new retrieval champion or the first day (the catalog searched for everyone)"),
            ):
                lines.append(f"| the same, {label} | {day(d, kind)} | {day(p, kind)} | |")
        def overall(r: dict | None) -> str:
            if not r:
                return ""
            retrain = r["weekly_retrain_s_per_million_examples_seen"]
            parts = r.get("weekly_retrain_parts")
            if parts:
                retrain_text = (
                    f"{retrain:.1f} s (rating towers {parts['rating_s_per_million_example_epochs']:.1f} s per million "
                    f"example-epochs, retrieval {parts['retrieval_s_per_million_pairs']:.1f} s per million pairs, the rest "
                    f"{parts['rest_s_per_million_examples']:.1f} s per million examples; the last retrain projected at "
                    f"{r['projected_last_retrain_s']:.0f} s)"
                )
            else:
                retrain_text = f"{retrain:.1f} s" if retrain else "no retrain replayed"
            return f"{r['bootstrap_s']:.0f} s; {retrain_text}; {r['peak_rss_mib'] / 1024:.1f} GiB"

        def projected(r: dict | None) -> str:
            if not r:
                return ""
            proj = r["projection"]
            return (
                f"{proj['total_hours']:.1f} h (days {proj['days_s'] / 3600:.1f} h, retrains {proj['weekly_retrains_s'] / 3600:.1f} h; "
                f"champion changes on {r['champion_changed_share']:.0%} of {r['days']} days)"
            )

        lines.append(f"| the same: bootstrap; weekly retrain per million examples seen; peak RSS | {overall(d)} | {overall(p)} | |")

        def returning(r: dict | None) -> str:
            ndcg = (r or {}).get("returning_users_ndcg_at_10")
            if not ndcg:
                return "not measured"
            return (
                f"{ndcg['served']:.4f} / {ndcg['retrieval']:.4f} / {ndcg['popularity']:.4f} "
                f"({ndcg['served'] / ndcg['popularity']:.2f}x most popular)"
            )

        lines.append(
            f"| the same: returning users' NDCG@10, served / retrieval alone / most popular | {returning(d)} | {returning(p)} | |"
        )
        proj = d["projection"]
        lines.append(
            f"| the whole archive projected ({proj['archive_days']} days at the measured mean day, {proj['weekly_retrains']} weekly "
            f"retrains) | {projected(d)} | {projected(p)} | < 2 h |"
        )
    costs = load("factor_costs")
    if costs:
        # Results from before the update kept the fit's state time the pass over every rating.
        warm = costs.get("warm_start_factor_update_s", costs.get("warm_start_factor_pass_s"))
        warm_name = "warm start's update from the day's users" if "warm_start_factor_update_s" in costs else "warm start's pass"
        lines.append(
            f"| what the rating model's movie factors add to a day at that shape ({costs['ratings_through_the_day'] / 1e6:.1f}M "
            f"ratings, {costs['users']:,} users): {warm_name} / fold-in of the day's users per model (3 models) / serving's "
            f"read and fold-in of the day's users (of every user when the champion changed) | {costs['added_per_day_s']:.1f} s a day, "
            f"{costs['added_on_champion_change_s']:.1f} s with a champion change ({warm:.2f} / "
            f"{costs['fold_in_day_for_one_model_s']:.2f} x 3 / {costs['read_day_users_ratings_s']:.2f} + {costs['fold_in_day_users_latest_s']:.2f} "
            f"({costs['read_all_ratings_s']:.2f} + {costs['fold_in_every_user_s']:.2f}) s) | | < 2 s |"
        )
        step = costs["embeddings_step"]
        lines.append(
            f"| the serving embeddings step at that shape: the day's {step['day_users_embedded']:,} users embedded, "
            f"{step['users_carried']:,} vectors copied (as the measured commit did; a set now reads them where they were "
            f"written) / everyone embedded (a champion change) | "
            f"{step['without_champion_change_s']:.2f} s / {step['with_champion_change_s']:.2f} s | | |"
        )
    faults = load("fault_injection")
    if faults:
        equal = sum(not k["tables_differing"] for k in faults["kills"])
        lines.append(
            f"| SIGKILL during a {faults['days']}-day replay, then `--resume`: stores equal to an uninterrupted run, "
            f"table by table ({faults['tables']} tables) | {equal} of {len(faults['kills'])} kill points | | all |"
        )
    drift = load("drift")
    if drift:
        stable, real, comedy = drift["stable_synthetic"], drift["movielens_100k"], drift["comedy_drift"]

        def worst(alarms: dict) -> str:
            return f"{max(a['alarm_days'] for a in alarms.values())}/{max(a['days'] for a in alarms.values())}"

        lines.append(
            f"| drift checks: worst statistic's alarm days on a stable synthetic replay / on MovieLens 100K; "
            f"cost per {stable['drift_check_cost']['rows_per_day']:,}-row day | {worst(stable['alarms'])} / {worst(real['alarms'])}; "
            f"{stable['drift_check_cost']['median_s']:.3f} s | | about 1 in 20; < 0.2 s per 50k day |"
        )
        trigger, weekly = comedy["trigger"], comedy["weekly_only"]
        lines.append(
            f"| Comedy rated 1.5 stars lower from day {comedy['drift_day']}: first alarm on day {trigger['first_data_alarm_day']}, "
            f"retrain triggered after {', '.join(trigger['retrains_triggered']) or 'none'}; champion MSE over the 5 days after it "
            f"| {trigger['mean_champion_mse_5_days_after_drift']:.3f} with the trigger, {weekly['mean_champion_mse_5_days_after_drift']:.3f} "
            f"weekly only (saved {comedy['mse_saved_over_5_days_after_drift']:.3f}) | | |"
        )
    demo = load("demo")
    if demo:
        lines.append(
            f"| `make demo`'s `recsys demo`: generate, replay {demo['days']} days through Dagster ({demo['runs']} runs), report "
            f"| {demo['wall_s']:.0f} s end to end | | |"
        )
        if "gap_closed" in demo:
            ndcg = demo["catalog_ndcg_at_10"]
            lines.append(
                f"| the demo's synthetic archive (sessions, choice by taste): champion's share of the bias-to-noise-floor MSE gap closed; "
                f"served catalog NDCG@10 vs most popular | {demo['gap_closed']:.0%}; {ndcg['served']:.4f} vs {ndcg['popularity']:.4f} "
                f"({demo['served_vs_most_popular']:.2f}x) | | >= 50%; >= 2x |"
            )
        if "oracle_catalog_ndcg_at_10" in demo:
            oracle = demo["oracle_catalog_ndcg_at_10"]
            lines.append(
                f"| the same: the ceiling, a ranking that knows the generator (true popularity, preferences, biases, noise), "
                f"catalog NDCG@10 vs most popular | {oracle['oracle']:.4f} vs {oracle['popular']:.4f} "
                f"({demo['oracle_vs_most_popular']:.2f}x; returning users {oracle['oracle_returning']:.4f} vs "
                f"{oracle['popular_returning']:.4f}) | | |"
            )
        if "from_history_vs_most_popular" in demo:
            oracle, returning = demo["oracle_catalog_ndcg_at_10"], demo["returning_users"]
            lines.append(
                f"| the same: most popular x the chance of a rating >= 4 under the generator's rating model fitted on the "
                f"history before each day, catalog NDCG@10 vs most popular; returning users: it, served, the ceiling "
                f"| {oracle['from_history']:.4f} ({demo['from_history_vs_most_popular']:.2f}x); "
                f"{returning['from_history_vs_most_popular']:.2f}x, {returning['served_vs_most_popular']:.2f}x, "
                f"{returning['oracle_vs_most_popular']:.2f}x | | |"
            )
    api = load("api_latency")
    if api:
        for run in api["loads"]:
            lines.append(
                f"| GET /recommendations, {run['concurrency']} concurrent client(s) from a second process: p50 / p99, throughput "
                f"| {run['p50_ms']:.1f} / {run['p99_ms']:.1f} ms, {run['requests_per_s']:.0f} requests/s | | p99 < 20 ms |"
            )
    return "\n".join(lines)


# The MovieLens 100K benchmark's variants, as the quality tables head their columns.
VARIANT_LABELS = {
    "event": "event-time features (the default: genre towers with movie factors, users folded in)",
    "without_factors": "the same, genre towers alone",
    "batch": "batch-time features, genre towers alone",
    "event_with_ids": "event time, with ID embeddings",
}


def quality_table() -> str:
    """Real-data quality (MovieLens 100K): RMSE and NDCG@10 of every model and ranking, by feature time."""
    result = load("movielens_100k")
    if not result:
        return ""
    event = result["event"]
    variants = [result[name] for name in VARIANT_LABELS]
    header = " | ".join(VARIANT_LABELS.values())
    lines = [
        f"Quality on real data: MovieLens 100K, {result['bootstrap_rows']:,}-row bootstrap then {result['days']} days of "
        f"{result['batch_size']:,} rows, each day scored before anything trains on it ({event['rows']['all']:,} ratings, "
        f"{event['user_days']['all']} user-days: {event['user_days']['with_history']} returning, "
        f"{event['user_days']['no_history']} new).",
        "",
        f"| RMSE (rows with / without an earlier rating by the user, as each variant's features count them) | {header} |",
        "|---" * (len(variants) + 1) + "|",
    ]
    for model, label in (
        ("global_mean", "global mean"), ("bias", "user+item bias fitted on earlier days"),
        ("bias_event_time", "the same bias, user term at event time"), ("champion", "rating model (champion)"),
    ):  # fmt: skip
        cells = [
            f"{r['rmse']['all'][model]:.3f} ({r['rmse']['with_history'][model]:.3f} / {r['rmse'].get('no_history', {}).get(model, float('nan')):.3f})"
            for r in variants
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        "",
        f"| catalog NDCG@10 (all / returning / new users) | {header} |",
        "|---" * (len(variants) + 1) + "|",
    ]
    for model, label in (
        ("popularity", "most popular by recent count (the fallback)"), ("popularity_by_mean", "best rated recently"),
        ("champion", "rating model alone"), ("retrieval", "retrieval model alone"), ("two_stage", "two-stage list"),
        ("cold_start", "one two-stage list for a user without ratings (the towers' cold user)"),
        ("served", "served: two-stage for returning users, the cold-start list for new"),
    ):  # fmt: skip
        cells = [
            " / ".join(f"{r['ndcg_at_10'][segment].get(model, float('nan')):.3f}" for segment in ("all", "with_history", "no_history"))
            for r in variants
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    targets, met, anchors = result["targets"], result["met"], result["anchors_from_issue_11"]
    lines += [
        "",
        f"Against issue 11's targets (event time): champion RMSE {event['rmse']['all']['champion']:.3f} "
        f"(target <= {targets['champion_rmse_at_most']}, {'met' if met['champion_rmse'] else 'not met'}); "
        f"served NDCG@10 {event['ndcg_at_10']['all']['served']:.3f} (target >= {targets['served_ndcg_at_10_at_least']}, "
        f"{'met' if met['served_ndcg_at_10'] else 'not met'}; EASE + most popular {anchors['ease_plus_most_popular_ndcg_at_10']}); "
        f"returning users {event['returning_served_vs_most_popular']:.2f}x most popular's "
        f"(target {targets['returning_vs_most_popular_at_least']}x, {'met' if met['returning_vs_most_popular'] else 'not met'}; "
        f"EASE {anchors['ease_lambda_200_returning_ndcg_at_10']} on them). Served minus most popular, day by day: "
        f"worst {event['served_minus_most_popular_by_day']['worst']:+.3f}, mean {event['served_minus_most_popular_by_day']['mean']:+.3f} "
        f"(day-to-day spread {event['served_minus_most_popular_by_day']['stdev']:.3f}).",
    ]
    return "\n".join(lines)


def measured_commits() -> str:
    """Which commits the result files measured, and whether the tree had changes then."""
    commits: dict[str, list[str]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        if "commit" not in result:
            label = "none recorded (an earlier session's run, before results named their commit)"
        else:
            label = result["commit"][:10] + ("" if result["tree_clean"] else " (uncommitted changes)")
        host = result.get("machine", {})
        if "cpu" in host:  # hosts differ: compute-bound rows compare only on alike hosts
            label += f" on {host['cpu']}"
        commits.setdefault(label, []).append(path.stem)
    return "; ".join(f"commit {label}: {', '.join(names)}" for label, names in commits.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-readme", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    sections = [table(), quality_table(), f"Measured at {measured_commits()}."]
    block = "\n\n".join(section for section in sections if section)
    if not args.write_readme:
        print(block)
        return
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} section to replace.")
    README.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{block}\n{END}", text, flags=re.S))


if __name__ == "__main__":
    main()

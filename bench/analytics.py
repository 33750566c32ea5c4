"""Analytics benchmarks, one function per figure (`--figures` picks them; default: all available).

- `analytics.ingest_rate` (per_s): events accepted by `POST /api/v1/analytics/events/track` through
  the real API (uvicorn, one worker, embedded settings), in batches of 500 from a few concurrent
  keep-alive clients, logged in as apps are. Every answered event is fsynced in the lake's local
  buffer (the API answers only then). Target: at least 50,000/s.
- `analytics.flush_rate` (per_s): buffer lines turned into hour-partitioned zstd Parquet in the
  (local) object store by the flusher, per second.
- `analytics.rollup_10m` (s): the `dbt build` of the event models (rollups and their dbt tests) over
  `--events` synthetic events spread over `--days` days in `raw_events` of an embedded chDB
  warehouse, run by Dagster as one range run over their days (as `analytics_days_sensor` and a
  backfill run it); baseline = the same build over `--baseline-events` events (dbt's fixed cost).
  `n`: the events in `raw_events` for the timed build (`baseline_n` for the baseline's). Target:
  under 60 s for 10 million events.
- `analytics.dashboard_p95` (ms): p95 latency of `GET /api/v1/analytics/dashboard/overview` over
  `--days` days (sequential requests on one keep-alive connection, logged in as an editor) on a
  SQLite DB holding `--days` days of serving rows for `--items` content items, `--users` users and
  `--queries` queries per language; baseline = a bare Litestar route served the same way.
  Target: under 100 ms. The period's KPIs are cached 30 s per period (the tables change hourly),
  so this is mostly cache hits plus the live part; `analytics.dashboard_p95_uncached` sends
  `Cache-Control: no-cache`, so every request re-reads the period.
- `analytics.report_monthly` (s): a fresh process building a monthly Arabic content report
  (`--report-items` items) and rendering it to CSV, XLSX and PDF, as a report job does; baseline =
  a fresh process doing only the imports. `n`: the days the report covers (`--days`, a month at the
  default 30). Target: under 10 s.

    python bench/analytics.py [--figures ingest,flush,rollup,dashboard,report] [--batches 200]
                              [--clients 8] [--batch 500] [--rounds 3] [--workers 1]
                              [--events 10000000] [--baseline-events 1000] [--days 30]
                              [--items 2000] [--users 5000] [--queries 500] [--requests 200]
                              [--report-items 500]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import free_port, login, seed, servers  # noqa: E402
from _http import report, serve  # noqa: E402

from domain.analytics import events  # noqa: E402
from domain.analytics.warehouse_events import RAW_EVENTS_TABLE, raw_events_ddl  # noqa: E402
from domain.db import sync_engine  # noqa: E402
from domain.schema import (  # noqa: E402
    ContentItem,
    ContentMetricsDaily,
    LiveMinute,
    SearchAnalyticsDaily,
    UserEngagementDaily,
)
from domain.settings import Settings  # noqa: E402
from resources.event_lake import EventLake  # noqa: E402
from resources.object_store import LocalObjectStore  # noqa: E402

ROOT = HERE.parent

TRACK = "/api/v1/analytics/events/track"
CONTENT = [str(uuid.uuid4()) for _ in range(200)]


def event(n: int, now: datetime) -> dict:
    """A mix like an app's: mostly views and progress heartbeats, some searches and clicks."""
    base = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": (now - timedelta(seconds=n % 3600)).isoformat(),
        "session_id": f"s-{n % 997}",
        "platform": ("web", "ios", "android")[n % 3],
        "language": ("ar", "en")[n % 2],
    }
    content_id = CONTENT[n % len(CONTENT)]
    kind = n % 10
    if kind < 4:
        return base | {"type": "view", "content_id": content_id}
    if kind < 8:
        return base | {
            "type": "media_progress",
            "content_id": content_id,
            "position_s": n % 600,
            "duration_s": 600,
        }
    if kind == 8:
        return base | {"type": "search", "query": f"query {n % 50}", "result_count": n % 20, "language": "ar"}
    return base | {
        "type": "search_click",
        "query": f"query {n % 50}",
        "content_id": content_id,
        "clicked_position": 1 + n % 10,
    }


def bodies(count: int, size: int) -> list[bytes]:
    now = datetime.now(UTC)
    return [
        json.dumps({"events": [event(b * size + i, now) for i in range(size)]}).encode() for b in range(count)
    ]


async def _client(port: int, token: str, queue: list[bytes], expect: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accepted = 0
    try:
        while queue:
            body = queue.pop()
            writer.write(
                f"POST {TRACK} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"
            )
            answer = await reader.readexactly(length)
            if head[9:12] != b"202" or json.loads(answer)["accepted"] != expect:
                raise RuntimeError(f"track answered {head[9:12].decode()}: {answer[:300]!r}")
            accepted += expect
    finally:
        writer.close()
    return accepted


async def _ingest(port: int, token: str, queue: list[bytes], clients: int, expect: int) -> tuple[int, float]:
    started = time.perf_counter()
    counts = await asyncio.gather(*(_client(port, token, queue, expect) for _ in range(clients)))
    return sum(counts), time.perf_counter() - started


@contextmanager
def api(data_dir: Path, url: str, workers: int) -> Iterator[int]:
    """The platform API under uvicorn on embedded settings (like `_common.servers`, with `workers`
    processes: each has its own buffer segments in the shared buffer directory)."""
    env = data_dir / "bench.env"
    env.write_text(f"THMNAYAH_DEPLOYMENT=local\nTHMNAYAH_DATA_DIR={data_dir}\nTHMNAYAH_DATABASE_URL={url}\n")
    port = free_port()
    proc = serve(
        [
            "serving.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--env-file",
            str(env),
            "--host",
            "127.0.0.1",
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        f"http://127.0.0.1:{port}/api/v1/health",
    )
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait()


def ingest(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url, _ = seed(data_dir, 0)
        with api(data_dir, url, args.workers) as port:
            token = login(port)
            asyncio.run(_ingest(port, token, bodies(4 * args.clients, args.batch), args.clients, args.batch))
            rates = []
            for _ in range(args.rounds):
                queue = bodies(args.batches, args.batch)
                accepted, seconds = asyncio.run(_ingest(port, token, queue, args.clients, args.batch))
                rates.append(accepted / seconds)
    report("analytics.ingest_rate", sorted(rates)[len(rates) // 2], "per_s")


def flush(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    per_segment = events.MAX_BATCH_EVENTS * 10  # the flusher's row trigger
    with tempfile.TemporaryDirectory() as tmp:
        lake = EventLake(Path(tmp) / "buffer", LocalObjectStore(root=f"{tmp}/objects"))
        rates = []
        for _ in range(args.rounds):
            for _ in range(3):
                raws = [json.dumps(event(n, now)).encode() for n in range(per_segment)]
                lines = b"".join(events.buffer_line(raw, str(uuid.uuid4()), 0) for raw in raws)
                lake.buffer.append(lines, per_segment)
                lake.buffer.seal()
            done = lake.flush()
            if done.failures:
                raise RuntimeError("the flush failed (see the log)")
            rates.append(done.rows / done.seconds)
        lake.buffer.close()
    report("analytics.flush_rate", sorted(rates)[len(rates) // 2], "per_s")


# --- rollup -------------------------------------------------------------------------------------------

MARTS = ("fct_content_metrics_daily", "fct_user_engagement_daily", "fct_search_analytics_daily")
EVENT_MIX = (  # (type, share in %)
    ("view", 36),
    ("media_progress", 28),
    ("media_complete", 5),
    ("favorite", 3),
    ("share", 2),
    ("comment", 2),
    ("search", 12),
    ("search_click", 7),
    ("download", 3),
    ("login", 2),
)
AR_WORDS = ("أخبار", "اخبار", "رمضان", "وثائقي", "الخط العربي", "كرة القدم", "مُسلسل", "طبخ")
EN_WORDS = (
    "News",
    "news",
    "Ramadan",
    "documentary",
    "Calligraphy",
    "football  highlights",
    "series",
    "cooking",
)


def raw_events_sql(
    database: str,
    count: int,
    start: datetime,
    days: int,
    *,
    users: int = 50_000,
    items: int = 5_000,
    queries: int = 2_000,
) -> str:
    """INSERT ... SELECT of `count` events from `numbers()`: sessions of 8 events a few tens of
    seconds apart, started at random over `days` days from `start`; 80% by signed-in users (`users`
    of them), content drawn with a skew toward the first of `items`, `queries` search queries
    (half Arabic, half English, with letter and case variants that normalize alike)."""
    bounds, acc = [], 0
    for kind, share in EVENT_MIX:
        acc += share
        bounds.append(f"k < {acc}, '{kind}'")
    kinds = f"multiIf({', '.join(bounds[:-1])}, '{EVENT_MIX[-1][0]}')"
    ar, en = (f"[{', '.join(repr(w) for w in words)}]" for words in (AR_WORDS, EN_WORDS))
    span_ms = (days * 86_400 - 3_600) * 1_000
    return f"""
INSERT INTO `{database}`.`{RAW_EVENTS_TABLE}`
SELECT event_id, event_type, occurred_at, received_at, user_id, session_id, platform, language, content_id,
    position_s, duration_s, query, result_count, clicked_position, channel, properties
FROM (
    SELECT
        number AS n,
        intDiv(n, 8) AS s,
        n % 8 AS i,
        cityHash64(n, 7) % 100 AS k,
        cityHash64(s, 3) % 5 != 0 AS signed_in,
        cityHash64(s, 4) % {users} AS user_key,
        cityHash64(s, 11) % {queries} AS q,
        intDiv(i, 4) AS half,
        intDiv((cityHash64(s, half, 8) % {items}) * (cityHash64(s, half, 9) % {items}), {items})
            AS content_key,
        toString(generateUUIDv4(n)) AS event_id,
        {kinds} AS event_type,
        addMilliseconds(toDateTime64('{start:%Y-%m-%d %H:%M:%S}', 3, 'UTC'),
            toInt64(cityHash64(s, 1) % {span_ms} + i * 45000 + cityHash64(n, 2) % 40000)) AS occurred_at,
        addMilliseconds(occurred_at, toInt64(cityHash64(n, 16) % 5000)) AS received_at,
        if(signed_in, concat('00000000-0000-4000-8000-', leftPad(toString(user_key), 12, '0')), NULL)
            AS user_id,
        concat('s-', toString(s)) AS session_id,
        ['web', 'ios', 'android'][1 + cityHash64(s, 5) % 3] AS platform,
        if(event_type IN ('search', 'search_click'), if(q % 2 = 0, 'ar', 'en'),
            if(if(signed_in, user_key, cityHash64(s, 6)) % 5 < 3, 'ar', 'en')) AS language,
        if(event_type IN ('search', 'login'), '',
            concat('00000000-0000-4000-9000-', leftPad(toString(content_key), 12, '0'))) AS content_id,
        multiIf(event_type = 'media_progress', toFloat64((i + 1) * 60 + cityHash64(n, 10) % 60),
            event_type = 'media_complete', 600.0, NULL) AS position_s,
        if(event_type IN ('media_progress', 'media_complete'), 600.0, NULL) AS duration_s,
        if(event_type IN ('search', 'search_click'),
            concat(arrayElement(if(q % 2 = 0, {ar}, {en}), 1 + intDiv(q, 2) % 8), ' ',
                toString(intDiv(q, 16))), NULL) AS query,
        if(event_type = 'search', toInt32(if(cityHash64(q, 12) % 12 = 0, 0, cityHash64(n, 13) % 40)), NULL)
            AS result_count,
        if(event_type = 'search_click', toInt32(1 + cityHash64(n, 14) % 10), NULL) AS clicked_position,
        if(event_type = 'share', ['whatsapp', 'x', 'copy_link'][1 + cityHash64(n, 15) % 3], NULL) AS channel,
        '{{}}' AS properties
    FROM numbers({count})
)
"""


def _dbt_timings(run_id: str) -> tuple[float, list[tuple[float, str]]]:
    """dbt's own elapsed time and (seconds, node) per model and test of the dbt invocation of a
    Dagster run (its target dir under dbt_project/target, removed once read)."""
    from resources.dagster.dbt import DBT_PROJECT_DIR

    found = list((DBT_PROJECT_DIR / "target").glob(f"event_dbt_models-{run_id[:7]}-*/run_results.json"))
    if not found:
        return 0.0, []
    results = json.loads(found[0].read_text())
    shutil.rmtree(found[0].parent, ignore_errors=True)
    nodes = [(r["execution_time"], r["unique_id"]) for r in results["results"]]
    return results["elapsed_time"], sorted(nodes, reverse=True)


def rollup_build(count: int, days: int, *, verbose: bool) -> tuple[float, int]:
    """(seconds, events in `raw_events`) of the event models' `dbt build` (run by Dagster as one
    range run over the days, as analytics_days_sensor requests after a backlog is loaded) over
    `count` generated events in a fresh data dir (the ops tables the same build reads are there,
    empty)."""
    import dagster as dg

    from assets.analytics import event_models_assets
    from domain.analytics import warehouse_ops as ops
    from orchestration.deployment import build_client, build_resources

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(deployment="local", data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db")
        resources = build_resources(settings)
        models = event_models_assets(settings)
        database = settings.warehouse_database
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=days)
        started = time.perf_counter()
        with build_client(resources["warehouse"]).client() as client:
            client.command(ops.route_minutes_ddl(database))
            client.command(ops.processing_jobs_ddl(database))
            client.command(raw_events_ddl(database))
            client.command(raw_events_sql(database, count, start, days))
            loaded = client.command(f"SELECT count() FROM `{database}`.`{RAW_EVENTS_TABLE}`")
        print(
            f"rollup: generated {loaded:,} events in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        first, last = f"{start:%Y-%m-%d}", f"{end - timedelta(hours=1):%Y-%m-%d}"  # daily partitions
        started = time.perf_counter()
        with redirect_stdout(sys.stderr):
            result = dg.materialize(
                [models],
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
                resources=resources,
                instance=dg.DagsterInstance.ephemeral(),
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            )
        seconds = time.perf_counter() - started
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        if not result.success or failed:
            raise RuntimeError(f"the dbt build failed (failed checks: {failed})")
        elapsed, nodes = _dbt_timings(result.run_id)
        print(
            f"rollup: dbt build of {count:,} events: {seconds:.1f} s (dbt's own time {elapsed:.1f} s)",
            file=sys.stderr,
        )
        if verbose:
            with build_client(resources["warehouse"]).client() as client:
                for mart in MARTS:
                    rows = client.command(f"SELECT count() FROM `{database}`.`{mart}`")
                    print(f"rollup: {mart}: {rows:,} rows", file=sys.stderr)
            print("rollup: slowest dbt nodes:", file=sys.stderr)
            for took, node in nodes[:8]:
                print(f"  {took:7.2f} s  {node}", file=sys.stderr)
    return seconds, int(loaded)


def rollup(args: argparse.Namespace) -> None:
    """`n`: the events actually in `raw_events` for the timed build (10 million only at the default
    `--events`); `baseline_n` the same for the baseline build."""
    extra = {}
    baseline = None
    if args.baseline_events:
        baseline, extra["baseline_n"] = rollup_build(args.baseline_events, args.days, verbose=False)
    seconds, loaded = rollup_build(args.events, args.days, verbose=True)
    report("analytics.rollup_10m", seconds, "s", baseline, n=loaded, **extra)


# --- serving rows ---------------------------------------------------------------------------------------


# The columns of the rows `fill_serving` writes, in the order of each row's values.
ITEM_COLUMNS = (
    "id type title description slug status published_at tags tag_index metadata search_text created_at"
    " updated_at version"
)
CONTENT_COLUMNS = (
    "id content_id date view_count unique_viewers average_watch_time completion_rate engagement_score"
    " share_count favorite_count comment_count updated_at"
)
USER_COLUMNS = (
    "id user_id date session_count total_session_time page_views content_interactions search_queries"
    " downloads shares last_activity updated_at"
)
SEARCH_COLUMNS = (
    "id query_text date language user_type search_count result_count click_count click_through_rate"
    " average_position zero_result_count zero_result_rate updated_at"
)


def _insert(conn: sa.Connection, model: type, columns: str, rows: list[tuple]) -> None:
    """Insert `rows`, each the values of the space-separated `columns` in order, into `model`'s table."""
    names = columns.split()
    if rows:
        conn.execute(sa.insert(model.__table__), [dict(zip(names, row, strict=True)) for row in rows])


def fill_serving(url: str, *, days: int, items: int, users: int, queries: int) -> None:
    """`days` days up to today of serving rows (as `analytics_serving_tables` publishes them) for
    `items` published content items (views skewed toward the first), `users` active users a day and
    `queries` queries per language, and the live counters of the last half hour (when `users`)."""
    rng = random.Random(6)
    now = datetime.now(UTC)
    dates = [now.date() - timedelta(days=d) for d in range(days)]
    content_ids = [uuid.uuid4() for _ in range(items)]
    user_ids = [uuid.uuid4() for _ in range(users)]
    engine = sync_engine(url)
    with engine.begin() as conn:
        item_rows = []
        for i, cid in enumerate(content_ids):
            title = {"ar": f"حلقة وثائقية رقم {i}", "en": f"Documentary {i}"}
            published = ("published", now, ["bench"], "|bench|", {}, f"documentary {i}", now, now, 1)
            item_rows.append((cid, "video", title, {}, f"bench-{i}", *published))
        _insert(conn, ContentItem, ITEM_COLUMNS, item_rows)
        for day in dates:
            rows = []
            for rank, cid in enumerate(content_ids):
                views = rng.randint(0, 40_000 // (rank + 1) + 20)
                viewers = views * 3 // 4
                watch, completion = rng.randint(0, 600), (rng.random() if viewers else None)
                shared = (views * 1.4, views // 50, views // 30, views // 80)  # score, shares, favs, comments
                rows.append((uuid.uuid4(), cid, day, views, viewers, watch, completion, *shared, now))
            _insert(conn, ContentMetricsDaily, CONTENT_COLUMNS, rows)
            _insert(
                conn,
                UserEngagementDaily,
                USER_COLUMNS,
                [
                    (
                        uuid.uuid4(),
                        uid,
                        day,
                        rng.randint(1, 4),
                        rng.randint(30, 7_200),
                        rng.randint(1, 40),
                        rng.randint(0, 5),
                        rng.randint(0, 6),
                        rng.randint(0, 2),
                        rng.randint(0, 2),
                        now,
                        now,
                    )
                    for uid in user_ids
                ],
            )
            rows = []
            for language, word in (("ar", "بحث"), ("en", "search")):
                for q in range(queries):
                    searches = rng.randint(1, 2_000 // (q + 1) + 3)
                    clicks, zero = rng.randint(0, searches), rng.randint(0, searches // 10)
                    rows.append(
                        (
                            uuid.uuid4(),
                            f"{word} {q}",
                            day,
                            language,
                            "registered",
                            searches,
                            12.5,
                            clicks,
                            clicks / searches,
                            2.5 if clicks else None,
                            zero,
                            zero / searches,
                            now,
                        )
                    )
            _insert(conn, SearchAnalyticsDaily, SEARCH_COLUMNS, rows)
        if users:
            minute = now.replace(second=0, microsecond=0)
            kinds = ("view", "media_progress", "search", "search_click", "share")
            _insert(
                conn,
                LiveMinute,
                "minute metric value",
                [
                    (minute - timedelta(minutes=m), f"events.{k}", rng.randint(1, 900))
                    for m in range(30)
                    for k in kinds
                ],
            )
    engine.dispose()


# --- dashboard ------------------------------------------------------------------------------------------

OVERVIEW = "/api/v1/analytics/dashboard/overview"


def _sequential(port: int, path: str, headers: dict[str, str], count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    took = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
            took.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return took


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def dashboard(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url, _ = seed(data_dir, 0)
        started = time.perf_counter()
        fill_serving(url, days=args.days, items=args.items, users=args.users, queries=args.queries)
        print(f"dashboard: serving rows written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        bare_id = uuid.uuid4()
        apps = [
            ("bare_app:create_bare_app", f"/bare/{bare_id}"),
            ("serving.app:create_app", "/api/v1/health"),
        ]
        with servers(data_dir, url, apps) as (bare_port, real_port):
            token = login(real_port)
            auth = {"Authorization": f"Bearer {token}"}
            today = datetime.now(UTC).date()
            month = f"{OVERVIEW}?start_date={today - timedelta(days=args.days - 1)}&end_date={today}"
            targets = {
                "bare": (bare_port, f"/bare/{bare_id}", {}),
                "7 days": (real_port, OVERVIEW, auth),
                f"{args.days} days": (real_port, month, auth),
                f"{args.days} days, uncached": (real_port, month, auth | {"Cache-Control": "no-cache"}),
            }
            took: dict[str, list[float]] = {name: [] for name in targets}
            for port, path, headers in targets.values():
                _sequential(port, path, headers, 5)
            rounds = max(1, args.rounds)
            for _ in range(rounds):
                for name, (port, path, headers) in targets.items():
                    took[name] += _sequential(port, path, headers, max(1, args.requests // rounds))
    for name, values in took.items():
        print(
            f"dashboard: {name}: p50 {_percentile(values, 0.5):.1f} ms,"
            f" p95 {_percentile(values, 0.95):.1f} ms ({len(values)} requests)",
            file=sys.stderr,
        )
    month_p95 = _percentile(took[f"{args.days} days"], 0.95)
    report("analytics.dashboard_p95", month_p95, "ms", _percentile(took["bare"], 0.95))
    uncached_p95 = _percentile(took[f"{args.days} days, uncached"], 0.95)
    report("analytics.dashboard_p95_uncached", uncached_p95, "ms", _percentile(took["bare"], 0.95))


# --- report ---------------------------------------------------------------------------------------------

REPORT_JOB = """
import sys
from datetime import date

from domain.analytics.reports import formats, sections
from domain.db import sync_engine

url, start, end = sys.argv[1], date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3])
with sync_engine(url).connect() as conn:
    doc = sections.build_document(conn, "content", start, end, "ar")
print(" ".join(f"{fmt}={len(formats.render(doc, fmt))}" for fmt in ("csv", "xlsx", "pdf")), file=sys.stderr)
"""
IMPORTS_ONLY = "import domain.analytics.reports.formats, matplotlib.pyplot, openpyxl"


def _fresh_process(code: str, *argv: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the report process failed:\n{done.stderr[-3000:]}")
    if done.stderr.strip():
        print(f"report: {done.stderr.strip().splitlines()[-1]}", file=sys.stderr)
    return seconds


def report_monthly(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url, _ = seed(Path(tmp), 0)
        fill_serving(url, days=args.days, items=args.report_items, users=0, queries=0)
        end = date.today() + timedelta(days=1)
        start = end - timedelta(days=args.days)
        values, baselines = [], []
        for _ in range(max(1, args.rounds)):
            baselines.append(_fresh_process(IMPORTS_ONLY))
            values.append(_fresh_process(REPORT_JOB, url, start.isoformat(), end.isoformat()))
    runs, imports = [round(v, 2) for v in values], [round(b, 2) for b in baselines]
    print(f"report: runs {runs} s, imports only {imports} s", file=sys.stderr)
    report(
        "analytics.report_monthly", _percentile(values, 0.5), "s", _percentile(baselines, 0.5), n=args.days
    )


FIGURES: dict[str, Callable[[argparse.Namespace], None]] = {
    "ingest": ingest,
    "flush": flush,
    "rollup": rollup,
    "dashboard": dashboard,
    "report": report_monthly,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--figures", default=",".join(FIGURES), help=f"comma-separated: {', '.join(FIGURES)}")
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--batches", type=int, default=200, help="requests per round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="API processes (uvicorn --workers)")
    parser.add_argument("--events", type=int, default=10_000_000, help="rollup: events generated")
    parser.add_argument(
        "--baseline-events", type=int, default=1_000, help="rollup: events of the baseline (0: none)"
    )
    parser.add_argument("--days", type=int, default=30, help="days of events / serving rows")
    parser.add_argument("--items", type=int, default=2_000, help="dashboard: content items")
    parser.add_argument("--users", type=int, default=5_000, help="dashboard: active users a day")
    parser.add_argument("--queries", type=int, default=500, help="dashboard: queries per language a day")
    parser.add_argument("--requests", type=int, default=200, help="dashboard: requests per period")
    parser.add_argument("--report-items", type=int, default=500, help="report: content items")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.figures.split(",") if name.strip()]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; available: {', '.join(FIGURES)}")
    for name in chosen:
        FIGURES[name](args)


if __name__ == "__main__":
    main()

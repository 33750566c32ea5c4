"""`thmnayah`: the front door. `run` brings up the whole platform on the configured backends.

thmnayah run           migrate, start Dagster (UI + daemon) and the API; on the embedded (local)
                       deployment, or with --demo, seed the demo first
thmnayah api           migrate and serve the API only
thmnayah demo          migrate and seed the demo data only
thmnayah create-admin  create an administrator (the password from a prompt or a file)
thmnayah migrate       apply database migrations
thmnayah rotate-keys   re-encrypt stored TOTP and webhook secrets under the current platform secret
thmnayah settings      list every setting (environment variable), its default and meaning
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.analytics.demo import demo_events, seed_demo_reports_and_alerts, validated_lines
from domain.analytics.events import LAKE_PREFIX
from domain.analytics.lake import parquet_files, read_buffer_lines
from domain.auth import audit, rbac
from domain.auth.keys import platform_keyring
from domain.auth.passwords import check_password_policy, hash_password, verify_password
from domain.auth.rotation import reencrypt_stored_secrets
from domain.auth.users import NewUser, create_user
from domain.db import safe_url, sync_engine
from domain.demo import (
    DEMO_CONTENT,
    DEMO_EDITOR,
    DEMO_USERS,
    demo_accounts,
    seed_demo,
    seed_demo_notifications,
    seed_demo_users,
)
from domain.errors import DomainError, InvalidValue
from domain.ids import new_id
from domain.media.inspect import validation
from domain.media.uploads import original_key, record_upload
from domain.migrate import require_current, upgrade
from domain.schema import ContentItem, MediaAsset, User, utcnow
from domain.settings import Settings
from orchestration.deployment import (
    build_client,
    build_resources,
    child_process_env,
    dagster_commands,
    load_settings,
    pool_limits,
    prepare_dagster_home,
    seeds_demo,
)
from orchestration.instance import apply_pool_limits
from resources.event_lake import PARQUET_CONTENT_TYPE

DEMO_MEDIA_NAME = "demo-testcard.mp4"


def migrate(settings: Settings) -> None:
    print(f"migrating {safe_url(settings.database_url)}", flush=True)
    upgrade(settings.database_url)


def seed(settings: Settings, schedule_delay: float, report_delay: float = 240.0) -> int:
    engine = sync_engine(settings.database_url)
    try:
        with Session(engine) as session, session.begin():
            seed_demo_users(session, hash_password)
            created = seed_demo(session, schedule_delay=timedelta(seconds=schedule_delay))
            seed_demo_notifications(session)
        seed_demo_media(settings, engine)
        seed_demo_analytics(settings, engine, timedelta(seconds=report_delay))
        return created
    finally:
        engine.dispose()


# The demo video: six seconds of a test card with a tone.
DEMO_VIDEO_ARGS = (
    ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=6"]
    + ["-f", "lavfi", "-i", "sine=frequency=330:duration=6", "-shortest"]
    + ["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", "-movflags", "+faststart"]
)
# (file name, ffmpeg arguments making it, language, content item slug it belongs to)
DEMO_MEDIA: list[tuple[str, list[str], str | None, str | None]] = [
    (DEMO_MEDIA_NAME, DEMO_VIDEO_ARGS, "en", "ramadan-documentary"),
    # An Arabic dub of the documentary: it joins the video's HLS master as an alternate audio track.
    (
        "demo-dub-ar.m4a",
        ["-f", "lavfi", "-i", "sine=frequency=550:duration=6", "-c:a", "aac"],
        "ar",
        "ramadan-documentary",
    ),
    # A photo: WebP and JPEG sizes, EXIF stripped, and a blurhash placeholder.
    (
        "demo-photo.jpg",
        ["-f", "lavfi", "-i", "testsrc2=size=1600x1000", "-frames:v", "1", "-q:v", "3"],
        None,
        None,
    ),
]


def seed_demo_media(settings: Settings, engine) -> None:
    """A video, its Arabic dub and a photo made by ffmpeg, uploaded once, so the media sensor and
    assets (probe, posters, storyboard, HLS ladder, alternate audio, image sizes) have work to show."""
    if shutil.which("ffmpeg") is None:
        print("demo: ffmpeg is missing, so no demo media (./dev run installs it)", flush=True)
        return
    with Session(engine) as session:
        done = set(session.scalars(sa.select(MediaAsset.original_filename)))
        items = dict(session.execute(sa.select(ContentItem.slug, ContentItem.id)).tuples().all())
        # The editor "uploaded" the demo media, so media.processed lands in the editor's inbox.
        editor = session.scalar(sa.select(User.id).where(User.username == DEMO_EDITOR))
    store = build_client(build_resources(settings)["object_store"])
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, language, slug in DEMO_MEDIA:
            if name in done:
                continue
            path = Path(tmp) / name
            subprocess.run(["ffmpeg", "-v", "error", *args, str(path)], check=True)
            validated = validation.validate(path)
            media_id = new_id()
            with path.open("rb") as source:
                store.put_file(original_key(media_id), source, content_type=validated.mime or "")
            with Session(engine) as session, session.begin():
                record_upload(
                    session,
                    media_id=media_id,
                    kind=validated.kind,
                    mime=validated.mime or "",
                    size=path.stat().st_size,
                    sha256="",
                    filename=name,
                    metadata=validated.summary(),
                    content_item_id=str(items[slug]) if slug in items else None,
                    language=language,
                    uploaded_by=editor,
                )
            print(f"demo: uploaded {name} as media {media_id}", flush=True)


def seed_demo_analytics(settings: Settings, engine, report_delay: timedelta) -> None:
    """A day and a half of tracked events written to the event lake (once: skipped when the lake
    has files), the weekly report and the alert rules. The hours sensor loads the events on start."""
    now = utcnow()
    with Session(engine) as session, session.begin():
        users_by_name = dict(session.execute(sa.select(User.username, User.id)).tuples().all())
        published = dict(
            session.execute(
                sa.select(ContentItem.slug, ContentItem.id).where(ContentItem.status == "published")
            ).all()
        )
        seed_demo_reports_and_alerts(session, users_by_name, now, report_delay)
    store = build_client(build_resources(settings)["object_store"])
    if next(iter(store.list(f"{LAKE_PREFIX}/")), None) is not None or not published:
        return
    demo_users = {name: users_by_name[name] for name, *_ in DEMO_USERS if name in users_by_name}
    lines = validated_lines(demo_events(now, published, demo_users), now)
    files = parquet_files("demo", read_buffer_lines(b"".join(lines)))
    for key, data in files.items():
        store.put_bytes(key, data, PARQUET_CONTENT_TYPE)
    print(f"demo: {len(lines)} tracked events over {len(files)} hours written to the event lake", flush=True)


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status < 500:
                return True
        time.sleep(0.5)
    return False


def api_command(settings: Settings) -> list[str]:
    server = [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory"]
    return [*server, "--host", settings.api_host, "--port", str(settings.api_port), "--no-access-log"]


def _local(host: str) -> str:
    """Where this machine reaches a server bound to `host` (all interfaces: loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def check_demo_accounts(settings: Settings) -> list[str]:
    """The demo accounts present in the operational DB (see `domain.demo.demo_accounts`)."""
    engine = sync_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return demo_accounts(session, verify_password)
    finally:
        engine.dispose()


def demo_banner(api: str, schedule_delay: float, report_delay: float) -> str:
    accounts = ", ".join(f"{u} / {p}" for u, _, p, _ in DEMO_USERS)
    return (
        f"Demo accounts (username / password; demo only): {accounts}\n"
        f"  get a token: curl -s -X POST {api}/api/v1/auth/login -H 'content-type: application/json' \\\n"
        f'    -d \'{{"login": "editor", "password": "{DEMO_USERS[1][2]}"}}\'\n'
        "Demo: 6 Arabic/English items; 'breaking-news-scheduled' is published by the\n"
        f"scheduled_content_sensor ~{schedule_delay:.0f}s after the first start.\n"
        f"Sign in to the dashboard as analyst / {DEMO_USERS[3][2]}: a day and a half of demo events load\n"
        f"  within minutes; the weekly report is generated ~{report_delay:.0f}s after the first start\n"
        "  (GET /api/v1/analytics/reports).\n"
    )


def prepare(settings: Settings, schedule_delay: float, report_delay: float, *, demo: bool) -> bool:
    """Migrate; seed the demo when asked (the local deployment always is). Without the demo, refuse
    (False) while demo accounts exist: their passwords are published in the README."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    if demo:
        created = seed(settings, schedule_delay, report_delay)
        print(f"demo: {created} new content item(s) seeded ({len(DEMO_CONTENT)} in the demo set)", flush=True)
    elif present := check_demo_accounts(settings):
        print(
            f"refusing to start: demo account(s) {', '.join(present)} exist, with the demo's published "
            "password or email. Delete them or give them passwords of their own (a real deployment's "
            "first administrator comes from `thmnayah create-admin`), or pass --demo to run the demo.",
            file=sys.stderr,
        )
        return False
    return True


def run(settings: Settings, schedule_delay: float, report_delay: float = 240.0, *, demo: bool = False) -> int:
    demo = demo or seeds_demo(settings)
    if not prepare(settings, schedule_delay, report_delay, demo=demo):
        return 2
    home = prepare_dagster_home(settings)
    env = child_process_env(home)
    import dagster as dg  # only `run` needs it (a second of imports)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        limits = apply_pool_limits(instance, pool_limits(settings))
    print(f"dagster: pool limits {limits}", flush=True)
    procs = {name: subprocess.Popen(command, env=env) for name, command in dagster_commands(settings).items()}
    procs["api"] = subprocess.Popen(api_command(settings), env=env)
    ui_proc = procs["dagster-webserver"]

    def stop(*_args) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    api = f"http://{_local(settings.api_host)}:{settings.api_port}"
    ui = f"http://{_local(settings.dagster_host)}:{settings.dagster_port}"
    try:
        ok_api = _wait_http(f"{api}/api/v1/health", procs["api"], 60)
        ok_ui = _wait_http(f"{ui}/server_info", ui_proc, 180)
        if not (ok_api and ok_ui):
            print("the platform did not come up; see the output above", file=sys.stderr)
            stop()
            return 1
        print(
            "\n"
            f"thmnayah is running (deployment: {settings.deployment})\n"
            f"  Dagster UI (asset graph, runs, sensors): {ui}   (no login: keep it private)\n"
            f"  API:                                    {api}/api/v1/content\n"
            f"  API docs (OpenAPI):                     {api}/api/docs\n"
            f"  Health:                                 {api}/api/v1/health\n"
            f"  Analytics dashboard:                    {api}/dashboard\n"
            + (demo_banner(api, schedule_delay, report_delay) if demo else "")
            + "Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        failed = [name for name, p in procs.items() if p.returncode not in (None, 0)]
        if failed:
            print(f"stopped: {', '.join(failed)} exited", file=sys.stderr)
        stop()
        return 1 if failed else 0
    except KeyboardInterrupt:
        stop()
        return 0


def read_password(password_file: Path | None) -> str:
    """The new administrator's password: the first line of `password_file` (`-`: standard input),
    else asked twice at a prompt that does not echo. Never a command-line argument (those show in
    `ps` and shell histories)."""
    if password_file is not None:
        text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text()
        return text.splitlines()[0] if text else ""
    first = getpass.getpass("password for the new administrator: ")
    if getpass.getpass("again: ") != first:
        raise InvalidValue("the two passwords differ", field="password")
    return first


def create_admin(settings: Settings, username: str, email: str, password_file: Path | None) -> int:
    """An active, verified administrator: the first account of a real deployment."""
    try:
        password = read_password(password_file)
        check_password_policy(password, username=username, email=email)
        migrate(settings)
        engine = sync_engine(settings.database_url)
        try:
            with Session(engine) as session, session.begin():
                rbac.seed_system_roles(session)
                user = create_user(
                    session,
                    NewUser(
                        username=username, email=email, password_hash=hash_password(password), roles=["admin"]
                    ),
                    created_by=None,
                    origin=audit.Origin(user_agent="thmnayah create-admin"),
                )
                print(f"created administrator {user.username} ({user.email}), id {user.id}")
        finally:
            engine.dispose()
    except DomainError as exc:
        print(f"create-admin: {exc.detail}", file=sys.stderr)
        return 1
    return 0


def rotate_keys(settings: Settings) -> int:
    """Re-encrypt the secrets stored at rest under `THMNAYAH_SECRET_KEY` (see `domain.auth.rotation`);
    1 when some value is under no secret of the ring (nothing else is changed for it)."""
    require_current(settings.database_url)
    keys = platform_keyring(settings)
    engine = sync_engine(settings.database_url)
    try:
        with Session(engine) as session, session.begin():
            tallies = reencrypt_stored_secrets(session, keys)
    finally:
        engine.dispose()
    for where, tally in tallies.items():
        print(
            f"{where}: {tally.rotated} re-encrypted, {tally.current} already current, {tally.unreadable} unreadable"
        )
    unreadable = sum(t.unreadable for t in tallies.values())
    if unreadable:
        print(
            f"rotate-keys: {unreadable} stored secret(s) decrypt under neither THMNAYAH_SECRET_KEY nor "
            "THMNAYAH_SECRET_KEY_PREVIOUS: add the secret that encrypted them to THMNAYAH_SECRET_KEY_PREVIOUS "
            "and run again (or those users enrol MFA and register their webhooks again)",
            file=sys.stderr,
        )
        return 1
    print("every stored secret is under the current platform secret")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="thmnayah", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser(
        "run", help="migrate, start Dagster and the API (and seed the demo on the local deployment)"
    )
    run_p.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo data and accounts even when THMNAYAH_DEPLOYMENT is not local",
    )
    run_p.add_argument(
        "--schedule-delay", type=float, default=90.0, help="seconds until the demo's scheduled item is due"
    )
    run_p.add_argument(
        "--report-delay",
        type=float,
        default=240.0,
        help="seconds until the demo's weekly report is first generated (after its events are loaded)",
    )
    sub.add_parser("api", help="migrate and serve the API")
    demo_p = sub.add_parser("demo", help="migrate and seed the demo data")
    demo_p.add_argument("--schedule-delay", type=float, default=90.0)
    # No abbreviations: `--password <text>` must not pass for `--password-file`.
    admin_p = sub.add_parser("create-admin", help="create an administrator account", allow_abbrev=False)
    admin_p.add_argument("--username", required=True)
    admin_p.add_argument("--email", required=True)
    admin_p.add_argument(
        "--password-file",
        type=Path,
        help="read the password from the first line of this file (`-`: standard input); "
        "without it, you are asked at a prompt",
    )
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser(
        "rotate-keys",
        help="re-encrypt stored TOTP and webhook secrets under THMNAYAH_SECRET_KEY (after a secret rotation)",
    )
    sub.add_parser("settings", help="list every setting")
    args = parser.parse_args(argv)

    if args.command == "settings":
        for setting in Settings.documented():
            print(f"{setting.env}={setting.default}  # {setting.help}")
        return 0
    settings = load_settings()
    if args.command == "migrate":
        migrate(settings)
        return 0
    if args.command == "demo":
        migrate(settings)
        print(f"seeded {seed(settings, args.schedule_delay)} demo item(s)")
        return 0
    if args.command == "rotate-keys":
        return rotate_keys(settings)
    if args.command == "create-admin":
        return create_admin(settings, args.username, args.email, args.password_file)
    if args.command == "api":
        migrate(settings)
        os.execv(sys.executable, api_command(settings))
    return run(settings, args.schedule_delay, args.report_delay, demo=args.demo)


if __name__ == "__main__":
    sys.exit(main())

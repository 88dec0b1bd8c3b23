"""Many users sending photos at once through the fake Bot API: batched vs one photo at a time.

    python bench/bot_load.py [--users 50] [--photos-per-user 4]
    python bench/bot_load.py --open-loop 10,20,30 [--seconds 60] [--drain 30] [--seed 0]
    python bench/bot_load.py --memory-check [--memory-rate 10]
    python bench/bot_load.py --capacity [--users 40] [--seconds 20] [--rounds 2] [--baseline DIR]
                             [--one-view]

Runs the real bot (python-telegram-bot, the shipped model, SQLite) against the test suite's fake
Bot API server on 127.0.0.1 (the `fake_telegram` package under tests/, which `pip install -e .`
installs), twice in one run: batching as deployed, and batch size 1 (each photo through the model
alone). Each user sends a photo, waits for the answer and sends the next, so `--users` photos are
in flight at all times. Prints sustained photos/s, p50/p95 time from update to reply, and the
process's peak memory (bot and fake server share the process in this mode).

--open-loop: photos arrive as a seeded Poisson process at each rate (photos/s) for --seconds,
each from a new user, whether or not earlier ones were answered; then up to --drain seconds more
for the replies. For each rate a fresh `flowerbot bot` in a process of its own, as deployed
(SQLite, batching as deployed), polls the fake server, which runs here with the sender: so the
sender keeps its schedule however busy the bot is, and the bot's memory is its own. One row per
rate: photos sent, the rate actually offered, the share answered (a message with the feedback
buttons), p50/p95/max update -> first reply (under overload that may be "next in line"), p95
update -> answer, how many were told "next in line" first and how many answered twice (a bug),
the bot process's resident memory at the end (VmRSS) and its peak during that rate (VmHWM).

--capacity: the bot's capacity against its model's: in turns, the model path alone (decode in
parallel threads and batched `answers` calls, as bench/latency.py measures its throughput) and
`flowerbot bot` in its own process under a closed loop of --users senders for --seconds (each
sends a photo from a new user, waits for the answer, sends the next); photos/s of each and their
ratio, the share of the model's ceiling the bot reaches; and the CPU time a photo of each (the
bot process's, all threads) and their ratio, which a shared machine's load moves much less.
With --baseline DIR (another checkout, e.g. `git archive COMMIT | tar -x -C DIR`; may be given
more than once) its bot runs in the same turns, that checkout first on PYTHONPATH. With
--one-view every bot gives the one-view answer to each photo it has queued (the model alone
still measures four views).

--memory-check: 1,000 photos in the open loop at --memory-rate; the bot process's resident
memory once 100 were answered and once all 1,000 were, and their ratio (a leak shows as a ratio
well above 1).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from fake_telegram import ApiCall, FakeTelegram, polling
from sqlalchemy import select

from bot.app import build_application
from bot.config import Settings
from model_training.defaults import SHIPPED_MODEL_DIR
from storage import Database, Prediction

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:" + "B" * 35
SHARED = Path(os.environ.get("FLOWERBOT_SHARED", ROOT.parent / "shared"))  # as tests/conftest.py
SAMPLES = SHARED / "samples" / "photos"
FIRST_USER = 1_000_000  # open-loop users: far from the closed loop's and the warm-up's ids


@asynccontextmanager
async def bot_on_fake_telegram(
    model_dir: Path = SHIPPED_MODEL_DIR, **settings: object
) -> AsyncIterator[tuple[FakeTelegram, Settings]]:
    """The real bot polling a fake Bot API server, on a fresh SQLite file, warmed up (the first
    answer traces the model's graph); stopped as run_polling would stop it."""
    with FakeTelegram(token=TOKEN) as tg, tempfile.TemporaryDirectory() as tmp:
        bot_settings = Settings(
            telegram_bot_token=TOKEN,
            database_url=f"sqlite:///{tmp}/bench.sqlite",
            model_dir=model_dir,
            telegram_api_base_url=tg.base_url,
            telegram_file_base_url=tg.base_file_url,
            health_port=0,
            **settings,
        )
        async with polling(build_application(bot_settings)):
            tg.user_photo(1, next(SAMPLES.glob("*.jpg")).read_bytes())
            await tg.wait_for("sendMessage", chat_id=1, timeout=120)
            yield tg, bot_settings


# The bot at full work: the one-view answer and "next in line" would flatter a slower mode.
FULL_WORK = {"one_view_after_seconds": 1e9, "next_in_line_after_seconds": 1e9}


async def one_run(batch_size: int, users: int, per_user: int, photos: list[bytes]) -> dict:
    limit = per_user + 1
    running = bot_on_fake_telegram(photos_per_minute=limit, batch_size=batch_size, **FULL_WORK)
    async with running as (tg, settings):
        latencies: list[float] = []
        start = time.monotonic()  # the fake server's clock
        await asyncio.gather(
            *(user_loop(tg, user, photos, per_user, latencies) for user in range(100, 100 + users))
        )
        elapsed = time.monotonic() - start
        # The identifier's share: photo bytes -> answer (decode, queue, model), per photo.
        database = Database(settings.database_url)
        with database.session() as session:
            model_ms = list(session.scalars(select(Prediction.latency_ms)))
        database.dispose()
    return {
        "photos/s": len(latencies) / elapsed,
        "identify p50": float(np.percentile(model_ms, 50)) / 1000,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }


async def user_loop(
    tg: FakeTelegram, user: int, photos: list[bytes], count: int, latencies: list[float]
) -> None:
    """One user: send a photo, wait for the answer, send the next."""
    for i in range(count):
        mark = tg.mark()
        sent = time.monotonic()
        tg.user_photo(user, photos[(user + i) % len(photos)])
        reply = await tg.wait_for("sendMessage", chat_id=user, after=mark, timeout=600)
        latencies.append(reply.time - sent)


def memory_mb(pid: int | str = "self") -> tuple[float, float]:
    """A process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak_memory(pid: int) -> None:
    """Starts VmHWM afresh (Linux 4.0 on), so that the peak is the load's, not the start's."""
    with suppress(OSError):  # then the peak spans the whole process so far
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@asynccontextmanager
async def bot_process_on_fake_telegram(
    checkout: Path = ROOT, **settings: str
) -> AsyncIterator[tuple[FakeTelegram, int]]:
    """`flowerbot bot` in a process of its own, on its defaults but for a fresh SQLite file and
    registry folder (and `settings`, as environment variables), polling a fake Bot API server
    in this process, warmed up by one photo; yields the server and the bot's pid, then stops
    the bot with SIGTERM, as systemd would."""
    flowerbot = Path(sys.executable).with_name("flowerbot")
    with FakeTelegram(token=TOKEN) as tg, tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": tg.base_url,
            "TELEGRAM_FILE_BASE_URL": tg.base_file_url,
            "HEALTH_PORT": "0",
            "PYTHONPATH": os.pathsep.join([str(checkout), os.environ.get("PYTHONPATH", "")]),
            **{name.upper(): value for name, value in settings.items()},
        }
        with (Path(tmp) / "bot.log").open("w+") as log:
            bot = subprocess.Popen([flowerbot, "bot"], cwd=tmp, env=env, stdout=log, stderr=log)
            try:
                tg.user_photo(1, next(SAMPLES.glob("*.jpg")).read_bytes())
                try:
                    await tg.wait_for("sendMessage", chat_id=1, timeout=120)
                except AssertionError:
                    log.seek(0)
                    raise SystemExit(f"the bot did not answer:\n{log.read()[-3000:]}") from None
                yield tg, bot.pid
            finally:
                bot.terminate()  # it answers the updates it holds first: give it a minute
                try:
                    bot.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    bot.kill()
                    bot.wait()


def answered(call: ApiCall) -> bool:
    """An answer: a reply with the feedback buttons (not "next in line", nor a refusal)."""
    return "reply_markup" in call.params


class Replies:
    """Photos from one-photo users and the bot's messages back to each, read off the fake
    server's record: a call's `time` is when it reached the server, so reading late loses
    nothing. The first message back is the reply (under overload it may be "next in line");
    the one with the feedback buttons is the answer."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.scanned = tg.mark()
        self.sent: dict[int, float] = {}  # user -> time.monotonic() when the update was queued
        self.seconds: dict[int, float] = {}  # user -> update -> first reply
        self.answer_seconds: dict[int, float] = {}  # user -> update -> the answer
        self.answers: Counter[int] = Counter()  # user -> answers sent (one each, or a bug)

    def send(self, user: int, photo: bytes) -> None:
        self.sent[user] = time.monotonic()
        self.tg.user_photo(user, photo)

    def collect(self) -> int:
        """Reads the calls made since the last look; returns how many photos are answered."""
        calls = self.tg.calls()
        for call in calls[self.scanned :]:
            user = call.params.get("chat_id")
            if call.method != "sendMessage" or not call.ok or user not in self.sent:
                continue
            self.seconds.setdefault(user, call.time - self.sent[user])
            if answered(call):
                self.answers[user] += 1
                self.answer_seconds.setdefault(user, call.time - self.sent[user])
        self.scanned = len(calls)
        return len(self.answer_seconds)


async def open_loop(
    rate: float,
    seconds: float,
    drain: float,
    photos: list[bytes],
    *,
    seed: int = 0,
    limit: int | None = None,
    checkpoints: Sequence[int] = (),
) -> dict[str, float]:
    """Poisson arrivals at `rate` photos/s for `seconds` (or until `limit` photos), each from a
    new user, then up to `drain` seconds for the replies; a fresh bot, batching as deployed.
    Resident memory is noted when the answered count first reaches each checkpoint."""
    rng = np.random.default_rng(seed)
    async with bot_process_on_fake_telegram() as (tg, bot):
        replies = Replies(tg)
        reset_peak_memory(bot)
        memory_at: dict[int, float] = {}

        def look() -> int:
            count = replies.collect()
            for checkpoint in checkpoints:
                if count >= checkpoint and checkpoint not in memory_at:
                    memory_at[checkpoint] = memory_mb(bot)[0]
            return count

        start = time.monotonic()
        due = start
        while len(replies.sent) < (limit or math.inf):
            due += rng.exponential(1 / rate)  # absolute schedule: a late loop catches up
            if due - start > seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            user = FIRST_USER + len(replies.sent)
            replies.send(user, photos[user % len(photos)])
            look()
        arrivals_end = time.monotonic()
        deadline = arrivals_end + drain
        while look() < len(replies.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        rss, peak = memory_mb(bot)
    latencies = list(replies.seconds.values()) or [math.nan]
    to_answers = list(replies.answer_seconds.values()) or [math.nan]
    return {
        "rate": rate,
        "sent": len(replies.sent),
        "offered/s": len(replies.sent) / max(arrivals_end - start, 1e-9),
        "answered": len(replies.answer_seconds),
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "max": max(latencies),
        "answer p95": float(np.percentile(to_answers, 95)),
        "next in line": sum(
            1
            for u in replies.seconds
            if replies.seconds[u] < replies.answer_seconds.get(u, math.inf)
        ),
        "answered twice": sum(1 for n in replies.answers.values() if n > 1),
        "rss MB": rss,
        "peak MB": peak,
        **{f"rss MB at {n}": memory_at.get(n, math.nan) for n in checkpoints},
    }


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, user and system, all threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    checkout: Path, users: int, seconds: float, photos: list[bytes], one_view: bool = False
) -> tuple[float, float, float]:
    """Photos/s answered by a fresh bot process while `users` senders each keep one photo in
    flight for `seconds`, the bot's CPU milliseconds a photo, and this process's (the fake Bot
    API and the senders, on the same cores); each photo from a new user, as in the open loop
    (and never against the per-user limit)."""
    # FULL_WORK, or with `one_view` the one-view answer whenever the bot has photos queued.
    work = {name: str(value) for name, value in FULL_WORK.items()}
    if one_view:
        work["one_view_after_seconds"] = "0"
    async with bot_process_on_fake_telegram(checkout, **work) as (tg, bot):
        replies = Replies(tg)
        waiting: dict[int, asyncio.Event] = {}  # user -> set once their answer came
        deadline = time.monotonic() + seconds

        async def sender(first: int) -> None:
            for i in itertools.count():
                if time.monotonic() >= deadline:
                    return
                user_id = first + i
                answer = waiting[user_id] = asyncio.Event()
                replies.send(user_id, photos[user_id % len(photos)])
                await asyncio.wait_for(answer.wait(), timeout=600)

        async def watch() -> None:
            # One reader of the fake server's record for every sender: each sender scanning it
            # on its own cost more CPU than the server (on the cores the bot runs on).
            while True:
                await asyncio.sleep(0.01)
                replies.collect()
                for user_id in [u for u in waiting if u in replies.answer_seconds]:
                    waiting.pop(user_id).set()

        start, cpu, bench_cpu = time.monotonic(), cpu_seconds(bot), time.process_time()
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(sender(FIRST_USER + 100_000 * u) for u in range(users)))
        elapsed, bench_cpu = time.monotonic() - start, time.process_time() - bench_cpu
        watcher.cancel()
        count = len(replies.answer_seconds)
        return count / elapsed, (cpu_seconds(bot) - cpu) * 1000 / count, bench_cpu * 1000 / count


def model_alone(seconds: float, batch_photos: int = 64) -> dict[str, float]:
    """The model path alone, as bench/latency.py measures its batch throughput (decode in
    parallel threads, one `answers` call), repeated for `seconds`: photos/s and CPU ms a
    photo."""
    from concurrent.futures import ThreadPoolExecutor

    from model_training.classifier import FlowerClassifier
    from model_training.photos import decode_photo

    classifier = FlowerClassifier.from_folder(SHIPPED_MODEL_DIR)
    photos = [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpg"))]
    batch = [photos[i % len(photos)] for i in range(batch_photos)]
    with ThreadPoolExecutor() as pool:
        classifier.answers(list(pool.map(decode_photo, batch[:4])))  # warm-up
        done, start, cpu = 0, time.monotonic(), time.process_time()
        while time.monotonic() - start < seconds:
            classifier.answers(list(pool.map(decode_photo, batch)))
            done += len(batch)
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    return {"photos/s": done / elapsed, "cpu ms": cpu * 1000 / done}


def model_ceiling(seconds: float) -> dict[str, float]:
    """model_alone in a fresh process of this checkout."""
    measure = [sys.executable, __file__, "--model-alone", f"--seconds={seconds}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(measure, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def capacity(
    checkouts: dict[str, Path],
    users: int,
    seconds: float,
    rounds: int,
    photos: list[bytes],
    one_view: bool = False,
) -> str:
    """Each checkout's bot under the closed loop, each right after a measure of the model
    alone, in turns; a table of the medians over the rounds. Throughput swings with the load
    of a shared machine; CPU time a photo much less, so both ratios are given."""
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in checkouts}
    for _ in range(rounds):
        for name, checkout in checkouts.items():
            model = model_ceiling(min(seconds, 10))
            loop = closed_loop(checkout, users, seconds, photos, one_view)
            bot, bot_cpu, bench_cpu = asyncio.run(loop)
            runs[name].append((bot, model["photos/s"], bot_cpu, model["cpu ms"], bench_cpu))
    lines = [
        f"closed loop: {users} users, {seconds:g} s a run, medians of {rounds} rounds\n",
        "| checkout | bot photos/s | model alone photos/s | bot / model, each round | "
        "bot CPU ms a photo | model alone CPU ms a photo | model / bot CPU, each round | "
        "fake Bot API and senders CPU ms a photo |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in runs.items():
        medians = (float(np.median(c)) for c in zip(*figures, strict=True))
        bot, model, bot_cpu, model_cpu, bench_cpu = medians
        ratios = ", ".join(f"{f[0] / f[1]:.2f}" for f in figures)
        cpu_ratios = ", ".join(f"{f[3] / f[2]:.2f}" for f in figures)
        lines.append(
            f"| {name} | {bot:.1f} | {model:.1f} | {ratios} | {bot_cpu:.0f} | {model_cpu:.0f} "
            f"| {cpu_ratios} | {bench_cpu:.0f} |"
        )
    return "\n".join(lines)


def open_loop_table(results: list[dict[str, float]], seconds: float) -> str:
    lines = [
        f"open loop: Poisson arrivals for {seconds:g} s per rate, each photo from a new user\n",
        "| photos/s | sent | sent/s | answered | p50 update->reply | p95 | max | "
        "p95 update->answer | next in line first | answered twice | RSS at the end | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rate']:g} | {r['sent']} | {r['offered/s']:.1f} | "
            f"{r['answered'] / max(r['sent'], 1):.1%} | "
            f"{r['p50']:.2f} s | {r['p95']:.2f} s | {r['max']:.2f} s | {r['answer p95']:.2f} s | "
            f"{r['next in line']} | {r['answered twice']} | {r['rss MB']:.0f} MB | "
            f"{r['peak MB']:.0f} MB |"
        )
    return "\n".join(lines)


def memory_line(result: dict[str, float]) -> str:
    first, last = result["rss MB at 100"], result["rss MB at 1000"]
    return (
        f"memory: {first:.0f} MB after 100 answered photos, {last:.0f} MB after 1,000 "
        f"(ratio {last / first:.3f}; {result['answered']} of {result['sent']} answered at "
        f"{result['rate']:g} photos/s)"
    )


def rates(text: str) -> list[float]:
    return [float(rate) for rate in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--photos-per-user", type=int, default=4)
    parser.add_argument("--open-loop", type=rates, metavar="RATE[,RATE...]", help="photos/s")
    parser.add_argument("--seconds", type=float, default=60, help="open loop: arrivals per rate")
    parser.add_argument("--drain", type=float, default=30, help="open loop: then wait at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--capacity", action="store_true", help="closed loop vs the model alone")
    parser.add_argument("--model-alone", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2, help="capacity: rounds in turns")
    parser.add_argument(
        "--baseline", type=Path, action="append", help="capacity: another checkout, in turns"
    )
    parser.add_argument(
        "--one-view", action="store_true", help="capacity: the one-view answer for every photo"
    )
    parser.add_argument("--memory-check", action="store_true", help="RSS at 100 vs 1,000 photos")
    parser.add_argument("--memory-rate", type=float, default=10, help="memory check: photos/s")
    parser.add_argument(
        "--json", type=Path, help="open loop: also write each rate's figures here (a JSON list)"
    )
    args = parser.parse_args(argv)
    if args.model_alone:  # --capacity's child: JSON on the last line
        print(json.dumps(model_alone(args.seconds)))
        return 0
    photos = [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpg"))]
    if args.capacity:
        checkouts = {str(path): path.resolve() for path in args.baseline or []}
        checkouts["this checkout"] = ROOT
        load_before = os.getloadavg()
        print(capacity(checkouts, args.users, args.seconds, args.rounds, photos, args.one_view))
        print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {os.getloadavg()}")
        return 0
    if args.open_loop or args.memory_check:
        load_before = os.getloadavg()
        results = [
            asyncio.run(open_loop(rate, args.seconds, args.drain, photos, seed=args.seed))
            for rate in args.open_loop or []
        ]
        if results:
            print(open_loop_table(results, args.seconds))
        if args.json:
            args.json.write_text(json.dumps(results))
        if args.memory_check:
            check = open_loop(
                args.memory_rate,
                math.inf,
                args.drain,
                photos,
                seed=args.seed,
                limit=1000,
                checkpoints=(100, 1000),
            )
            print(memory_line(asyncio.run(check)))
        print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {os.getloadavg()}")
        return 0
    rows = []
    for label, batch in (("batched (as deployed)", 16), ("one photo at a time", 1)):
        result = asyncio.run(one_run(batch, args.users, args.photos_per_user, photos))
        rows.append((label, result))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.users * args.photos_per_user
    print(
        f"{args.users} users x {args.photos_per_user} photos = {n} photos; "
        f"peak memory of the process: {peak_mb:.0f} MB\n"
    )
    print(
        "| mode | photos/s | p50 update->reply | p95 update->reply | p50 bytes->answer |\n"
        "|---|---:|---:|---:|---:|"
    )
    for label, r in rows:
        print(
            f"| {label} | {r['photos/s']:.1f} | {r['p50'] * 1000:.0f} ms | "
            f"{r['p95'] * 1000:.0f} ms | {r['identify p50'] * 1000:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the bot's real answer to a sample photo, as a Telegram user sees it (README "What it is").

The real bot (python-telegram-bot, the shipped model, a SQLite file in a temporary folder) talks
to the fake Bot API server of tests/fake_telegram; a user sends one photo and the script prints
the text of the reply and the labels of its buttons, one row a line.

    KERAS_HOME=.cache/keras .venv/bin/python docs/capture_answer.py [PHOTO] [--lang es]

PHOTO defaults to the sunflower ../shared/samples/photos/image_05414.jpg.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from fake_telegram import FakeTelegram, polling

from bot.app import build_application
from bot.config import Settings
from model_training import defaults

TOKEN = "123456:" + "A" * 35
USER = 42
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/samples/photos/image_05414.jpg"


async def capture(photo: bytes, language: str) -> str:
    with FakeTelegram(token=TOKEN) as tg, tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None,
            telegram_bot_token=TOKEN,
            database_url=f"sqlite:///{Path(folder) / 'bot.sqlite'}",
            model_dir=defaults.SHIPPED_MODEL_DIR,
            telegram_api_base_url=tg.base_url,
            telegram_file_base_url=tg.base_file_url,
            health_port=0,
        )
        async with polling(build_application(settings)):
            tg.set_user(USER, language_code=language)
            mark = tg.mark()
            tg.user_photo(USER, photo)
            reply = (await tg.wait_for("sendMessage", chat_id=USER, after=mark, timeout=120)).result
            rows = tg.keyboard(reply)
    buttons = "\n".join(" | ".join(f"[{b['text']}]" for b in row) for row in rows)
    return f"{reply['text']}\n\n{buttons}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--lang", default="en", help="the user's Telegram language code")
    args = parser.parse_args()
    print(asyncio.run(capture(args.photo.read_bytes(), args.lang)))


if __name__ == "__main__":
    main()

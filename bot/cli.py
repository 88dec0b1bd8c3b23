"""The `flowerbot` command: the training commands plus `flowerbot bot`, which runs the bot."""

from __future__ import annotations

import argparse
import logging
import sys

from model_training import cli as training_cli
from model_training.native_logs import filter_native_logs

MISSING = "not set (in the environment or a .env file; a token comes from @BotFather)"


def main(argv: list[str] | None = None) -> int:
    filter_native_logs()  # first: building the parser may import TensorFlow
    parser, commands = training_cli.parser()
    bot = commands.add_parser("bot", help="run the Telegram bot (configuration: env or .env)")
    bot.set_defaults(command=_bot)
    return training_cli.dispatch(parser, argv)


def _bot(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bot.config import Settings

    try:
        settings = Settings()
    except ValidationError as err:  # one clear line per problem, no traceback
        for problem in err.errors():
            name = str(problem["loc"][0]).upper() if problem["loc"] else "configuration"
            message = MISSING if problem["type"] == "missing" else problem["msg"]
            print(f"flowerbot bot: {name}: {message}", file=sys.stderr)
        return 2
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level="INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the token

    from bot.app import run

    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `flowerbot` command: the training commands plus `flowerbot bot`, which runs the bot."""

from __future__ import annotations

import argparse
import logging
import sys

from model_training import cli as training_cli
from model_training.native_logs import filter_native_logs

MISSING = "not set (in the environment or a .env file; a token comes from @BotFather)"
REJECTED = "Telegram rejected the token (revoked or mistyped? @BotFather shows the current one)"


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
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # 7 lines per import

    from telegram.error import InvalidToken

    # PTB logs a rejected token with a traceback whose message holds the token: said below.
    logging.getLogger("telegram.ext").addFilter(
        lambda record: not (record.exc_info and isinstance(record.exc_info[1], InvalidToken))
    )
    from bot.app import StartError, run
    from bot.i18n import MissingCatalogue
    from model_training.artifact import ModelFolderError
    from model_training.model import BackboneUnavailable

    try:
        run(settings)
    except (StartError, MissingCatalogue, ModelFolderError, BackboneUnavailable) as err:
        # Raised before the bot answers anyone (handlers' errors never get here): one line.
        print(f"flowerbot bot: {err}", file=sys.stderr)
        return 2
    except InvalidToken:  # at start (getMe); PTB's own message would print the token
        print(f"flowerbot bot: TELEGRAM_BOT_TOKEN: {REJECTED}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

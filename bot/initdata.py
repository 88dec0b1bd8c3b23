"""A Mini App's init data, checked as Telegram documents it ("Validating data received via the
Mini App"): the page receives it from Telegram, signed with a key derived from the bot's token,
and sends it with what it posts (bot/webapp.py); only Telegram and this bot can make one.

python-telegram-bot has no such check, and the algorithm is four lines of the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

# A clock a little ahead of Telegram's still accepts what it just signed.
CLOCK_SKEW = timedelta(seconds=60)


class InitDataError(ValueError):
    """Init data that does not prove a Telegram user opened this bot's Mini App just now."""


@dataclass(frozen=True)
class WebAppUser:
    """The signed user: who sends, and what Telegram says of them."""

    id: int
    first_name: str
    username: str | None
    language_code: str | None


def sign(fields: dict[str, str], token: str) -> str:
    """The hash Telegram puts beside `fields` (the tests sign their own init data with it)."""
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    check_string = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hmac.new(secret, check_string.encode(), hashlib.sha256).hexdigest()


def validated_user(init_data: str, token: str, max_age: timedelta, now: datetime) -> WebAppUser:
    """The user of `init_data` (Telegram.WebApp.initData, a query string) if Telegram signed it
    for this bot's token no longer than `max_age` before `now`; InitDataError otherwise."""
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError("not init data") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):  # a field given twice: which one was signed?
        raise InitDataError("a field given twice")
    given = fields.pop("hash", "")
    # compare_digest: the time taken does not tell how much of a forged hash was right.
    if not hmac.compare_digest(sign(fields, token).encode(), given.encode()):
        raise InitDataError("not signed for this bot")
    try:
        signed_at = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
        user = json.loads(fields["user"])
        signed_user = WebAppUser(
            id=int(user["id"]),
            first_name=str(user.get("first_name", "")),
            username=user.get("username"),
            language_code=user.get("language_code"),
        )
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError):
        raise InitDataError("no signing date or no user") from None
    if not now - max_age <= signed_at <= now + CLOCK_SKEW:
        raise InitDataError("signed too long ago")
    return signed_user

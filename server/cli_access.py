"""``axonlink users | tokens | grant | visibility | audit``: accounts and the audit log from the shell.

Everything goes through :class:`segmentation.access.Accounts` (the same facade
the server uses); changes are audited as ``cli:<login name>`` from ``cli``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from .cli_common import actor, user_error

_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def add_parsers(sub, common) -> None:
    users = sub.add_parser("users", help="user accounts: add, list")
    users_sub = users.add_subparsers(title="users commands")
    add = users_sub.add_parser("add", parents=[common], help="create a user (no role anywhere until granted)")
    add.add_argument("name")
    add.add_argument("--site-admin", action="store_true", help="admin on every dataset, may read the whole audit log")
    add.set_defaults(handler=cmd_users_add)
    listing = users_sub.add_parser("list", parents=[common], help="users and their roles, as JSON")
    listing.set_defaults(handler=cmd_users_list)

    tokens = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    tokens_sub = tokens.add_subparsers(title="tokens commands")
    create = tokens_sub.add_parser(
        "create",
        parents=[common],
        help="a new token for a user (printed once: only its hash is stored)",
        description="Prints the token. Use it as `Authorization: Bearer <token>` (caveclient: auth_token=...) "
        "or sign the browser in at /login.",
    )
    create.add_argument("name")
    create.add_argument("--expires", help="a duration (30d, 12h, 90m) or a moment (ISO 8601); default: never")
    create.add_argument("--label", default="", help="what the token is for")
    create.set_defaults(handler=cmd_tokens_create)
    tlist = tokens_sub.add_parser("list", parents=[common], help="tokens (ids, users, expiry; never the secret)")
    tlist.add_argument("name", nargs="?")
    tlist.set_defaults(handler=cmd_tokens_list)
    revoke = tokens_sub.add_parser("revoke", parents=[common], help="revoke a token by its id or by the token")
    revoke.add_argument("token")
    revoke.set_defaults(handler=cmd_tokens_revoke)

    grant = sub.add_parser(
        "grant",
        parents=[common],
        help="give a user a role on a dataset",
        description="viewer reads; proofreader also edits the graph and tags; admin also "
        "grants roles and changes dataset settings; none takes the role away.",
    )
    grant.add_argument("name")
    grant.add_argument("dataset")
    grant.add_argument("role", choices=["viewer", "proofreader", "admin", "none"])
    grant.set_defaults(handler=cmd_grant)

    visibility = sub.add_parser(
        "visibility",
        parents=[common],
        help="make a dataset public or private",
        description="public: anyone may view it; private: only users with a role on it see that it exists.",
    )
    visibility.add_argument("dataset")
    visibility.add_argument("mode", choices=["public", "private"])
    visibility.set_defaults(handler=cmd_visibility)

    audit = sub.add_parser("audit", parents=[common], help="the audit log, newest first")
    audit.add_argument("--dataset")
    audit.add_argument("--user")
    audit.add_argument("--action", help="e.g. graph.merge, tag.*, token.*")
    audit.add_argument("--since", help="a moment (ISO 8601 or Unix seconds)")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.set_defaults(handler=cmd_audit)


def _accounts(settings):
    from segmentation import db
    from segmentation.access import Accounts

    db.upgrade(settings.database_url)
    return Accounts(settings.database_url)


def parse_expiry(text: str | None) -> datetime | None:
    """``30d`` / ``12h`` / ``90m`` from now, or a moment (ISO 8601 or Unix seconds)."""
    from segmentation.timestamps import InvalidTimestamp, parse_timestamp

    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match:
        return datetime.now(UTC) + timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        return parse_timestamp(text)
    except InvalidTimestamp:
        raise user_error(f"--expires wants a duration like 30d, 12h, 90m or a moment, not {text!r}") from None


def cmd_users_add(args, settings):
    from segmentation.access import AccessError

    try:
        print(json.dumps(_accounts(settings).add_user(args.name, site_admin=args.site_admin, **actor())))
    except AccessError as error:
        raise user_error(error) from None


def cmd_users_list(args, settings):
    accounts = _accounts(settings)
    grants = accounts.grants()
    for user in accounts.users():
        user["roles"] = {g["dataset"]: g["role"] for g in grants if g["user"] == user["name"]}
        print(json.dumps(user))


def cmd_tokens_create(args, settings):
    from segmentation.access import AccessError

    try:
        token_id, token = _accounts(settings).create_token(
            args.name, expires_at=parse_expiry(args.expires), label=args.label, **actor()
        )
    except AccessError as error:
        raise user_error(error) from None
    print(token)
    print(
        f"(token {token_id} for {args.name}; shown once, only its hash is stored. "
        f"Revoke with: axonlink tokens revoke {token_id})",
        file=__import__("sys").stderr,
    )


def cmd_tokens_list(args, settings):
    for token in _accounts(settings).tokens(args.name):
        print(json.dumps(token))


def cmd_tokens_revoke(args, settings):
    from segmentation.access import AccessError

    try:
        revoked = _accounts(settings).revoke_token(args.token, **actor())
    except AccessError as error:
        raise user_error(error) from None
    print(f"revoked token {revoked['id']} of {revoked['user']}")


def cmd_grant(args, settings):
    from segmentation.access import AccessError

    try:
        _accounts(settings).grant(args.name, args.dataset, args.role, **actor())
    except AccessError as error:
        raise user_error(error) from None
    print(f"{args.name} is now {args.role if args.role != 'none' else 'without a role'} on {args.dataset}")


def cmd_visibility(args, settings):
    from segmentation.access import AccessError

    try:
        _accounts(settings).set_public(args.dataset, args.mode == "public", **actor())
    except AccessError as error:
        raise user_error(error) from None
    print(f"{args.dataset} is now {args.mode}")


def cmd_audit(args, settings):
    from segmentation.access import AuditLog
    from segmentation.timestamps import InvalidTimestamp, parse_timestamp

    try:
        since = parse_timestamp(args.since) if args.since else None
    except InvalidTimestamp as error:
        raise user_error(error) from None
    _accounts(settings)
    entries = AuditLog(settings.database_url).entries(
        datasets=[args.dataset] if args.dataset else None,
        user=args.user,
        action=args.action,
        since=since,
        limit=args.limit,
    )
    for entry in entries:
        if args.json:
            print(json.dumps(entry))
        else:
            where = f" [{entry['dataset']}]" if entry["dataset"] else ""
            print(
                f"{entry['at'][:19]}  {entry['user']:<16} {entry['action']:<18}{where} {entry['target']}"
                f"  from {entry['origin'] or '?'}"
            )

"""Who may do what: users, hashed API tokens, roles per dataset, and the audit log.

Runs without Flask: the server, the CLI and the tests use the same facade,
:class:`Accounts`, and the same rules, :mod:`.policy`.
"""

from .accounts import TOKEN_PATTERN, AccessError, Accounts, InvalidToken
from .audit import AuditLog, record
from .policy import ANONYMOUS, ROLES, Forbidden, NotVisible, Principal, SignInRequired, anonymous, require_role, role_on

__all__ = [
    "ANONYMOUS",
    "ROLES",
    "AccessError",
    "Accounts",
    "AuditLog",
    "Forbidden",
    "InvalidToken",
    "NotVisible",
    "Principal",
    "SignInRequired",
    "TOKEN_PATTERN",
    "anonymous",
    "record",
    "require_role",
    "role_on",
]

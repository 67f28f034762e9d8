"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendation).

Hashing costs ~50 ms of CPU on purpose: callers run it off the event loop (``asyncio.to_thread``) so
a login never stalls the loop that pumps the calls' media.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
_hasher = PasswordHasher()
# A login for an unknown user verifies against this, so it takes as long as a wrong password.
_DUMMY = _hasher.hash("dummy password for timing equalisation")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password must have at least {MIN_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; with ``stored`` None, burns the same time and says no."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)

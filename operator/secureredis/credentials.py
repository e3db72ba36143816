"""Passwords for ACL users and the hashes written to users.acl."""

from __future__ import annotations

import hashlib
import secrets
import string

# 40 characters from 62 symbols carry about 238 bits, above the checklist's
# 32-character floor. Letters and digits only, so a password needs no
# escaping in a URL, a shell variable or YAML.
PASSWORD_LENGTH = 40
MIN_PASSWORD_LENGTH = 32
PASSWORD_ALPHABET = string.ascii_letters + string.digits
# A random command name ends in this many random bytes, written as hex.
RANDOM_NAME_BYTES = 16


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """Return a new random password from the operating system's CSPRNG."""
    if length < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password length {length} is below the minimum {MIN_PASSWORD_LENGTH}")
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def password_hash(password: str) -> str:
    """Return the lowercase hex SHA-256 that Redis ACL files take after ``#``."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def check_password(password: str) -> str | None:
    """Return why a user-provided password is too weak, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"is {len(password)} characters long; use at least {MIN_PASSWORD_LENGTH} random characters"
    if any(char.isspace() or not char.isprintable() for char in password):
        return "contains white space or control characters, which ACL rules cannot carry"
    return None


def random_command_name(command: str) -> str:
    """Return an unguessable new name for a renamed command, such as ``CONFIG_3f9a…``."""
    return f"{command.upper()}_{secrets.token_hex(RANDOM_NAME_BYTES)}"


def is_random_command_name(command: str, name: str) -> bool:
    """Return True if ``name`` has the form ``random_command_name(command)`` produces."""
    prefix = f"{command.upper()}_"
    suffix = name[len(prefix):]
    return (name.startswith(prefix) and len(suffix) == 2 * RANDOM_NAME_BYTES
            and all(char in "0123456789abcdef" for char in suffix))

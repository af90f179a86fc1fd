"""Domain errors carry their HTTP status; one handler in ``backend.main`` maps them."""


class DomainError(Exception):
    """Base class for errors that services raise and the API reports as JSON."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SchemaNotCurrent(DomainError):
    """The database schema is not at the revision this code expects."""

    status_code = 503


class NotFound(DomainError):
    """The thing asked for does not exist (or the caller may not know it does)."""

    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state (already done, lease gone, duplicate)."""

    status_code = 409


class NotAuthenticated(DomainError):
    """No valid session cookie or bearer token."""

    status_code = 401


class PermissionDenied(DomainError):
    """Signed in, but the role does not allow this."""

    status_code = 403


class TooManyAttempts(DomainError):
    """Slow down: too many failed attempts."""

    status_code = 429


class InvalidInput(DomainError):
    """Well-formed JSON whose content cannot be accepted (a bad mask, a bad folder)."""

    status_code = 422

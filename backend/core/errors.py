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

"""Domain errors shared by routing and tracking; the API maps each class to one HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a domain function raises for a caller's mistake."""

    title = "Request failed"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class NotFoundError(DomainError):
    """The thing asked for does not exist, or is outside the caller's scope (never leak existence)."""

    title = "Not found"


class InvalidError(DomainError):
    """The values are well-formed but not acceptable (HTTP 422)."""

    title = "Invalid values"


class ConflictError(DomainError):
    """The request conflicts with the current state (HTTP 409)."""

    title = "Conflict"


class ForbiddenError(DomainError):
    """The caller's role or scope does not allow this action (HTTP 403)."""

    title = "Forbidden"

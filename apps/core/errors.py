"""The one family of API errors. Everything the API refuses is raised as one of these and
rendered by `apps.core.exception_handler` into OpenAI's envelope:
{"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations


class APIError(Exception):
    status_code: int = 400
    error_type: str = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        if status_code is not None:
            self.status_code = status_code

    def envelope(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(APIError):
    """400: the request is malformed, breaks a limit or asks for an illegal transition."""


class AuthenticationError(APIError):
    status_code = 401


class NotFoundError(APIError):
    status_code = 404


class PayloadTooLargeError(APIError):
    status_code = 413


def not_found(kind: str, object_id: str, param: str | None = None) -> NotFoundError:
    """OpenAI's wording: "No assistant found with id 'asst_x'."."""
    return NotFoundError(f"No {kind} found with id '{object_id}'.", param=param)

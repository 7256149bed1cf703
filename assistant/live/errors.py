"""The one error of a fetch (`FetchError`): the URL that could not be fetched and why. Every step of a fetch
(the URL and address checks, the request, reading the page as text) raises it, so it sits below them all."""


class FetchError(Exception):
    """A URL that could not be fetched: the reason (with the HTTP status when there was one)."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status

"""Every Hub call bertlite makes has a time limit, and a Hub that stalls or drops the connection ends in one clear line.

huggingface_hub sends its API calls (whoami, create_repo, the commit...) with no timeout at all, and retries timeouts
and dropped connections five times with back-off (an LFS upload to a dead server takes half a minute to fail, a
stalled one forever). Inside `hub_calls(...)` the shared HTTP client gets a transport that

- gives every request the time limit (requests that carry their own, such as the HF_HUB_ETAG_TIMEOUT of a download,
  keep it when it is shorter);
- turns "the server accepted the request but did not answer in time" into `HubTimeoutError`, which no retry loop
  catches;
- for pushes only, turns a dropped connection into a "could not reach the Hub" `BertliteError` at once: a push is one
  commit and re-running it uploads only what is missing, so failing fast beats blind retries. Downloads keep
  huggingface_hub's own handling of connection errors (falling back on the cache, resuming).

Limits: `push_compressed(timeout=...)` / `bertlite push --timeout`, else the BERTLITE_HUB_TIMEOUT environment
variable, else 60 s for pushes and the larger of HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT for loads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..errors import BertliteError

TIMEOUT_ENV = "BERTLITE_HUB_TIMEOUT"
DEFAULT_PUSH_TIMEOUT = 60.0


class HubTimeoutError(BertliteError):
    """The Hub accepted a request but did not answer within the time limit."""


def resolve_timeout(timeout: float | None, *, push: bool) -> float:
    """The limit in seconds: the argument, else BERTLITE_HUB_TIMEOUT, else the default for pushes or downloads."""
    where = "timeout"
    if timeout is None and os.environ.get(TIMEOUT_ENV, "").strip():
        timeout, where = os.environ[TIMEOUT_ENV].strip(), TIMEOUT_ENV
    if timeout is None:
        if push:
            return DEFAULT_PUSH_TIMEOUT
        from huggingface_hub import constants

        return float(max(constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT))
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise BertliteError(f"{where} must be a number of seconds above 0, got {timeout!r}.")
    return seconds


def _origin(url) -> str:
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}"


def _timeout_message(url, seconds: float, push: bool) -> str:
    fix = ("raise the limit with --timeout SECONDS or BERTLITE_HUB_TIMEOUT, then run the same command again (it "
           "uploads only what is missing)" if push else
           "raise the limit with BERTLITE_HUB_TIMEOUT (or HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT); a model "
           "downloaded before loads from the cache with HF_HUB_OFFLINE=1")
    return f"The Hub at {_origin(url)} did not answer within {seconds:g} s: check HF_ENDPOINT and your connection, or {fix}."


def _make_transport(httpx2, inner, seconds: float, push: bool):
    """A transport around huggingface_hub's own one; built here so that httpx2 is imported only when used."""

    def translate(err, request):
        if isinstance(err, (httpx2.ReadTimeout, httpx2.WriteTimeout, httpx2.PoolTimeout)) or (
                push and isinstance(err, httpx2.TimeoutException)):
            limit = (request.extensions.get("timeout") or {}).get("read") or seconds
            return HubTimeoutError(_timeout_message(request.url, limit, push))
        if push and isinstance(err, httpx2.TransportError):
            return BertliteError(
                f"Could not reach the Hub at {_origin(request.url)} to push ({type(err).__name__}: the connection "
                "was refused or dropped mid-upload): check your connection and HF_ENDPOINT, then run the same "
                "command again (it uploads only what is missing; your folder is unchanged).")
        return None

    class GuardedStream(httpx2.SyncByteStream):
        def __init__(self, stream, request):
            self.stream, self.request = stream, request

        def __iter__(self):
            try:
                yield from self.stream
            except httpx2.TransportError as err:
                raise (translate(err, self.request) or err) from err

        def close(self):
            self.stream.close()

    class TimeLimitTransport(httpx2.BaseTransport):
        def handle_request(self, request):
            limits = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {k: seconds if limits.get(k) is None else min(limits[k], seconds)
                                             for k in ("connect", "read", "write", "pool")}
            try:
                response = inner.handle_request(request)
            except httpx2.TransportError as err:
                raise (translate(err, request) or err) from err
            response.stream = GuardedStream(response.stream, request)
            return response

        def close(self):
            inner.close()

    return TimeLimitTransport()


@contextmanager
def hub_calls(timeout: float | None = None, *, push: bool):
    """Run huggingface_hub calls inside the block under the time limit (see the module docstring)."""
    import httpx2
    from huggingface_hub.utils import _http

    seconds = resolve_timeout(timeout, push=push)
    # huggingface_hub shares one client made by a replaceable factory (and remakes it after a connection error):
    # wrap whatever factory is in place, so a user's own factory (proxies, certificates) keeps working.
    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)

    def factory():
        client = previous()
        client._transport = _make_transport(httpx2, client._transport, seconds, push)  # no public setter in httpx
        return client

    _http.set_client_factory(factory)
    try:
        yield seconds
    finally:
        _http.set_client_factory(previous)

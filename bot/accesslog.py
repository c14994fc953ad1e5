"""The access log (``SMSBOT_ACCESS_LOG=1``) without the carriers' secret path tokens.

Alibaba Cloud and Tencent Cloud authenticate their callbacks by a secret in the URL
(``/webhooks/aliyun/{token}``, ``…/report/{token}``, ``/webhooks/tencent/{token}``,
``…/status/{token}``); aiohttp's access log writes the request line, so anyone reading the log
could forge replies. The routed ``token`` is the URL's last segment: it is written as ``***``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

MASK = "***"


class MaskingAccessLogger(AccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # A request that could not be parsed (a bad header) was never routed: no match_info
        # (aiohttp's property asserts there is one), and nothing secret in its path.
        match_info = request._match_info if isinstance(request, web.Request) else None
        if match_info is not None and match_info.get("token"):
            # aiohttp's formatters only read attributes of the request: a stand-in whose
            # path ends in the mask (a request whose body was read cannot be cloned).
            request = _Masked(request)  # type: ignore[assignment]
        super().log(request, response, time)


class _Masked:
    def __init__(self, request: BaseRequest) -> None:
        self._request = request
        head, _, _ = request.rel_url.raw_path.rpartition("/")
        self.raw_path = self.path = f"{head}/{MASK}"
        query = request.rel_url.raw_query_string
        self.path_qs = f"{self.path}?{query}" if query else self.path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

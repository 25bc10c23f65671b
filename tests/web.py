"""A browser-like HTTP client for the web pages: cookies, CSRF tokens, form posts."""

from __future__ import annotations

import html
import re
import socket

import aiohttp

from mailgate.accounts import Passwords, set_password
from mailgate.db.session import sessions

CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


class WebClient:
    """Talks to a daemon's web port like a browser with cookies, over plain HTTP."""

    def __init__(self, port: int, source: str | None = None) -> None:
        """``source``: the loopback address to connect from (127.0.0.0/8 is all ours),
        so the daemon sees the client on another network."""
        self.base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
        # unsafe=True: keep cookies of an IP address host (127.0.0.1).
        self.http = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kwargs) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=False, **kwargs) as response:
            return response.status, await response.text(errors="replace"), response

    async def csrf(self, path: str = "/login") -> str:
        """The CSRF token of the forms on ``path``."""
        status, body, _ = await self.get(path)
        found = CSRF_INPUT.search(body)
        assert found, f"no CSRF token on {path} ({status})"
        return html.unescape(found.group(1))

    async def post(
        self, path: str, data: dict | aiohttp.FormData, csrf_from: str | None = "/login"
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        """POST a form; with the CSRF token of the page ``csrf_from`` unless None."""
        if csrf_from is not None:
            token = await self.csrf(csrf_from)
            if isinstance(data, aiohttp.FormData):
                data.add_field("csrf", token)
            else:
                data = {**data, "csrf": token}
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as response:
            return response.status, await response.text(errors="replace"), response

    async def sign_in(self, email: str, password: str) -> None:
        status, body, _ = await self.post("/login", {"email": email, "password": password})
        assert status == 303, (status, body[:500])


async def give_password(engine, email: str, password: str) -> None:
    async with sessions(engine).begin() as session:
        await set_password(session, Passwords(), email, password)


def with_agents(setup) -> None:
    """Alice works the support queue, Budi billing, Root is an admin of no route."""
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.routes[1]["agents"] = ["budi@example.test"]
    setup.agents = [
        {"email": "alice@example.test", "name": "Alice"},
        {"email": "budi@example.test", "name": "Budi"},
        {"email": "root@example.test", "name": "Root", "admin": True},
    ]


TICKET_LINK = re.compile(r'href="/tickets/([A-Z]+-\d{8}-[A-Z0-9]{4})"')


def codes_on(page: str) -> list[str]:
    """The ticket codes an inbox page lists, in order."""
    return list(dict.fromkeys(TICKET_LINK.findall(page)))


def raw_request(
    port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, bytes]:
    """One request written byte for byte (header values as UTF-8, nothing checked or
    escaped by a client library); the status and the whole answer."""
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers]
    head.append(f"Content-Length: {len(body)}")
    wire = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(wire)
        answer = bytearray()
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, bytes(answer)

"""Typed keys for what the composition root hangs on the aiohttp application."""

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.accounts import Passwords
from mailgate.runtime import RuntimeConfig
from mailgate.web.context import WebContext

CONTEXT = web.AppKey("context", WebContext)
ENGINE = web.AppKey("engine", AsyncEngine)
RUNTIME = web.AppKey("runtime", RuntimeConfig)
PASSWORDS = web.AppKey("passwords", Passwords)

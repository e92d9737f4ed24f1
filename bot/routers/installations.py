"""Installations of the App and the repositories they cover."""

from __future__ import annotations

from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.routers.context import BotContext, installation

router = Router()


def _names(repositories: Any) -> list[str]:
    return [str(r["full_name"]) for r in repositories or () if "full_name" in r]


@router.register("installation", action="created")
@router.register("installation", action="new_permissions_accepted")
async def on_installed(event: Event, ctx: BotContext) -> None:
    data = event.data
    account = (data["installation"].get("account") or {}).get("login")
    repos = _names(data.get("repositories")) if "repositories" in data else None
    await ctx.state.save_installation(installation(data), account, repos)


@router.register("installation", action="deleted")
async def on_uninstalled(event: Event, ctx: BotContext) -> None:
    await ctx.state.remove_installation(installation(event.data))


@router.register("installation", action="suspend")
async def on_suspended(event: Event, ctx: BotContext) -> None:
    await ctx.state.suspend(installation(event.data), True)


@router.register("installation", action="unsuspend")
async def on_unsuspended(event: Event, ctx: BotContext) -> None:
    await ctx.state.suspend(installation(event.data), False)


@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def on_repositories(event: Event, ctx: BotContext) -> None:
    data = event.data
    await ctx.state.change_repositories(
        installation(data),
        _names(data.get("repositories_added")),
        _names(data.get("repositories_removed")),
    )

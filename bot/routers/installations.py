"""Installations of the App and the repositories they cover."""

from __future__ import annotations

from collections.abc import Iterable

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.events import InstallationEvent, InstallationRepositoriesEvent, Repository
from flujo.bot.routers.context import BotContext

router = Router()


def _names(repositories: Iterable[Repository] | None) -> list[str]:
    return [r.full_name for r in repositories or ()]


@router.register("installation", action="created")
@router.register("installation", action="new_permissions_accepted")
async def on_installed(event: Event, ctx: BotContext) -> None:
    installed = InstallationEvent.parse(event)
    repos = _names(installed.repositories) if installed.repositories is not None else None
    await ctx.state.save_installation(installed.installation.id, installed.account, repos)


@router.register("installation", action="deleted")
async def on_uninstalled(event: Event, ctx: BotContext) -> None:
    await ctx.state.remove_installation(InstallationEvent.parse(event).installation.id)


@router.register("installation", action="suspend")
async def on_suspended(event: Event, ctx: BotContext) -> None:
    await ctx.state.suspend(InstallationEvent.parse(event).installation.id, True)


@router.register("installation", action="unsuspend")
async def on_unsuspended(event: Event, ctx: BotContext) -> None:
    await ctx.state.suspend(InstallationEvent.parse(event).installation.id, False)


@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def on_repositories(event: Event, ctx: BotContext) -> None:
    changed = InstallationRepositoriesEvent.parse(event)
    await ctx.state.change_repositories(
        changed.installation.id,
        _names(changed.repositories_added),
        _names(changed.repositories_removed),
    )

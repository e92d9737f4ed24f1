"""The `dashboard:` section of `.github/flujo.yml`: the bot's dashboard issue."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Dashboard(BaseModel):
    """One issue per repository that the bot keeps up to date: open suggestion pull
    requests, suggestions waiting and ignored (with checkboxes), bake-ins and watches in
    progress, the last check failures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="`false`: the bot opens no dashboard issue here and stops updating one "
        "it opened (comment commands on suggestion pull requests still work).",
    )
    title: str = Field(
        default="Flujo dashboard",
        min_length=1,
        max_length=200,
        description="The title of the issue the bot opens (it is found again by its number, "
        "so renaming it later is fine).",
    )

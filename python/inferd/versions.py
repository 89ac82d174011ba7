"""Model versions: ``[models.NAME.versions.N]`` tables and a version policy, as Triton has.

A model with versions is served as one model per version, named ``NAME/N``: each version's
table overrides the model's own keys (``path``, ``options``, ``description``...; tables merge
key by key). The policy picks which versions are served, as Triton's ``version_policy`` does:
``{ latest = n }`` (the n highest; 1 by default), ``{ all = true }`` or ``{ specific = [..] }``.
A version the policy leaves out is not served at all. ``NAME`` alone names the highest served
version that is ready (else the highest that is not unloaded): what a request that names no
version gets, in both APIs. Loading, unloading or setting up ``NAME`` does it to every served
version; ``NAME/N`` to that one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["SOLE_VERSION", "VersionPolicy", "check_versions", "expand", "split"]

#: A version: a non-negative integer, as Triton's (its folders' names), without leading zeros.
VERSION = re.compile(r"^(0|[1-9][0-9]{0,8})$")
#: The one version of a model without versions, as the Open Inference Protocol numbers it.
SOLE_VERSION = "1"
#: Keys a version's table cannot set: they belong to the model as a whole.
_MODEL_ONLY = frozenset({"versions", "version_policy", "nodes", "output"})


class VersionPolicy(BaseModel):
    """Which of a model's versions are served: exactly one of ``latest``, ``all``, ``specific``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latest: int | None = Field(default=None, ge=1)
    all: bool = False
    specific: list[int] | None = None

    @model_validator(mode="after")
    def _one(self) -> VersionPolicy:
        chosen = [self.latest is not None, self.all, self.specific is not None]
        if sum(chosen) != 1:
            raise ValueError("a version policy is one of { latest = n }, { all = true } or { specific = [...] }")
        if self.specific is not None and not self.specific:
            raise ValueError("a specific version policy names at least one version")
        return self

    def served(self, versions: list[str]) -> list[str]:
        """Of these versions, those the policy serves, in ascending order."""
        ordered = sorted(versions, key=int)
        if self.all:
            return ordered
        if self.latest is not None:
            return ordered[-self.latest :]
        wanted = {str(v) for v in self.specific or ()}
        return [version for version in ordered if version in wanted]


def check_versions(model: BaseModel) -> None:
    """Checks a ``[models.NAME]`` table's versions and policy (its validator calls this)."""
    versions: dict[str, dict[str, Any]] = getattr(model, "versions")
    policy: VersionPolicy | None = getattr(model, "version_policy")
    if not versions:
        if policy is not None:
            raise ValueError("version_policy needs versions ([models.NAME.versions.N] tables)")
        return
    if getattr(model, "workflow") == "graph":
        raise ValueError("a graph has no versions (version the models its nodes call)")
    for version, table in versions.items():
        if not VERSION.match(version):
            raise ValueError(f"version {version!r}: a version is a non-negative integer (1, 2, ...)")
        fixed = sorted(_MODEL_ONLY & set(table))
        if fixed:
            raise ValueError(f"version {version!r}: {', '.join(fixed)} belong to the model, not to a version")
    if policy is not None and policy.specific is not None:
        missing = sorted({str(v) for v in policy.specific} - set(versions), key=int)
        if missing:
            raise ValueError(f"version_policy names versions the model does not have: {', '.join(missing)} (versions: {', '.join(sorted(versions, key=int))})")


def _merged(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(dict(out[key]), value)
        else:
            out[key] = value
    return out


def expand(models: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The models to serve, a versioned one as one per served version (``NAME/N``), and each
    versioned model's served versions' names in ascending order of version."""
    served: dict[str, Any] = {}
    versions: dict[str, list[str]] = {}
    for name, model in models.items():
        if not model.versions:
            served[name] = model
            continue
        policy = model.version_policy or VersionPolicy(latest=1)
        base = model.model_dump(exclude_unset=True, exclude={"versions", "version_policy"})
        configs = {}
        for version, table in model.versions.items():  # every version is checked, served or not
            try:
                configs[version] = type(model).model_validate(_merged(base, table))
            except ValidationError as error:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'table'}: {e['msg']}" for e in error.errors())
                raise ValueError(f"model {name!r} version {version!r}: {problems}") from None
        versions[name] = [f"{name}/{version}" for version in policy.served(list(configs))]
        served.update((f"{name}/{version}", configs[version]) for version in policy.served(list(configs)))
    return served, versions


def split(name: str, versions: Mapping[str, list[str]]) -> tuple[str, str]:
    """(model, version) of a served model's name: ``("wine", "2")`` for ``wine/2`` of a
    versioned ``wine``; ``(name, "")`` for a model without versions."""
    base, slash, version = name.rpartition("/")
    if slash and base in versions:
        return base, version
    return name, ""

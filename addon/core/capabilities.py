"""What a provider can do, by name: the Blender layer, the API and the scripts ask a provider for a capability
(``provider.can("rig_mesh")``) instead of naming the provider.

Standard library only: the light declarations (``declared.py``) carry each provider's capabilities, so the
panel can ask before the providers' own modules (pydantic, requests) are loaded.
"""

from __future__ import annotations

from typing import Literal, get_args

Capability = Literal[
    "rig",                # its results can be (or always are) a rigged character: "Rig & animate"
    "animations",         # takes animation choices for a rigged result (provider.common_animations)
    "animation_catalog",  # its animation library is fetched from the provider (else the built-in list)
    "rig_mesh",           # rigs (and animates) the artist's own mesh: input kind "mesh"
    "add_animations",     # adds animations to a character it rigged earlier: input kind "armature"
    "remesh",             # rebuilds a mesh's topology (e.g. before rigging one over max_rig_faces)
    "recover",            # fetches the result of a task made elsewhere, by its id: input kind "task"
    "balance",            # tells the account's remaining credits (provider.balance)
]

CAPABILITIES: tuple[Capability, ...] = get_args(Capability)


def check(names: frozenset[str]) -> frozenset[Capability]:
    """The names as capabilities; a name outside the vocabulary is a programming error (a typo)."""
    unknown = sorted(set(names) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown capabilities {', '.join(unknown)}; known: {', '.join(CAPABILITIES)}")
    return frozenset(name for name in CAPABILITIES if name in names)

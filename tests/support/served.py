"""What the emulator serves in the end-to-end tests and the demo: the test character built with bpy."""

from __future__ import annotations

from pathlib import Path

from tests.emulator import assets_from_dir


def emulator_assets(assets: dict[str, Path]) -> dict[str, Path]:
    """The emulator's asset map, with distinct motions for a few library actions."""
    served = assets_from_dir(assets["rigged.glb"].parent)
    served["animation:0"] = assets["anim_Wave.glb"]  # Idle
    served["animation:92"] = assets["anim_Jump.glb"]  # Double_Combo_Attack
    return served

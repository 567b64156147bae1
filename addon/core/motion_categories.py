"""Categories for motion lists that come without them (Claythis's Quaternius Universal Animation
Library clips), from the words in each clip's name, so the library picker can show and filter them."""

from __future__ import annotations

# Checked in order: the first rule with a word in the name wins ("Pistol_Idle_Loop" is Combat).
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Reactions", ("hit_", "death", "knockback", "dead")),
    ("Jumping", ("jump", "backflip")),
    ("Locomotion", ("walk", "jog", "sprint", "run_", "crouch_fwd", "swim_fwd", "slide", "climb", "roll", "dash")),
    ("Combat", ("sword", "pistol", "punch", "melee", "shield", "spell", "throw", "attack")),
    ("Idle", ("idle", "tpose")),
    ("Emotes", ("dance", "yes", "talking", "no_")),
)
OTHER = "Interaction"


def motion_category(name: str) -> str:
    """'Locomotion', 'Combat', 'Idle', 'Jumping', 'Reactions', 'Emotes' or 'Interaction' for a clip name."""
    lowered = name.lower() + "_"
    for category, words in _RULES:
        if any(word in lowered for word in words):
            return category
    return OTHER

"""Test characters generated with bpy (build_character.py) and cached per bpy version (cache.py)."""

"""The thin bpy layer: preferences, operators, panel, timer pump, importer and exporter."""

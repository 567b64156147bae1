"""Plain-Python core of Marionette: providers, jobs, journal, downloads. Never imports bpy."""

"""The panel's drawing code, run for every provider, input and job state.

Without a window Blender gives no UILayout, so the panels draw into a recorder that checks every
call against Blender's real RNA: each property exists on its data, each operator exists and takes
the properties set on it, each icon is a real icon. A typo in ui.py fails here, not in an artist's
Blender.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import bpy
import pytest

ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class OperatorProps:
    def __init__(self, idname: str) -> None:
        category, name = idname.split(".")
        op = getattr(getattr(bpy.ops, category), name)
        self.__dict__["_known"] = {p.identifier for p in op.get_rna_type().properties}
        self.__dict__["_idname"] = idname

    def __setattr__(self, key: str, value: Any) -> None:
        assert key in self._known, f"{self._idname} has no property {key!r}"
        self.__dict__[key] = value


class Recorder:
    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls
        self.enabled = True
        self.active = True

    def _icon(self, kwargs: dict[str, Any]) -> None:
        icon = kwargs.get("icon")
        assert icon is None or icon in ICONS, f"unknown icon {icon!r}"

    def _child(self, *_args: Any, **_kwargs: Any) -> Recorder:
        return Recorder(self.calls)

    row = column = box = split = grid_flow = column_flow = _child

    def prop(self, data: Any, name: str, **kwargs: Any) -> None:
        self._icon(kwargs)
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.calls.append(("prop", name))

    def operator(self, idname: str, **kwargs: Any) -> OperatorProps:
        self._icon(kwargs)
        self.calls.append(("operator", idname))
        return OperatorProps(idname)

    def label(self, **kwargs: Any) -> None:
        self._icon(kwargs)
        self.calls.append(("label", kwargs.get("text", "")))

    def progress(self, **kwargs: Any) -> None:
        assert 0.0 <= kwargs["factor"] <= 1.0
        self.calls.append(("progress", kwargs.get("text", "")))

    def template_list(self, listtype: str, _id: str, data: Any, propname: str, active_data: Any,
                      active_propname: str, **_kwargs: Any) -> None:
        assert hasattr(bpy.types, listtype), listtype
        assert propname in data.bl_rna.properties and active_propname in active_data.bl_rna.properties
        self.calls.append(("list", propname))

    def template_icon(self, **kwargs: Any) -> None:
        assert isinstance(kwargs["icon_value"], int)
        self.calls.append(("icon", kwargs["icon_value"]))

    def separator(self, **_kwargs: Any) -> None:
        pass


def draw_all(ext: ModuleType) -> list[tuple[str, Any]]:
    ui = importlib.import_module(ext.__name__ + ".blender.ui")
    calls: list[tuple[str, Any]] = []
    for panel in ui.classes:
        if hasattr(panel, "poll") and not panel.poll(bpy.context):
            continue
        panel.draw(SimpleNamespace(layout=Recorder(calls)), bpy.context)
    return calls


@pytest.mark.parametrize("provider", ["meshy", "rodin", "claythis", "image3d", "claid"])
def test_panel_draws_for_every_provider_and_input(ext: ModuleType, provider: str) -> None:
    settings = importlib.import_module(ext.__name__ + ".blender.settings")
    importlib.import_module(ext.__name__ + ".blender.timer").pump()
    props = bpy.context.scene.marionette
    props.provider = provider
    for kind, *_rest in settings._input_items(props, bpy.context):
        props.input = kind
        calls = draw_all(ext)
        operators = {c[1] for c in calls if c[0] == "operator"}
        assert operators & {"marionette.generate", "marionette.rig_selected_mesh"}, (provider, kind)
        assert ("operator", "marionette.check_balance") in calls


def test_job_list_draws_every_state(api: ModuleType, ext: ModuleType, emulator: Any,
                                    assets: dict[str, Path]) -> None:
    ok = api.wait(api.submit("meshy", image=str(assets["sample.png"]), rig=True), timeout=120)
    emulator.meshy.fail_next("image-to-3d", code="image_too_complex", message="Too complex")
    failed = api.wait(api.submit("meshy", image=str(assets["sample.jpg"])), timeout=60)
    images = api.wait(api.submit("claid", image=str(assets["sample.png"]), options={"number_of_images": 1}),
                      timeout=60)
    running = api.submit("meshy", image=str(assets["sample.png"]), rig=True, animations=["Idle"])
    bpy.context.view_layer.objects.active = bpy.data.objects[ok.armature]
    calls = draw_all(ext)
    labels = " | ".join(str(c[1]) for c in calls if c[0] == "label")
    assert "Too complex" in labels and "[image_too_complex]" in labels
    operators = [c[1] for c in calls if c[0] == "operator"]
    assert "marionette.retry_job" in operators and "marionette.cancel_job" in operators
    assert "marionette.import_job" in operators and "marionette.use_image" in operators
    assert "marionette.add_animations" in operators and "marionette.recover_task" in operators
    assert any(c[0] == "progress" for c in calls) and any(c[0] == "list" for c in calls)
    assert failed.state.value == "FAILED" and images.images
    api.cancel(running)
    api.wait(running, timeout=30)



def _labels(ext: ModuleType) -> str:
    return " | ".join(str(c[1]) for c in draw_all(ext) if c[0] == "label")


def test_a_refusal_stays_in_the_panel_until_the_next_action(ext: ModuleType, api: ModuleType, session: Any,
                                                            emulator: Any, tmp_path: Path, assets: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    bpy.context.scene.marionette.provider = "meshy"
    with pytest.raises(RuntimeError, match="empty"):
        bpy.ops.marionette.generate(filepath=str(empty))
    calls = draw_all(ext)
    assert "The image file is empty" in " ".join(str(c[1]) for c in calls if c[0] == "label")
    assert ("operator", "marionette.dismiss_message") in calls
    assert emulator.count("POST") == 0
    assert bpy.ops.marionette.dismiss_message() == {"FINISHED"}
    assert "empty" not in _labels(ext) and session.panel_message is None
    assert ("operator", "marionette.dismiss_message") not in draw_all(ext)

    # A success that changed the input (downscaled) is a warning the panel keeps too; a plain one clears it.
    with monkeypatch.context() as patch:
        patch.setattr(session.providers["meshy"], "max_image_side", 32, raising=False)
        assert bpy.ops.marionette.generate(filepath=str(assets["sample.png"])) == {"FINISHED"}
    assert session.panel_message is not None and session.panel_message[0] == "WARNING"
    assert "Downscaled for Meshy" in _labels(ext)
    assert bpy.ops.marionette.generate(filepath=str(assets["sample.png"])) == {"FINISHED"}
    assert session.panel_message is None
    assert ("operator", "marionette.dismiss_message") not in draw_all(ext)  # the job list keeps its note
    for job in api.jobs():  # settled before the next test: its workers gone, its jobs removable
        api.cancel(job.id)
        api.wait(job.id, timeout=30)


def test_an_unexpected_error_is_a_message_not_a_traceback_dialog(ext: ModuleType, session: Any,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    jobs = importlib.import_module(ext.__name__ + ".blender.jobs")

    def broken(*_args: Any) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(jobs, "use_as_reference", broken)
    image = bpy.data.images.new("Plate", 4, 4)
    with pytest.raises(RuntimeError, match=r"Marionette could not do this \(ValueError: a bug\)"):
        bpy.ops.marionette.use_image(image=image.name, target="REFERENCE")
    assert session.panel_message is not None and "ValueError: a bug" in session.panel_message[1]
    assert "Traceback" in caplog.text  # the traceback is in the log for a bug report
    bpy.ops.marionette.dismiss_message()

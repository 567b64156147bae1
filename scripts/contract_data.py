"""Extract the JSON examples of the provider documents (../shared/seeds/) into tests/contract_data/.

Each example becomes one file named after the seed and the section it comes from
(``<seed>_<section>.json``); ``index.json`` says where each came from (the seed file, the anchor text it
follows, anything changed to make it JSON). The contract tests (tests/unit/test_contract.py) feed these
files to the client's parsers. Run it again when a seed changes:

    python scripts/contract_data.py /work/shared/seeds
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "contract_data"

# (file name, seed prefix, anchors to find in order, then the JSON value after the last one)
EXAMPLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("002_errors_400_bad_request.json", "002", ("# Errors Source", "**Example: 400 Bad Request**")),
    ("002_errors_task_error_with_details.json", "002", ("## Task Errors", "**Error with details**")),
    ("002_errors_task_error_without_details.json", "002", ("## Task Errors", "**Error without details**")),
    ("002_image_to_3d_create_response.json", "002", ("## POST /openapi/v1/image-to-3d -- ", "**Response**")),
    ("002_image_to_3d_retrieve_response.json", "002", ("## GET /openapi/v1/image-to-3d/:id -- ", "**Response**")),
    ("002_image_to_3d_list_response.json", "002", ("## GET /openapi/v1/image-to-3d -- List", "**Response**")),
    ("002_image_to_3d_task_object.json", "002", ("**Example Image to 3D Task Object**",)),
    ("002_multi_image_to_3d_task_object.json", "002", ("**Example Multi-Image to 3D Task Object**",)),
    ("002_text_to_3d_task_object.json", "002", ("**Example Text to 3D Task Object**",)),
    ("002_remesh_task_object.json", "002", ("**Example Remesh Task Object**",)),
    ("002_rigging_create_response.json", "002", ("## POST /openapi/v1/rigging -- ", "**Response**")),
    ("002_rigging_task_object.json", "002", ("**Example Rigging Task Object**",)),
    ("002_animation_create_response.json", "002", ("## POST /openapi/v1/animations -- ", "**Response**")),
    ("002_animation_task_object.json", "002", ("**Example Animation Task Object**",)),
    ("002_balance_response.json", "002", ("## GET /openapi/v1/balance -- ", "**Response**")),
    ("004_rodin_submit_response.json", "004", ("Example of a Successful Response",)),
    ("004_rodin_download_response.json", "004", ("You will got an JSON response like the following",)),
    ("000_claythis_create_response.json", "000", ("Response Example",)),
    ("003_image3d_generate_response.json", "003", ("/api/generate\nSubmit", "Response\n")),
    ("003_image3d_status_in_progress.json", "003", ("Response (in progress)",)),
    ("003_image3d_status_completed.json", "003", ("Response (completed)",)),
    ("003_image3d_balance_response.json", "003", ("/api/balance\nCheck", "Response\n")),
    ("001_claid_scene_create_response_schema.json", "001", ("POST /v1/scene/create HTTP/1.1", "\n}\n")),
    ("001_claid_scene_create_response_body.json", "001", ("Response body",)),
)

_TRAILING_COMMA = re.compile(r",(\s*[\]}])")


def extract(text: str, anchors: tuple[str, ...]) -> tuple[object, list[str]]:
    pos = 0
    for anchor in anchors:
        found = text.find(anchor, pos)
        if found < 0:
            raise LookupError(f"anchor {anchor!r} not found")
        pos = found + len(anchor)
    start = min(i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0)
    changes: list[str] = []
    decoder = json.JSONDecoder()
    try:
        value, _end = decoder.raw_decode(text, start)
    except json.JSONDecodeError:
        # The example as printed is not JSON (a trailing comma): the smallest change that makes it so.
        end = _balanced_end(text, start)
        fixed = _TRAILING_COMMA.sub(r"\1", text[start:end])
        value = json.loads(fixed)
        changes.append("trailing comma removed (the seed's example is not valid JSON as printed)")
    return value, changes


def _balanced_end(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] in "{[":
            depth += 1
        elif text[index] in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    raise LookupError("unbalanced example")


def main(seeds: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, prefix, anchors in EXAMPLES:
        [seed] = sorted(seeds.glob(f"{prefix}_*.txt"))
        value, changes = extract(seed.read_text(encoding="utf-8"), anchors)
        (OUT / name).write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        index[name] = {"seed": seed.name, "after": list(anchors), "changes": changes}
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    print(f"{len(index)} examples written to {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/seeds"))

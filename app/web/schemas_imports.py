"""JSON shapes of the import API."""

from __future__ import annotations

from pydantic import BaseModel

# The multipart body of POST /api/v1/imports, which the route reads itself.
IMPORT_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A zip of the dataset (Ultralytics, Roboflow, CVAT "
                            "YOLO 1.1, Label Studio YOLO, COCO JSON or Pascal VOC).",
                        },
                        "folder": {
                            "type": "string",
                            "description": "Instead of a file: an absolute path on the server, "
                            "under YDC_IMPORT_ROOTS.",
                        },
                        "mode": {
                            "type": "string",
                            "enum": ["new", "merge"],
                            "description": "A new project (default) or merge into 'project'.",
                        },
                        "project": {
                            "type": "string",
                            "description": "The project: the new one's name (default: after "
                            "the zip or folder) or the one to merge into.",
                        },
                        "add_classes": {
                            "type": "boolean",
                            "description": "Merge: add the classes the project lacks (else "
                            "their boxes are left out). A new project always gets them.",
                        },
                    },
                }
            }
        },
    }
}


class ImportFindingOut(BaseModel):
    reason: str
    group: str  # imported, changed, skipped
    title: str
    count: int
    examples: list[str]


class ImportReportOut(BaseModel):
    task_id: int
    project: str
    format: str
    source: str
    classes: list[str]
    summary: str
    seconds: float
    findings: list[ImportFindingOut]

"""The shapes model the slower tests rely on really detects: measured again, independently of the
training's own figure, in a child process (this process never imports torch)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import cv2

from tests.shapes import (
    CLASSES,
    IMGSZ,
    SETTINGS_PRELUDE,
    ShapesModel,
    iou,
    run_ultralytics,
    shapes_image,
)

VAL_SCRIPT = SETTINGS_PRELUDE + textwrap.dedent(
    """
    from ultralytics import YOLO

    weights, data_yaml = sys.argv[2], sys.argv[3]
    metrics = YOLO(weights).val(data=data_yaml, imgsz=int(sys.argv[4]), device="cpu",
                                plots=False, batch=4, project=str(HOME / "val"), name="run",
                                exist_ok=True, verbose=False)
    print("RESULT " + json.dumps({"map50": float(metrics.box.map50)}))
    """
)

PREDICT_SCRIPT = SETTINGS_PRELUDE + textwrap.dedent(
    """
    import cv2
    from ultralytics import YOLO

    model = YOLO(sys.argv[2])
    found = {}
    for path in sys.argv[4:]:
        boxes = model.predict(cv2.imread(path), imgsz=int(sys.argv[3]), device="cpu",
                              verbose=False)[0].boxes
        found[path] = [
            [int(c), float(p), *map(float, xywh)]
            for c, p, xywh in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xywhn.tolist())
        ]
    print("RESULT " + json.dumps(found))
    """
)


def test_the_shapes_model_reaches_map50_above_a_half_on_its_val_images(
    shapes_model: ShapesModel,
) -> None:
    assert shapes_model.weights.is_file()
    assert shapes_model.names == CLASSES
    result = run_ultralytics(
        VAL_SCRIPT,
        shapes_model.home,
        str(shapes_model.weights),
        str(shapes_model.data_yaml),
        str(IMGSZ),
    )
    measured = float(str(result["map50"]))
    assert measured >= 0.5, f"mAP50 {measured:.3f} (training said {shapes_model.map50:.3f})"
    # The figure the fixture hands on is the one a fresh evaluation gives.
    assert abs(measured - shapes_model.map50) < 0.05
    assert "torch" not in sys.modules  # trained and measured in children only


def test_the_shapes_model_finds_a_fresh_shape_of_each_class_where_it_is(
    shapes_model: ShapesModel, tmp_path: Path
) -> None:
    # Seeds far from the dataset's: images the model never saw, one shape each.
    truth = {}
    for class_id in range(len(CLASSES)):
        image, boxes = shapes_image(500_000 + class_id, classes=[class_id])
        assert len(boxes) == 1
        path = tmp_path / f"fresh-{CLASSES[class_id]}.png"
        assert cv2.imwrite(str(path), image)
        truth[str(path)] = boxes[0]

    found = run_ultralytics(
        PREDICT_SCRIPT, shapes_model.home, str(shapes_model.weights), str(IMGSZ), *truth
    )

    for path, (class_id, *box) in truth.items():
        detections = found[path]
        assert isinstance(detections, list)
        best = max(
            (iou(tuple(d[2:]), tuple(box)) for d in detections if d[0] == class_id), default=0.0
        )
        assert best >= 0.5, (
            f"{CLASSES[class_id]} at {box}: best IoU {best:.2f} among {json.dumps(detections)}"
        )

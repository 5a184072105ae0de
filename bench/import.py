"""Import of a dataset zip: how fast images come in and how much memory it takes.

Usage: .venv/bin/python bench/import.py [--images N] [--runs R]
(defaults: 2,000 images, 3 runs; ``--images 200`` for a quick check)

1. Writes N JPEGs of about 90 KB with 1-3 boxes each in the Ultralytics layout (the export
   bench's tree: ``images/<split>/``, ``labels/<split>/``, ``data.yaml``; 80/10/10) and zips it
   (stored, as exports of images are).
2. Alternately, R times each: ``ydc import ZIP --name bench`` into a fresh data dir, in a child
   process of its own (wall time around the command, peak RSS from ``wait4``), and, as the floor
   of any import, Python's ``zipfile`` extracting the same zip in a child process (the bytes
   read and written once, no hashing, decoding or database). The import also hashes each image,
   decodes it (size, perceptual hash, thumbnail), fsyncs it and its label file, and inserts the
   rows 100 images per transaction.

No goal in the issue; the figures go in the notes. Prints JSON; times in seconds, RSS in MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export import generate, run_child  # noqa: E402

EXTRACT = """
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
"""


def build_zip(base: Path, images: int) -> tuple[Path, dict[str, int]]:
    tree = base / "tree"
    counts = generate(tree, images)
    archive = base / "dataset.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as out:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(tree).as_posix())
    shutil.rmtree(tree)
    return archive, counts


def import_once(archive: Path, work: Path) -> dict[str, Any]:
    data_dir = work / "data"
    command = [
        "env",
        f"YDC_DATA_DIR={data_dir}",
        "YDC_LOG_LEVEL=WARNING",
        str(ROOT / ".venv" / "bin" / "ydc"),
        "import",
        str(archive),
        "--name",
        "bench",
    ]
    seconds, rss_mb, stdout = run_child(command)
    shutil.rmtree(data_dir)
    return {"seconds": seconds, "rss_mb": rss_mb, "summary": stdout.splitlines()[0]}


def extract_once(archive: Path, work: Path) -> float:
    target = work / "extracted"
    seconds, _, _ = run_child([sys.executable, "-c", EXTRACT, str(archive), str(target)])
    shutil.rmtree(target)
    return seconds


def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ydc-bench-import-") as tmp:
        base = Path(tmp)
        archive, counts = build_zip(base, args.images)
        imports: list[dict[str, Any]] = []
        extracts: list[float] = []
        for _ in range(args.runs):
            imports.append(import_once(archive, base))
            extracts.append(extract_once(archive, base))
        import_s = statistics.median(r["seconds"] for r in imports)
        extract_s = statistics.median(extracts)
        return {
            "images": args.images,
            "zip_mb": round(archive.stat().st_size / 2**20, 1),
            "tree": counts,
            "import_s_median": round(import_s, 2),
            "import_images_per_s": round(args.images / import_s, 1),
            "import_rss_mb_max": round(max(r["rss_mb"] for r in imports), 1),
            "extract_s_median": round(extract_s, 2),
            "ratio_to_extract": round(import_s / extract_s, 2),
            "runs": [
                {**r, "seconds": round(r["seconds"], 2), "rss_mb": round(r["rss_mb"], 1)}
                for r in imports
            ],
            "summary": imports[-1]["summary"],
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    print(json.dumps(main(parser.parse_args()), indent=2))

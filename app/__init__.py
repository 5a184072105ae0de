"""ydc: YOLO Dataset Creator."""

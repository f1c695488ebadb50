"""The wire format of siamdeploy's tracking model on Triton Inference Server (see docs/serving.md#protocol).

A request is one frame of one stream; every tensor has Triton's batch dimension of 1 in front of the
shapes below:

| input    | type   | shape       | meaning |
|----------|--------|-------------|---------|
| `STREAM` | BYTES  | `(1,)`      | stream id (UTF-8, 1..256 characters) |
| `IMAGE`  | UINT8  | `(H, W, C)` | the frame: BGR (`C` = 3), gray (1) or BGRA (4); optional |
| `JPEG`   | BYTES  | `(1,)`      | the frame as an encoded image (JPEG, PNG: what OpenCV decodes); optional |
| `BOX`    | FP64   | `(4,)`      | init box `(x, y, w, h)` in frame pixels: opens (or re-opens) the stream; optional |
| `CLOSE`  | UINT8  | `(1,)`      | non-zero: close the stream (no frame needed); optional |

| output    | type  | shape  | meaning |
|-----------|-------|--------|---------|
| `BOX`     | FP64  | `(4,)` | the box `(x, y, w, h)` (on an open: the init box) |
| `SCORE`   | FP32  | `(1,)` | the tracker's score (1 on an open) |
| `POLYGON` | FP64  | `(8,)` | SiamMask's rotated box, 4 corners `x0, y0, ... x3, y3`; NaN for other trackers |
| `ERROR`   | BYTES | `(1,)` | empty on success, else a one-line message (the other outputs are NaN) |
| `INFO`    | BYTES | `(1,)` | on an open: JSON describing the model (preset, engine, polygon); else empty |

Errors travel in ``ERROR``, not as a failed Triton request: PyTriton fails every request of a batch when the
inference function raises, so one malformed request would otherwise fail the streams batched with it.
"""
from __future__ import annotations

MODEL_NAME = "siamdeploy"
MAX_STREAM_ID = 256

IN_STREAM, IN_IMAGE, IN_JPEG, IN_BOX, IN_CLOSE = "STREAM", "IMAGE", "JPEG", "BOX", "CLOSE"
OUT_BOX, OUT_SCORE, OUT_POLYGON, OUT_ERROR, OUT_INFO = "BOX", "SCORE", "POLYGON", "ERROR", "INFO"
OUTPUTS = (OUT_BOX, OUT_SCORE, OUT_POLYGON, OUT_ERROR, OUT_INFO)

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002

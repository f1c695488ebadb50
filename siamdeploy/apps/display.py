"""A live window for ``python -m siamdeploy.run``: shows annotated frames, reads keys, lets the user drag
a box to select (or re-select) the target.

Built on Tk (Python's standard library), because the OpenCV wheels siamdeploy installs are headless.
Keys: ``q``/Esc quit, ``r`` re-select the target, space pause/resume. Selection: drag with the left button,
Enter or space to confirm, Esc to cancel.
"""
from __future__ import annotations

import logging
import os
import sys
import time

import cv2
import numpy as np

log = logging.getLogger(__name__)


def display_unavailable_reason() -> str | None:
    """Why no window can be opened here, or None when one can."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "no DISPLAY is set"
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return "Python's tkinter is not installed (Debian/Ubuntu: apt install python3-tk)"
    return None


class TkDisplay:
    """One Tk window showing BGR frames at their native size."""

    def __init__(self, title: str = "siamdeploy") -> None:
        import tkinter as tk

        self._tk = tk
        self.root = tk.Tk()
        self.root.title(title)
        self.canvas = tk.Canvas(self.root, highlightthickness=0, cursor="crosshair")
        self.canvas.pack()
        self.keys: list[str] = []
        self.closed = False
        self._photo = None
        self._image_item = None
        self._drag: tuple[float, float, float, float] | None = None
        self._rect_item = None
        self.root.bind("<Key>", lambda e: self.keys.append(e.keysym))
        self.root.protocol("WM_DELETE_WINDOW", self._on_close)
        self.canvas.bind("<ButtonPress-1>", self._on_press)
        self.canvas.bind("<B1-Motion>", self._on_drag)

    def _on_close(self) -> None:
        self.closed = True

    def _on_press(self, event: object) -> None:
        self._drag = (event.x, event.y, event.x, event.y)  # type: ignore[attr-defined]

    def _on_drag(self, event: object) -> None:
        if self._drag is not None:
            self._drag = (self._drag[0], self._drag[1], event.x, event.y)  # type: ignore[attr-defined]
            if self._rect_item is not None:
                self.canvas.delete(self._rect_item)
            self._rect_item = self.canvas.create_rectangle(*self._drag, outline="#00ff00", width=2)

    def show(self, frame: np.ndarray) -> str | None:
        """Draw a BGR frame; returns the oldest pending key (``q``, ``r``, ``space`` ...) or None."""
        ok, ppm = cv2.imencode(".ppm", frame)
        if not ok:
            raise RuntimeError("could not encode the frame for display")
        self._photo = self._tk.PhotoImage(data=ppm.tobytes(), format="PPM")
        h, w = frame.shape[:2]
        if self._image_item is None:
            self.canvas.configure(width=w, height=h)
            self._image_item = self.canvas.create_image(0, 0, anchor="nw", image=self._photo)
        else:
            self.canvas.configure(width=w, height=h)
            self.canvas.itemconfigure(self._image_item, image=self._photo)
        self.root.update()
        if self.closed:
            return "q"
        return self.keys.pop(0) if self.keys else None

    def select_box(self, frame: np.ndarray,
                   prompt: str = "drag a box around the target, Enter to confirm, Esc to cancel"
                   ) -> tuple[float, float, float, float] | None:
        """Let the user drag a box on ``frame``; returns ``(x, y, w, h)`` or None when cancelled/closed."""
        from .draw import draw_text

        canvas = frame.copy()
        draw_text(canvas, [prompt])
        self._drag = None
        self.keys.clear()
        self.show(canvas)
        while not self.closed:
            self.root.update()
            key = self.keys.pop(0) if self.keys else None
            if key == "Escape":
                break
            if key in ("Return", "KP_Enter", "space") and self._drag is not None:
                x0, y0, x1, y1 = self._drag
                box = (float(min(x0, x1)), float(min(y0, y1)), float(abs(x1 - x0)), float(abs(y1 - y0)))
                if box[2] >= 2 and box[3] >= 2:
                    self._clear_drag()
                    return box
            time.sleep(0.01)
        self._clear_drag()
        return None

    def _clear_drag(self) -> None:
        if self._rect_item is not None:
            self.canvas.delete(self._rect_item)
            self._rect_item = None
        self._drag = None

    def close(self) -> None:
        try:
            self.root.destroy()
        except Exception:  # noqa: BLE001 - the window may already be gone
            pass

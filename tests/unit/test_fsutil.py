"""What the exporter may replace, concurrent replaces of one folder, temporary folders (umask, stale sweep)."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from siamdeploy.errors import ExportError
from siamdeploy.fsutil import (check_export_destination, is_export_folder, make_temp_dir, replace_dir,
                               sweep_stale_temp_dirs)


def _fake_export(folder: str, tag: str = "x") -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump({"format": "siamdeploy-export", "tag": tag}, fh)
    with open(os.path.join(folder, "template.onnx"), "w", encoding="utf-8") as fh:
        fh.write(tag * 1000)


def test_destination_rules(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    check_export_destination(str(tmp_path / "new"), force=False)  # missing: fine
    (tmp_path / "file.txt").write_text("data")
    other = tmp_path / "src"
    other.mkdir()
    (other / "code.py").write_text("print(1)")
    (tmp_path / "notexport").mkdir()
    (tmp_path / "notexport" / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    for path, needle in ((".", "current folder"), (str(tmp_path), "current folder"), ("file.txt", "not a folder"),
                         ("src", "not a siamdeploy export"), ("notexport", "not a siamdeploy export")):
        for force in (False, True):
            with pytest.raises(ExportError, match=needle):
                check_export_destination(path, force=force)
    _fake_export(str(tmp_path / "old"))
    with pytest.raises(ExportError, match="--force"):
        check_export_destination("old", force=False)
    check_export_destination("old", force=True)
    assert (other / "code.py").read_text() == "print(1)" and (tmp_path / "file.txt").read_text() == "data"


def test_replace_dir_refuses_what_the_predicate_refuses(tmp_path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _fake_export(str(src))
    dst.mkdir()
    (dst / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a folder this may replace"):
        replace_dir(str(src), str(dst), replaceable=is_export_folder)
    assert (dst / "precious.txt").read_text() == "keep me" and src.is_dir()
    with pytest.raises(ExportError):  # keep_existing never keeps (or replaces) a non-export silently
        replace_dir(str(src), str(dst), replaceable=is_export_folder, keep_existing=True)
    assert (dst / "precious.txt").read_text() == "keep me" and src.is_dir()
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(ExportError):
        replace_dir(str(src), str(tmp_path / "afile"), replaceable=is_export_folder)
    assert (tmp_path / "afile").read_text() == "keep"
    _fake_export(str(tmp_path / "old"), "old")
    replace_dir(str(src), str(tmp_path / "old"), replaceable=is_export_folder)
    assert json.load(open(tmp_path / "old" / "manifest.json"))["tag"] == "x" and not src.exists()
    _fake_export(str(src), "late")  # told not to replace: the export already there stays, ours is dropped
    replace_dir(str(src), str(tmp_path / "old"), replaceable=is_export_folder, keep_existing=True)
    assert json.load(open(tmp_path / "old" / "manifest.json"))["tag"] == "x" and not src.exists()


def _writer(args: tuple[str, int, int, float, bool]) -> list[str]:
    dst, worker, rounds, start, keep = args
    parent = os.path.dirname(dst)
    tmps = []
    for i in range(rounds):  # everything prepared first, so the replaces themselves overlap
        tmps.append(make_temp_dir(parent, os.path.basename(dst)))
        _fake_export(tmps[-1], f"{worker}-{i}")
    while time.time() < start:
        time.sleep(0.001)
    failures = []
    for tmp in tmps:
        try:
            replace_dir(tmp, dst, replaceable=is_export_folder, keep_existing=keep)
        except Exception as err:  # noqa: BLE001 - counted, reported below
            failures.append(f"{type(err).__name__}: {err}")
    return failures


@pytest.mark.parametrize("keep", [False, True], ids=["replace", "keep_existing"])
def test_concurrent_replaces_never_fail(tmp_path, keep: bool) -> None:
    dst = str(tmp_path / "export")
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(4) as pool:
        jobs = [(dst, w, 60, time.time() + 1.5, keep) for w in range(4)]
        failures = [f for part in pool.map(_writer, jobs) for f in part]
    assert failures == [], failures[:5]
    assert is_export_folder(dst)
    assert sorted(os.listdir(tmp_path)) == ["export"], "no temporary or backup folder may remain"


def test_temp_dir_follows_umask_and_stale_ones_are_swept(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        tmp = make_temp_dir(str(tmp_path), "out")
    finally:
        os.umask(old)
    assert os.stat(tmp).st_mode & 0o777 == 0o755
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".out.tmp-{dead}-abcdef"
    stale.mkdir()
    (stale / "search.onnx").write_text("half")
    legacy = tmp_path / ".out.tmp-k3j2h1"  # an older, pid-less name
    legacy.mkdir()
    os.utime(legacy, (0, 0))
    unrelated = tmp_path / ".other.tmp-1-abc"
    unrelated.mkdir()
    removed = sweep_stale_temp_dirs(str(tmp_path), "out")
    assert sorted(os.path.basename(p) for p in removed) == sorted([stale.name, legacy.name])
    assert os.path.isdir(tmp) and unrelated.is_dir(), "a live process's folder and other names stay"

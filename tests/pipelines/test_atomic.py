import json
import math

import pytest

from octoscan.pipelines.atomic import (
    TEMP_PREFIX,
    dumps_json,
    remove_stale_temp_files,
    write_json_atomic,
    write_text_atomic,
)


def test_write_text_atomic_replaces_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_json_is_deterministic_and_sorted(tmp_path):
    a = write_json_atomic(tmp_path / "a.json", {"b": 1, "a": [1.5, None]})
    b = write_json_atomic(tmp_path / "b.json", {"a": [1.5, None], "b": 1})
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text()) == {"a": [1.5, None], "b": 1}
    assert a.read_text().index('"a"') < a.read_text().index('"b"')


def test_json_refuses_nan():
    with pytest.raises(ValueError, match="Out of range float"):
        dumps_json({"x": math.nan})


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "r.json"
    write_json_atomic(target, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": True}
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


def test_remove_stale_temp_files(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / f"{TEMP_PREFIX}abc").write_text("partial")
    (tmp_path / "s" / "result.json").write_text("{}")
    assert remove_stale_temp_files([tmp_path]) == 1
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["result.json"]


def test_written_files_follow_umask_not_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "page.html", "<p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644

"""Zip import: a wrapped dataset lands in the workspace; unsafe or oversized zips are refused whole."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest

from core.data.scan import scan
from core.data.zipimport import import_zip, safe_name
from core.errors import UserError
from tests.unit.test_data_scan import noise_image


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    noise_image(seed).save(buf, format="JPEG")
    return buf.getvalue()


def make_zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def test_wrapped_zip_is_imported_and_scanned(tmp_path):
    data = make_zip({"flowers/daisy/1.jpg": jpeg(1), "flowers/雏菊/2.jpg": jpeg(2), "flowers/tulip/3.jpg": jpeg(3),
                     "__MACOSX/flowers/._daisy": b"x", "flowers/.DS_Store": b"x"})
    target = import_zip(data, tmp_path / "datasets", name="My Flowers.zip")
    assert target == tmp_path / "datasets" / "My_Flowers"
    assert not (target / "__MACOSX").exists() and not (target / "flowers" / ".DS_Store").exists()
    assert scan(target).class_names == ["daisy", "tulip", "雏菊"]
    again = import_zip(io.BytesIO(data), tmp_path / "datasets", name="My Flowers.zip")
    assert again.name == "My_Flowers-2"  # an earlier import is never overwritten


@pytest.mark.parametrize("entries,links,key", [
    ({"../evil.jpg": b"x"}, None, "data.zip_unsafe"),
    ({"a/../../evil.jpg": b"x"}, None, "data.zip_unsafe"),
    ({"/etc/evil.jpg": b"x"}, None, "data.zip_unsafe"),
    ({"C:/evil.jpg": b"x"}, None, "data.zip_unsafe"),
    ({"a/1.jpg": b"x"}, {"a/link.jpg": "/etc/passwd"}, "data.zip_link"),
])
def test_entries_escaping_the_target_are_refused(tmp_path, entries, links, key):
    with pytest.raises(UserError) as err:
        import_zip(make_zip(entries, links), tmp_path / "datasets", name="bad.zip")
    assert err.value.key == key
    assert not (tmp_path / "evil.jpg").exists()
    assert list((tmp_path / "datasets").iterdir()) == []  # nothing half-extracted


def test_limits_on_count_size_and_ratio(tmp_path):
    many = make_zip({f"c/{i}.jpg": b"x" for i in range(5)})
    with pytest.raises(UserError) as err:
        import_zip(many, tmp_path, max_files=4)
    assert err.value.key == "data.zip_too_many"
    with pytest.raises(UserError) as err:
        import_zip(make_zip({"c/1.jpg": jpeg(1), "c/2.jpg": jpeg(2)}), tmp_path, max_total_bytes=1000)
    assert err.value.key == "data.zip_too_big"
    bomb = make_zip({"c/zeros.jpg": b"\0" * (8 * 1024**2)})
    with pytest.raises(UserError) as err:
        import_zip(bomb, tmp_path)
    assert err.value.key == "data.zip_ratio" and "zeros.jpg" in str(err.value)


def test_a_zip_without_class_folders_is_refused_and_leaves_nothing(tmp_path):
    for entries in ({}, {"photo.jpg": jpeg(1)}):
        with pytest.raises(UserError) as err:
            import_zip(make_zip(entries), tmp_path / "datasets", name="loose.zip")
        assert err.value.key == "data.no_classes" and "loose.zip" in str(err.value)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_not_a_zip_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as err:
        import_zip(b"PK not really", tmp_path, name="x.zip")
    assert err.value.key == "data.zip_bad"


def test_folder_names_keep_any_script():
    assert safe_name("花卉 数据.zip") == "花卉_数据" and safe_name("../..zip") == "dataset"

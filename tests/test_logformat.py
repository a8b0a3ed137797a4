"""The write-ahead log's frames (vjson._logformat): framing, torn tails versus
damage, the frame limit, and reading logs written by older vjson."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import vjson
from vjson import _logformat
from vjson.errors import CorruptionError, InvalidInputError

FIXTURES = Path(__file__).parent / "fixtures"


def payloads(n: int) -> list[bytes]:
    return [json.dumps({"op": "del", "ids": [f"id{i}" * (i + 1)], "seq": i + 1}).encode() for i in range(n)]


def log_bytes(items: list[bytes]) -> tuple[bytes, list[int]]:
    """The frames of `items` written one after the other, and where each starts."""
    starts, out = [], b""
    for p in items:
        starts.append(len(out))
        out += _logformat.encode_frame(p)
    return out, starts


def legacy_frame(payload: bytes) -> bytes:
    # written independently of the code under test, from the old format's definition
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


class TestFrames:
    def test_frames_round_trip_with_their_offsets(self):
        items = payloads(5)
        data, starts = log_bytes(items)
        found = _logformat.scan(data)
        assert [f.payload for f in found.frames] == items
        assert [f.offset for f in found.frames] == starts
        assert found.end == len(data) and found.torn is None
        assert [f.end for f in found.frames] == starts[1:] + [len(data)]

    def test_the_header_checksum_covers_the_length(self):
        frame = _logformat.encode_frame(b'{"op":"del","ids":[],"seq":1}')
        magic, length, crc, head_crc = struct.unpack_from("<4sIII", frame)
        assert magic == b"VJF\xff" and length == len(frame) - 16
        assert head_crc == zlib.crc32(frame[:12]) and crc == zlib.crc32(frame[16:])

    def test_a_follower_scans_from_an_offset_and_reads_only_what_follows(self, tmp_path):
        items = payloads(6)
        data, starts = log_bytes(items)
        path = tmp_path / "log.vjl"
        path.write_bytes(data[:starts[4] + 5])  # frame 4 is being appended right now
        first = _logformat.scan_file(path)
        assert [f.payload for f in first.frames] == items[:4]
        assert first.end == starts[4] and first.torn == "partial frame header"
        path.write_bytes(data)  # the append finished, and one more
        second = _logformat.scan_file(path, start=first.end)
        assert [f.payload for f in second.frames] == items[4:]
        assert [f.offset for f in second.frames] == starts[4:]
        assert second.end == len(data) and second.torn is None

    def test_every_cut_of_the_last_frame_is_a_torn_tail(self):
        items = payloads(4)
        data, starts = log_bytes(items)
        for cut in range(starts[3] + 1, len(data)):
            found = _logformat.scan(data[:cut])
            assert [f.payload for f in found.frames] == items[:3], cut
            assert found.end == starts[3] and found.torn is not None

    def test_a_damaged_final_frame_is_a_torn_tail(self):
        items = payloads(4)
        data, starts = log_bytes(items)
        for pos in (starts[3] + 2, starts[3] + 5, starts[3] + 13, len(data) - 1):  # magic, length, crc, payload
            damaged = bytearray(data)
            damaged[pos] ^= 0x40
            found = _logformat.scan(bytes(damaged))
            assert [f.payload for f in found.frames] == items[:3], pos
            assert found.end == starts[3] and found.torn is not None

    @pytest.mark.parametrize("field", ["magic", "length", "length_high", "payload_crc", "header_crc", "payload"])
    def test_damage_followed_by_whole_frames_is_corruption(self, field):
        items = payloads(5)
        data, starts = log_bytes(items)
        offset = {"magic": 1, "length": 4, "length_high": 7, "payload_crc": 9, "header_crc": 14, "payload": 20}
        damaged = bytearray(data)
        damaged[starts[2] + offset[field]] ^= 0x11
        with pytest.raises(CorruptionError, match=rf"at byte {starts[2]}\b.*followed by a whole frame"):
            _logformat.scan(bytes(damaged), name="the log")

    def test_a_length_pointing_past_the_end_in_the_middle_is_corruption(self):
        # the case: the old format read such a length as a torn tail and dropped frames 2..4
        data, starts = log_bytes(payloads(5))
        damaged = bytearray(data)
        struct.pack_into("<I", damaged, starts[2] + 4, len(data) * 4)
        with pytest.raises(CorruptionError):
            _logformat.scan(bytes(damaged))

    def test_damage_before_the_committed_length_is_corruption_even_at_the_end(self):
        data, starts = log_bytes(payloads(3))
        with pytest.raises(CorruptionError, match="inside committed data"):
            _logformat.scan(data[:-1], committed=len(data))

    def test_the_frame_limit_is_checked(self, monkeypatch):
        monkeypatch.setattr(_logformat, "MAX_PAYLOAD", 100)
        _logformat.encode_frame(b"x" * 100)
        with pytest.raises(InvalidInputError, match="split the batch"):
            _logformat.encode_frame(b"x" * 101)

    def test_records_are_checked(self):
        with pytest.raises(CorruptionError, match="unknown record type"):
            _logformat.decode_record(b'{"op":"drop","seq":1}')
        with pytest.raises(CorruptionError, match="lacks its fields"):
            _logformat.decode_record(b'{"op":"put","seq":1,"ids":[]}')
        with pytest.raises(CorruptionError, match="unreadable"):
            _logformat.decode_record(b"not json")


class TestLegacyFrames:
    def test_legacy_frames_then_new_ones(self):
        old = payloads(3)
        new = payloads(2)
        data = b"".join(legacy_frame(p) for p in old)
        data += b"".join(_logformat.encode_frame(p) for p in new)
        assert [f.payload for f in _logformat.scan(data).frames] == old + new

    def test_no_legacy_frame_after_a_new_one(self):
        # an appender only ever adds new frames: a legacy-looking frame after one is damage
        data = _logformat.encode_frame(b'{"a":1}') + legacy_frame(b'{"b":2}')
        found = _logformat.scan(data)
        assert len(found.frames) == 1 and found.torn is not None

    def test_legacy_damage_followed_by_a_whole_frame_is_corruption(self):
        data = legacy_frame(b'{"a":1}') + legacy_frame(b'{"b":2}')
        damaged = bytearray(data)
        damaged[2] ^= 0x01  # the first frame's length
        damaged += _logformat.encode_frame(b'{"c":3}')
        with pytest.raises(CorruptionError):
            _logformat.scan(bytes(damaged))


def _unpack_fixture(tmp_path: Path, name: str) -> Path:
    doc = json.loads((FIXTURES / name).read_text())
    folder = tmp_path / "db"
    folder.mkdir()
    for file_name, b64 in doc["files"].items():
        (folder / file_name).write_bytes(base64.b64decode(b64))
    return folder


def _check_fixture_contents(db: vjson.VectorDB, text: bool = True) -> None:
    vec = np.random.default_rng(7).standard_normal((40, 8)).astype(np.float32)
    expected = {f"r{i}" for i in range(40)} - {"r3", "r25"}
    assert set(db.ids()) >= expected and len(db) >= len(expected)
    np.testing.assert_array_equal(db.get("r7").vector, vec[7])
    np.testing.assert_array_equal(db.get("r5").vector, 2 * vec[0])
    assert db.get("r5").metadata == {"i": 5, "tag": "upserted"} and db.get("r5").text == "replaced text"
    assert db.get_metadata("r4") == {"i": 4, "tag": "changed"}
    assert db.get("r30").text == "later text 30"
    assert "r3" not in db and "r25" not in db
    assert db.count({"tag": "second"}) == 19
    assert db.search(vec[33], k=1)[0].id == "r33"
    if text:  # (the fixture has no text index: a writer rebuilds it, a reader goes without)
        assert [r.id for r in db.text_search("replaced", k=3)] == ["r5"]


class TestOlderDatabases:
    def test_a_format_2_log_written_by_the_old_code_opens_and_keeps_working(self, tmp_path):
        path = _unpack_fixture(tmp_path, "format2_db.json")
        with vjson.VectorDB(path, read_only=True) as db:  # a reader changes nothing
            _check_fixture_contents(db, text=False)
        assert json.loads((path / "MANIFEST.json").read_text())["format"] == 2
        with vjson.VectorDB(path) as db:
            _check_fixture_contents(db)
            assert json.loads((path / "MANIFEST.json").read_text())["format"] == 4  # before any append
            db.insert("new", np.ones(8, dtype=np.float32), {"tag": "new"})  # a new frame after the legacy ones
            frames = _logformat.scan_file(path / db._manifest["log"]).frames
            assert frames[-1].payload.startswith(b'{"op":"put"') and len(frames) == 6
            db._dirty = False  # keep the mixed log for the next open (no checkpoint on close)
        with vjson.VectorDB(path) as db:
            _check_fixture_contents(db)
            assert db.get("new").metadata == {"tag": "new"}
            assert db.verify()["ok"]

    def test_older_vjson_refuses_the_upgraded_database(self, tmp_path):
        # format 2 code checks `format > 2` and refuses: it never misreads the new frames
        path = _unpack_fixture(tmp_path, "format2_db.json")
        vjson.VectorDB(path).close()
        assert json.loads((path / "MANIFEST.json").read_text())["format"] > 2


class TestDatabaseLog:
    def _db_with_log(self, path: Path, batches: int = 5) -> tuple[list[int], np.ndarray]:
        data = np.random.default_rng(1).standard_normal((batches * 10, 8)).astype(np.float32)
        db = vjson.VectorDB(path, dimension=8, metric="l2")
        for b in range(batches):
            db.insert_batch([f"b{b}-{i}" for i in range(10)], data[b * 10:(b + 1) * 10])
        log_path = path / db._manifest["log"]
        starts = [f.offset for f in _logformat.scan_file(log_path).frames]
        db._dirty = False  # close without a checkpoint: the log stays as written
        db.close()
        return starts, data

    def test_a_damaged_length_in_the_middle_refuses_to_open(self, tmp_path):
        path = tmp_path / "db"
        starts, _ = self._db_with_log(path)
        log_path = path / "log-0.vjl"
        raw = bytearray(log_path.read_bytes())
        struct.pack_into("<I", raw, starts[2] + 4, len(raw) * 3)  # points past the end
        log_path.write_bytes(bytes(raw))
        with pytest.raises(CorruptionError, match="followed by a whole frame"):
            vjson.VectorDB(path)
        assert log_path.read_bytes() == bytes(raw)  # nothing was cut

    def test_a_torn_tail_is_dropped_and_the_rest_opens(self, tmp_path):
        path = tmp_path / "db"
        starts, data = self._db_with_log(path)
        log_path = path / "log-0.vjl"
        raw = log_path.read_bytes()
        log_path.write_bytes(raw[:starts[4] + 30])  # the last batch's append, cut short
        with vjson.VectorDB(path) as db:
            assert len(db) == 40 and "b4-0" not in db and "b3-9" in db
            assert log_path.stat().st_size == starts[4]
            db.insert_batch([f"again-{i}" for i in range(10)], data[40:])
        with vjson.VectorDB(path) as db:
            assert len(db) == 50 and db.search(data[45], k=1)[0].id == "again-5"

    def test_a_write_over_the_frame_limit_raises_and_changes_nothing(self, tmp_path, monkeypatch):
        path = tmp_path / "db"
        data = np.random.default_rng(2).standard_normal((20, 8)).astype(np.float32)
        with vjson.VectorDB(path, dimension=8, metric="l2") as db:
            db.insert_batch([f"a{i}" for i in range(10)], data[:10])
            monkeypatch.setattr(_logformat, "MAX_PAYLOAD", 200)
            with pytest.raises(InvalidInputError, match="log frame"):
                db.insert_batch([f"b{i}" for i in range(10)], data[10:], texts=["long text " * 5] * 10)
            assert len(db) == 10 and "b0" not in db
            monkeypatch.setattr(_logformat, "MAX_PAYLOAD", 1 << 31)
            db.insert_batch([f"c{i}" for i in range(10)], data[10:])
        with vjson.VectorDB(path) as db:
            assert len(db) == 20 and db.verify()["ok"]

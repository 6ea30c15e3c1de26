"""Day-file replay: plain and gzip files, frames split across chunks, a cut-off end, paced replay."""
from __future__ import annotations

import gzip

import pytest

from riskcore import Book
from riskcore_services.ingest.reader import MAX_FRAME, open_day_file, read_messages, replay
from riskcore_services.ingest.simulate import split_messages

from .model import assert_book_matches_model, books_equal, model_of

SMALLEST_CHUNK = 2 * MAX_FRAME


def test_replay_of_a_day_file_builds_the_models_book(small_day_file, small_day):
    book = Book()
    stats = replay(str(small_day_file), book)

    assert stats.messages == 30_000 and stats.bytes == len(small_day)
    assert_book_matches_model(book, model_of(small_day))


def test_gzip_is_told_by_its_magic_bytes_not_its_name(tmp_path, small_day):
    # A gzip file named like a plain one, and a plain file named like a gzip one.
    (tmp_path / "day.itch").write_bytes(gzip.compress(small_day, compresslevel=1))
    (tmp_path / "day.gz").write_bytes(small_day)
    with open_day_file(str(tmp_path / "day.itch")) as handle:
        assert handle.read(4) == small_day[:4]

    books = [Book(), Book()]
    replay(str(tmp_path / "day.itch"), books[0])
    replay(str(tmp_path / "day.gz"), books[1])
    assert books_equal(*books)
    assert_book_matches_model(books[0], model_of(small_day))


@pytest.mark.parametrize("compress", [False, True])
def test_frames_split_across_chunks_are_joined(tmp_path, small_day, compress):
    # ~950 KB in 131 KB chunks: a dozen chunk boundaries fall inside frames.
    data = small_day
    path = tmp_path / "day"
    path.write_bytes(gzip.compress(data) if compress else data)
    book = Book()
    stats = replay(str(path), book, chunk_bytes=SMALLEST_CHUNK)

    assert stats.bytes == len(data) > 6 * SMALLEST_CHUNK
    assert book.counters()["truncated_frame"] == 0
    assert_book_matches_model(book, model_of(data))


def test_a_file_that_ends_inside_a_frame_counts_it_as_truncated(tmp_path, small_day):
    (tmp_path / "cut.itch").write_bytes(small_day[:-7])
    book = Book()
    stats = replay(str(tmp_path / "cut.itch"), book)

    assert stats.messages == 29_999
    assert book.counters()["truncated_frame"] == 1


def test_an_empty_file_replays_nothing(tmp_path):
    (tmp_path / "empty.itch").write_bytes(b"")
    book = Book()
    assert replay(str(tmp_path / "empty.itch"), book).messages == 0
    assert sum(book.counters().values()) == 0


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("speed", [1.0, 60.0])
def test_paced_replay_waits_for_each_message_at_recorded_time_over_speed(small_day_file, small_day, speed):
    time = FakeTime()
    book = Book()
    stats = replay(str(small_day_file), book, speed=speed, clock=time.clock, sleep=time.sleep)

    first = int.from_bytes(small_day[7:13], "big")
    assert stats.messages == 30_000
    assert stats.seconds == pytest.approx((book.last_timestamp - first) / 1e9 / speed, abs=1e-6)
    assert all(s > 0 for s in time.slept)
    assert_book_matches_model(book, model_of(small_day))


def test_progress_is_reported_while_replaying(small_day_file):
    time = FakeTime()
    seen = []
    replay(str(small_day_file), Book(), speed=1000.0, clock=time.clock, sleep=time.sleep,
           chunk_bytes=SMALLEST_CHUNK, progress=lambda s: seen.append(s.messages), progress_every=1.0)
    assert len(seen) >= 2 and seen == sorted(seen) and 0 < seen[0] < 30_000


@pytest.mark.parametrize("kwargs", [dict(speed=0.0), dict(speed=-1.0), dict(chunk_bytes=1000)])
def test_bad_replay_options_are_refused(small_day_file, kwargs):
    with pytest.raises(ValueError):
        replay(str(small_day_file), Book(), **kwargs)


@pytest.mark.parametrize("compress", [False, True])
def test_read_messages_takes_a_sequence_range_of_a_day_file(tmp_path, small_day, compress):
    path = tmp_path / "day.itch"
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as handle:
        handle.write(small_day)
    messages = split_messages(small_day)
    assert read_messages(str(path), 12_345, 12_400) == messages[12_344:12_400]
    # Frames cut by the chunks' ends, and fewer messages than asked when the file ends sooner.
    assert read_messages(str(path), 1, 40_000, chunk_bytes=1_000) == messages
    with pytest.raises(EOFError, match="ends at message 30000, before message 30001"):
        read_messages(str(path), 30_001, 30_005)

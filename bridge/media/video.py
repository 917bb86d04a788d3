"""Reading video frames with FFmpeg (``av``), streaming: only the frames asked for are kept.

Timestamps are in seconds from the start of the video stream. Sampling ``num_frames``
evenly picks the frame on screen at the centre of each of ``num_frames`` equal slices of
``[start, end)``; sampling at ``fps`` picks the frame on screen at ``start, start + 1/fps, ...``.
A frame is never returned twice, so a short clip may give fewer frames than asked for.

Frames are returned upright: a container's display-matrix rotation (what phones write when
they store a portrait clip's pixels sideways) is applied to every decoded frame, as players
do, so training readers, inference and timelines see the picture the user saw.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.media.audio import _open_av, _reason
from bridge.media.errors import MediaError, check_file


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says (None where it says nothing)."""

    duration: float | None  # seconds
    fps: float | None  # average frame rate
    num_frames: int | None  # from the header, else duration x fps
    width: int
    height: int
    has_audio: bool


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Duration, frame rate, frame count, size and whether there is a sound track.

    Raises:
        MediaError: missing, empty or unreadable file, or no video stream.
    """
    path = check_file(path)
    with _open_av(path) as container:
        stream = _video_stream(container, path)
        duration = _duration(container, stream)
        fps = _fps(stream)
        frames = stream.frames or None
        if frames is None and duration is not None and fps is not None:
            frames = int(round(duration * fps))
        ctx = stream.codec_context
        return VideoInfo(duration, fps, frames, int(ctx.width), int(ctx.height), bool(container.streams.audio))


def iter_video_frames(
    path: str | os.PathLike, fps: float | None = None, start: float = 0.0, end: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp, rgb_frame)`` one at a time: every frame in ``[start, end)``, or
    those on screen at ``start, start + 1/fps, ...``. For long videos and live timelines.

    Raises:
        MediaError: as :func:`read_video_frames` (when nothing at all can be decoded).
    """
    path = check_file(path)
    _check_window(fps=fps, start=start, end=end)
    targets = None if fps is None else (start + k / fps for k in itertools.count())
    yield from _select(path, targets, start, end)


def read_video_frames(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode frames of a video as RGB.

    Args:
        path: any video FFmpeg reads.
        num_frames: sample at most this many frames evenly over ``[start, end)``.
        fps: or sample at this rate (at most one of ``num_frames`` and ``fps``).
        start: seconds from the start of the video.
        end: seconds; None for the end of the video.

    Returns:
        frames ``(t, h, w, 3)`` uint8 and their timestamps ``(t,)`` float64 in seconds. With
        neither ``num_frames`` nor ``fps``, every frame in the window.

    Raises:
        MediaError: missing, empty, unreadable or corrupt file, no video stream, or no frame
            in the window.
    """
    path = check_file(path)
    _check_window(num_frames=num_frames, fps=fps, start=start, end=end)
    if num_frames is not None:
        stop = end
        if stop is None:
            with _open_av(path) as container:
                stream = _video_stream(container, path)
                stop = _duration(container, stream)
                if stop is None:  # no duration in the header: read packet times, no decoding
                    stop = _probe_duration(container, stream)
        span = max(stop - start, 0.0)
        targets = iter([start + (i + 0.5) * span / num_frames for i in range(num_frames)])
    elif fps is not None:
        targets = (start + k / fps for k in itertools.count())
    else:
        targets = None
    frames, times = [], []
    for t, image in _select(path, targets, start, end):
        frames.append(image)
        times.append(t)
    if not frames:
        raise MediaError(path, f"no frames between {start:g} s and {'the end' if end is None else f'{end:g} s'}")
    return np.stack(frames), np.asarray(times, dtype=np.float64)


# --- internals ---------------------------------------------------------------------------


def _check_window(num_frames=None, fps=None, start=0.0, end=None) -> None:
    if num_frames is not None and fps is not None:
        raise ValueError("give num_frames or fps, not both")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"bad time window [{start}, {end})")


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    return container.streams.best("video")


def _fps(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return None


def _probe_duration(container, stream) -> float:
    last = 0.0
    offset = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    for packet in container.demux(stream):
        if packet.pts is not None:
            last = max(last, float((packet.pts + (packet.duration or 0)) * stream.time_base) - offset)
    return last


def _decoded(path: Path, start: float, end: float | None) -> Iterator[tuple[float, object]]:
    """``(time, av.VideoFrame)`` for each frame in ``[start, end)``, in display order."""
    import av

    with _open_av(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        tb = stream.time_base
        offset = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        fps = _fps(stream) or 25.0
        if start > 0 and tb:
            try:
                container.seek(int((start + offset) / tb), stream=stream, backward=True)
            except av.FFmpegError:
                pass  # not seekable: decode from where the demuxer is and drop frames before start
        index, decoded_any = 0, False
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    continue  # a damaged packet: skip it, as ffmpeg does
                for frame in frames:
                    t = float(frame.time) - offset if frame.time is not None else index / fps
                    index += 1
                    decoded_any = True
                    if t < start - 1e-6:
                        continue
                    if end is not None and t >= end:
                        return
                    yield t, frame
        except av.FFmpegError as e:
            if not decoded_any:
                raise MediaError(path, f"corrupt or truncated video ({_reason(e)})") from None
            # a damaged tail after good frames: keep what was decoded
        if not decoded_any:
            raise MediaError(path, "corrupt or truncated video: no frame decoded")


def _select(path: Path, targets, start: float, end: float | None) -> Iterator[tuple[float, np.ndarray]]:
    """The frames on screen at each target time (every frame when ``targets`` is None)."""
    if targets is None:
        for t, frame in _decoded(path, start, end):
            yield t, upright(frame)
        return
    tau = next(targets, None)
    prev, last_given = None, None  # (index, time, frame); index of the frame last yielded
    step = 0.04  # interval between the last two frames: how long the last one stays on screen
    for index, (t, frame) in enumerate(_decoded(path, start, end)):
        while tau is not None and t > tau + 1e-9:
            chosen = prev if prev is not None else (index, t, frame)
            if chosen[0] != last_given:
                last_given = chosen[0]
                yield chosen[1], upright(chosen[2])
            tau = next(targets, None)
        if tau is None:
            return
        if prev is not None and t > prev[1]:
            step = t - prev[1]
        prev = (index, t, frame)
    if tau is not None and prev is not None and prev[0] != last_given and tau < prev[1] + step:
        yield prev[1], upright(prev[2])


def upright(frame) -> np.ndarray:
    """An ``av.VideoFrame`` as RGB ``(h, w, 3)`` uint8, turned as its display matrix says."""
    image = frame.to_ndarray(format="rgb24")
    try:
        quarter_turns = round(float(frame.rotation or 0) / 90) % 4  # counter-clockwise, as np.rot90 turns
    except (AttributeError, TypeError, ValueError):
        return image
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 25, audio: np.ndarray | None = None,
                sample_rate: int = 16_000, rotation: int = 0) -> Path:
    """Write RGB frames ``(t, h, w, 3)`` as H.264, with an optional mono AAC sound track (PyAV).

    For tests, demos and benchmarks that need a real video file. ``rotation`` (degrees,
    counter-clockwise) is written as the stream's display matrix, as phones do: players turn
    the stored frames by it.
    """
    from fractions import Fraction

    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=sample_rate) if audio is not None else None
        if sound is not None:
            sound.layout = "mono"
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(np.asarray(audio, np.float32)[None], format="flt", layout="mono")
            chunk.sample_rate, chunk.time_base, chunk.pts = sample_rate, Fraction(1, sample_rate), 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path

"""Reading sound: any audio file or a video's sound track to a mono float32 waveform.

WAV, FLAC and Ogg go through libsndfile (``soundfile``); everything else (MP3, M4A, the sound
track of MP4/MKV/WebM, ...) through FFmpeg (``av``). Both paths downmix to mono by averaging
the channels and resample with a polyphase filter, so a clip reads the same whichever
library decoded it. The duration is read from the header first, so an over-long file is
refused before it is decoded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.media.errors import MediaError, MediaTooLarge, check_file

SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"})
DEFAULT_MAX_SECONDS = 600.0
NO_AUDIO_STREAM = "no audio stream"  # MediaError.problem of a video without a sound track
MIN_SECONDS = 0.25  # shorter sound holds no emotion to hear: the audio modality then counts as missing
VOICE_DBFS = -45.0  # a clip whose loudest 25 ms frame is quieter than this has no voice activity


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its sound (``duration`` is None when it does not say)."""

    duration: float | None
    sample_rate: int
    channels: int


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample along the last axis with a polyphase anti-aliasing filter.

    Args:
        wave: waveform ``(..., n)``.
        orig_sr: its sampling rate in Hz.
        new_sr: the wanted rate in Hz.

    Returns:
        float32 ``(..., ceil(n * new_sr / orig_sr))``; ``wave`` itself (as float32) when the
        rates are equal.
    """
    orig_sr, new_sr = int(round(orig_sr)), int(round(new_sr))
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sampling rates must be positive, got {orig_sr} -> {new_sr}")
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == new_sr or wave.shape[-1] == 0:
        return wave
    from scipy.signal import resample_poly  # deferred: scipy.signal is slow to import

    g = math.gcd(orig_sr, new_sr)
    return resample_poly(wave, new_sr // g, orig_sr // g, axis=-1).astype(np.float32, copy=False)


def audio_problem(wave: np.ndarray, sample_rate: int) -> str | None:
    """Why a waveform cannot carry a voice, or None when it can.

    Too short (under :data:`MIN_SECONDS`), or no voice activity: an energy gate, not a speech
    detector, which finds no 25 ms frame (10 ms apart) with an RMS level above
    :data:`VOICE_DBFS` dB full scale (after removing any DC offset), as in silence or a
    muted microphone.

    Args:
        wave: mono waveform ``(n,)`` in [-1, 1].
        sample_rate: its rate in Hz.
    """
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    seconds = len(wave) / sample_rate
    if seconds < MIN_SECONDS:
        return f"the audio is {seconds:.3g} s long, shorter than the {MIN_SECONDS:g} s minimum"
    frame, hop = max(int(0.025 * sample_rate), 1), max(int(0.010 * sample_rate), 1)
    x = wave - wave.mean()
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]  # (n_frames, frame)
    loudest = float(np.sqrt(np.max(np.mean(frames.astype(np.float64) ** 2, axis=1))))
    if not np.isfinite(loudest) or 20 * np.log10(loudest + 1e-12) < VOICE_DBFS:
        return f"the audio has no voice activity (no 25 ms frame louder than {VOICE_DBFS:g} dBFS)"
    return None


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Duration, sampling rate and channel count from the header, without decoding.

    Raises:
        MediaError: missing, empty or unreadable file, or no audio stream.
    """
    path = check_file(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            return _soundfile_info(path)
        except MediaError:
            pass  # e.g. an MP3 named .wav: let FFmpeg try
    with _open_av(path) as container:
        stream = _audio_stream(container, path)
        ctx = stream.codec_context
        return AudioInfo(_av_duration(container, stream), ctx.sample_rate, ctx.channels)


def load_audio(
    path: str | os.PathLike, sample_rate: int = 16_000, max_seconds: float | None = DEFAULT_MAX_SECONDS
) -> np.ndarray:
    """Decode an audio file (or the sound track of a video) to mono float32 at ``sample_rate``.

    Args:
        path: any format libsndfile or FFmpeg reads.
        sample_rate: output rate in Hz.
        max_seconds: refuse longer files (checked on the header before decoding, and again
            while decoding when the header gives no duration); None for no limit.

    Returns:
        ``(n,)`` float32 in [-1, 1].

    Raises:
        MediaError: missing, empty, unreadable, truncated or too long file, no audio stream,
            or no samples.
    """
    path = check_file(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            info = _soundfile_info(path)
        except MediaError as sf_error:
            try:  # a container libsndfile does not know under a familiar suffix
                return _load_av(path, sample_rate, max_seconds)
            except MediaError:
                raise sf_error from None
        _check_duration(path, info.duration, max_seconds)
        import soundfile as sf

        try:
            wave, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise MediaError(path, f"unreadable or truncated audio ({e})") from None
        if len(wave) == 0:
            raise MediaError(path, "no audio samples")
        return _finish(wave.mean(axis=1), sr, sample_rate)
    return _load_av(path, sample_rate, max_seconds)


def audio_from_video(
    path: str | os.PathLike, sample_rate: int = 16_000, max_seconds: float | None = DEFAULT_MAX_SECONDS
) -> np.ndarray:
    """The sound track of a video as mono float32 at ``sample_rate``.

    Raises:
        MediaError: as :func:`load_audio`; ``"no audio stream"`` for a silent video.
    """
    return _load_av(check_file(path), sample_rate, max_seconds)


# --- internals ---------------------------------------------------------------------------


def _finish(mono: np.ndarray, orig_sr: int, sample_rate: int) -> np.ndarray:
    wave = resample(mono, orig_sr, sample_rate)
    return np.clip(wave, -1.0, 1.0, out=wave)


def _check_duration(path: Path, duration: float | None, max_seconds: float | None) -> None:
    if max_seconds is not None and duration is not None and duration > max_seconds:
        raise MediaTooLarge(path, f"too long: {duration:.1f} s > max_seconds={max_seconds:g}")


def _soundfile_info(path: Path) -> AudioInfo:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise MediaError(path, f"unreadable audio ({e})") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise MediaError(path, "unreadable audio (invalid header)")
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))


def _open_av(path: Path):
    import av

    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as e:
        raise MediaError(path, f"unreadable, truncated or unsupported format ({_reason(e)})") from None


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or type(error).__name__


def _audio_stream(container, path: Path):
    if not container.streams.audio:
        raise MediaError(path, NO_AUDIO_STREAM)
    return container.streams.best("audio")


def _av_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return None


def _load_av(path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    import av

    with _open_av(path) as container:
        stream = _audio_stream(container, path)
        _check_duration(path, _av_duration(container, stream), max_seconds)
        resampler = av.AudioResampler(format="fltp")  # planar float, native rate and layout
        chunks: list[np.ndarray] = []
        native_sr, total, bad_packets = None, 0, 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    bad_packets += 1  # a damaged packet: skip it, as ffmpeg does
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        native_sr = out.sample_rate
                        chunks.append(out.to_ndarray().mean(axis=0))  # (channels, n) -> (n,)
                        total += out.samples
                if max_seconds is not None and native_sr and total / native_sr > max_seconds:
                    raise MediaTooLarge(path, f"too long: more than max_seconds={max_seconds:g} s of audio")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
        except av.FFmpegError as e:
            raise MediaError(path, f"corrupt or truncated audio ({_reason(e)})") from None
        if not chunks or native_sr is None:
            problem = "corrupt audio: no packet decoded" if bad_packets else "no audio samples"
            raise MediaError(path, problem)
    return _finish(np.concatenate(chunks), native_sr, sample_rate)

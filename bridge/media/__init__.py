"""Media I/O shared by training and inference: audio, video frames, faces, images.

Every function takes a path or an array and returns numpy arrays; a bad file raises
:class:`MediaError` with a one-line message naming the file and the problem.
"""

from bridge.media.audio import AudioInfo, audio_from_video, audio_info, load_audio, resample
from bridge.media.errors import MediaError
from bridge.media.faces import Box, FaceDetector, crop_box, face_track, faces_from_video, load_image, to_gray
from bridge.media.video import VideoInfo, iter_video_frames, read_video_frames, video_info, write_video

__all__ = [
    "AudioInfo",
    "Box",
    "FaceDetector",
    "MediaError",
    "VideoInfo",
    "audio_from_video",
    "audio_info",
    "crop_box",
    "face_track",
    "faces_from_video",
    "iter_video_frames",
    "load_audio",
    "load_image",
    "read_video_frames",
    "resample",
    "to_gray",
    "video_info",
    "write_video",
]

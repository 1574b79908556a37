"""Conventions every layer shares: the video and audio rates, the pose layout, the crop, the accepted files.

Video runs at :data:`FPS` frames per second and speech at :data:`SAMPLE_RATE` Hz mono (the paper's 25 fps and
wav2vec 2.0's 16 kHz); a head pose is :data:`POSE_DIM` numbers (pitch, yaw, roll in radians, tx, ty, tz in cm,
:mod:`talkinghead.face.pose`); faces are cropped to :data:`CROP_SIZE`² and a face smaller than
:data:`MIN_FACE_SIZE` pixels across is refused, because upscaling it to the crop would give the networks a blur
they never saw in training.
"""

FPS = 25
SAMPLE_RATE = 16_000
FRAME_SAMPLES = SAMPLE_RATE // FPS  # audio samples of one video frame (640)
POSE_DIM = 6
CROP_SIZE = 256
MIN_FACE_SIZE = 64
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

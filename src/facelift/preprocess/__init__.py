"""Photo preprocessing: robust image loading, matting, MTCNN face detection, reference crop, head yaw."""

from facelift.preprocess.detect import FaceBox, detect_faces
from facelift.preprocess.face import (
    Preprocessed,
    PreprocessSettings,
    crop_to_reference,
    preprocess,
)
from facelift.preprocess.image import ImageError, LoadedImage, load_image, to_image

__all__ = [
    "FaceBox", "ImageError", "LoadedImage", "PreprocessSettings", "Preprocessed", "crop_to_reference", "detect_faces",
    "load_image", "preprocess", "to_image",
]  # fmt: skip

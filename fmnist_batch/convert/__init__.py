"""Photo -> the 28x28 image the model sees: decoding, the dataset's own steps, segmentation, person-aware
crops.

| module | holds |
| --- | --- |
| settings.py | ConversionSettings, its choices, ImageError |
| decode.py | file or bytes -> an upright Pillow image, pixel limits, modes to RGB |
| png.py | the ISA-L fast path for common PNGs |
| steps.py | the dataset's own steps (trim, resize, sharpen, centre, negate, grey) |
| segment.py | garments on floors, beds, hangers: GrabCut onto the catalog background |
| person.py | garments worn by a person: the garment alone, without head, skin or a second garment |
| person_models.py | the face detector and person segmentation it runs (LiteRT, models/person/) |
| scope.py | the scope judge's in_scope of the photo, judged where the photo is converted |
| conversion.py | the steps in order: convert_image, convert_path, save_preview, encode_preview |

The names below are the package's face; import them from here. Nothing heavier than PIL and numpy is
imported (OpenCV and LiteRT only when a photo is segmented, may show a person or is judged), so worker
processes start fast.
"""

from fmnist_batch.convert.conversion import (
    Conversion,
    convert_image,
    convert_path,
    encode_preview,
    save_preview,
)
from fmnist_batch.convert.decode import load_image, load_image_bytes, reduce_to, to_rgb
from fmnist_batch.convert.person import WornGarment, find_worn_garment, might_show_person
from fmnist_batch.convert.segment import (
    CATALOG_LEVEL,
    CONTRAST_LEVELS,
    auto_contrast,
    grabcut_mask,
    has_plain_background,
    largest_component,
    paste_on_catalog_background,
    plain_border_share,
    remove_shadows,
    segment_garment,
    soften_texture,
)
from fmnist_batch.convert.settings import (
    BACKGROUND_CHOICES,
    INVERT_CHOICES,
    REGIONS,
    RESAMPLE_CHOICES,
    VIEW_CLASSES,
    VIEWS,
    ConversionSettings,
    ImageError,
)
from fmnist_batch.convert.steps import (
    background_colour,
    centre_on_canvas,
    fit_longest_edge,
    is_dark_background,
    luminance,
    negate,
    sharpen,
    stretch_to_full_range,
    to_grayscale,
    trim_background,
    zero_background_level,
)

__all__ = [
    "BACKGROUND_CHOICES",
    "CATALOG_LEVEL",
    "CONTRAST_LEVELS",
    "INVERT_CHOICES",
    "REGIONS",
    "RESAMPLE_CHOICES",
    "VIEWS",
    "VIEW_CLASSES",
    "Conversion",
    "ConversionSettings",
    "ImageError",
    "WornGarment",
    "auto_contrast",
    "background_colour",
    "centre_on_canvas",
    "convert_image",
    "convert_path",
    "encode_preview",
    "find_worn_garment",
    "fit_longest_edge",
    "grabcut_mask",
    "has_plain_background",
    "is_dark_background",
    "largest_component",
    "load_image",
    "load_image_bytes",
    "luminance",
    "might_show_person",
    "negate",
    "paste_on_catalog_background",
    "plain_border_share",
    "reduce_to",
    "remove_shadows",
    "save_preview",
    "segment_garment",
    "sharpen",
    "soften_texture",
    "stretch_to_full_range",
    "to_grayscale",
    "to_rgb",
    "trim_background",
    "zero_background_level",
]

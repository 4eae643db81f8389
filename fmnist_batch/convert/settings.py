"""What a conversion is told (ConversionSettings and its choices) and how it fails (ImageError).

Kept apart from the pixel code so that the CLI, the engines and training can name the settings without
importing any of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fmnist_batch.labels import DEFAULT_MAX_PIXELS, IMAGE_SIZE, VIEW_CLASSES  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from fmnist_batch.model.dataset_reference import ReferenceFiles
    from fmnist_batch.model.person_models import PersonFiles

INVERT_CHOICES = ("auto", "always", "never")
#: what a 28x28 image was made from: a catalog shot as is, a garment cut out of its surroundings, or
#: the garment a person wears
VIEWS = ("catalog", "segmented", "worn")
#: the part of a person a worn garment was read from: "upper" the torso garment (a second garment was
#: found below it and left out), "full" everything worn below the chin (a dress, a long coat, a top
#: whose frame ends above the hips, or one over trousers of its own colours)
REGIONS = ("upper", "full")
#: auto: each photo takes the view that fits it; products: the same without the person check (folders
#: of garments alone, which then never pay for it); plain, segment, person: that path for every photo
BACKGROUND_CHOICES = ("auto", "products", "plain", "segment", "person")
RESAMPLE_CHOICES = ("lanczos", "bicubic", "bilinear", "box", "hamming", "nearest")


class ImageError(Exception):
    """A file could not be turned into a model input; str(e) is a one-line reason for the user."""


@dataclass(frozen=True)
class ConversionSettings:
    size: int = IMAGE_SIZE
    #: Trim edges whose colour is within this fraction of full intensity of the corner colour
    #: (root-mean-square over R, G, B, like ImageMagick's -fuzz).
    trim_tolerance: float = 0.05
    #: "auto" negates unless the background is dark (such photos already look like the dataset).
    invert: str = "auto"
    sharpen: bool = True
    #: Refuse images with more pixels than this before decoding them.
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Filter for the resize to ``size`` (one of RESAMPLE_CHOICES).
    resample: str = "lanczos"
    #: Images are decoded (JPEG: Pillow's draft mode) or box-reduced (other formats) by an integer factor as
    #: long as the short side stays >= draft_factor * size. 4 keeps the round trip to the dataset's images
    #: as close as 8 did (mean correlation 0.94 on 300 rendered catalog photos) at half the pixels.
    draft_factor: int = 4
    #: Stretch intensities so the background becomes exactly 0 (the dataset's background) even when the
    #: photo's background is grey rather than white.
    zero_background: bool = True
    #: Stretch a catalog shot's intensities so its brightest pixel is 255, as in the dataset (every one of
    #: its 60,000 training images reaches at least 250): a navy or grey garment otherwise reaches the
    #: model dimmer than the dataset ever shows one. Segmented photos keep their own contrast levels,
    #: which the photo model was trained on.
    full_range: bool = True
    #: "plain" runs the dataset's conversion as it is; "segment" first cuts the garment out of its
    #: surroundings and pastes it onto the catalog background; "person" cuts out the garment a person
    #: wears (the plain conversion when it finds nobody); "auto" takes the person path for photos that
    #: show one, segments the rest whose border is not one plain colour, so catalog product shots keep
    #: the fast path and exactly its result.
    background: str = "auto"
    #: Longest edge, in pixels, at which a garment is segmented (GrabCut's time grows with the area).
    segment_size: int = 160
    #: Longest edge, in pixels, of the copy GrabCut runs on, and its iterations: GrabCut is nearly all of a
    #: segmented photo's time and the mask need only be right at 28 px (see segment.find_garment).
    cut_size: int = 96
    cut_iterations: int = 2
    #: the side of the square colour picture of a worn garment, as the card's garment reader wants it
    garment_side: int = 224
    #: the side of the photo's square colour picture the card's scope judge reads (convert/scope.py);
    #: 0: no judge runs
    scope_side: int = 0
    #: the person detectors' files, resolved and verified by the model (model/registry.py); None: the
    #: bundled ones, verified on first use. Which files, not how photos are converted: their sha256 go
    #: into a run's settings with the other models', so `record()` leaves the paths out.
    person_models: PersonFiles | None = field(default=None, compare=False, repr=False)
    #: the scope judge's file, resolved and verified by the model like the person detectors' (None with
    #: a scope_side: the bundled judge, verified on first use); left out of `record()` for the same reason
    scope_judge: str | None = field(default=None, compare=False, repr=False)
    #: the judge's second look: photos the judge finds below scope_ask_below are read again by the same
    #: judge at this side, with the second look's head, whose in_scope is theirs (convert/scope.py); 0: no
    #: second look
    scope_second_side: int = 0
    scope_ask_below: float = 0.0
    #: a catalog shot whose main-network logits lie within this radius of the dataset reference's reads as
    #: a Fashion-MNIST image and is not judged, like a 28x28 grey file (model/dataset_reference.py);
    #: 0 or no reference_files: every photo is judged
    dataset_radius: float = 0.0
    #: ...provided its colours could be one grey image painted in one ink: its ink_spread
    #: (convert/ink.py) at most this; None: its colours are not asked
    dataset_ink_limit: float | None = None
    #: the in_scope of such a shot at the edge of the radius (the judge's operating point), rising to 1
    #: at a training image (dataset_reference.in_scope_within)
    dataset_in_scope_floor: float = 0.0
    #: the reference and the main network it was made with, verified by the model (not recorded, as
    #: the judge's file)
    reference_files: ReferenceFiles | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if not 0 <= self.trim_tolerance < 1:
            raise ValueError(f"trim_tolerance must be in [0, 1), got {self.trim_tolerance}")
        if self.invert not in INVERT_CHOICES:
            raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {self.invert!r}")
        if self.resample not in RESAMPLE_CHOICES:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLE_CHOICES)}, got {self.resample!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.draft_factor < 1:
            raise ValueError(f"draft_factor must be >= 1, got {self.draft_factor}")
        if self.background not in BACKGROUND_CHOICES:
            choices = ", ".join(BACKGROUND_CHOICES)
            raise ValueError(f"background must be one of {choices}, got {self.background!r}")
        if self.segment_size < 32:
            raise ValueError(f"segment_size must be >= 32, got {self.segment_size}")
        if self.cut_size < 16 or self.cut_iterations < 1:
            raise ValueError(f"cut_size must be >= 16 and cut_iterations >= 1, got {self}")
        if self.garment_side < 16:
            raise ValueError(f"garment_side must be >= 16, got {self.garment_side}")
        if self.scope_side and self.scope_side < 16:
            raise ValueError(f"scope_side must be 0 (no judge) or >= 16, got {self.scope_side}")
        if self.dataset_ink_limit is not None and not self.dataset_ink_limit >= 0:
            raise ValueError(f"dataset_ink_limit must be None or >= 0, got {self.dataset_ink_limit}")
        if not 0 <= self.dataset_in_scope_floor <= 1:
            raise ValueError(f"dataset_in_scope_floor must be in [0, 1], got {self.dataset_in_scope_floor}")
        if self.scope_second_side and (self.scope_second_side < 16 or not 0 <= self.scope_ask_below <= 1):
            raise ValueError(
                "scope_second_side must be 0 (no second look) or >= 16 with scope_ask_below in [0, 1], "
                f"got {self.scope_second_side} and {self.scope_ask_below}"
            )

    def record(self) -> dict[str, Any]:
        """The settings that shape a conversion's result, as plain values (a run's settings, reports)."""
        record = asdict(self)
        for unrecorded in ("person_models", "scope_judge", "reference_files"):
            del record[unrecorded]
        return record


#: The default of every ``settings`` parameter (one frozen instance: safe to share as a default value).
DEFAULT_SETTINGS = ConversionSettings()

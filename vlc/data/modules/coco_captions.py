"""The COCO captions data module: a folder of images and a COCO captions JSON (COCO, Flickr in COCO format)."""

from pathlib import Path

from jsonargparse.typing import PositiveInt

from vlc.data.datasets.coco_captions import read_coco
from vlc.data.modules.captioning import CaptionDataModule
from vlc.errors import UserError


class CocoCaptionsDataModule(CaptionDataModule):
    """COCO-format captioning data: ``images_dir`` holds the files that ``captions_file`` describes.

    Every image keeps all its reference captions; the split is by image (seeded), so no image leaks between
    train, validation and test. Images listed without a caption, captions of an unknown image id, empty captions
    and images whose file is missing are skipped, with one summary warning (counts and a few examples).

    Args:
        images_dir: folder of the image files (``file_name`` in the JSON is relative to it).
        captions_file: a COCO captions JSON (``captions_train2017.json`` format: ``images`` with ``id`` and
            ``file_name``, ``annotations`` with ``image_id`` and ``caption``).
        subset_csv: optionally, a CSV listing the images to use, by its ``id`` column (or ``file_name``), such
            as the coursework's ``coco_subset_meta.csv``.
        max_images: optionally, use this many images drawn at random (seeded by ``seed``).
        image_size: side length images are resized to (torchvision encoders: 224 for resnet50, 299 for
            inception_v3).
        **kwargs: the shared options of :class:`~vlc.data.modules.captioning.CaptionDataModule` (split, seed,
            vocabulary, batch size, cache, ...).
    """

    def __init__(
        self,
        images_dir: str = "data/coco/train2017",
        captions_file: str = "data/coco/annotations/captions_train2017.json",
        subset_csv: str | None = None,
        max_images: PositiveInt | None = None,
        image_size: PositiveInt | None = 224,
        **kwargs,
    ) -> None:
        super().__init__(image_size=image_size, **kwargs)
        if max_images is not None and max_images < 1:
            raise UserError(f"data.max_images must be at least 1, got {max_images}")
        if image_size is None:
            raise UserError("data.image_size: COCO images differ in size; set one (resnet50: 224, inception_v3: 299)")
        self.images_dir, self.captions_file = Path(images_dir), Path(captions_file)
        self.subset_csv, self.max_images = subset_csv, max_images
        self._files: list[Path] = []

    def list_images(self) -> tuple[list[int], list[list[str]]]:
        keys, references, self._files = read_coco(
            self.images_dir, self.captions_file, self.subset_csv, self.max_images, self.seed
        )
        return keys, references

    def load_images(self, positions: list[int]) -> list[Path]:
        self.index  # noqa: B018 (lists the files)
        return [self._files[i] for i in positions]

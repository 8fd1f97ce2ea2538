"""Opening one image file: the one rule for what counts as an unreadable image, and how that is said.

Training, evaluation, ``data cache`` and ``data check`` all decode images with :func:`read_rgb`, so
they agree on which files are bad (a truncated JPEG, an empty file, text named ``.jpg``) and name
them in the same sentence.
"""
from __future__ import annotations

import os

from nbn_tutorial.errors import UserError

SKIP_HINT = ("replace it, or set skip_bad_images=true (train: --set skip_bad_images=true; evaluate: "
             "--skip-bad-images) to leave such images out; `nbn-tutorial data check` lists every unreadable image")
# The same advice inside an executed notebook, whose parameters have no skip_bad_images option.
NOTEBOOK_SKIP_HINT = ("replace or delete it (the notebooks stop at unreadable images); `nbn-tutorial data check` lists "
                      "every unreadable image")


class UnreadableImage(UserError):
    """An image file that exists but cannot be decoded."""


def read_rgb(path: str | os.PathLike, listed_in: str | os.PathLike | None = None,
             image_root: str | os.PathLike | None = None):
    """The fully decoded RGB PIL image at ``path``; UnreadableImage (or a UserError when missing) naming it."""
    where = f" (listed in {listed_in})" if listed_in is not None else ""
    try:
        return _decode(path)
    except FileNotFoundError:
        under = f"under {image_root} " if image_root is not None else ""
        raise UserError(f"image {path}{where} not found; put the images {under}so that the list's relative "
                        "paths resolve") from None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise UnreadableImage(f"image {path}{where} cannot be read ({image_error_text(error)}); {SKIP_HINT}") \
            from None


def _decode(path: str | os.PathLike):
    from PIL import Image   # deferred: Pillow: only for images

    with Image.open(path) as image:
        return image.convert("RGB")  # decodes every pixel: a truncated file fails here, not later


def image_error_text(error: BaseException) -> str:
    """A short reason for an image that failed to open (PIL's first line, or the exception type)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:160]


def check_image(path: str | os.PathLike) -> str | None:
    """None when ``path`` decodes as an image, else the reason it does not (``not found`` when missing)."""
    try:
        _decode(path)
    except FileNotFoundError:
        return "not found"
    except Exception as error:  # noqa: BLE001 (every decoding failure is a finding, not a crash)
        return image_error_text(error)
    return None


def worker_sentence(message: str) -> str:
    """The original sentence of an error re-raised from a DataLoader worker (torch prefixes its traceback)."""
    if "Original Traceback" not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last

"""``wandb.Image`` and ``wandb.Table``: media logged as artifacts of the run.

numpy, Pillow and matplotlib are imported only when an image is made from an array or a figure.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from expbook.errors import InvalidValueError


class Image:
    """An image to log: a numpy array (HxW, HxWx1/3/4, or CxHxW), a PIL image, a matplotlib
    figure or the path of an image file. Logged as ``media/<key>/<step>.png`` (a file keeps its
    own extension); a caption as ``media/<key>/<step>.caption.txt``.

    Raises:
        InvalidValueError: the data is no image (wrong shape, a missing file, another type).
        NotImplementedError: W&B's ``boxes``, ``masks`` or ``classes`` overlays.
    """

    def __init__(
        self,
        data_or_path: Any,
        mode: str | None = None,
        caption: str | None = None,
        file_type: str | None = None,
        **overlays: Any,
    ) -> None:
        if overlays:
            raise NotImplementedError(
                f"wandb.Image({', '.join(sorted(overlays))}=...) is not supported by expbook: "
                "draw the overlay into the image (matplotlib) and log that"
            )
        self.caption = caption
        self.data, self.extension = _image_bytes(data_or_path, mode)

    def __repr__(self) -> str:
        return f"<wandb.Image {self.extension} {len(self.data)} bytes>"


class Table:
    """Rows under named columns, logged as ``media/<key>/<step>.json`` (W&B's shape:
    ``{"columns": [...], "data": [[...], ...]}``, types kept) and ``.csv`` (for previews).

    Raises:
        InvalidValueError: a row's length differs from the number of columns.
        NotImplementedError: a cell holds a ``wandb.Image`` (media inside tables).
    """

    def __init__(
        self,
        columns: list[str] | None = None,
        data: list[Any] | None = None,
        rows: list[Any] | None = None,
        dataframe: Any = None,
        **options: Any,
    ) -> None:
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.values.tolist()
        self.data: list[list[Any]] = []
        body = [list(row) for row in (data if data is not None else rows or [])]
        width = len(body[0]) if body else 0
        self.columns = (
            list(columns) if columns is not None else [f"Column_{i + 1}" for i in range(width)]
        )
        for row in body:
            self.add_data(*row)

    def add_data(self, *row: Any) -> None:
        if len(row) != len(self.columns):
            raise InvalidValueError(
                f"wandb.Table row {list(row)!r} has {len(row)} values for "
                f"{len(self.columns)} columns {self.columns!r}"
            )
        for cell in row:
            if isinstance(cell, Image | Table):
                raise NotImplementedError(
                    "wandb.Table cells holding media are not supported by expbook: log the "
                    "images under their own keys"
                )
        self.data.append(list(row))

    def add_column(self, name: str, data: list[Any]) -> None:
        if len(data) != len(self.data):
            raise InvalidValueError(
                f"wandb.Table column {name!r} has {len(data)} values for {len(self.data)} rows"
            )
        self.columns.append(name)
        for row, value in zip(self.data, data, strict=True):
            row.append(value)

    def get_column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.data]

    def to_json(self) -> bytes:
        doc = {"columns": self.columns, "data": self.data}
        return json.dumps(doc, default=_plain, allow_nan=True).encode()

    def to_csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([[_plain(v) for v in row] for row in self.data])
        return out.getvalue().encode()

    def __repr__(self) -> str:
        return f"<wandb.Table {len(self.columns)} columns, {len(self.data)} rows>"


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers; other objects JSON cannot hold as their ``str``."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Unsupported:
    """W&B media types expbook does not store: making one raises, naming it."""

    name = ""
    instead = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"wandb.{self.name} is not supported by expbook: {self.instead}")


def unsupported(name: str, instead: str) -> type:
    return type(name, (_Unsupported,), {"name": name, "instead": instead})


def _image_bytes(data: Any, mode: str | None) -> tuple[bytes, str]:
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if not path.is_file():
            raise InvalidValueError(f"wandb.Image: no image file at {str(path)!r}")
        return path.read_bytes(), (path.suffix.lower() or ".png")
    buffer = io.BytesIO()
    if hasattr(data, "savefig"):  # a matplotlib figure
        data.savefig(buffer, format="png")
    elif type(data).__module__.startswith("PIL."):
        data.save(buffer, format="PNG")
    elif hasattr(data, "__array__") or isinstance(data, list):
        _array_image(data, mode).save(buffer, format="PNG")
    else:
        raise InvalidValueError(
            f"wandb.Image: cannot make an image from a {type(data).__name__}: give a numpy "
            "array, a PIL image, a matplotlib figure or a file path"
        )
    return buffer.getvalue(), ".png"


def _array_image(data: Any, mode: str | None) -> Any:
    import numpy as np
    from PIL import Image as PILImage

    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels first, as torch keeps images
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InvalidValueError(
            f"wandb.Image: an array of shape {array.shape} is no image: use HxW, HxWx1, HxWx3 "
            "or HxWx4 (or channels first)"
        )
    if np.issubdtype(array.dtype, np.floating):  # W&B's rule: [0, 1] floats are scaled
        if array.size and array.min() < 0:
            array = array - array.min()
        if array.size and array.max() <= 1.0:
            array = array * 255
    array = np.clip(array, 0, 255).astype(np.uint8)
    return PILImage.fromarray(array, mode=mode) if mode else PILImage.fromarray(array)

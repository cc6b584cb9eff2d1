"""REST API over the library (FastAPI): health, the model zoo, segmentation of uploads, sample scans.

Start it with one command (binds to 127.0.0.1; the OpenAPI schema is at ``/openapi.json``, the
interactive docs at ``/docs``)::

    python -m seg_core serve --port 8000            # or: uvicorn seg_core.api:app --port 8000

Endpoints:

* ``GET /health``: liveness (status and version); ``GET /ready``: readiness (models loadable, the
  inference queue, the decode budget; 503 when no model loads or the queue is full). Both answer
  from the event loop, never behind a segmentation.
* ``GET /models``: trained weights in ``weights/`` with their inputs (modalities, input size) and
  test figures from ``metrics.json``.
* ``POST /segment``: multipart upload of one file or several (``files``; any input
  :func:`seg_core.scans.load_scan` reads: PNG/JPEG/TIFF, NIfTI, DICOM files, a ZIP, a BraTS case's
  files) and a ``model`` id; ``format=json`` (default) answers the figures with the mask as base64,
  ``format=png`` / ``format=nifti`` the mask file itself with the main figures in ``X-Segmentation``.
* ``GET /samples``, ``GET /samples/{name}`` (+ ``/file``, ``/mask``): the built-in synthetic phantoms,
  and test-split cases of the public data sets when ``BRAINSEG_DATA_ROOT`` is set.

Bad input is a 4xx answer carrying the reader's message (422 for a file that cannot be used, 404 for
an unknown model or sample, 413 for an upload over the size limit, counted as it arrives), never a
500. A busy server says so at once: 429 with ``Retry-After`` when the inference queue is full
(:mod:`~seg_core.api.admission`), 503 with ``Retry-After`` when other uploads hold the decode budget.

Privacy: uploads are read into memory and dropped with the request (multipart parts over 1 MiB are
spooled by Starlette to an anonymous temporary file, unlinked from the start and closed when the
request ends); nothing is written to disk. Logs name the model, the scan's size and the time taken,
never file names or header fields (a DICOM's PatientName is never read into a log or an answer).

Segmenters are cached per model id (reloaded when the weights files change on disk) and shared by
every request. Passes run concurrently where the model's forward keeps no state on its modules (the
ONNX Runtime sessions, the spiking ResNets, whose membranes are local to a pass); any other torch
model serialises its passes with its own lock. After each segmentation the freed heap is handed
back to the OS (:mod:`~seg_core.api.memory`).

Layout: :mod:`~seg_core.api.factory` builds the application (settings, body limits, error shape);
:mod:`~seg_core.api.admission` the bounded inference queue; :mod:`~seg_core.api.memory` malloc_trim;
``routes/`` holds one router per concern (health, models, segment, samples), each handed the
settings and the :class:`~seg_core.api.cache.SegmenterCache` as FastAPI dependencies;
:mod:`~seg_core.api.schemas` the response models; :mod:`~seg_core.api.server` uvicorn.

Research and teaching only: not a medical device.
"""

from __future__ import annotations

from seg_core.api.cache import SegmenterCache
from seg_core.api.factory import DEFAULT_MAX_UPLOAD_BYTES, create_app
from seg_core.api.server import BackgroundServer, serve

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "BackgroundServer", "SegmenterCache", "app", "create_app", "serve"]

#: The default application, for ``uvicorn seg_core.api:app``.
app = create_app()

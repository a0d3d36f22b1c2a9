"""Files in and out: the only place where bytes become pixels and pixels become bytes.

Owns decoding (``decode``: every format restore reads, upright, with bit depth and alpha, the
file recognised by ``magic``; HEIC, AVIF, JPEG XL and camera RAW in ``heif``, ``avif`` with
``isobmff``, ``jxl`` and ``raw``), encoding (``encode``: the output format's own way of holding
bit depth, alpha and metadata), the metadata blocks carried between formats (``metadata``, with
``ifd`` for TIFF structures), the in-memory image both share (``image.DecodedImage``), the
before/after view (``comparison``), atomic writes (``files``), pairing folders by file stem
(``pairing``) and video files (``video``: probing, segments, frames, encoding, joining). It imports only ``restore_cli.errors`` and codecs (optional ones through
``plugins``; torch only lazily, to hand the engine a tensor); the engine, batches and the CLI
build on it.
"""

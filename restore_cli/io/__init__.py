"""Files in and out: the only place where bytes become pixels and pixels become bytes.

Owns decoding (``decode``: every format restore reads, upright, with bit depth and alpha),
encoding (``encode``: the output format's own way of holding bit depth, alpha and metadata),
the metadata blocks carried between formats (``metadata``), the in-memory image both share
(``image.DecodedImage``), atomic writes (``files``), pairing folders by file stem
(``pairing``) and video files (``video``: probing, segments, frames, encoding, joining). It imports only ``restore_cli.errors`` and codecs (torch only lazily, to hand
the engine a tensor); the engine, batches and the CLI build on it.
"""

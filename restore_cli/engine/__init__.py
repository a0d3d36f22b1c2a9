"""Running a network over images of any size: the tile loop and everything it decides by.

Owns ``Restorer`` (padding, the tile loop, blending into one output), the tiling geometry
(``tiling``, pure numpy), the memory and speed budget that picks a tile (``budget``), device
and precision (``device``), what this machine computes natively (``hardware``), glibc
allocator tuning (``allocator``), and exported ONNX graphs as the Restorer's network on ONNX
Runtime (``onnx_runtime``). Images arrive as float arrays or tensors; files are the
``io`` package's business. It imports only ``restore_cli.model`` and ``restore_cli.errors``
below it; batches and the CLI build on it, never the reverse. ``allocator`` imports nothing
heavy, so the console-script launcher can use it before torch loads.
"""

"""The network and where its weights come from.

Owns Restormer itself (``restormer``, with TLC's windowed statistics in ``tlc``), reading a
checkpoint file into a built network (``checkpoints``: file -> state dict -> configuration ->
network, knowing nothing of names or downloads), and the model zoo: the manifest of the 13
official checkpoints (``manifest`` and ``manifest.toml``), their verified files on disk
(``cache``), fetching them (``download``) and the name-to-network entry point (``zoo``);
and the network as an ONNX graph (``onnx_graph``, ``export``, what an export says about itself
in ``onnx_format``, exported graphs in the cache in ``onnx_zoo``).

It is the bottom layer: it imports only ``restore_cli.errors`` and third-party packages,
never the engine, files, batches or the command line. The importing of this package itself
is free; torch loads with the modules that need it.
"""

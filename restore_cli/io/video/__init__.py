"""Video files in and out, through FFmpeg's libraries (PyAV); no ffmpeg program is needed.

Owns recognising videos (``names``, without loading FFmpeg), reading a file's layout and
checking it can be read (``probe``), cutting it into segments at keyframes (``segments``),
decoding a segment (``reader``), turning frames into model pixels and back (``frames``),
choosing and opening the encoder (``encode``), storing a restored segment (``writer``,
``segment_file``) and joining the segments with the input's other streams into the output
(``join``). Like the rest of ``io`` it knows nothing of models or batches: the batch layer
decides which frames go through which model, and when.
"""

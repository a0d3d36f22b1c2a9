"""Many inputs through one model: from the paths on a command line to one result per input.

Planning (``planning``) turns inputs into jobs, deciding every output and refusing unsafe
commands before any pixel is computed; ``pipeline.Pipeline.process_one(job) -> Result`` is
the one step every executor runs, which never raises; executors schedule those steps
(``local``: threads around inference in this process; ``ray_executor``: actors on a Ray
cluster, through a driver process of its own, ``ray_driver``, whose modules alone import
Ray); ``executor.execute`` runs any of them with signal
handling, and ``reporting.Reporter`` tells the user (progress, ``jsonl`` lines, exit codes).
``models`` loads each model once per run. Videos go through the same step, frame by frame
(``video``: segments kept in a work folder for resuming, ``video_split``: segments spread
over workers, ``overlap``: decoding and encoding beside the model). It builds on ``io``, ``engine`` and ``model``; only
the CLI imports it.
"""

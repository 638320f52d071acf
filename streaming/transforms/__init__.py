"""The processing transforms: pure DataFrame functions from raw rows to processed and
quarantine rows, used by the process job per micro-batch and by quarantine replay.

``check`` parses, types and validates (``parse``, ``rules``, CDC columns), marking each
failing record with ``_error_kind``/``_error``/``_rule``; ``drift`` finds the columns the
evolve policy adds; ``shape`` turns passing records into processed rows and failing ones
into quarantine rows; ``dedup`` drops events already seen within the watermark and flags
late ones. None of them reads or writes a table: callers hand in what they read.
"""

"""`streamlake report`: the pipeline's state as one self-contained HTML page."""

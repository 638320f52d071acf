"""The lake: what every table holds (``tables``), and how to open, read and append to
Delta tables with Spark (``spark_delta``) or without a JVM (``delta_rs``)."""

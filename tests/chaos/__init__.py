"""The chaos soak: steady load to the three sources of the demo pipeline while the streaming
driver is SIGKILLed and restarted at random, the Kafka broker and the AWS API server are
restarted, and the sources are overloaded; then every record is checked by id.

`make soak` runs the long version (``python -m tests.chaos``, which writes its figures to
docs/reliability.md); `make test` runs a short one (tests/e2e/test_chaos.py).
"""

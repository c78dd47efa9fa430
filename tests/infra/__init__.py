import os

# jsii prints a box about Node 20's end of life every time it starts (once per test session
# here); it is noise in test output. `make synth` still shows it: upgrading Node is advice.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import os

# jsii prints a box about Node 20's end of life every time it starts; noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

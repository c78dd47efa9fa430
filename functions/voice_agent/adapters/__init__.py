"""Adapters: the only modules that touch boto3, the network or the OpenAI SDK."""

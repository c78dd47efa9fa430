"""The local stand-in for the cloud: API Gateway WebSocket emulator, webhook server, DynamoDB,
an OpenAI-compatible model server, and a simulated Twilio caller."""

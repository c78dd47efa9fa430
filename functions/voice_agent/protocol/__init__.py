"""ConversationRelay wire protocol: typed inbound and outbound messages (JSON text frames)."""

"""Lambda entry points: thin adapters from an event to one core call (handler strings in the
stack: ``voice_agent.entry.<module>.handler``)."""

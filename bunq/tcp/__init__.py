"""bunqueue's TCP protocol (length-prefixed MessagePack), one more way into the front's command table."""

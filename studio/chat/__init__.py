"""Live chat: who may write, what is accepted, moderation and limits."""

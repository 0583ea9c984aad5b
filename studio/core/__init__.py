"""The domain core: rules and events that no surface (pages, API, hooks,
websockets) and no media engine leaks into. Modules here take a session and
plain values and import neither Flask nor an engine's wire format."""

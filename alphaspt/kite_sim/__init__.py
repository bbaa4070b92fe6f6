"""A Kite-protocol simulator: REST, the ticker WebSocket and the instruments dump."""

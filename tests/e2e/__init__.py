"""End-to-end tests: the service against the Alpaca test server, one per preset."""

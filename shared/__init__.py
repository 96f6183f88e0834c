"""The app's logic and its Azure clients, free of the Functions runtime (testable without a host)."""
